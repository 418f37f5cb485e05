"""Engines: opened once per command and disposed, and their failures told in one line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, ResourceClosedError

from etl.core.errors import ApiError, LoadError
from etl.store.database import ONE_LINE_LIMIT, make_engine, one_line, open_engine
from tests.conftest import BACKEND_URLS, backend_url


@pytest.fixture(params=list(BACKEND_URLS))
def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on each backend's test database, which these tests only read."""
    engine = make_engine(backend_url(request.param, tmp_path))
    yield engine
    engine.dispose()


def test_one_line_names_a_database_error_and_its_driver_type(bare_engine: Engine) -> None:
    with pytest.raises(DBAPIError) as caught, bare_engine.connect() as connection:
        connection.execute(text("SELECT x FROM missing_table WHERE x = :p"), {"p": "canary"})
    line = one_line(caught.value)
    driver_type = type(caught.value.orig).__name__
    assert line.startswith(f"database error: {driver_type}: "), line
    assert "missing_table" in line
    assert "\n" not in line
    assert "canary" not in line  # the statement's parameters stay out


def test_one_line_names_a_database_error_that_wraps_no_driver_error(
    bare_engine: Engine,
) -> None:
    connection = bare_engine.connect()
    connection.close()
    with pytest.raises(ResourceClosedError) as caught:
        connection.execute(text("SELECT 1"))
    assert (
        one_line(caught.value) == "database error: ResourceClosedError: This Connection is closed"
    )


def test_one_line_of_any_other_error_is_its_first_line_cut_to_the_limit() -> None:
    error = ApiError("x" * (ONE_LINE_LIMIT + 100) + "\nsecond line", workspace="ws-1")
    line = one_line(error)
    assert len(line) == ONE_LINE_LIMIT
    assert re.fullmatch(r"workspace ws-1: x+", line)


def test_open_engine_connects_then_disposes_its_pool(database_url: str) -> None:
    with open_engine(database_url) as engine:
        pool = engine.pool
        assert pool.checkedin() == 1  # the connection the up-front check made, pooled
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    assert pool.checkedin() == 0  # closed, not left for the garbage collector
    assert engine.pool is not pool


def test_open_engine_disposes_after_a_failure_inside(database_url: str) -> None:
    with pytest.raises(LoadError, match="from inside"), open_engine(database_url) as engine:
        pool = engine.pool
        raise LoadError("from inside")
    assert pool.checkedin() == 0


def test_unreachable_database_fails_before_the_body_with_the_password_masked() -> None:
    url = "postgresql+psycopg://ledger:hunter2-secret@127.0.0.1:9/ledger"
    entered = False
    with pytest.raises(LoadError) as caught, open_engine(url):
        entered = True
    assert not entered
    assert str(caught.value).startswith("cannot connect to postgresql+psycopg://ledger:***@")
    assert "hunter2-secret" not in str(caught.value)
