"""POST/GET/DELETE /v1/verifications: thin views over api.jobs (admission, run, purge)."""

from __future__ import annotations

import re
from typing import Annotated, IO, Literal

import anyio
from fastapi import APIRouter, File, Form, Header, Path, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from liveness.capture import sniff_video_type
from ocr import is_card_name
from ocr.idnumber import DECLARED_NUMBER_FORM
from models.errors import IdvError, InputError
from models.images import sniff_image_type
from models.reasons import Reason

from .auth import SCOPE_CREATE, SCOPE_DELETE, SCOPE_PII, SCOPE_READ, Principal
from .db import (
    IdempotencyRecord,
    VerificationRecord,
    consume_challenge,
    get_challenge,
    get_idempotency,
    get_verification,
    unit_of_work,
    utcnow,
)
from .errors import ConflictError, NotFoundError, PayloadTooLargeError
from .jobs import RUNNABLE, JobParams, fingerprint, new_verification_id, purge_record, run_verification_job
from .routes_common import ApiContext, Caller, Ctx
from .schemas import ErrorOut, VerificationOut

router = APIRouter(tags=["verifications"])

_ERR = {"model": ErrorOut}
_IDEMPOTENCY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces

VERIFY_DOC = """Submit one applicant: the liveness capture, the ID card photos and the challenge id.

* `mode=auto` (default): `capture` (MP4/MOV/WebM video, or a zip of ordered JPEG/PNG frames),
  `challenge_id` from `POST /v1/challenges`, `id_front` (portrait side), `id_back` (emblem side);
  `mirrored=true` when the capture is the mirrored selfie preview (see the challenge's directions).
* `mode=manual`: only `selfie_with_card` and `id_front`; always decided by a human reviewer.

File types are checked by content, never by name or declared type. Limits: each image
≤ `max_image_bytes` and `max_image_pixels`; the capture ≤ `max_video_bytes`, `max_video_seconds`,
`max_video_frames`. The whole request body is capped while it streams (413 `input.too_large`).

Answers 200 with the decision (`approved`, `rejected`, or `review` with a `case_id`; the final
decision of a review arrives by webhook and on `GET`). When the service runs verifications on its
job queue (IDV_QUEUE=celery), it answers 202 with `Location: /v1/verifications/{id}` and status
`queued`; `GET` then shows `queued`, `processing` and finally the result (and a webhook is sent). Send an `Idempotency-Key` to make retries safe:
the same key with the same body returns the first result, with a different body 409
`idempotency.conflict`; while the first request is still running, 202 with `Location`.
Personal data in the result (name, ID number, address) is masked unless the key has `pii:read`.
"""


def _sniff(f: IO[bytes]) -> bytes:
    f.seek(0)
    head = f.read(64)
    f.seek(0)
    return head


def _check_upload(ctx: ApiContext, name: str, up: UploadFile | None, kind: str) -> IO[bytes] | None:
    """Size (the spooled byte count) and type by content, before anything is decoded."""
    if up is None:
        return None
    s = ctx.settings
    limit = s.max_video_bytes if kind == "capture" else s.max_image_bytes
    size = up.size if up.size is not None else 0
    if size > limit:
        raise PayloadTooLargeError(Reason.INPUT_TOO_LARGE, f"{name} is {size} bytes; limit {limit}")
    head = _sniff(up.file)
    if not head:
        raise InputError(Reason.INPUT_EMPTY, f"{name} is empty (0 bytes)")
    if kind == "capture":
        if head[:4] != b"PK\x03\x04" and sniff_video_type(head) is None:
            raise InputError(Reason.INPUT_WRONG_TYPE, f"{name} is neither an MP4/MOV/WebM video nor a zip of frames")
    elif sniff_image_type(head) is None:
        raise InputError(Reason.INPUT_WRONG_TYPE, f"{name} is not a JPEG, PNG, WebP, HEIC, BMP or TIFF image")
    return up.file


