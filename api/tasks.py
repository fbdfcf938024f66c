"""Verification jobs on Celery (IDV_QUEUE=celery): the API stores the upload encrypted, records the
verification as `queued` and sends a task carrying only the verification id; `idverify worker`
processes run it.

Nothing accepted is lost:
- the task is acknowledged late (`acks_late`, `task_reject_on_worker_lost`): a worker that dies
  mid-job leaves the message to be handed out again (RabbitMQ at once; Redis after the broker's
  visibility timeout, IDV_BROKER_VISIBILITY_TIMEOUT_S);
- the job is idempotent: it claims the row `queued -> processing` under a row lock; a message for a
  verification that is already final does nothing; a `processing` row is taken over only by a
  redelivered message (its first worker died); the decision itself is written under the same lock
  by `api.jobs._persist`, so one verification is decided exactly once;
- a verification still `queued` after IDV_QUEUE_REQUEUE_AFTER_S (the message was lost, or the broker
  was down when it was accepted) is sent again by the API's periodic sweep (`requeue_loop`, which
  also runs once at API start-up).

Models load once per worker process (`worker_process_init`), never per task.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict
from datetime import timedelta
from typing import IO, Any

import anyio
from celery import Celery, signals
from sqlalchemy import select

from models.errors import IdvError
from models.reasons import Reason

from .db import VerificationRecord, unit_of_work, utcnow
from .jobs import RUNNABLE, UPLOAD_PREFIX, JobParams, read_all, run_verification_job
from .routes_common import ApiContext
from .settings import Settings, get_settings

log = logging.getLogger("idverify.api.tasks")

TASK_NAME = "idverify.run_verification"
_PARAMS = UPLOAD_PREFIX + "params"
_UPLOAD_PARTS = ("capture", "id_front", "id_back", "selfie_with_card")


def make_celery(settings: Settings) -> Celery:
    """The Celery app for one broker. No result backend: the database row is the result."""
    app = Celery("idverify", broker=settings.broker_url, set_as_current=False)
    vt = settings.broker_visibility_timeout_s
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=settings.broker_queue,
        worker_prefetch_multiplier=1,  # a worker holds only the job it runs; the rest stay claimable by others
        broker_connection_retry_on_startup=True,
        # Redis only (ignored by AMQP): when an unacked job becomes visible again, and how often a
        # worker looks for such jobs (kombu's default scan period is ~100 s)
        broker_transport_options={
            "visibility_timeout": vt,
            "unacked_restore_interval": max(1, min(10, vt // 2)),
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(
        _run_verification_task
    )
    return app


_apps: dict[str, Celery] = {}
_apps_lock = threading.Lock()


def celery_app(settings: Settings | None = None) -> Celery:
    """One Celery app per broker URL per process (the producer's connection pool lives in it)."""
    settings = settings or get_settings()
    with _apps_lock:
        if settings.broker_url not in _apps:
            _apps[settings.broker_url] = make_celery(settings)
        return _apps[settings.broker_url]


# --- API side --------------------------------------------------------------------------------------


def store_uploads(ctx: ApiContext, files: Mapping[str, IO[bytes] | None], params: JobParams) -> dict[str, str]:
    """Every upload and the job's parameters (declared name and number are PII) into the encrypted
    store; returns evidence keys -> object ids for the verification row."""
    s = ctx.settings
    store = ctx.evidence.store
    ids: dict[str, str] = {}
    try:
        for name in _UPLOAD_PARTS:
            f = files.get(name)
            if f is not None:
                limit = s.max_video_bytes if name == "capture" else s.max_image_bytes
                ids[UPLOAD_PREFIX + name] = store.put(read_all(f, limit, name))
        ids[_PARAMS] = store.put(json.dumps(asdict(params), ensure_ascii=False).encode())
    except BaseException:
        ctx.evidence.delete(ids.values())
        raise
    return ids


def enqueue(settings: Settings, verification_id: str) -> bool:
    """Send the job (only its id). False when the broker is unreachable: the row stays `queued`
    and the sweep sends it later, so the caller can still answer 202."""
    try:
        celery_app(settings).send_task(
            TASK_NAME, args=[verification_id],
            retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
        return True
    except Exception as exc:  # kombu raises several connection error types
        log.warning("verification %s: enqueue failed (%s); the sweep will retry", verification_id, type(exc).__name__)
        return False


def requeue_stale(ctx: ApiContext, *, older_than_s: float | None = None, limit: int = 500) -> int:
    """Send again every verification still `queued` after `older_than_s`. Safe to repeat and to run
    in every API process at once: a duplicate message for a job that ran is a no-op."""
    s = ctx.settings
    before = utcnow() - timedelta(seconds=s.queue_requeue_after_s if older_than_s is None else older_than_s)
    with ctx.session_factory() as session:
        ids = list(session.scalars(
            select(VerificationRecord.id)
            .where(VerificationRecord.status == "queued", VerificationRecord.created_at <= before)
            .order_by(VerificationRecord.created_at).limit(limit)
        ))
    n = sum(1 for vid in ids if enqueue(s, vid))
    if n:
        log.info("requeued %d verifications still queued", n)
    return n


async def requeue_loop(ctx: ApiContext) -> None:
    """The periodic sweep of the API lifespan (first round at start-up)."""
    while True:
        try:
            await anyio.to_thread.run_sync(requeue_stale, ctx)
        except Exception as exc:  # the sweep must keep running; the next round retries
            log.error("queue sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(ctx.settings.queue_sweep_interval_s)


# --- worker side -----------------------------------------------------------------------------------

_worker_ctx: ApiContext | None = None


def build_worker_context(settings: Settings) -> ApiContext:
    from .app import build_context
    from .pipeline import build_engines

    return build_context(settings, engines=build_engines(settings))


@signals.worker_process_init.connect
def _load_models(**_: Any) -> None:
    """Each pool process loads the models once, before it takes any job."""
    global _worker_ctx
    if get_settings().queue == "celery" and _worker_ctx is None:
        _worker_ctx = build_worker_context(get_settings())
        log.info("worker process ready (models loaded)")


def run_worker(concurrency: int | None = None, *, loglevel: str = "INFO") -> int:
    """`idverify worker`: a Celery worker of `concurrency` processes (default one per core)."""
    from .settings import cpu_count

    settings = get_settings()
    if settings.queue != "celery" or not settings.broker_url:
        raise IdvError(Reason.INPUT_INVALID, "the worker needs IDV_QUEUE=celery and IDV_BROKER_URL")
    n = concurrency or cpu_count()
    celery_app(settings).worker_main(
        ["worker", f"--concurrency={n}", "--pool=prefork", f"--loglevel={loglevel}", "--without-gossip",
         "--without-mingle", "--hostname=idverify@%h"]
    )
    return 0


def _ctx() -> ApiContext:
    global _worker_ctx
    if _worker_ctx is None:  # a solo/threads pool sends no worker_process_init
        _worker_ctx = build_worker_context(get_settings())
    return _worker_ctx


def _run_verification_task(task: Any, verification_id: str) -> str:
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    return run_queued_verification(_ctx(), verification_id, redelivered=redelivered)


def _claim(ctx: ApiContext, vid: str, *, redelivered: bool) -> tuple[str, dict[str, str]]:
    with unit_of_work(ctx.session_factory) as s:
        rec = s.get(VerificationRecord, vid, with_for_update=True)
        if rec is None:
            return "missing", {}
        if rec.status not in RUNNABLE or rec.purged_at is not None:
            return "already_final", {}
        if rec.status == "processing" and not redelivered:
            return "running_elsewhere", {}  # a duplicate message; the first one's worker is on it
        rec.status = "processing"
        return "claimed", {k: v for k, v in (rec.evidence or {}).items() if k.startswith(UPLOAD_PREFIX)}


def _drop_uploads(ctx: ApiContext, vid: str, uploads: dict[str, str]) -> None:
    """The raw uploads are deleted once the job is decided (evidence images were stored by _persist)."""
    ctx.evidence.delete(uploads.values())
    with unit_of_work(ctx.session_factory) as s:
        rec = s.get(VerificationRecord, vid, with_for_update=True)
        if rec is not None and rec.evidence:
            rec.evidence = {k: v for k, v in rec.evidence.items() if not k.startswith(UPLOAD_PREFIX)}


def run_queued_verification(ctx: ApiContext, verification_id: str, *, redelivered: bool = False) -> str:
    """Run one queued verification at most once to a decision. Returns what happened:
    `decided`, `failed` (unusable input; recorded on the row), `already_final`, `running_elsewhere`
    or `missing`."""
    vid = verification_id
    state, uploads = _claim(ctx, vid, redelivered=redelivered)
    if state != "claimed":
        log.info("verification %s: job skipped (%s)", vid, state)
        return state
    store = ctx.evidence.store
    try:
        raw = json.loads(store.get(uploads[_PARAMS]).decode())
        raw["actions"] = tuple(raw["actions"]) if raw.get("actions") else None
        params = JobParams(**raw)
        files: dict[str, IO[bytes] | None] = {
            name: io.BytesIO(store.get(uploads[UPLOAD_PREFIX + name])) if UPLOAD_PREFIX + name in uploads else None
            for name in _UPLOAD_PARTS
        }
    except (IdvError, KeyError, ValueError, TypeError) as exc:
        # the stored upload is gone or unreadable: a retry cannot help, so record the failure
        from .jobs import _fail

        log.error("verification %s: stored upload unusable (%s)", vid, type(exc).__name__)
        _fail(ctx, vid, IdvError(Reason.INTERNAL_ERROR, "internal error; it has been logged", status_code=500), 500)
        return "failed"
    try:
        run_verification_job(ctx, files, params)
    except IdvError:
        state = "failed"  # recorded on the row by run_verification_job
    else:
        state = "decided"
    finally:
        del files
    _drop_uploads(ctx, vid, uploads)
    return state


__all__ = [
    "TASK_NAME",
    "build_worker_context",
    "celery_app",
    "enqueue",
    "make_celery",
    "requeue_loop",
    "requeue_stale",
    "run_queued_verification",
    "run_worker",
    "store_uploads",
]
