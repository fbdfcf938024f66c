"""API keys per client app: stored hashed, with scopes, and a per-key rate limit.

A key looks like `idv_<key_id>_<secret>`. The key id is the lookup handle (not secret); only a
SHA-256 of the secret is stored. The secret is 256 random bits, so a fast hash is enough — a slow
password hash (argon2) would only add CPU to every request without adding security for a value
nobody can guess. Reviewer sessions are separate (review_queue's UI has its own login).

Development mode also accepts one documented fixed key (`IDV_DEV_API_KEY`, default
`DEV_API_KEY` below) for the client `dev` with the default scopes (not `pii:read`: what a developer
tries first shows masked data, as an app's key does); production mode refuses it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from models.reasons import Reason

from .db import ApiKey, get_api_key
from .errors import AuthError, ForbiddenError, RateLimitedError

SCOPE_CREATE = "verifications:write"
SCOPE_READ = "verifications:read"
SCOPE_DELETE = "verifications:delete"
SCOPE_PII = "pii:read"
ALL_SCOPES: tuple[str, ...] = (SCOPE_CREATE, SCOPE_READ, SCOPE_DELETE, SCOPE_PII)
DEFAULT_SCOPES: tuple[str, ...] = (SCOPE_CREATE, SCOPE_READ, SCOPE_DELETE)

# Documented development-only key; settings refuse it (and any IDV_DEV_API_KEY) in production.
DEV_API_KEY = "idv_dev_development-only-key-never-in-production"
DEV_CLIENT_ID = "dev"

_KEY_RE = re.compile(r"^idv_([A-Za-z0-9]{1,32})_([A-Za-z0-9_\-]{16,128})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: one client app's key."""

    client_id: str
    key_id: str
    scopes: frozenset[str]
    webhook_url: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ForbiddenError(Reason.AUTH_FORBIDDEN, f"this API key lacks the scope {scope!r}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session,
    name: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    *,
    client_id: str | None = None,
    webhook_url: str | None = None,
) -> tuple[str, str]:
    """Create a key for a client app; returns (key_id, full key). The full key is shown once, never stored.

    `client_id` defaults to `name`: keys of the same client see the same verifications.
    """
    if not _NAME_RE.match(name):
        raise ValueError("name: 1-64 of letters, digits, '_', '.', '-'")
    scope_set = sorted(set(scopes))
    unknown = [s for s in scope_set if s not in ALL_SCOPES]
    if unknown or not scope_set:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(ALL_SCOPES)}")
    if webhook_url is not None:
        from review_queue.webhooks import check_webhook_url

        check_webhook_url(webhook_url)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            key_id=key_id,
            client_id=client_id or name,
            name=name,
            secret_hash=hash_secret(secret),
            scopes=" ".join(scope_set),
            webhook_url=webhook_url,
        )
    )
    session.flush()
    return key_id, f"idv_{key_id}_{secret}"


def revoke_api_key(session: Session, key_id: str) -> bool:
    from .db import utcnow

    rec = get_api_key(session, key_id)
    if rec is None or rec.revoked_at is not None:
        return False
    rec.revoked_at = utcnow()
    return True


def authenticate(session: Session, presented: str | None, *, dev_key: str | None) -> Principal:
    """The principal for a presented key, or AuthError (missing / invalid / revoked)."""
    if not presented:
        raise AuthError(Reason.AUTH_MISSING, "send the API key as 'Authorization: Bearer <key>'")
    if dev_key and hmac.compare_digest(presented.encode(), dev_key.encode()):
        return Principal(client_id=DEV_CLIENT_ID, key_id="dev", scopes=frozenset(DEFAULT_SCOPES))
    m = _KEY_RE.match(presented)
    if not m:
        raise AuthError(Reason.AUTH_INVALID, "the API key is malformed, unknown or revoked")
    key_id, secret = m.group(1), m.group(2)
    rec = get_api_key(session, key_id)
    # compare even when the key id is unknown, so timing does not reveal which ids exist
    expected = rec.secret_hash if rec is not None else "0" * 64
    ok = hmac.compare_digest(hash_secret(secret), expected)
    if rec is None or not ok or rec.revoked_at is not None:
        raise AuthError(Reason.AUTH_INVALID, "the API key is malformed, unknown or revoked")
    return Principal(
        client_id=rec.client_id, key_id=rec.key_id, scopes=frozenset(rec.scopes.split()), webhook_url=rec.webhook_url
    )


class RateLimiter:
    """A token bucket per key, in this process.

    With N worker processes a client can reach N x the limit; a multi-host deployment needs a
    shared limiter (e.g. in Redis) — not built yet.
    """

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, *, cost: float = 1.0) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                raise RateLimitedError((cost - tokens) / self.rate)
            self._buckets[key] = (tokens - cost, now)
            if len(self._buckets) > 100_000:  # bounded memory under key-spraying
                self._buckets.clear()