def _admit(
    ctx: ApiContext,
    caller: Principal,
    *,
    idem_key: str | None,
    body_hash: str | None,
    challenge_id: str | None,
    manual: bool,
    mirrored: bool,
    applicant_ref: str | None,
    queued: bool = False,
) -> tuple[str, tuple[str, ...] | None, bool]:
    """Replay an idempotent retry, or consume the challenge and create the verification (one transaction).

    Returns (verification id, challenged actions, is_replay).
    """
    with unit_of_work(ctx.session_factory) as s:
        if idem_key is not None:
            prior = get_idempotency(s, client_id=caller.client_id, key=idem_key)
            if prior is not None:
                if prior.body_sha256 != body_hash:
                    raise ConflictError(
                        Reason.IDEMPOTENCY_CONFLICT,
                        "this Idempotency-Key was used with a different request body",
                    )
                return prior.verification_id, None, True
        actions: tuple[str, ...] | None = None
        vid = new_verification_id()
        now = utcnow()
        if not manual:
            assert challenge_id is not None
            if not consume_challenge(s, challenge_id=challenge_id, client_id=caller.client_id, now=now):
                ch = get_challenge(s, challenge_id)
                if ch is None or ch.client_id != caller.client_id:
                    raise InputError(Reason.LIVENESS_CHALLENGE_UNKNOWN, "no such challenge for this client")
                if ch.used_at is not None:
                    raise IdvError(Reason.LIVENESS_CHALLENGE_USED, "this challenge was already used", status_code=409)
                raise IdvError(Reason.LIVENESS_CHALLENGE_EXPIRED, "this challenge has expired; request a new one", status_code=410)
            ch = get_challenge(s, challenge_id)
            assert ch is not None
            ch.verification_id = vid
            actions = tuple(a for a in ch.actions.split(",") if a)
        s.add(
            VerificationRecord(
                id=vid,
                client_id=caller.client_id,
                applicant_ref=applicant_ref,
                mode="manual" if manual else "auto",
                status="queued" if queued else "processing",
                mirrored=mirrored,
                reasons=[],
                evidence={},
                created_at=now,
            )
        )
        if idem_key is not None:
            s.flush()
            s.add(IdempotencyRecord(client_id=caller.client_id, key=idem_key, body_sha256=body_hash, verification_id=vid))
        return vid, actions, False


def _store_and_enqueue(ctx: ApiContext, files: dict[str, IO[bytes] | None], params: JobParams) -> None:
    """Celery mode: the uploads go encrypted into the shared store and onto the `queued` row; the
    broker message carries only the id. An enqueue that fails is retried by the API's sweep."""
    from .tasks import enqueue, store_uploads

    ids = store_uploads(ctx, files, params)
    try:
        with unit_of_work(ctx.session_factory) as s:
            rec = get_verification(s, params.verification_id)
            assert rec is not None
            rec.evidence = {**(rec.evidence or {}), **ids}
    except BaseException:
        ctx.evidence.delete(ids.values())
        raise
    enqueue(ctx.settings, params.verification_id)


def to_out(ctx: ApiContext, rec: VerificationRecord, caller: Principal) -> VerificationOut:
    result = rec.result
    show_pii = caller.has(SCOPE_PII) and rec.pii_object is not None
    error = None
    if rec.status == "failed" and isinstance(result, dict) and isinstance(result.get("error"), dict):
        e = result["error"]
        error = ErrorOut(type=str(e.get("type")), detail=str(e.get("detail", "")), verification_id=rec.id)
        result = None
    if show_pii and result is not None:
        pii = ctx.evidence.get_json(rec.pii_object)  # type: ignore[arg-type]
        if isinstance(pii, dict):
            result = {**result, "fields": pii.get("fields", {}), "stages": pii.get("stages", {})}
            if "review_corrections" in pii:
                result["review_corrections"] = pii["review_corrections"]
        else:
            show_pii = False
    return VerificationOut(
        id=rec.id,
        status=rec.status,  # type: ignore[arg-type]
        decision=rec.outcome,  # type: ignore[arg-type]
        reasons=list(rec.reasons or []),
        mode=rec.mode,  # type: ignore[arg-type]
        applicant_ref=rec.applicant_ref,
        case_id=rec.case_id,
        created_at=rec.created_at,
        decided_at=rec.decided_at,
        purged=rec.purged_at is not None,
        pii_masked=not show_pii,
        result=result,
        error=error,
    )


