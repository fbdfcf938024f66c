"""Resources built once per app (in the lifespan) and the dependencies routes use to reach them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from models.errors import IdvError
from review_queue.db import unit_of_work
from models.reasons import Reason

from .auth import DEV_API_KEY, Principal, RateLimiter, authenticate
from .metrics import Metrics
from .settings import Settings
from .storage import EvidenceStore


@dataclass
class ApiContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    evidence: EvidenceStore
    metrics: Metrics
    rate_limiter: RateLimiter
    limiter: anyio.CapacityLimiter
    dev_key: str | None
    engines: Any = None  # api.pipeline.Engines once loaded
    engines_error: str | None = None
    webhooks: Any = None  # api.routes_review.WebhookOutbox when a webhook secret is configured
    review: Any = None  # api.routes_review.ReviewBridge
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def require_engines(self) -> Any:
        if self.engines is None:
            raise IdvError(Reason.SERVICE_NOT_READY, "the models are not loaded yet", status_code=503)
        return self.engines


def dev_key_for(settings: Settings) -> str | None:
    if settings.mode != "development":
        return None
    return settings.dev_api_key or DEV_API_KEY


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def get_session(ctx: Ctx) -> Iterator[Session]:
    """One unit of work per request: committed once when the route returns, rolled back on error."""
    with unit_of_work(ctx.session_factory) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="API key of the client app: `Authorization: Bearer idv_<id>_<secret>`")


def get_principal(
    ctx: Ctx, request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    presented = creds.credentials if creds is not None else None
    with ctx.session_factory() as s:
        principal = authenticate(s, presented, dev_key=ctx.dev_key)
    ctx.rate_limiter.check(principal.key_id)
    request.state.client_id = principal.client_id
    return principal


Caller = Annotated[Principal, Depends(get_principal)]
