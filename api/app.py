"""The FastAPI application: `create_app()` builds everything from `get_settings()`.

Resources (database, encrypted store, models, metrics, limiters) are built once in the lifespan and
reached by routes through `request.app.state.ctx`. `idverify serve` runs
`uvicorn.run("api.app:create_app", factory=True, ...)`; every worker process loads the models once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import describe_unexpected
from models.reasons import Reason

from .auth import RateLimiter
from .errors import error_body, install_error_handlers
from .metrics import Metrics
from .routes_common import ApiContext, dev_key_for
from .settings import Settings, cpu_count, get_settings

log = logging.getLogger("idverify.api")

API_DESCRIPTION = """Identity verification for the lending app: liveness challenge, capture + ID card upload,
decision (`approved` / `rejected` / `review`), signed webhooks on every final decision.

Authenticate with `Authorization: Bearer <API key>`. Errors always have the shape
`{"type": "<reason code>", "detail": "...", "verification_id": ...}`; 4xx are the caller's mistakes,
5xx ours. See `POST /v1/challenges` for which way `turn_left` means and the `mirrored` flag.
"""

PURGE_INTERVAL_S = 3600.0


def max_request_bytes(settings: Settings) -> int:
    """The whole multipart body: one capture, three images and a little form overhead."""
    return settings.max_video_bytes + 3 * settings.max_image_bytes + 1024 * 1024


class BodyLimitMiddleware:
    """Refuse request bodies over the limit while they stream, before anything is parsed or decoded.

    A declared Content-Length over the limit is refused at once; a chunked body is counted as it
    arrives and, past the limit, the app's response (whatever it made of the cut stream) is replaced
    by one 413 in the common error shape.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = -1
                if declared > self.limit or declared < 0:
                    await _send_error(send, 413 if declared > self.limit else 400,
                                      Reason.INPUT_TOO_LARGE if declared > self.limit else Reason.INPUT_INVALID,
                                      f"the request body exceeds {self.limit} bytes" if declared > self.limit
                                      else "malformed Content-Length")
                    return
        seen = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return msg

        started = False

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if exceeded:
                if msg["type"] == "http.response.start" and not started:
                    started = True
                    await _send_error(send, 413, Reason.INPUT_TOO_LARGE, f"the request body exceeds {self.limit} bytes")
                return
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            await _send_error(send, 413, Reason.INPUT_TOO_LARGE, f"the request body exceeds {self.limit} bytes")


