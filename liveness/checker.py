"""LivenessChecker: did one live person perform the challenged actions, in order?

Owns the Face Mesh engine (built once, verified through the registry); everything it decides is
done by the pure modules (signals, detect, spoof) on the per-frame signals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import InputError
from models.reasons import Reason

from . import geometry as g
from .capture import FrameSequence
from .challenge import Action, parse_actions
from .detect import DetectorConfig, Episode, detect_blinks, detect_mouth, detect_turns, ear_baseline, match_in_order
from .mesh import FaceMeshEngine
from .signals import FrameSignals
from .spoof import min_pairwise_similarity, motion_and_rigidity

log = logging.getLogger(__name__)

QUALITY_REASONS = frozenset({
    Reason.LIVENESS_POOR_QUALITY, Reason.LIVENESS_FACE_TOO_SMALL, Reason.LIVENESS_FACE_LOST,
    Reason.LIVENESS_MULTIPLE_FACES, Reason.LIVENESS_TOO_SHORT, Reason.QUALITY_BLURRED,
    Reason.QUALITY_TOO_DARK, Reason.QUALITY_OVEREXPOSED,
})
SPOOF_REASONS = frozenset({Reason.LIVENESS_STATIC_IMAGE, Reason.LIVENESS_RIGID_MOTION, Reason.LIVENESS_FACE_CHANGED})


@dataclass(frozen=True)
class LivenessConfig:
    """Thresholds, durations and limits (built by the orchestration from Settings)."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    # capture loading (pass `capture_limits()` to load_capture / load_capture_bytes)
    sample_fps: float = 15.0
    analysis_size: int = 480
    max_seconds: float = 30.0
    max_frames: int = 2000
    max_bytes: int = 60 * 2**20
    min_duration_s: float = 1.0
    # quality
    min_face_present_frac: float = 0.8
    max_outside_frac: float = 0.25  # a face box more than this far out of the frame is "leaving"
    max_multi_face_frac: float = 0.2
    min_face_width_frac: float = 0.15
    min_face_width_px: float = 48.0  # in the source resolution
    min_brightness: float = 40.0
    max_brightness: float = 225.0
    min_sharpness: float = 3.0  # Laplacian variance of the face crop at the analysis size
    # spoof
    static_max_motion: float = 0.02  # of the inter-ocular distance (p90 against the first frame)
    rigid_max_residual: float = 0.03  # similarity-transform residual, relative to the face radius
    same_face_min_similarity: float = 0.30  # cosine, for the injected embedder (SFace: 0.363 = same)
    n_identity_frames: int = 4
    n_audit_frames: int = 3
    # Face Mesh threads for one capture (1 where processes already fill the cores, as in batch)
    mesh_threads: int = 2

    def capture_limits(self) -> dict[str, Any]:
        return {"max_seconds": self.max_seconds, "max_frames": self.max_frames, "max_bytes": self.max_bytes,
                "sample_fps": self.sample_fps, "analysis_size": self.analysis_size}


@dataclass(frozen=True)
class ActionResult:
    action: Action
    passed: bool
    start_s: float | None
    end_s: float | None
    score: float
    status: str = "ok"  # ok | missing | order

    def to_dict(self) -> dict[str, Any]:
        return {"action": str(self.action), "passed": self.passed, "start_s": _r(self.start_s),
                "end_s": _r(self.end_s), "score": round(self.score, 4), "status": self.status}


@dataclass(frozen=True)
class LivenessResult:
    passed: bool
    reasons: tuple[Reason, ...]
    actions: tuple[ActionResult, ...]
    best_frame: np.ndarray | None = field(repr=False)
    best_frame_time_s: float | None
    audit_frames: tuple[np.ndarray, ...] = field(repr=False)
    frames_analysed: int
    quality: dict[str, float]
    elapsed_ms: float
    signals_summary: dict[str, Any]
    model_ids: dict[str, str] = field(default_factory=dict)
    mirrored: bool = False

    @property
    def quality_reasons(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r in QUALITY_REASONS)

    @property
    def spoof_reasons(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r in SPOOF_REASONS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": [str(r) for r in self.reasons],
            "actions": [a.to_dict() for a in self.actions],
            "best_frame_time_s": _r(self.best_frame_time_s),
            "n_audit_frames": len(self.audit_frames),
            "frames_analysed": self.frames_analysed,
            "quality": {k: round(float(v), 4) for k, v in self.quality.items()},
            "elapsed_ms": round(self.elapsed_ms, 1),
            "signals_summary": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.signals_summary.items()},
            "model_ids": dict(self.model_ids),
            "mirrored": self.mirrored,
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 3)


