"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from etl.store.database import make_engine
from etl.store.migrations import upgrade


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's KEYLEDGER_* or OPENROUTER_* settings."""
    for name in list(os.environ):
        if name.startswith(("KEYLEDGER_", "OPENROUTER_")) and not name.startswith(
            "KEYLEDGER_TEST_"
        ):
            monkeypatch.delenv(name)


BACKEND_URLS = {
    "sqlite": None,  # a file in tmp_path
    "postgresql": "KEYLEDGER_TEST_POSTGRES_URL",
    "mysql": "KEYLEDGER_TEST_MYSQL_URL",
}


def backend_url(backend: str, tmp_path: Path) -> str:
    """The URL of a test database, or skip when that backend is not configured."""
    variable = BACKEND_URLS[backend]
    if variable is None:
        return f"sqlite:///{tmp_path / 'keyledger.db'}"
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{variable} is not set")
    return url


def end_stray_sessions(engine: Engine) -> None:
    """End other sessions on the test database: a subprocess a test killed, or a
    connection a test cut, may leave one holding locks that would block the DROPs."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        elif engine.dialect.name == "mysql":
            ids = connection.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            ).scalars()
            for session in list(ids):
                with contextlib.suppress(SQLAlchemyError):  # it ended meanwhile
                    connection.execute(text(f"KILL {int(session)}"))


def wipe(engine: Engine) -> None:
    """Drop every view and table in the test database (it is shared between tests)."""
    engine.dispose()  # our own pooled sessions are not strays
    end_stray_sessions(engine)
    inspector = inspect(engine)
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""  # views on views
    with engine.begin() as connection:
        for view in inspector.get_view_names():
            connection.execute(text(f"DROP VIEW IF EXISTS {view}{cascade}"))
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)


@pytest.fixture(params=list(BACKEND_URLS))
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend, migrated to head through alembic."""
    url = backend_url(request.param, tmp_path)
    engine = make_engine(url)
    wipe(engine)
    upgrade(engine)
    engine.dispose()
    yield url
    engine = make_engine(url)
    wipe(engine)
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the migrated test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
