"""Named locks: held by one process, refused to others, scoped to one database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from etl.store import locks
from etl.store.database import make_engine


def test_a_lock_is_refused_while_held_and_free_after(engine: Engine) -> None:
    held = locks.try_lock(engine, "workspace-1")
    assert held is not None
    assert locks.try_lock(engine, "workspace-1") is None
    other = locks.try_lock(engine, "workspace-2")
    assert other is not None
    other.release()
    held.release()
    again = locks.try_lock(engine, "workspace-1")
    assert again is not None
    again.release()


def test_locks_of_another_database_on_the_same_server_are_separate(engine: Engine) -> None:
    if engine.dialect.name != "mysql":
        pytest.skip("advisory locks and lock files are per database already")
    # GET_LOCK is server-wide: two ledgers on one server must not share workspace locks.
    # The server's own `mysql` database stands in for the other ledger (nothing is
    # written there).
    elsewhere = make_engine(engine.url.set(database="mysql").render_as_string(False))
    held = locks.try_lock(engine, "workspace-1")
    assert held is not None
    try:
        there = locks.try_lock(elsewhere, "workspace-1")
        assert there is not None
        there.release()
    finally:
        held.release()
        elsewhere.dispose()