def _load(ctx: ApiContext, vid: str, caller: Principal) -> VerificationOut:
    with ctx.session_factory() as s:
        rec = get_verification(s, vid, client_id=caller.client_id)
        if rec is None:
            raise NotFoundError("no such verification for this client")
        return to_out(ctx, rec, caller)


def _error_status(ctx: ApiContext, vid: str) -> int:
    with ctx.session_factory() as s:
        rec = get_verification(s, vid)
        err = (rec.result or {}).get("error") if rec is not None else None
        return int(err.get("status", 422)) if isinstance(err, dict) else 422


def _respond(ctx: ApiContext, out: VerificationOut, *, replay: bool) -> Response:
    if out.status == "failed" and out.error is not None:
        # an idempotent retry of a failed request gets the same error, with its verification id
        return JSONResponse(out.error.model_dump(), status_code=_error_status(ctx, out.id))
    headers = {"Location": f"/v1/verifications/{out.id}"}
    if replay:
        headers["Idempotent-Replayed"] = "true"
    if out.status in RUNNABLE:
        return JSONResponse(out.model_dump(mode="json"), status_code=202, headers=headers)
    return JSONResponse(out.model_dump(mode="json"), status_code=200, headers=headers)


_FORM_PARTS = ("capture", "id_front", "id_back", "selfie_with_card", "challenge_id", "mirrored", "declared_name",
               "declared_id_number", "applicant_ref", "mode")