def image_kind(action: Action, mirrored: bool) -> str:
    """The detector's kind for an action (turns in IMAGE terms; see Action's docstring)."""
    if action is Action.TURN_LEFT:
        return "turn_image_left" if mirrored else "turn_image_right"
    if action is Action.TURN_RIGHT:
        return "turn_image_right" if mirrored else "turn_image_left"
    return str(action)


@dataclass(frozen=True)
class Analysis:
    """Everything measured on one capture, before any challenge is applied."""

    signals: tuple[FrameSignals, ...]
    yaw_deg: np.ndarray
    episodes: dict[str, list[Episode]]


class LivenessChecker:
    """Built once (verifies the Face Mesh files); `check` is safe to call from several threads."""

    def __init__(self, config: LivenessConfig | None = None, registry=None,
                 face_embedder: Callable[[np.ndarray], np.ndarray | None] | None = None) -> None:
        self.config = config or LivenessConfig()
        self._engine = FaceMeshEngine(registry, threads=self.config.mesh_threads)
        self._embed = face_embedder
        self.model_ids = dict(self._engine.model_ids)

    def warm_up(self) -> None:
        self._engine.warm_up()

    def analyse(self, frames: FrameSequence) -> Analysis:
        """Per-frame signals and every detected episode (the challenge-independent part)."""
        if len(frames.frames) < 3:
            raise InputError(Reason.LIVENESS_TOO_FEW_FRAMES, "at least 3 frames are needed")
        sig = tuple(self._engine.analyse(frames.frames, frames.timestamps_s))
        faces = [s for s in sig if s.has_face]
        if not faces:
            raise InputError(Reason.LIVENESS_NO_FACE, "no face was found in any frame of the capture")
        ref = faces[0].landmarks
        nan = float("nan")
        t = [s.t for s in sig]
        yaw = np.array([g.relative_rotation_deg(ref, s.landmarks)[0] if s.has_face else nan for s in sig])
        ear = [s.ear if s.has_face else nan for s in sig]
        mouth = [s.mouth if s.has_face else nan for s in sig]
        cfg = self.config.detector
        episodes: dict[str, list[Episode]] = {"blink": detect_blinks(t, ear, cfg), "open_mouth": detect_mouth(t, mouth, cfg)}
        for e in detect_turns(t, yaw, cfg):
            episodes.setdefault(e.kind, []).append(e)
        return Analysis(signals=sig, yaw_deg=yaw, episodes=episodes)

    def check(self, frames: FrameSequence, actions: Sequence[Action | str], *, mirrored: bool = False,
              analysis: Analysis | None = None) -> LivenessResult:
        started = time.perf_counter()
        wanted = parse_actions(list(actions))
        a = analysis if analysis is not None else self.analyse(frames)
        return self._decide(frames, wanted, a, mirrored, started)

    # --- decision ---------------------------------------------------------------------------
    def _decide(self, frames: FrameSequence, wanted: tuple[Action, ...], a: Analysis, mirrored: bool,
                started: float) -> LivenessResult:
        cfg = self.config
        sig = a.signals
        faces = [s for s in sig if s.has_face]
        kinds = [image_kind(x, mirrored) for x in wanted]
        matched = match_in_order(kinds, a.episodes)
        action_results = tuple(
            ActionResult(action=act, passed=st == "ok", start_s=ep.start_s if ep else None,
                         end_s=ep.end_s if ep else None, score=ep.score if ep else 0.0, status=st)
            for act, (_k, ep, st) in zip(wanted, matched)
        )
        reasons: list[Reason] = []

        # spoof: no non-rigid event at all, and the face either stands still or moves as a flat picture
        motion, nonrigid = motion_and_rigidity([s.landmarks for s in faces])
        any_event = any(a.episodes.values())
        if not any_event:
            if motion < cfg.static_max_motion:
                reasons.append(Reason.LIVENESS_STATIC_IMAGE)
            elif nonrigid < cfg.rigid_max_residual:
                reasons.append(Reason.LIVENESS_RIGID_MOTION)
        min_sim = self._identity_similarity(frames, faces) if self._embed is not None else None

        # quality (sent to review by the policy, never rejected on its own)
        quality = self._quality(frames, sig, faces)
        if frames.duration_s < cfg.min_duration_s:
            reasons.append(Reason.LIVENESS_TOO_SHORT)
        if quality["face_present_frac"] < cfg.min_face_present_frac or quality["face_outside_frac"] > 0.2:
            reasons.append(Reason.LIVENESS_FACE_LOST)
        if quality["multi_face_frac"] > cfg.max_multi_face_frac:
            reasons.append(Reason.LIVENESS_MULTIPLE_FACES)
        if (quality["face_width_frac"] < cfg.min_face_width_frac
                or quality["face_width_src_px"] < cfg.min_face_width_px):
            reasons.append(Reason.LIVENESS_FACE_TOO_SMALL)
        poor = False
        if quality["brightness"] < cfg.min_brightness:
            reasons.append(Reason.QUALITY_TOO_DARK)
            poor = True
        if quality["brightness"] > cfg.max_brightness:
            reasons.append(Reason.QUALITY_OVEREXPOSED)
            poor = True
        if quality["sharpness"] < cfg.min_sharpness:
            reasons.append(Reason.QUALITY_BLURRED)
            poor = True
        if poor:
            reasons.append(Reason.LIVENESS_POOR_QUALITY)
        # A face swap is a spoof (reject), but embeddings of a dark or blurred capture drift apart for
        # the same person: on a poor capture a low similarity is left to the quality reasons (review).
        if min_sim is not None and min_sim < cfg.same_face_min_similarity and not poor:
            reasons.append(Reason.LIVENESS_FACE_CHANGED)

        for ar in action_results:
            if ar.status == "missing" and Reason.LIVENESS_ACTION_MISSING not in reasons:
                reasons.append(Reason.LIVENESS_ACTION_MISSING)
            if ar.status == "order" and Reason.LIVENESS_ORDER_WRONG not in reasons:
                reasons.append(Reason.LIVENESS_ORDER_WRONG)
        passed = not reasons
        if passed:
            reasons.append(Reason.LIVENESS_PASSED)

        best_i = self._best_frame_index(frames, sig, a.yaw_deg)
        audit = self._audit_frames(frames, sig, [ep for _k, ep, _s in matched if ep is not None])
        yaw_valid = a.yaw_deg[np.isfinite(a.yaw_deg)]
        rel = yaw_valid - np.median(yaw_valid)
        summary: dict[str, Any] = {
            "blink_count": len(a.episodes.get("blink", [])),
            "mouth_open_count": len(a.episodes.get("open_mouth", [])),
            "turn_image_left_count": len(a.episodes.get("turn_image_left", [])),
            "turn_image_right_count": len(a.episodes.get("turn_image_right", [])),
            "max_yaw_image_left_deg": float(max(0.0, -rel.min())),
            "max_yaw_image_right_deg": float(max(0.0, rel.max())),
            "max_mouth_ratio": float(max(s.mouth for s in faces)),
            "ear_baseline": ear_baseline(np.array([s.ear for s in faces]), cfg.detector.baseline_ear_percentile),
            "motion": motion,
            "non_rigidity": nonrigid,
        }
        if min_sim is not None:
            summary["min_face_similarity"] = min_sim
        elapsed = (time.perf_counter() - started) * 1000.0
        log.info("liveness checked: passed=%s reasons=%s frames=%d ms=%.0f", passed,
                 ",".join(map(str, reasons)), len(sig), elapsed)
        return LivenessResult(
            passed=passed, reasons=tuple(reasons), actions=action_results,
            best_frame=frames.original(best_i).copy() if best_i is not None else None,
            best_frame_time_s=sig[best_i].t if best_i is not None else None,
            audit_frames=audit, frames_analysed=len(sig), quality=quality, elapsed_ms=elapsed,
            signals_summary=summary, model_ids=dict(self.model_ids), mirrored=mirrored,
        )

    def _quality(self, frames: FrameSequence, sig: Sequence[FrameSignals], faces: Sequence[FrameSignals]) -> dict[str, float]:
        n = max(1, len(sig))
        scale = max(frames.width, frames.height) / max(1, max(frames.frames[0].shape[:2]))
        widths = [(s.box[2] - s.box[0]) for s in faces]
        return {
            "face_present_frac": len(faces) / n,
            "face_outside_frac": sum(s.outside_frac > self.config.max_outside_frac for s in faces) / max(1, len(faces)),
            "multi_face_frac": sum(s.n_faces > 1 for s in sig) / n,
            "face_width_frac": float(np.median([s.face_width_frac for s in faces])),
            "face_width_src_px": float(np.median(widths) * scale),
            "brightness": float(np.median([s.brightness for s in faces])),
            "sharpness": float(np.median([s.sharpness for s in faces])),
        }

    def _frontal_candidates(self, sig: Sequence[FrameSignals], yaw: np.ndarray) -> list[int]:
        faces = [i for i, s in enumerate(sig) if s.has_face]
        if not faces:
            return []
        med_yaw = float(np.nanmedian(yaw))
        base = ear_baseline(np.array([sig[i].ear for i in faces]), self.config.detector.baseline_ear_percentile)
        good = [i for i in faces
                if abs(yaw[i] - med_yaw) < 8.0 and sig[i].ear >= 0.8 * base
                and sig[i].mouth < self.config.detector.mouth_release and sig[i].outside_frac < 0.05]
        return good or faces

    def _best_frame_index(self, frames: FrameSequence, sig: Sequence[FrameSignals], yaw: np.ndarray) -> int | None:
        cand = self._frontal_candidates(sig, yaw)
        # prefer frames whose full-resolution original was kept (face matching wants the detail)
        cand = [i for i in cand if frames.has_original(i)] or cand
        return max(cand, key=lambda i: sig[i].sharpness) if cand else None

    def _audit_frames(self, frames: FrameSequence, sig: Sequence[FrameSignals], eps: Sequence[Episode]) -> tuple[np.ndarray, ...]:
        n = self.config.n_audit_frames
        times = [e.peak_s for e in eps][:n]
        idx = [int(np.argmin([abs(s.t - t) for s in sig])) for t in times]
        faces = [i for i, s in enumerate(sig) if s.has_face]
        for q in np.linspace(0, len(faces) - 1, num=n).round().astype(int) if faces else []:
            if len(idx) >= n:
                break
            if faces[q] not in idx:
                idx.append(faces[q])
        return tuple(frames.frames[i].copy() for i in sorted(idx))

    def _identity_similarity(self, frames: FrameSequence, faces: Sequence[FrameSignals]) -> float | None:
        """Embed the sharpest face frame of each part of the capture; the lowest similarity."""
        k = self.config.n_identity_frames
        parts = [p for p in np.array_split(np.arange(len(faces)), k) if len(p)]
        embs = []
        for p in parts:
            i = max(p, key=lambda j: faces[j].sharpness)
            try:
                e = self._embed(frames.original(faces[i].index))  # type: ignore[misc]
            except Exception:  # the embedder is the orchestration's; its failure must not crash us
                log.warning("face embedder failed on one frame")
                e = None
            if e is not None:
                embs.append(np.asarray(e, dtype=np.float64))
        if len(embs) < 2:
            return None
        return min_pairwise_similarity(embs)
