"""FaceMatcher: detection, face choice, quality, embedding and the thresholded decision."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import InputError, ModelError, ModelRegistry, Reason, default_registry

from .engines import InsightFaceEmbedder, SFaceEmbedder, YuNetDetector
from .geometry import align_face, to_bgr8
from .quality import FaceQuality, QualityLimits, assess
from .scoring import cosine, score_from_cosine

log = logging.getLogger(__name__)

FMR_LEVELS = ("1e-2", "1e-3", "1e-4")


@dataclass(frozen=True)
class MatchConfig:
    fmr: str = "1e-3"  # operating point; its cosine threshold comes from the registry manifest
    borderline_margin: float = 0.05  # |similarity - threshold| below this is flagged for review
    det_size_px: int = 640  # working size (longest side) for detection; boxes are mapped back
    min_face_px: int = 40  # shorter side of the face box in original pixels
    score_threshold: float = 0.6  # YuNet confidence
    nms_threshold: float = 0.3
    # another face counts as a rival (face.multiple) only when its box side is at least this fraction
    # of the largest face's and YuNet is confident about it: bystanders in the background of real
    # photos are smaller and out of focus (lower confidence), a second applicant is not
    dominant_ratio: float = 0.65
    rival_min_score: float = 0.8
    threshold_override: float | None = None  # cosine threshold; None = the registry's for `fmr`
    quality: QualityLimits = field(default_factory=QualityLimits)
    # per session; 1 because onnxruntime threads spin: under concurrent requests (or a busy CPU) 2
    # threads burnt ~3x the CPU per image here (194 vs 68 ms CPU). Raise for a dedicated 1-request box.
    intra_op_threads: int = 1
    # opt-in insightface model pack directory (e.g. buffalo_l). Never the default: those weights are
    # licensed for non-commercial research only. Its thresholds come from the pack's own calibration
    # file (engines.INSIGHTFACE_THRESHOLDS_FILE) unless threshold_override is set.
    insightface_dir: Path | None = None


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x, y, w, h in the ORIGINAL image's pixels
    landmarks: np.ndarray  # (5, 2) original pixels: right eye, left eye, nose, mouth right, mouth left
    score: float

    @property
    def size_px(self) -> float:
        return float(min(self.box[2], self.box[3]))

    def to_dict(self) -> dict:
        return {"box": [round(v, 1) for v in self.box], "score": round(self.score, 4)}


def _num(v: float) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 6)


@dataclass(frozen=True)
class MatchResult:
    """One 1:1 comparison.

    score = (cosine + 1) / 2 (0..1, higher = more similar; 0.0 when a face was missing).
    similarity is the raw cosine (NaN when not evaluated; None in to_dict). passed means
    similarity >= threshold, the cosine threshold calibrated for `fmr`; margin = similarity - threshold.
    """

    score: float
    similarity: float
    threshold: float
    fmr: str
    passed: bool
    margin: float
    borderline: bool
    reasons: tuple[Reason, ...]
    quality_a: FaceQuality | None
    quality_b: FaceQuality | None
    model_id: str
    elapsed_ms: float

    def to_dict(self) -> dict:
        return {
            "score": _num(self.score),
            "similarity": _num(self.similarity),
            "threshold": _num(self.threshold),
            "fmr": self.fmr,
            "passed": self.passed,
            "margin": _num(self.margin),
            "borderline": self.borderline,
            "reasons": [str(r) for r in self.reasons],
            "quality_a": self.quality_a.to_dict() if self.quality_a else None,
            "quality_b": self.quality_b.to_dict() if self.quality_b else None,
            "model_id": self.model_id,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


@dataclass(frozen=True)
class SelfieCardResult:
    person_vs_card: MatchResult | None  # the person holding the card vs the card's portrait
    live_vs_person: MatchResult | None  # the live frame vs the person in the selfie (when live given)
    live_vs_card: MatchResult | None  # the live frame vs the held card's portrait (when live given)
    faces_found: int
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict:
        return {
            "person_vs_card": self.person_vs_card.to_dict() if self.person_vs_card else None,
            "live_vs_person": self.live_vs_person.to_dict() if self.live_vs_person else None,
            "live_vs_card": self.live_vs_card.to_dict() if self.live_vs_card else None,
            "faces_found": self.faces_found,
            "reasons": [str(r) for r in self.reasons],
        }


@dataclass(frozen=True)
class _Prepared:
    """A face ready to compare: its embedding and quality (internal)."""

    embedding: np.ndarray
    quality: FaceQuality


def _dedupe(reasons: list[Reason]) -> tuple[Reason, ...]:
    return tuple(dict.fromkeys(reasons))


class FaceMatcher:
    """Built once (loads and verifies YuNet and SFace), immutable, safe to call from several threads."""

    def __init__(self, config: MatchConfig | None = None, registry: ModelRegistry | None = None) -> None:
        self.config = config or MatchConfig()
        if self.config.fmr not in FMR_LEVELS and self.config.threshold_override is None:
            raise ValueError(f"fmr must be one of {FMR_LEVELS}, got {self.config.fmr!r}")
        reg = registry or default_registry()
        self._detector = YuNetDetector(reg, self.config.intra_op_threads)
        self._embedder: SFaceEmbedder | InsightFaceEmbedder
        if self.config.insightface_dir is not None:  # opt-in, non-commercial weights (see InsightFaceEmbedder)
            self._embedder = InsightFaceEmbedder(self.config.insightface_dir, self.config.intra_op_threads)
        else:
            self._embedder = SFaceEmbedder(reg, self.config.intra_op_threads)
        if self.config.threshold_override is not None:
            self._threshold = float(self.config.threshold_override)
        else:
            table = (self._embedder.thresholds() if isinstance(self._embedder, InsightFaceEmbedder)
                     else reg.thresholds("sface"))
            if self.config.fmr not in table:
                raise ValueError(f"no threshold for fmr {self.config.fmr!r} for {self._embedder.model_id}")
            self._threshold = float(table[self.config.fmr])
        self._model_id = f"{self._detector.model_id}+{self._embedder.model_id}"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def threshold(self) -> float:
        """Cosine threshold in force (for the configured FMR)."""
        return self._threshold

    # ------------------------------------------------------------------ detection
    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Every face, largest first, boxes and landmarks in the original image's pixels.

        Detection runs at a bounded working size (longest side det_size_px). If that finds nothing,
        a second pass at half the size catches very large close-ups (the face then fits YuNet's
        largest anchors).
        """
        bgr = self._as_bgr(image)
        cfg = self.config
        dets = self._detector.detect(bgr, cfg.det_size_px, cfg.score_threshold, cfg.nms_threshold)
        if len(dets) == 0:
            dets = self._detector.detect(bgr, cfg.det_size_px // 2, cfg.score_threshold, cfg.nms_threshold)
        faces = [
            DetectedFace(
                box=(float(d[0]), float(d[1]), float(d[2]), float(d[3])),
                landmarks=d[4:14].reshape(5, 2).astype(np.float32),
                score=float(d[14]),
            )
            for d in dets
            if d[2] > 1 and d[3] > 1
        ]
        faces.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
        return faces

    def _as_bgr(self, image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.size == 0:
            raise InputError(Reason.INPUT_INVALID, "image must be a non-empty numpy array")
        try:
            bgr = to_bgr8(image)
        except ValueError as e:
            raise InputError(Reason.INPUT_INVALID, str(e)) from None
        if min(bgr.shape[:2]) < 16:
            raise InputError(Reason.INPUT_TOO_SMALL, f"image is {bgr.shape[1]}x{bgr.shape[0]} pixels; too small")
        return bgr

    def _choose(self, faces: list[DetectedFace], role: str) -> DetectedFace:
        if not faces:
            raise InputError(Reason.FACE_NOT_DETECTED, f"no face found in the {role}")
        largest = faces[0]
        cfg = self.config
        rivals = [
            f
            for f in faces[1:]
            if f.size_px >= cfg.dominant_ratio * largest.size_px and f.score >= cfg.rival_min_score
        ]
        if rivals:
            raise InputError(Reason.FACE_MULTIPLE, f"{1 + len(rivals)} faces of similar size in the {role}")
        return largest

    # ------------------------------------------------------------------ embedding
    def embed_face(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """L2-normalised 128-d SFace embedding of one detected face."""
        return self._prepare(self._as_bgr(image), face).embedding

    def embed(self, image: np.ndarray, *, role: str = "image") -> np.ndarray:
        """Embedding of the one face in the image (a dominant face is accepted beside tiny ones).

        Raises InputError(face.not_detected / face.multiple) otherwise.
        """
        bgr = self._as_bgr(image)
        return self._prepare(bgr, self._choose(self.detect(bgr), role)).embedding

    def _prepare(self, bgr: np.ndarray, face: DetectedFace) -> _Prepared:
        aligned = align_face(bgr, face.landmarks)
        quality = assess(aligned, face.landmarks, face.size_px, face.score, self._limits)
        return _Prepared(self._embedder.embed(aligned), quality)

    @property
    def _limits(self) -> QualityLimits:
        q = self.config.quality
        if q.min_face_px != self.config.min_face_px:
            # MatchConfig.min_face_px is the one knob callers see; keep the limits in step
            from dataclasses import replace

            return replace(q, min_face_px=float(self.config.min_face_px))
        return q

    def _prepare_image(self, image: np.ndarray, role: str) -> _Prepared:
        bgr = self._as_bgr(image)
        return self._prepare(bgr, self._choose(self.detect(bgr), role))

    # ------------------------------------------------------------------ matching
    def compare(
        self, a: _Prepared | None, b: _Prepared | None, started: float, missing: list[Reason] | None = None
    ) -> MatchResult:
        reasons: list[Reason] = list(missing or [])
        if a is None or b is None:
            sim = float("nan")
            passed, margin, borderline = False, float("nan"), False
        else:
            sim = cosine(a.embedding, b.embedding)
            margin = sim - self._threshold
            passed = margin >= 0
            borderline = abs(margin) < self.config.borderline_margin
            reasons.append(Reason.FACE_MATCH if passed else Reason.FACE_MISMATCH)
            if borderline:
                reasons.append(Reason.FACE_BORDERLINE)
        for q in (a.quality if a else None, b.quality if b else None):
            if q is not None and not q.ok:
                reasons.append(Reason.FACE_POOR_QUALITY)
                reasons.extend(q.reasons)
        result = MatchResult(
            score=score_from_cosine(sim),
            similarity=sim,
            threshold=self._threshold,
            fmr=self.config.fmr,
            passed=passed,
            margin=margin,
            borderline=borderline,
            reasons=_dedupe(reasons),
            quality_a=a.quality if a else None,
            quality_b=b.quality if b else None,
            model_id=self._model_id,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
        )
        log.info(
            "face match similarity=%.4f threshold=%.4f passed=%s reasons=%s elapsed_ms=%.1f",
            sim, self._threshold, passed, ",".join(result.reasons), result.elapsed_ms,
        )
        return result

    def _try_prepare(self, image: np.ndarray, role: str) -> tuple[_Prepared | None, Reason | None]:
        try:
            return self._prepare_image(image, role), None
        except InputError as e:
            if e.code in (Reason.FACE_NOT_DETECTED, Reason.FACE_MULTIPLE):
                return None, e.code
            raise  # undecodable / invalid input: could not evaluate

    def match(self, a: np.ndarray, b: np.ndarray) -> MatchResult:
        """Compare the one face in `a` with the one face in `b`.

        A missing or ambiguous face is "evaluated and failed": passed=False with face.not_detected /
        face.multiple in reasons. Invalid arrays raise InputError.
        """
        started = time.perf_counter()
        pa, ra = self._try_prepare(a, "first image")
        pb, rb = self._try_prepare(b, "second image")
        return self.compare(pa, pb, started, [r for r in (ra, rb) if r is not None])

    def match_selfie_with_card(self, selfie: np.ndarray, live: np.ndarray | None = None) -> SelfieCardResult:
        """A selfie holding the ID card: the person is the largest face, the card portrait the next
        (smaller) one. Matches person vs card, and the live frame against both when given."""
        started = time.perf_counter()
        bgr = self._as_bgr(selfie)
        faces = self.detect(bgr)
        reasons: list[Reason] = []
        person = card = None
        if not faces:
            reasons.append(Reason.FACE_NOT_DETECTED)
        else:
            person = self._prepare(bgr, faces[0])
            if len(faces) >= 2:
                card = self._prepare(bgr, faces[1])
                if len(faces) > 2:
                    reasons.append(Reason.FACE_MULTIPLE)
            else:
                reasons.append(Reason.FACE_CARD_PORTRAIT_NOT_FOUND)
        person_vs_card = None
        if person is not None and card is not None:
            person_vs_card = self.compare(person, card, started)
            if not person_vs_card.passed:
                reasons.append(Reason.FACE_SELFIE_CARD_MISMATCH)
        live_vs_person = live_vs_card = None
        if live is not None:
            t = time.perf_counter()
            pl, rl = self._try_prepare(live, "live image")
            missing = [rl] if rl else []
            live_vs_person = self.compare(pl, person, t, missing + ([] if person else [Reason.FACE_NOT_DETECTED]))
            live_vs_card = (
                self.compare(pl, card, t, missing + ([] if card else [Reason.FACE_CARD_PORTRAIT_NOT_FOUND]))
            )
            if not live_vs_card.passed and card is not None and pl is not None:
                reasons.append(Reason.FACE_MISMATCH)
        return SelfieCardResult(person_vs_card, live_vs_person, live_vs_card, len(faces), _dedupe(reasons))
