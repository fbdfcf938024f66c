"""Signed webhooks: HMAC-SHA256 over "<timestamp>.<body>", sent with retries and exponential backoff,
every attempt recorded. One implementation; the API reuses it for its own events.

Header: `X-Idverify-Signature: t=<unix seconds>,v1=<hex hmac>`. Receivers recompute the HMAC over
the exact body bytes and refuse stale timestamps (replay window, default 5 minutes).

Several processes may send at once: a sender first claims a row (PostgreSQL `FOR UPDATE SKIP LOCKED`,
SQLite a conditional UPDATE) to status `sending` with a lease in `next_attempt_at`, so each row is
sent by one sender; a row whose sender died is taken over when its lease has run out.
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
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.errors import IdvError
from models.reasons import Reason

from .db import WebhookAttempt, WebhookDelivery, unit_of_work, utcnow

SIGNATURE_HEADER = "X-Idverify-Signature"
SENDING = "sending"  # claimed by one sender; `next_attempt_at` is then the end of its lease
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
    lease_s: float = 120.0  # a claimed row whose sender died is taken over after this (> timeout_s)


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

    def _claimable(self, now: dt.datetime) -> Any:
        """Due pending rows, and rows whose sender's lease ran out (it crashed mid-delivery)."""
        due = and_(WebhookDelivery.status == "pending",
                   or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now))
        abandoned = and_(WebhookDelivery.status == SENDING, WebhookDelivery.next_attempt_at < now)
        return or_(due, abandoned)

    def claim(self, session_factory: sessionmaker[Session], delivery_id: str) -> bool:
        """Take one delivery for this sender: an atomic conditional UPDATE to `sending` with a lease
        (`next_attempt_at` is the lease's end while sending). True when this caller won it."""
        now = utcnow()
        with unit_of_work(session_factory) as s:
            res = s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, self._claimable(now))
                .values(status=SENDING, next_attempt_at=now + dt.timedelta(seconds=self.config.lease_s)),
                execution_options={"synchronize_session": False},
            )
            return res.rowcount == 1

    def _claim_due(self, session_factory: sessionmaker[Session], limit: int) -> list[str]:
        now = utcnow()
        lease_end = now + dt.timedelta(seconds=self.config.lease_s)
        with unit_of_work(session_factory) as s:
            if s.get_bind().dialect.name == "postgresql":
                # rows another sender holds locked are skipped, not waited for
                rows = list(s.scalars(
                    select(WebhookDelivery).where(self._claimable(now))
                    .order_by(WebhookDelivery.created_at).limit(limit).with_for_update(skip_locked=True)
                ))
                for d in rows:
                    d.status, d.next_attempt_at = SENDING, lease_end
                return [d.id for d in rows]
        # SQLite has no SKIP LOCKED: one conditional UPDATE per row. A row another sender took meanwhile
        # is skipped and the next due ones are tried, so two senders that listed the same rows still
        # each claim up to `limit` instead of splitting one list between them.
        claimed: list[str] = []
        tried: set[str] = set()
        while len(claimed) < limit:
            with session_factory() as s:
                ids = list(s.scalars(
                    select(WebhookDelivery.id)
                    .where(self._claimable(now), WebhookDelivery.id.not_in(tried))
                    .order_by(WebhookDelivery.created_at).limit(limit - len(claimed))
                ))
            if not ids:
                return claimed
            tried.update(ids)
            claimed.extend(i for i in ids if self.claim(session_factory, i))
        return claimed

    def deliver(self, session_factory: sessionmaker[Session], delivery_id: str) -> WebhookDelivery:
        """Claim one recorded delivery and send it until it succeeds or attempts run out; each attempt
        is committed as it happens, so a crash mid-way loses nothing (the lease expires and another
        sender takes the row over). A row another sender holds is returned untouched."""
        if not self.claim(session_factory, delivery_id):
            with session_factory() as s:
                d = s.get(WebhookDelivery, delivery_id)
                if d is None:
                    raise IdvError(Reason.NOT_FOUND, "no such webhook delivery", status_code=404)
                s.expunge(d)
                return d
        return self._send_claimed(session_factory, delivery_id)

    def _send_claimed(self, session_factory: sessionmaker[Session], delivery_id: str) -> WebhookDelivery:
        while True:
            with unit_of_work(session_factory) as s:
                d = s.get(WebhookDelivery, delivery_id)
                if d is None:
                    raise IdvError(Reason.NOT_FOUND, "no such webhook delivery", status_code=404)
                if d.status != SENDING:
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
                    # keep the claim through the backoff; the lease covers the wait plus one attempt
                    wait = self.backoff_s(res.attempt_no)
                    d.next_attempt_at = utcnow() + dt.timedelta(seconds=wait + self.config.lease_s)
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
        """Claim the due rows (never a row another process is sending) and send them. Several API
        processes may call this at once: each row is sent by exactly one of them."""
        return [self._send_claimed(session_factory, i) for i in self._claim_due(session_factory, limit)]

    def close(self) -> None:
        self._client.close()


def check_webhook_url(url: str) -> str:
    """A webhook target an operator may configure: http(s) with a host, and not a link-local
    address (169.254.0.0/16 is where cloud instance metadata answers: a webhook there is server-side
    request forgery). Private addresses stay allowed: the lending app's backend often is one.
    Returns the URL; ValueError says what is wrong."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise ValueError("webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("webhook URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise ValueError("webhook URL must not carry credentials; the body is signed instead")
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        ip = None
    if ip is not None and (ip.is_link_local or ip.is_multicast or ip.is_unspecified):
        raise ValueError("webhook URL must not be a link-local, multicast or unspecified address")
    return url


__all__ = [
    "SIGNATURE_HEADER",
    "check_webhook_url",
    "AttemptResult",
    "WebhookConfig",
    "WebhookSender",
    "canonical_body",
    "sign",
    "verify_signature",
]
