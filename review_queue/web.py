"""Reviewer web UI: a thin APIRouter over ReviewService, server-rendered with Jinja2.

Sessions are a signed, HttpOnly, SameSite=Strict cookie (itsdangerous) holding a random session
token (its sha256 kept server-side, deleted at logout, so a copied cookie dies with the session) and
a CSRF token; every POST form carries the token and is refused (review.csrf_invalid) before anything
happens when it does not match. The router owns its own session cookie, so the API app mounts it
without extra middleware. Images are served decrypted only through an authorised route.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from models.errors import IdvError
from models.reasons import Reason, describe

from .db import Case, CaseStatus, Reviewer, make_engine, make_session_factory, migrate, unit_of_work
from .policy import Policy, load_policy
from .service import (
    APPROVE_REASONS,
    IMAGE_KINDS,
    PII_FIELDS,
    REJECT_REASONS,
    ReviewConfig,
    ReviewService,
    masked_fields,
)
from .storage import EncryptedStore
from .workdays import CHINA_TZ, WorkCalendar

COOKIE = "idv_review"
SESSION_MAX_AGE_S = 8 * 3600
_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
_TEMPLATES.env.filters["describe"] = describe
_TEMPLATES.env.filters["local"] = lambda d: d.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M Beijing time") if d else ""
_KIND_LABELS = {
    "selfie_with_card": "Selfie with card",
    "card_front": "Card front",
    "card_back": "Card back",
    "best_frame": "Best live frame",
    "audit_frame": "Audit frame",
}


class _NotLoggedIn(Exception):
    pass


@dataclass(frozen=True)
class _Ctx:
    """Everything the routes need, built once by the factory."""

    factory: sessionmaker[Session]
    store: EncryptedStore
    config: ReviewConfig
    calendar: WorkCalendar
    serializer: URLSafeTimedSerializer
    prefix: str
    secure_cookie: bool
    on_decided: Callable[[Session, Case], None] | None
    check_correction: Callable[..., str | None] | None = None

    def service(self, s: Session) -> ReviewService:
        return ReviewService(s, config=self.config, store=self.store, calendar=self.calendar,
                             on_decided=self.on_decided, check_correction=self.check_correction)


def _error_page(request: Request, e: IdvError) -> Response:
    return _TEMPLATES.TemplateResponse(
        request, "error.html", {"code": str(e.code), "words": describe(e.code), "detail": e.detail,
                                "prefix": request.scope.get("idv_prefix", "/review")},
        status_code=e.status_code,
    )


class _HtmlRoute(APIRoute):
    """Renders IdvError as an HTML page (the API's JSON handler is for the JSON API)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except _NotLoggedIn:
                return RedirectResponse(f"{request.scope['idv_prefix']}/login", status_code=303)
            except IdvError as e:
                return _error_page(request, e)

        return handler


def make_review_router(
    *,
    session_factory: sessionmaker[Session],
    store: EncryptedStore,
    secret_key: str | bytes,
    policy: Policy | None = None,
    calendar: WorkCalendar | None = None,
    webhook_url: str = "",
    on_decided: Callable[[Session, Case], None] | None = None,
    prefix: str = "/review",
    secure_cookie: bool = False,
    check_correction: Callable[..., str | None] | None = None,
) -> APIRouter:
    """The reviewer UI, to be included with `app.include_router(router)` (paths carry `prefix`)."""
    pol = policy or load_policy()
    ctx = _Ctx(
        factory=session_factory, store=store, config=ReviewConfig.from_policy(pol, webhook_url=webhook_url),
        calendar=calendar or WorkCalendar(), serializer=URLSafeTimedSerializer(secret_key, salt="idv-review"),
        prefix=prefix.rstrip("/"), secure_cookie=secure_cookie, on_decided=on_decided,
        check_correction=check_correction,
    )
    router = APIRouter(prefix=ctx.prefix, route_class=_HtmlRoute, include_in_schema=False)
    P = ctx.prefix

    # --- session helpers ---------------------------------------------------------------------

    def read_session(request: Request) -> dict[str, Any]:
        request.scope["idv_prefix"] = P
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = ctx.serializer.loads(raw, max_age=SESSION_MAX_AGE_S)
                if isinstance(data, dict) and isinstance(data.get("csrf"), str):
                    return data
            except BadSignature:
                pass
        return {"sid": None, "csrf": secrets.token_urlsafe(24)}

    def write_session(resp: Response, data: dict[str, Any]) -> Response:
        resp.set_cookie(COOKIE, ctx.serializer.dumps(data), max_age=SESSION_MAX_AGE_S, httponly=True,
                        samesite="strict", secure=ctx.secure_cookie, path=P or "/")
        return resp

    def check_csrf(sess: dict[str, Any], token: str) -> None:
        if not token or not hmac.compare_digest(str(sess.get("csrf", "")), token):
            raise IdvError(Reason.REVIEW_CSRF_INVALID, "the form token is missing or invalid; reload the page",
                           status_code=403)

    def current(s: Session, sess: dict[str, Any]) -> Reviewer:
        sid = sess.get("sid")
        r = ctx.service(s).session_reviewer(sid) if isinstance(sid, str) else None
        if r is None:
            raise _NotLoggedIn
        return r

    def page(request: Request, name: str, sess: dict[str, Any], status_code: int = 200, **kw: Any) -> Response:
        kw.update(prefix=P, csrf=sess["csrf"])
        return write_session(_TEMPLATES.TemplateResponse(request, name, kw, status_code=status_code), sess)

    def to(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    # --- login -------------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        sess = read_session(request)
        return page(request, "login.html", sess, error=None, me=None)

    @router.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: str = Form(""), password: str = Form(""),
              csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with ctx.factory() as s:
            try:
                client = request.client.host if request.client else ""
                r = ctx.service(s).authenticate(username=username[:64], password=password[:1024], client=client)
            except IdvError as e:
                s.commit()  # keep the audit row of the failed attempt
                return page(request, "login.html", sess, status_code=e.status_code, error=e.detail, code=str(e.code),
                            me=None)
            sid = ctx.service(s).open_session(r, lifetime=dt.timedelta(seconds=SESSION_MAX_AGE_S))
            s.commit()
        # a fresh CSRF token at login (no token fixation across the privilege change)
        return write_session(to(f"{P}/"), {"sid": sid, "csrf": secrets.token_urlsafe(24)})

    @router.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        if isinstance(sess.get("sid"), str):
            with unit_of_work(ctx.factory) as s:
                ctx.service(s).close_session(sess["sid"])  # a copy of the cookie is now worthless
        resp = to(f"{P}/login")
        resp.delete_cookie(COOKIE, path=P or "/")
        return resp

    # --- queue -------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        sess = read_session(request)
        with unit_of_work(ctx.factory) as s:
            me = current(s, sess)
            items = ctx.service(s).queue()
            me_name, me_role = me.username, me.role
        return page(request, "queue.html", sess, items=items, me={"username": me_name, "role": me_role},
                    fallback_any=any(i.calendar_fallback for i in items))

    @router.post("/next")
    def next_case(request: Request, csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with unit_of_work(ctx.factory) as s:
            c = ctx.service(s).claim_next(current(s, sess))
            cid = c.id
        return to(f"{P}/cases/{quote(cid)}")

    # --- one case ----------------------------------------------------------------------------

    def render_case(request: Request, sess: dict[str, Any], case_id: str, *, reveal: bool = False,
                    notice: str | None = None) -> Response:
        with unit_of_work(ctx.factory) as s:
            svc = ctx.service(s)
            me = current(s, sess)
            c = svc.view_case(case_id, me)
            fields = svc.reveal(case_id, me) if reveal else masked_fields(svc.fields_of(c))
            imgs = svc.images(c.id)
            now = svc.clock()
            mine = c.claimed_by == me.id and c.lease_expires_at is not None and c.lease_expires_at >= now
            view = {
                "id": c.id, "verification_id": c.verification_id, "applicant_ref": c.applicant_ref,
                "status": c.status, "priority": c.priority, "manual": c.manual,
                "created_at": c.created_at, "due_at": c.due_at, "overdue": c.due_at < now and c.status in CaseStatus.QUEUED,
                "calendar_fallback": c.calendar_fallback, "reasons": c.reason_codes,
                "machine": c.machine_decision, "scores": c.scores, "lease_expires_at": c.lease_expires_at,
                "decided": c.status in CaseStatus.DECIDED, "decided_reason": c.decided_reason,
                "proposed_reason": c.proposed_reason,
            }
            ordered = sorted(imgs, key=lambda i: (IMAGE_KINDS.index(i.kind), i.seq))
            images = [{"id": i.id, "kind": i.kind, "label": _KIND_LABELS[i.kind], "seq": i.seq,
                       "w": i.width_px, "h": i.height_px} for i in ordered]
            me_d = {"username": me.username, "role": me.role}
        return page(request, "case.html", sess, case=view, fields=fields, images=images, mine=mine, me=me_d,
                    revealed=reveal, pii=PII_FIELDS, approve_reasons=APPROVE_REASONS, reject_reasons=REJECT_REASONS,
                    max_note=ctx.config.max_note_chars, notice=notice)

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, case_id: str) -> Response:
        return render_case(request, read_session(request), case_id)

    @router.post("/cases/{case_id}/claim")
    def claim(request: Request, case_id: str, csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with unit_of_work(ctx.factory) as s:
            ctx.service(s).claim(case_id, current(s, sess))
        return to(f"{P}/cases/{quote(case_id)}")

    @router.post("/cases/{case_id}/release")
    def release(request: Request, case_id: str, csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with unit_of_work(ctx.factory) as s:
            ctx.service(s).release(case_id, current(s, sess))
        return to(f"{P}/")

    @router.post("/cases/{case_id}/decision")
    def decision(request: Request, case_id: str, outcome: str = Form(""), reason: str = Form(""),
                 note: str = Form(""), csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with unit_of_work(ctx.factory) as s:
            ctx.service(s).decide(case_id, current(s, sess), outcome=outcome, reason=reason, note=note)
        return to(f"{P}/")

    @router.post("/cases/{case_id}/escalate")
    def escalate(request: Request, case_id: str, note: str = Form(""), csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with unit_of_work(ctx.factory) as s:
            ctx.service(s).escalate(case_id, current(s, sess), note=note)
        return to(f"{P}/")

    @router.post("/cases/{case_id}/reveal", response_class=HTMLResponse)
    def reveal(request: Request, case_id: str, csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        return render_case(request, sess, case_id, reveal=True)

    @router.post("/cases/{case_id}/correct")
    def correct(request: Request, case_id: str, field_name: str = Form(""), value: str = Form(""),
                csrf_token: str = Form("")) -> Response:
        sess = read_session(request)
        check_csrf(sess, csrf_token)
        with unit_of_work(ctx.factory) as s:
            ctx.service(s).correct_field(case_id, current(s, sess), field_name=field_name, value=value)
        return to(f"{P}/cases/{quote(case_id)}")

    @router.get("/cases/{case_id}/images/{image_id}")
    def image(request: Request, case_id: str, image_id: str) -> Response:
        sess = read_session(request)
        with unit_of_work(ctx.factory) as s:
            data, ctype = ctx.service(s).image_bytes(case_id, image_id, current(s, sess))
        return Response(data, media_type=ctype, headers={"Cache-Control": "no-store, private",
                                                         "X-Content-Type-Options": "nosniff"})

    return router


def create_review_app(
    *,
    database_url: str,
    store_dir: str | Path,
    encryption_key: bytes,
    secret_key: str | bytes,
    policy_file: Path | None = None,
    holiday_file: Path | None = None,
    webhook_url: str = "",
    run_migrations: bool = True,
) -> FastAPI:
    """The reviewer UI on its own (tests, a separate reviewer host); the API app mounts the router."""
    if run_migrations:
        migrate(database_url)
    engine = make_engine(database_url)
    app = FastAPI(title="idverify review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.include_router(make_review_router(
        session_factory=app.state.session_factory, store=EncryptedStore(store_dir, encryption_key),
        secret_key=secret_key, policy=load_policy(policy_file), calendar=WorkCalendar.load(holiday_file),
        webhook_url=webhook_url,
    ))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review/", status_code=303)

    return app


__all__ = ["COOKIE", "create_review_app", "make_review_router"]
