"""Signed webhooks: HMAC-SHA256 over "<timestamp>.<body>", sent with retries and exponential backoff,
every attempt recorded. One implementation; the API reuses it for its own events.

Header: `X-Idverify-Signature: t=<unix seconds>,v1=<hex hmac>`. Receivers recompute the HMAC over
the exact body bytes and refuse stale timestamps (replay window, default 5 minutes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from models.errors import IdvError
from models.reasons import Reason

from .db import WebhookAttempt, WebhookDelivery, unit_of_work, utcnow

SIGNATURE_HEADER = "X-Idverify-Signature"
log = logging.getLogger(__name__)


def canonical_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str | bytes, timestamp: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(body: bytes, header: str, secret: str | bytes, *, tolerance_s: int = 300,
                     now: float | None = None) -> int:
    """Check a signature header; returns its timestamp or raises IdvError (webhook.*)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
        given = [v for k, v in (p.split("=", 1) for p in header.split(",")) if k == "v1"]
    except (ValueError, KeyError):
        raise IdvError(Reason.WEBHOOK_SIGNATURE_INVALID, "malformed signature header", status_code=401) from None
    expected = sign(body, secret, ts).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, g) for g in given):
        raise IdvError(Reason.WEBHOOK_SIGNATURE_INVALID, "signature does not match the body", status_code=401)
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        raise IdvError(Reason.WEBHOOK_TIMESTAMP_STALE, f"timestamp outside the {tolerance_s} s window", status_code=401)
    return ts


@dataclass(frozen=True)
class WebhookConfig:
    secret: str
    max_attempts: int = 5
    base_delay_s: float = 1.0  # attempt n waits base * 2**(n-1) after the previous failure
    max_delay_s: float = 300.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AttemptResult:
    attempt_no: int
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """Immutable; one httpx client, thread-safe. `sleep` is injectable so tests don't wait."""

    def __init__(self, config: WebhookConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not config.secret:
            raise IdvError(Reason.INPUT_INVALID, "a webhook secret is required", status_code=500)
        self.config = config
        self._client = client or httpx.Client(timeout=config.timeout_s, follow_redirects=False)
        self._sleep = sleep

    def backoff_s(self, attempt_no: int) -> float:
        return min(self.config.max_delay_s, self.config.base_delay_s * 2 ** (attempt_no - 1))

    def attempt(self, url: str, payload: dict[str, Any], attempt_no: int) -> AttemptResult:
        body = canonical_body(payload)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, self.config.secret, int(time.time()))}
        t0 = time.perf_counter()
        try:
            r = self._client.post(url, content=body, headers=headers)
            res = AttemptResult(attempt_no, r.status_code, None if r.is_success else f"HTTP {r.status_code}",
                                (time.perf_counter() - t0) * 1000)
        except httpx.HTTPError as e:
            res = AttemptResult(attempt_no, None, f"{type(e).__name__}"[:500], (time.perf_counter() - t0) * 1000)
        log.info("webhook attempt %d status=%s ms=%.0f", attempt_no, res.status_code, res.duration_ms)
        return res

    def deliver(self, session_factory: sessionmaker[Session], delivery_id: str) -> WebhookDelivery:
        """Send one recorded delivery until it succeeds or attempts run out; each attempt is
        committed as it happens, so a crash mid-way loses nothing."""
        while True:
            with unit_of_work(session_factory) as s:
                d = s.get(WebhookDelivery, delivery_id)
                if d is None:
                    raise IdvError(Reason.NOT_FOUND, "no such webhook delivery", status_code=404)
                if d.status != "pending":
                    return d
                url, payload, attempt_no = d.url, dict(d.payload), d.attempts + 1
            # the HTTP call happens outside any transaction: no database lock is held while waiting
            res = self.attempt(url, payload, attempt_no)
            wait = 0.0
            with unit_of_work(session_factory) as s:
                d = s.get(WebhookDelivery, delivery_id)
                s.add(WebhookAttempt(delivery_id=delivery_id, attempt_no=res.attempt_no, at=utcnow(),
                                     status_code=res.status_code, error=res.error, duration_ms=res.duration_ms))
                d.attempts, d.last_status_code, d.last_error = res.attempt_no, res.status_code, res.error
                if res.ok:
                    d.status, d.delivered_at, d.next_attempt_at = "delivered", utcnow(), None
                elif res.attempt_no >= self.config.max_attempts:
                    d.status, d.next_attempt_at = "failed", None
                else:
                    wait = self.backoff_s(res.attempt_no)
                    d.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)
            if wait:
                self._sleep(wait)

    def enqueue(self, session: Session, *, url: str, event_type: str, payload: dict[str, Any],
                verification_id: str | None = None) -> WebhookDelivery:
        """Record a pending delivery in the caller's transaction (outbox); send it with deliver()."""
        now = utcnow()
        d = WebhookDelivery(event_type=event_type, verification_id=verification_id, url=url, payload=payload,
                            status="pending", attempts=0, created_at=now, next_attempt_at=now)
        session.add(d)
        session.flush()
        return d

    def deliver_pending(self, session_factory: sessionmaker[Session], *, limit: int = 100) -> list[WebhookDelivery]:
        with unit_of_work(session_factory) as s:
            ids = list(s.scalars(
                select(WebhookDelivery.id).where(
                    WebhookDelivery.status == "pending",
                    or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= utcnow()),
                ).order_by(WebhookDelivery.created_at).limit(limit)
            ))
        return [self.deliver(session_factory, i) for i in ids]

    def close(self) -> None:
        self._client.close()


__all__ = [
    "SIGNATURE_HEADER",
    "AttemptResult",
    "WebhookConfig",
    "WebhookSender",
    "canonical_body",
    "sign",
    "verify_signature",
]
