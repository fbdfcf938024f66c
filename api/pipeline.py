"""The orchestration shared by the API, the CLI and batch runs: one applicant in, one decision out.

Engines are built once (build_engines) and passed in; run_verification is otherwise a plain
function of its inputs. Stage order: liveness -> OCR of both sides -> card validation -> face match
(best live frame vs card portrait, plus the selfie-with-card when given) -> policy decision.
A stage that cannot be evaluated on this input is recorded in `stages_missing` and the policy sends
the case to review; input that is unusable as a whole raises InputError.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from face_match import FaceMatcher, MatchConfig
from liveness import Action, FrameSequence, LivenessChecker, LivenessConfig
from models import IdvError, InputError, ModelRegistry, Reason, default_registry
from models.masking import mask_value
from ocr import IdCardReader, Side, validate_card
from review_queue.policy import Decision, Policy, Signals, decide, load_policy

from .settings import Settings

KEY_FIELDS = ("name", "id_number")


@dataclass(frozen=True)
class Engines:
    liveness: LivenessChecker
    reader: IdCardReader
    matcher: FaceMatcher
    policy: Policy


def match_config(settings: Settings) -> MatchConfig:
    """The matcher's settings, one place for the API, `verify` and every batch mode."""
    return MatchConfig(fmr=settings.face_fmr, insightface_dir=settings.insightface_dir,
                       threshold_override=settings.face_threshold)


def build_engines(
    settings: Settings, registry: ModelRegistry | None = None, policy: Policy | None = None,
    reader: IdCardReader | None = None, mesh_threads: int = 2,
) -> Engines:
    """Load every model once (a few seconds); the result is shared by all requests and threads.

    mesh_threads: Face Mesh threads per capture; 1 where worker processes already fill the cores."""
    registry = registry or default_registry()
    matcher = FaceMatcher(match_config(settings), registry=registry)

    def embed_or_none(image: np.ndarray) -> np.ndarray | None:
        try:
            return matcher.embed(image)
        except IdvError:
            return None

    return Engines(
        liveness=LivenessChecker(LivenessConfig(mesh_threads=mesh_threads), registry=registry,
                                 face_embedder=embed_or_none),
        reader=reader or IdCardReader(registry=registry),
        matcher=matcher,
        policy=policy or load_policy(settings.policy_file),
    )


@dataclass(frozen=True)
class VerificationInput:
    capture: FrameSequence | None = None
    actions: tuple[Action, ...] | None = None
    mirrored: bool = False
    id_front: np.ndarray | None = None
    id_back: np.ndarray | None = None
    selfie_with_card: np.ndarray | None = None
    declared_name: str | None = None
    declared_id_number: str | None = None
    manual: bool = False


@dataclass(frozen=True)
class VerificationReport:
    decision: Decision
    stages: dict[str, dict[str, Any]]  # per-stage results, unmasked (PII)
    stages_masked: dict[str, dict[str, Any]]  # the same with PII masked
    timings_ms: dict[str, float]
    evidence: dict[str, np.ndarray] = field(repr=False)
    fields: dict[str, str] = field(repr=False)  # unmasked card fields: PII, never logged

    def to_dict(self, *, mask_pii: bool = True) -> dict[str, Any]:
        return {
            "decision": self.decision.outcome.value,
            "reasons": [str(r) for r in self.decision.reasons],
            "priority": self.decision.priority,
            "policy_version": self.decision.policy_version,
            "fields": mask_fields(self.fields) if mask_pii else dict(self.fields),
            "stages": self.stages_masked if mask_pii else self.stages,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def mask_fields(fields: dict[str, str]) -> dict[str, str]:
    """Personal data masked (see models.masking) in every output unless the caller may see it."""
    return {k: mask_value(k, v) for k, v in fields.items()}


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t) * 1000


def _run_ocr(engines: Engines, inp: VerificationInput, timings: dict[str, float]):
    front, timings["ocr_front"] = _timed(engines.reader.read, inp.id_front, expected_side=Side.FRONT)
    back = None
    if inp.id_back is not None:
        back, timings["ocr_back"] = _timed(engines.reader.read, inp.id_back, expected_side=Side.BACK)
    return front, back


