"""Alembic environment of keyledger.

Tests and ``keyledger db upgrade`` hand in a live connection through
``config.attributes["connection"]``; otherwise the URL is the ``sqlalchemy.url`` option
when set, else keyledger's own setting (KEYLEDGER_DATABASE_URL, keyledger.toml or the
SQLite default).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

import models
from etl.core.config import load_database_url

config = context.config
target_metadata = models.Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: let alembic rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or load_database_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("keyledger migrations run online only (give a database URL)")
run_migrations_online()
