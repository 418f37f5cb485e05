"""Opening a command's engine: connected once up front, disposed on the way out."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from etl.core.errors import LoadError
from etl.store.database import open_engine


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