@router.post(
    "/v1/verifications",
    response_model=VerificationOut,
    summary="Submit a verification (multipart)",
    description=VERIFY_DOC,
    responses={
        202: {"model": VerificationOut, "description": "accepted: queued, or still running (idempotent retry)"},
        400: _ERR, 401: _ERR, 403: _ERR, 404: _ERR, 409: _ERR, 410: _ERR, 413: _ERR, 422: _ERR, 429: _ERR, 503: _ERR,
    },
)
async def create_verification(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    id_front: Annotated[UploadFile, File(description="ID card portrait side (JPEG/PNG/WebP/HEIC)")],
    capture: Annotated[UploadFile | None, File(description="video (MP4/MOV/WebM) or zip of frames")] = None,
    id_back: Annotated[UploadFile | None, File(description="ID card emblem side")] = None,
    selfie_with_card: Annotated[UploadFile | None, File(description="selfie holding the card")] = None,
    challenge_id: Annotated[str | None, Form(max_length=64)] = None,
    mirrored: Annotated[bool, Form()] = False,
    declared_name: Annotated[str | None, Form(max_length=64)] = None,
    declared_id_number: Annotated[str | None, Form(
        max_length=18, pattern=f"^{DECLARED_NUMBER_FORM}$", description="18 characters: 17 digits and a digit or X",
    )] = None,
    applicant_ref: Annotated[str | None, Form(max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")] = None,
    mode: Annotated[Literal["auto", "manual"], Form()] = "auto",
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> Response:
    caller.require(SCOPE_CREATE)
    manual = mode == "manual"
    form = await request.form()  # already parsed for the parameters above: this is the cached form
    repeated = sorted(k for k in _FORM_PARTS if len(form.getlist(k)) > 1)
    if repeated:
        # two captures (or two fronts) in one request: which one to judge is ambiguous, refuse
        raise InputError(Reason.INPUT_INVALID, f"each part may be sent once; repeated: {', '.join(repeated)}")
    if declared_name is not None and not is_card_name(declared_name):
        # bytes that were not UTF-8 arrive decoded as Latin-1: the caller's bug, not a name
        # mismatch to put before a reviewer
        raise InputError(Reason.INPUT_INVALID, "declared_name must be the card's name in UTF-8: Chinese characters and '·' only")
    if len(request.headers.getlist("idempotency-key")) > 1:
        # two keys in one request: which one a retry must match is ambiguous, as with repeated parts
        raise InputError(Reason.INPUT_INVALID, "send one Idempotency-Key header, not several")
    if idempotency_key is not None and not _IDEMPOTENCY_RE.match(idempotency_key):
        raise InputError(Reason.INPUT_INVALID, "Idempotency-Key must be 1-255 printable ASCII characters")
    if manual:
        if selfie_with_card is None:
            raise InputError(Reason.INPUT_MISSING, "mode=manual needs selfie_with_card and id_front")
        capture = None
    else:
        if capture is None:
            raise InputError(Reason.INPUT_MISSING, "capture (video or zip of frames) is required in mode=auto")
        if not challenge_id:
            raise InputError(Reason.INPUT_MISSING, "challenge_id is required in mode=auto")
    files = {
        "capture": _check_upload(ctx, "capture", capture, "capture"),
        "id_front": _check_upload(ctx, "id_front", id_front, "image"),
        "id_back": _check_upload(ctx, "id_back", id_back, "image"),
        "selfie_with_card": _check_upload(ctx, "selfie_with_card", selfie_with_card, "image"),
    }
    ctx.require_engines()  # before the challenge is consumed
    body_hash = None
    if idempotency_key is not None:
        parts = {
            **files,
            "challenge_id": challenge_id,
            "mirrored": str(bool(mirrored)),
            "declared_name": declared_name,
            "declared_id_number": declared_id_number,
            "applicant_ref": applicant_ref,
            "mode": mode,
        }
        body_hash = await anyio.to_thread.run_sync(fingerprint, parts)
    queued = ctx.settings.queue == "celery"
    try:
        vid, actions, replay = await anyio.to_thread.run_sync(
            lambda: _admit(
                ctx, caller, idem_key=idempotency_key, body_hash=body_hash, challenge_id=challenge_id,
                manual=manual, mirrored=mirrored, applicant_ref=applicant_ref, queued=queued,
            )
        )
    except IntegrityError:  # a concurrent request with the same Idempotency-Key won the insert
        vid, actions, replay = await anyio.to_thread.run_sync(
            lambda: _admit(
                ctx, caller, idem_key=idempotency_key, body_hash=body_hash, challenge_id=challenge_id,
                manual=manual, mirrored=mirrored, applicant_ref=applicant_ref, queued=queued,
            )
        )
    request.state.verification_id = vid
    if not replay and queued:
        params = JobParams(
            verification_id=vid, client_id=caller.client_id, manual=manual, actions=actions, mirrored=mirrored,
            declared_name=declared_name, declared_id_number=declared_id_number,
        )
        await anyio.to_thread.run_sync(_store_and_enqueue, ctx, files, params)
    elif not replay:
        params = JobParams(
            verification_id=vid, client_id=caller.client_id, manual=manual, actions=actions, mirrored=mirrored,
            declared_name=declared_name, declared_id_number=declared_id_number,
        )
        await anyio.to_thread.run_sync(run_verification_job, ctx, files, params, limiter=ctx.limiter)
    out = await anyio.to_thread.run_sync(_load, ctx, vid, caller)
    return _respond(ctx, out, replay=replay)


VidPath = Annotated[str, Path(max_length=64, description="verification id")]


@router.get(
    "/v1/verifications/{verification_id}",
    response_model=VerificationOut,
    summary="Status, decision, reasons and per-stage results",
    responses={401: _ERR, 403: _ERR, 404: _ERR, 429: _ERR},
)
def get_verification_route(verification_id: VidPath, ctx: Ctx, caller: Caller) -> VerificationOut:
    caller.require(SCOPE_READ)
    return _load(ctx, verification_id, caller)


@router.delete(
    "/v1/verifications/{verification_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete images and personal data now (an anonymised decision record stays)",
    responses={401: _ERR, 403: _ERR, 404: _ERR, 409: _ERR, 429: _ERR},
)
def delete_verification(verification_id: VidPath, ctx: Ctx, caller: Caller) -> Response:
    caller.require(SCOPE_DELETE)
    with unit_of_work(ctx.session_factory) as s:
        rec = get_verification(s, verification_id, client_id=caller.client_id)
        if rec is None:
            raise NotFoundError("no such verification for this client")
        if rec.status in RUNNABLE:
            raise ConflictError(Reason.CONFLICT, "the verification is still running; delete it when it has finished")
        if rec.purged_at is None:
            purge_record(ctx, s, rec)
    return Response(status_code=204)
