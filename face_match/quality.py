"""Face capture quality from the aligned crop and the landmarks (pure numpy).

Reported beside every match so a poor capture goes to review instead of being read as a mismatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from models import Reason


@dataclass(frozen=True)
class QualityLimits:
    min_face_px: float = 40.0  # shorter side of the detected box, original pixels
    max_blur: float = 0.7  # see blur_index; 0.7 = Laplacian variance ~36 (sharp press photos: >= 470)
    min_brightness: float = 0.15
    max_brightness: float = 0.92
    max_yaw_deg: float = 40.0
    min_detector_score: float = 0.7  # YuNet's confidence drops for masks, hands, heavy occlusion


@dataclass(frozen=True)
class FaceQuality:
    face_px: float  # shorter side of the face box in original pixels
    blur: float  # 0..1, higher = blurrier (blur_index of the aligned 112 px crop)
    brightness: float  # 0..1, mean grey of the aligned crop
    yaw_deg: float  # approximate head yaw from the landmarks; sign: + = nose toward image right
    ok: bool
    reasons: tuple[Reason, ...]
    detector_score: float = 1.0  # low values usually mean occlusion (mask, hand) or a partial face

    def to_dict(self) -> dict:
        return {
            "face_px": round(self.face_px, 1),
            "blur": round(self.blur, 4),
            "brightness": round(self.brightness, 4),
            "yaw_deg": round(self.yaw_deg, 1),
            "detector_score": round(self.detector_score, 4),
            "ok": self.ok,
            "reasons": [str(r) for r in self.reasons],
        }


def blur_index(aligned: np.ndarray) -> float:
    """0..1, higher = blurrier: exp(-var(Laplacian) / 100) on the grey 112 x 112 crop's inner face.

    Measured on the aligned crop so it is independent of the photo's resolution.
    """
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    # only the inner face: the crop's black borders (faces near the image edge) would add edges
    inner = grey[20:100, 24:88]
    var = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    return float(math.exp(-var / 100.0))


def brightness(aligned: np.ndarray) -> float:
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    return float(grey[20:100, 24:88].mean() / 255.0)


def yaw_from_landmarks(landmarks: np.ndarray) -> float:
    """Rough yaw in degrees: the nose's offset from the eye midline in units of half the eye gap,
    measured along the eye axis (so head roll does not count), read as the sine of the angle."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_r, eye_l, nose = lm[0], lm[1], lm[2]
    axis = eye_l - eye_r
    gap = float(np.linalg.norm(axis))
    if gap < 1e-6:
        return 90.0
    u = axis / gap
    offset = float(np.dot(nose - (eye_r + eye_l) / 2, u)) / (gap / 2)
    return math.degrees(math.asin(max(-1.0, min(1.0, offset))))


def assess(
    aligned: np.ndarray, landmarks: np.ndarray, face_px: float, detector_score: float, limits: QualityLimits
) -> FaceQuality:
    b = blur_index(aligned)
    lum = brightness(aligned)
    yaw = yaw_from_landmarks(landmarks)
    reasons: list[Reason] = []
    if face_px < limits.min_face_px:
        reasons.append(Reason.FACE_TOO_SMALL)
    if b > limits.max_blur:
        reasons.append(Reason.QUALITY_BLURRED)
    if lum < limits.min_brightness:
        reasons.append(Reason.QUALITY_TOO_DARK)
    if lum > limits.max_brightness:
        reasons.append(Reason.QUALITY_OVEREXPOSED)
    if abs(yaw) > limits.max_yaw_deg:
        reasons.append(Reason.FACE_POSE)
    if detector_score < limits.min_detector_score:
        reasons.append(Reason.FACE_OCCLUDED)
    return FaceQuality(
        face_px=float(face_px),
        blur=b,
        brightness=lum,
        yaw_deg=yaw,
        ok=not reasons,
        reasons=tuple(reasons),
        detector_score=float(detector_score),
    )