async def _send_error(send: Send, status: int, code: Reason, detail: str) -> None:
    import json

    body = json.dumps(error_body(code, detail)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class ContainErrorsMiddleware:
    """The outermost layer: an unexpected exception becomes the one-shape 500 here and goes no
    further. Starlette's own error middleware would answer the same but then re-raise, and the
    server would print the whole traceback, whose messages can quote an applicant's input."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # type name only: exception messages can quote input values
            log.error("unhandled %s on %s %s", describe_unexpected(exc), scope.get("method", "")[:16], scope.get("path", "")[:200])
            if started:
                return  # the status is already on the wire; the client sees a cut response
            await _send_error(send, 500, Reason.INTERNAL_ERROR, "internal error; it has been logged")


class MetricsMiddleware:
    """Request counts and latencies by route template (never the raw path: it holds ids)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            # a made-up method (any client can send one) must not mint new label series
            method = scope.get("method", "")
            method = method if method in _HTTP_METHODS else "other"
            self.metrics.requests.labels(method=method, route=name, status=str(status)).inc()
            self.metrics.request_seconds.labels(method=method, route=name).observe(time.perf_counter() - t0)


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _migrate_once(settings: Settings) -> None:
    """Alembic to head, serialised across worker processes of one host by a file lock."""
    from review_queue.db import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            migrate(settings.effective_database_url)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_admin(session_factory: Any, settings: Settings) -> None:
    """A first supervisor account, so a fresh install's review UI can be logged into.

    Created only while no reviewer exists, as `admin` with IDV_ADMIN_PASSWORD (in development mode
    the documented default; production refuses to start without a password of its own).
    """
    from sqlalchemy import exists, select
    from sqlalchemy.exc import IntegrityError

    from review_queue.db import Reviewer, unit_of_work
    from review_queue.service import ReviewService

    try:
        with unit_of_work(session_factory) as session:
            if session.scalar(select(exists().where(Reviewer.id.is_not(None)))):
                return
            ReviewService(session).create_reviewer(
                username="admin", password=settings.effective_admin_password, role="supervisor"
            )
        log.info("created the first supervisor account 'admin'")
    except IntegrityError:  # another worker created it first
        pass


def build_context(settings: Settings, *, engines: Any = None) -> ApiContext:
    from review_queue.storage import EncryptedStore

    from .db import make_engine, make_session_factory
    from .storage import EvidenceStore

    _migrate_once(settings)
    db_engine = make_engine(settings.effective_database_url)
    ensure_admin(make_session_factory(db_engine), settings)
    ctx = ApiContext(
        settings=settings,
        session_factory=make_session_factory(db_engine),
        evidence=EvidenceStore(EncryptedStore(settings.data_dir / "evidence", settings.effective_encryption_key)),
        metrics=Metrics(),
        rate_limiter=RateLimiter(settings.rate_limit_per_minute),
        limiter=anyio.CapacityLimiter(settings.inference_concurrency or cpu_count()),
        dev_key=dev_key_for(settings),
        engines=engines,
    )
    from .routes_review import wire_review_queue

    wire_review_queue(ctx)
    return ctx


def create_app(settings: Settings | None = None, *, engines: Any = None) -> FastAPI:
    """The app. With no arguments everything comes from get_settings(); tests pass built engines."""
    settings = settings or get_settings()
    ctx = build_context(settings, engines=engines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if ctx.engines is None:
            from .pipeline import build_engines

            t0 = time.perf_counter()
            try:
                ctx.engines = await anyio.to_thread.run_sync(build_engines, settings)
            except Exception as exc:  # readyz reports it; requests answer 503 server.not_ready
                ctx.engines_error = type(exc).__name__
                log.error("models failed to load: %s", type(exc).__name__)
            else:
                log.info("models loaded in %.1f s", time.perf_counter() - t0)
        task = asyncio.create_task(_purge_loop(ctx))
        sweep = None
        if settings.queue == "celery":  # re-sends verifications left `queued` (api/tasks.py)
            from .tasks import requeue_loop

            sweep = asyncio.create_task(requeue_loop(ctx))
        if ctx.webhooks is not None:
            ctx.webhooks.start()
        try:
            yield
        finally:
            if ctx.webhooks is not None:
                ctx.webhooks.stop()
            for t in (task, sweep):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t

    app = FastAPI(
        title="idverify",
        version="1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from a local copy: the default loads Swagger UI from a CDN
        redoc_url=None,
    )
    _mount_offline_docs(app)
    app.state.ctx = ctx
    install_error_handlers(app)

    from . import routes_challenges, routes_health, routes_verifications

    app.include_router(routes_health.router)
    app.include_router(routes_challenges.router)
    app.include_router(routes_verifications.router)
    from .routes_review import mount_review_ui

    mount_review_ui(app, ctx)
    app.add_middleware(BodyLimitMiddleware, limit=max_request_bytes(settings))
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    app.add_middleware(ContainErrorsMiddleware)  # added last: the outermost of ours
    return app


def _mount_offline_docs(app: FastAPI) -> None:
    """/docs with Swagger UI's files from the swagger-ui-bundle package: the service runs offline."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():  # noqa: ANN202 - FastAPI renders the HTMLResponse
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="idverify API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


async def _purge_loop(ctx: ApiContext) -> None:
    from .jobs import purge_expired

    while True:
        try:
            await anyio.to_thread.run_sync(purge_expired, ctx)
        except Exception as exc:  # retention must keep running; the next round retries
            log.error("retention purge failed: %s", type(exc).__name__)
        await asyncio.sleep(PURGE_INTERVAL_S)