def run_verification(engines: Engines, inp: VerificationInput, *, today: date | None = None) -> VerificationReport:
    """Run every stage the input allows and decide. Raises InputError only for unusable input."""
    today = today or date.today()
    t_all = time.perf_counter()
    reasons: set[Reason] = set()
    missing: set[str] = set()
    stages: dict[str, dict[str, Any]] = {}
    masked: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    evidence: dict[str, np.ndarray] = {}
    fields: dict[str, str] = {}

    if inp.id_front is None:
        raise InputError(Reason.INPUT_MISSING, "the ID card front (portrait side) is required")
    if not inp.manual and (inp.capture is None or not inp.actions):
        raise InputError(Reason.INPUT_MISSING, "a capture (video or frames) and its challenge are required")
    if inp.manual and inp.selfie_with_card is None:
        raise InputError(Reason.INPUT_MISSING, "a manual submission needs the selfie holding the card")

    # --- liveness, in a thread beside the OCR ---------------------------------------------
    # Face Mesh and the OCR models each keep about one core busy; on the 2-core target machine
    # running them side by side cuts one applicant's latency by the shorter of the two.
    live_future: Future | None = None
    pool: ThreadPoolExecutor | None = None
    if inp.capture is not None and inp.actions:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idv-liveness")
        live_future = pool.submit(_timed, engines.liveness.check, inp.capture, inp.actions, mirrored=inp.mirrored)
    elif not inp.manual:
        missing.add("liveness")
    try:
        front, back = _run_ocr(engines, inp, timings)
        live = None
        if live_future is not None:
            live, timings["liveness"] = live_future.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if live is not None:
        stages["liveness"] = masked["liveness"] = live.to_dict()
        reasons.update(live.reasons)
        if live.best_frame is not None:
            evidence["best_frame"] = live.best_frame
        for i, f in enumerate(live.audit_frames, 1):
            evidence[f"audit_{i}"] = f

    # --- OCR ------------------------------------------------------------------------------
    evidence["id_front"] = inp.id_front
    stages["ocr_front"] = front.to_dict(mask_pii=False)
    masked["ocr_front"] = front.to_dict(mask_pii=True)
    reasons.update(front.reasons)
    if not front.card_found:
        missing.add("ocr_front")
    if back is not None:
        evidence["id_back"] = inp.id_back
        stages["ocr_back"] = masked["ocr_back"] = back.to_dict(mask_pii=False)
        reasons.update(back.reasons)
        if not back.card_found:
            missing.add("ocr_back")
        if front.side is not None and back.side is not None and front.side == back.side:
            reasons.add(Reason.CARD_SAME_SIDE_TWICE)
    elif not inp.manual:
        missing.add("ocr_back")
    for result in (front, back):
        if result is not None:
            fields.update({k: v.value for k, v in result.fields.items()})

    t = time.perf_counter()
    validation = validate_card(
        front, back, today=today, declared_name=inp.declared_name, declared_id_number=inp.declared_id_number
    )
    timings["validation"] = (time.perf_counter() - t) * 1000
    stages["validation"] = masked["validation"] = validation.to_dict()
    reasons.update(validation.reasons)
    key_conf = [front.fields[k].confidence for k in KEY_FIELDS if k in front.fields]
    if front.portrait is not None:
        evidence["portrait"] = front.portrait

    # --- face match -----------------------------------------------------------------------
    face = None
    if live is not None and live.best_frame is not None and front.portrait is not None:
        t = time.perf_counter()
        face = engines.matcher.match(live.best_frame, front.portrait)
        timings["face_match"] = (time.perf_counter() - t) * 1000
        stages["face_match"] = masked["face_match"] = face.to_dict()
        reasons.update(face.reasons)
    elif not inp.manual:
        missing.add("face")
        if front.portrait is None:
            reasons.add(Reason.CARD_PORTRAIT_NOT_FOUND)
    if inp.selfie_with_card is not None:
        t = time.perf_counter()
        selfie = engines.matcher.match_selfie_with_card(
            inp.selfie_with_card, live=live.best_frame if live is not None else None
        )
        timings["selfie_with_card"] = (time.perf_counter() - t) * 1000
        if inp.manual and selfie.faces_found == 0:
            # a reviewer cannot judge a selfie without a face: refuse it rather than open a case
            raise InputError(Reason.FACE_NOT_DETECTED, "no face was found in the selfie with the card")
        evidence["selfie_with_card"] = inp.selfie_with_card
        stages["selfie_with_card"] = masked["selfie_with_card"] = selfie.to_dict()
        reasons.update(selfie.reasons)

    # --- decision -------------------------------------------------------------------------
    signals = Signals(
        reasons=frozenset(reasons),
        manual=inp.manual,
        liveness_passed=live.passed if live is not None else None,
        face_similarity=face.similarity if face is not None else None,
        face_threshold=face.threshold if face is not None else None,
        ocr_min_key_confidence=min(key_conf) if key_conf else None,
        stages_missing=frozenset(missing),
    )
    decision = decide(signals, engines.policy)
    timings["total"] = (time.perf_counter() - t_all) * 1000
    return VerificationReport(
        decision=decision, stages=stages, stages_masked=masked, timings_ms=timings, evidence=evidence, fields=fields
    )
