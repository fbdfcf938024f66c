"""Persistence: the shared declarative `Base`, engines, sessions, the review tables, and migrations.

SQLite (default, embedded) or PostgreSQL by URL. The schema is created only by Alembic migrations
(`review_queue/migrations`, one head), never by `create_all` at run time. The API's own tables join
the same `Base` (api/db.py) and add a revision after ours.

The audit log is append-only twice over: ORM hooks here refuse any UPDATE/DELETE of an audit row
through the application, and database triggers (installed by the migration) refuse it in SQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from models.errors import IdvError
from models.reasons import Reason

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on both backends (SQLite stores no zone; PostgreSQL timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


def new_id() -> str:
    return uuid.uuid4().hex


class CaseStatus:
    OPEN = "open"
    ESCALATED = "escalated"  # only supervisors may claim
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # four-eyes: a reject proposed, another reviewer confirms
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # its verification was deleted: evidence and fields purged, nothing to decide

    QUEUED = (OPEN, ESCALATED, AWAITING_CONFIRMATION)
    DECIDED = (APPROVED, REJECTED)


class Reviewer(Base):
    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # reviewer | supervisor
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewerSession(Base):
    """A logged-in reviewer's session, held server-side so logging out really ends it: the signed
    cookie alone would stay valid until it expired. Keyed by the sha256 of the cookie's token."""

    __tablename__ = "reviewer_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Case(Base):
    __tablename__ = "review_cases"
    __table_args__ = (Index("ix_review_cases_queue", "status", "due_at", "priority"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    verification_id: Mapped[str] = mapped_column(String(64), unique=True)
    applicant_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(24), default=CaseStatus.OPEN)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    calendar_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    reason_codes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    machine_decision: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    scores: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("reviewers.id"), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("reviewers.id"), nullable=True)
    proposed_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    proposed_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    proposed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    escalated_by: Mapped[int | None] = mapped_column(ForeignKey("reviewers.id"), nullable=True)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    decided_by: Mapped[int | None] = mapped_column(ForeignKey("reviewers.id"), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class CaseImage(Base):
    __tablename__ = "review_case_images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("review_cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # selfie_with_card | card_front | card_back | best_frame | audit_frame
    seq: Mapped[int] = mapped_column(Integer, default=0)
    object_id: Mapped[str] = mapped_column(String(32))  # in the EncryptedStore
    content_type: Mapped[str] = mapped_column(String(32))
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    __tablename__ = "review_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # reviewer username or "system"
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # codes and field names, no PII


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_type: Mapped[str] = mapped_column(String(64))
    verification_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)


# --- append-only audit log (application side; the migration installs the database triggers) ---


@event.listens_for(Session, "before_flush")
def _audit_rows_are_immutable(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise IdvError(Reason.REVIEW_AUDIT_APPEND_ONLY, "the audit log is append-only", status_code=409)


@event.listens_for(Session, "do_orm_execute")
def _no_bulk_audit_writes(state: Any) -> None:
    if state.is_update or state.is_delete:
        tables = {getattr(d.get("table"), "name", None) for d in [state.statement.entity_description or {}]}
        if AuditEvent.__tablename__ in tables:
            raise IdvError(Reason.REVIEW_AUDIT_APPEND_ONLY, "the audit log is append-only", status_code=409)


AUDIT_TRIGGERS_SQLITE = (
    f"""CREATE TRIGGER IF NOT EXISTS review_audit_log_no_update BEFORE UPDATE ON {AuditEvent.__tablename__}
        BEGIN SELECT RAISE(ABORT, 'review_audit_log is append-only'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS review_audit_log_no_delete BEFORE DELETE ON {AuditEvent.__tablename__}
        BEGIN SELECT RAISE(ABORT, 'review_audit_log is append-only'); END""",
)
AUDIT_TRIGGERS_POSTGRESQL = (
    """CREATE OR REPLACE FUNCTION review_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'review_audit_log is append-only'; END $$""",
    f"""CREATE TRIGGER review_audit_log_no_update_delete BEFORE UPDATE OR DELETE ON {AuditEvent.__tablename__}
        FOR EACH ROW EXECUTE FUNCTION review_audit_log_append_only()""",
    f"""CREATE TRIGGER review_audit_log_no_truncate BEFORE TRUNCATE ON {AuditEvent.__tablename__}
        FOR EACH STATEMENT EXECUTE FUNCTION review_audit_log_append_only()""",
)


# --- engines, sessions, migrations --------------------------------------------------------------


def make_engine(url: str, **kw: Any) -> Engine:
    """An engine for SQLite or PostgreSQL. SQLite: WAL, busy timeout, and BEGIN IMMEDIATE so that
    concurrent writers queue on the database lock instead of failing on a read->write upgrade."""
    if url.startswith("sqlite"):
        kw.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_engine(url, **kw)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. Services never commit."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url  # attributes, not the ini option: '%' in passwords breaks configparser
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the one head)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


__all__ = [
    "AuditEvent",
    "Base",
    "Case",
    "CaseImage",
    "CaseStatus",
    "Reviewer",
    "ReviewerSession",
    "UTCDateTime",
    "WebhookAttempt",
    "WebhookDelivery",
    "make_engine",
    "make_session_factory",
    "migrate",
    "unit_of_work",
    "utcnow",
]
