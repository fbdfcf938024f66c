"""Alembic environment. The URL comes from (first found): `config.attributes["url"]` (set by
`review_queue.db.migrate(url)`), `-x url=...` on the alembic command line, `sqlalchemy.url` in
alembic.ini, or IDV_DATABASE_URL (the alembic CLI only; the application passes the URL in)."""

from __future__ import annotations

import os

from alembic import context

import api.db  # noqa: F401  the API's tables share this metadata and history (0002): autogenerate must see them
from review_queue.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("IDV_DATABASE_URL")
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set IDV_DATABASE_URL")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
