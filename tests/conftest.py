"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, inspect, text

from etl.database import make_engine
from etl.migrate import upgrade


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


def wipe(engine: Engine) -> None:
    """Drop every view and table in the test database (it is shared between tests)."""
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
