"""The API's tables (API keys, challenges, verifications, idempotency records) and session wiring.

The tables live on the review queue's declarative `Base`, so one metadata and one Alembic history
cover the whole database. Queries live here (a small repository of keyword-only functions); route
code never writes SQL, and services never commit: the request's unit of work does, once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

# one metadata, one engine recipe and one unit of work for the whole product (review_queue owns them)
from review_queue.db import Base, UTCDateTime, make_engine, make_session_factory, unit_of_work, utcnow


class ApiKey(Base):
    """One key of one client app. Only a hash of the secret is stored."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(512))  # space-separated
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ChallengeRecord(Base):
    """An issued liveness challenge; consumed atomically by the first verification that uses it."""

    __tablename__ = "api_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    actions: Mapped[str] = mapped_column(String(256))  # comma-separated Action values
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    verification_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class VerificationRecord(Base):
    """One verification. `result` is the PII-masked report; unmasked fields sit encrypted in the store.

    After purge (DELETE or retention) only an anonymised decision record stays: outcome, reason codes,
    scores and timings — no images, no names, no numbers, no applicant reference.
    """

    __tablename__ = "api_verifications"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    applicant_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    mode: Mapped[str] = mapped_column(String(16), default="auto")
    status: Mapped[str] = mapped_column(String(16), default="processing")  # processing|review|completed|failed
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # part -> encrypted object id
    pii_object: Mapped[str | None] = mapped_column(String(64), nullable=True)  # unmasked fields/stages
    mirrored: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    webhook_sent: Mapped[bool] = mapped_column(Boolean, default=False)


class IdempotencyRecord(Base):
    """(client, Idempotency-Key) -> the body's fingerprint and the verification it created."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("client_id", "key", name="uq_api_idempotency_client_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    body_sha256: Mapped[str] = mapped_column(String(64))
    verification_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_verifications.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_api_verifications_client_created", VerificationRecord.client_id, VerificationRecord.created_at)


# --- repository ----------------------------------------------------------------------------------


def get_api_key(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def add_challenge(session: Session, rec: ChallengeRecord) -> None:
    session.add(rec)


def consume_challenge(session: Session, *, challenge_id: str, client_id: str, now: datetime) -> bool:
    """Mark the challenge used if it is this client's, unused and unexpired; True when it was."""
    res = session.execute(
        update(ChallengeRecord)
        .where(
            ChallengeRecord.id == challenge_id,
            ChallengeRecord.client_id == client_id,
            ChallengeRecord.used_at.is_(None),
            ChallengeRecord.expires_at > now,
        )
        .values(used_at=now)
    )
    return res.rowcount == 1


def get_challenge(session: Session, challenge_id: str) -> ChallengeRecord | None:
    return session.get(ChallengeRecord, challenge_id)


def get_verification(session: Session, verification_id: str, *, client_id: str | None = None) -> VerificationRecord | None:
    rec = session.get(VerificationRecord, verification_id)
    if rec is None or (client_id is not None and rec.client_id != client_id):
        return None
    return rec


def get_idempotency(session: Session, *, client_id: str, key: str) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord).where(IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key)
    ).first()


def verifications_due_for_purge(session: Session, *, before: datetime, limit: int = 500) -> list[VerificationRecord]:
    return list(
        session.scalars(
            select(VerificationRecord)
            .where(
                VerificationRecord.created_at < before,
                VerificationRecord.purged_at.is_(None),
                VerificationRecord.status != "processing",
            )
            .limit(limit)
        )
    )


def delete_expired_challenges(session: Session, *, before: datetime) -> int:
    return session.execute(delete(ChallengeRecord).where(ChallengeRecord.expires_at < before)).rowcount or 0


API_TABLES = (ApiKey.__table__, ChallengeRecord.__table__, VerificationRecord.__table__, IdempotencyRecord.__table__)


__all__ = [
    "ApiKey",
    "Base",
    "ChallengeRecord",
    "IdempotencyRecord",
    "VerificationRecord",
    "make_engine",
    "make_session_factory",
    "unit_of_work",
    "utcnow",
]
