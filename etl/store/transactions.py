"""The transactions of a run: one per unit of work, or savepoints of one that is rolled back.

A sync opens one transaction per workspace (and one each for its ledger rows); a dry
run makes each of them a savepoint of one outer transaction, rolled back at the end, so
it runs the same code and writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from etl.store.database import WRITE


class Units:
    """Hands out one transaction per unit of work, or savepoints of one outer
    transaction that is rolled back at the end (dry run)."""

    def __init__(self, engine: Engine, *, dry_run: bool) -> None:
        self.engine = engine
        self.dry_run = dry_run
        self._outer: Connection | None = None
        if dry_run:
            self._outer = engine.connect().execution_options(**WRITE)
            self._outer.begin()

    @contextmanager
    def unit(self) -> Iterator[Connection]:
        if self._outer is None:
            with (
                self.engine.connect().execution_options(**WRITE) as connection,
                connection.begin(),
            ):
                yield connection
        else:
            with self._outer.begin_nested():
                yield self._outer

    def close(self) -> None:
        if self._outer is not None:
            # A dead database rolls the dry run back by itself.
            with contextlib.suppress(SQLAlchemyError):
                self._outer.rollback()
                self._outer.close()
