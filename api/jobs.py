"""The verification job: decode the uploads, run the pipeline, persist, open a review case or notify.

`run_verification_job` is a plain blocking function of the app's resources and the uploads, run on a
worker thread (never on the event loop) under a capacity limiter, so memory stays bounded when many
requests arrive at once. The same function is what a distributed task worker would call.
Also here: purge (DELETE and retention) and the anonymised decision record that survives it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy.orm import Session

from models.errors import IdvError, InputError, describe_unexpected
from models.images import decode_image
from models.reasons import Reason

from .db import VerificationRecord, get_verification, unit_of_work, utcnow, verifications_due_for_purge
from .routes_common import ApiContext

log = logging.getLogger("idverify.api.jobs")

_REASON_VALUES = {r.value for r in Reason}
RUNNABLE = ("queued", "processing")  # statuses a job may still decide; every other status is final
UPLOAD_PREFIX = "upload."  # evidence keys of a queued job's stored uploads (api/tasks.py)
_CHUNK = 1 << 20

def new_verification_id() -> str:
    return "ver_" + secrets.token_hex(12)

@dataclass(frozen=True)
class JobParams:
    verification_id: str
    client_id: str
    manual: bool
    actions: tuple[str, ...] | None
    mirrored: bool
    declared_name: str | None
    declared_id_number: str | None

def read_all(f: IO[bytes], limit: int, what: str) -> bytes:
    """Read a spooled upload, refusing more than `limit` bytes (the stream may be longer than declared)."""
    f.seek(0)
    data = f.read(limit + 1)
    if len(data) > limit:
        from .errors import PayloadTooLargeError

        raise PayloadTooLargeError(Reason.INPUT_TOO_LARGE, f"{what} exceeds {limit} bytes")
    return data

def fingerprint(parts: Mapping[str, bytes | str | IO[bytes] | None]) -> str:
    """SHA-256 over every field of the request, files streamed in chunks: the idempotency fingerprint."""
    h = hashlib.sha256()
    for name in sorted(parts):
        v = parts[name]
        h.update(name.encode() + b"\x00")
        if v is None:
            h.update(b"\x01none")
        elif isinstance(v, str):
            h.update(b"\x02" + v.encode())
        elif isinstance(v, bytes):
            h.update(b"\x03" + v)
        else:
            v.seek(0)
            h.update(b"\x04")
            while chunk := v.read(_CHUNK):
                h.update(chunk)
            v.seek(0)
        h.update(b"\x00")
    return h.hexdigest()

def _decode_inputs(ctx: ApiContext, files: Mapping[str, IO[bytes] | None], p: JobParams) -> Any:
    from liveness.capture import load_capture_bytes
    from liveness.challenge import parse_actions

    from .pipeline import VerificationInput

    s = ctx.settings
    images: dict[str, Any] = {}
    for name in ("id_front", "id_back", "selfie_with_card"):
        f = files.get(name)
        if f is not None:
            data = read_all(f, s.max_image_bytes, name)
            images[name] = decode_image(data, max_pixels=s.max_image_pixels, max_bytes=s.max_image_bytes, what=name)
            del data
    capture = None
    cf = files.get("capture")
    if cf is not None and not p.manual:
        data = read_all(cf, s.max_video_bytes, "capture")
        capture = load_capture_bytes(
            data,
            max_bytes=s.max_video_bytes,
            max_seconds=s.max_video_seconds,
            max_frames=s.max_video_frames,
        )
        del data
    return VerificationInput(
        capture=capture,
        actions=parse_actions(list(p.actions)) if p.actions else None,
        mirrored=p.mirrored,
        id_front=images.get("id_front"),
        id_back=images.get("id_back"),
        selfie_with_card=images.get("selfie_with_card"),
        declared_name=p.declared_name,
        declared_id_number=p.declared_id_number,
        manual=p.manual,
    )

def _fail(ctx: ApiContext, vid: str, exc: IdvError, status: int) -> None:
    with unit_of_work(ctx.session_factory) as s:
        rec = s.get(VerificationRecord, vid, with_for_update=True)
        if rec is not None and rec.status in RUNNABLE:  # a redelivered duplicate never overwrites a final result
            rec.status = "failed"
            rec.error_type = str(exc.code)
            rec.result = {"error": {"type": str(exc.code), "detail": exc.detail, "status": status}}

def run_verification_job(ctx: ApiContext, files: Mapping[str, IO[bytes] | None], p: JobParams) -> None:
    """Blocking: decode, run, persist. Raises IdvError (with `.verification_id`) for unusable input."""
    from .errors import _status_for
    from .pipeline import run_verification

    vid = p.verification_id
    engines = ctx.require_engines()
    ctx.metrics.in_progress.inc()
    try:
        try:
            inp = _decode_inputs(ctx, files, p)
            report = run_verification(engines, inp)
            # inside the try: a failure while storing must still end the row as failed, never leave
            # it "processing" (undeletable) with the error unreported
            _persist(ctx, vid, report)
        except IdvError as exc:
            exc.verification_id = vid  # type: ignore[attr-defined]
            _fail(ctx, vid, exc, _status_for(exc))
            ctx.metrics.errors.labels(type=str(exc.code)).inc()
            log.info("verification %s unusable: %s", vid, exc.code)
            raise
        except Exception as exc:
            err = IdvError(Reason.INTERNAL_ERROR, "internal error; it has been logged", status_code=500)
            _fail(ctx, vid, err, 500)
            log.error("verification %s failed: %s", vid, describe_unexpected(exc))
            err.verification_id = vid  # type: ignore[attr-defined]
            raise err from None
    finally:
        ctx.metrics.in_progress.dec()

def _persist(ctx: ApiContext, vid: str, report: Any) -> None:
    """Evidence to the encrypted store, the masked result to the row; a case for review, an outbox
    webhook row for a final decision — all in one transaction."""
    ev = ctx.evidence
    outcome = report.decision.outcome.value
    stored: list[str] = []
    try:
        evidence_ids: dict[str, str] = {}
        for name, img in report.evidence.items():
            evidence_ids[name] = ev.put_image(img)
            stored.append(evidence_ids[name])
        full = report.to_dict(mask_pii=False)
        pii_id = ev.put_json({"fields": full["fields"], "stages": full["stages"]})
        stored.append(pii_id)
        with unit_of_work(ctx.session_factory) as s:
            # row-locked (PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE): of two runs of one
            # queued job (a redelivered message), only the first to get here records the decision
            rec = s.get(VerificationRecord, vid, with_for_update=True)
            if rec is None or rec.status not in RUNNABLE:  # deleted, or already decided: drop what we stored
                ev.delete(stored)
                return
            rec.result = report.to_dict(mask_pii=True)
            rec.outcome = outcome
            rec.reasons = [str(r) for r in report.decision.reasons]
            # stored uploads of a queued job stay listed until the worker deletes them, so purge finds them
            rec.evidence = {**{k: v for k, v in (rec.evidence or {}).items() if k.startswith(UPLOAD_PREFIX)},
                            **evidence_ids}
            rec.pii_object = pii_id
            if outcome == "review":
                rec.status = "review"
                if ctx.review is not None:
                    rec.case_id = ctx.review.open_case(s, rec, report)
            else:
                rec.status = "completed"
                rec.decided_at = utcnow()
                if ctx.webhooks is not None:
                    ctx.webhooks.enqueue(s, rec, decision_event(rec, decided_by="machine"))
    except BaseException:
        ev.delete(stored)  # no orphan ciphertext when the transaction fails
        raise
    if outcome != "review" and ctx.webhooks is not None:
        ctx.webhooks.kick()
    ctx.metrics.decisions.labels(outcome=outcome).inc()
    ctx.metrics.observe_stages(report.timings_ms)
    log.info(
        "verification %s decided %s reasons=%s total_ms=%.0f",
        vid, outcome, ",".join(str(r) for r in report.decision.reasons), report.timings_ms.get("total", 0.0),
    )


def decision_event(rec: VerificationRecord, *, decided_by: str) -> dict[str, Any]:
    """The webhook payload: ids, outcome and reason codes only — never names, numbers or images."""
    return {
        "event": "verification.decided",
        "event_id": secrets.token_hex(12),
        "verification_id": rec.id,
        "applicant_ref": rec.applicant_ref,
        "status": rec.status,
        "decision": rec.outcome,
        "reasons": list(rec.reasons or []),
        "decided_by": decided_by,
        "decided_at": rec.decided_at.isoformat() if rec.decided_at else None,
    }


# --- purge -----------------------------------------------------------------------------------

def anonymise(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """What survives purge: outcome, reason codes, numbers and flags per stage, timings. No text fields."""
    if result is None:
        return None
    out: dict[str, Any] = {}
    for k in ("decision", "reasons", "priority", "policy_version", "decided_by", "timings_ms", "error"):
        if k in result:
            out[k] = result[k]
    if isinstance(out.get("error"), dict):
        out["error"] = {"type": out["error"].get("type"), "status": out["error"].get("status")}
    stages = result.get("stages")
    if isinstance(stages, dict):
        out["stages"] = {name: _numbers_and_codes(v) for name, v in stages.items() if isinstance(v, dict)}
    return out

def _numbers_and_codes(d: dict[str, Any]) -> dict[str, Any]:
    keep: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, bool | int | float) or v is None:
            keep[k] = v
        elif isinstance(v, list) and all(isinstance(x, str) and x in _REASON_VALUES for x in v):
            keep[k] = v
        elif isinstance(v, str) and v in _REASON_VALUES:
            keep[k] = v
    return keep

def purge_record(ctx: ApiContext, session: Session, rec: VerificationRecord) -> None:
    """Delete images and PII for real (encrypted files and row contents); keep the anonymised decision."""
    ids = [*(rec.evidence or {}).values()]
    if rec.pii_object:
        ids.append(rec.pii_object)
    ctx.evidence.delete(ids)
    if ctx.review is not None and rec.case_id:
        ctx.review.purge_case(session, rec.case_id)
    rec.evidence = {}
    rec.pii_object = None
    rec.applicant_ref = None
    rec.result = anonymise(rec.result)
    rec.purged_at = utcnow()

def purge_expired(ctx: ApiContext, *, now: datetime | None = None) -> int:
    """Retention: purge verifications older than `retention_days` (0 = keep). Returns how many."""
    days = ctx.settings.retention_days
    if days <= 0:
        return 0
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    n = 0
    while True:
        with unit_of_work(ctx.session_factory) as s:
            batch = verifications_due_for_purge(s, before=before, limit=200)
            for rec in batch:
                purge_record(ctx, s, rec)
            n += len(batch)
        if len(batch) < 200:
            break
    if n:
        log.info("retention purge: %d verifications", n)
    return n

__all__ = [
    "JobParams",
    "anonymise",
        "decision_event",
    "fingerprint",
    "new_verification_id",
    "purge_expired",
    "purge_record",
    "run_verification_job",
]

_ = InputError  # re-exported type for callers catching decode failures
