"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etl.store.database import make_engine
from tests.conftest import BACKEND_URLS, backend_url, wipe


@pytest.fixture(params=list(BACKEND_URLS))
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: a new SQLite file (created, empty), or the
    backend's test database wiped."""
    url = backend_url(request.param, tmp_path)
    if request.param == "sqlite":
        (tmp_path / "keyledger.db").touch()
    engine = make_engine(url)
    wipe(engine)
    engine.dispose()
    yield url
    engine = make_engine(url)
    wipe(engine)
    engine.dispose()
