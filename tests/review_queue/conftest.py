"""Fixtures for the review queue: a real PostgreSQL (throwaway database per test session, dropped
at the end; the run FAILS when PostgreSQL is unreachable, it never skips) and SQLite files."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from review_queue import EncryptedStore, load_policy, make_engine, make_session_factory, migrate

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """The session's throwaway database, migrated once; tests get copies of it (CREATE ... TEMPLATE)."""
    name = f"idv_rq_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable (user postgres): {e}", pytrace=False)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'review.sqlite3'}"
        migrate(url)
        yield url
        return
    server = request.getfixturevalue("pg_server_url")
    # one empty, migrated database per test, copied from the session's (the audit log refuses TRUNCATE)
    base, _, dbname = server.rpartition("/")
    name = f"{dbname}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{dbname}"')
    url = f"{base}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(db_url: str):
    e = make_engine(db_url)
    yield e
    e.dispose()


@pytest.fixture
def factory(engine):
    return make_session_factory(engine)


@pytest.fixture
def store(tmp_path: Path) -> EncryptedStore:
    return EncryptedStore(tmp_path / "store", secrets.token_bytes(32))


@pytest.fixture(scope="session")
def policy():
    return load_policy()


@pytest.fixture(scope="session")
def face_bytes(testdata: Path) -> dict[str, bytes]:
    """Real photos from shared/data/faces used as evidence images."""
    return {n: (testdata / "faces" / n).read_bytes() for n in ("img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg")}
