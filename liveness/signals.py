"""Per-frame signals computed from one frame's landmarks (pure: no model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import geometry as g


@dataclass(frozen=True)
class FrameSignals:
    """What one analysed frame says. Landmarks are pixels of the analysed (downscaled) frame;
    all other fields are None/0 when no face was found (n_faces == 0)."""

    index: int
    t: float
    n_faces: int
    landmarks: np.ndarray | None = None
    ear_right: float = 0.0
    ear_left: float = 0.0
    mouth: float = 0.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    yaw_ratio: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    face_width_frac: float = 0.0  # face box width / frame's shorter side
    outside_frac: float = 0.0
    sharpness: float = 0.0
    brightness: float = 0.0

    @property
    def has_face(self) -> bool:
        return self.n_faces > 0 and self.landmarks is not None

    @property
    def ear(self) -> float:
        return 0.5 * (self.ear_right + self.ear_left)


def compute_signals(index: int, t: float, frame: np.ndarray, landmarks: np.ndarray | None, n_faces: int) -> FrameSignals:
    """All signals of one frame; `landmarks` (478, 3) in pixels of `frame`, or None."""
    import cv2

    if landmarks is None or n_faces == 0:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return FrameSignals(index=index, t=t, n_faces=0, brightness=g.brightness(gray))
    h, w = frame.shape[:2]
    er, el = g.eye_ratios(landmarks)
    yaw, pitch, roll = g.head_pose_deg(landmarks, w, h)
    box = g.face_box(landmarks)
    crop = g.face_crop(frame, box)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.size else np.zeros((0, 0), np.uint8)
    return FrameSignals(
        index=index, t=t, n_faces=n_faces, landmarks=landmarks,
        ear_right=er, ear_left=el, mouth=g.mouth_ratio(landmarks),
        yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll, yaw_ratio=g.yaw_ratio(landmarks),
        box=box, face_width_frac=(box[2] - box[0]) / max(1, min(w, h)),
        outside_frac=g.outside_fraction(box, w, h),
        sharpness=g.sharpness(gray), brightness=g.brightness(gray),
    )
