"""Bulk writes: executemany straight to the driver, and the dialect's native upsert.

SQLAlchemy's executemany works through every value of every row in Python
(``construct_params`` and one bind processor call per value): at four rows per key that
was most of a sync's time. Here each statement is compiled once per dialect, each
column's conversion is chosen once from its type, and the rows go to the driver's own
executemany (through ``exec_driver_sql``, so errors and events are SQLAlchemy's as
before). ``tests/store/test_bulk.py`` checks that both paths store identical values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, Connection, Date, Dialect, Insert, Integer, String, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.type_api import TypeEngine

from models.types import Money, UtcDateTime

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # row keys (at least two), in the driver's parameter order
    converters: tuple[tuple[int, Converter], ...]  # (index in names, conversion)
    # Indexes whose equal values convert alike (equal aware datetimes are one instant;
    # equal Decimals are not: 1.0 and 1.00 have different texts).
    by_value: frozenset[int]
    positional: bool


def insert_rows(connection: Connection, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``model``'s table."""
    if rows:
        prepared = _prepare(connection.dialect, model, tuple(rows[0]), None, ())
        _execute(connection, prepared, rows)


def upsert_rows(
    connection: Connection,
    model: Any,
    key: Sequence[str],
    rows: Sequence[dict[str, Any]],
    *,
    keep: Sequence[str] = (),
) -> None:
    """The dialect's native upsert of ``rows`` on ``key``: every other column is
    updated, except ``keep``, which a row that exists keeps."""
    if rows:
        prepared = _prepare(connection.dialect, model, tuple(rows[0]), tuple(key), tuple(keep))
        _execute(connection, prepared, rows)


def upsert_statement(
    dialect: Dialect, model: Any, key: Sequence[str], *, keep: Sequence[str] = ()
) -> Insert:
    """INSERT ... ON CONFLICT DO UPDATE (PostgreSQL, SQLite) or ON DUPLICATE KEY UPDATE
    (MariaDB/MySQL) of every column but ``key`` and ``keep``."""
    columns = [c.name for c in model.__table__.columns]
    updated = [c for c in columns if c not in key and c not in keep]
    if dialect.name == "mysql":
        my_insert = mysql.insert(model)
        return my_insert.on_duplicate_key_update({c: my_insert.inserted[c] for c in updated})
    if dialect.name in ("postgresql", "sqlite"):
        dialect_insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(model)
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in updated}
        )
    raise NotImplementedError(f"no upsert for the {dialect.name} dialect")


def _execute(connection: Connection, prepared: _Prepared, rows: Sequence[dict[str, Any]]) -> None:
    # Column by column, so the loops over rows run in C (itemgetter, zip, map).
    values: list[Any] = list(map(itemgetter(*prepared.names), rows))
    if prepared.converters:
        columns = list(zip(*values, strict=True))
        for index, convert in prepared.converters:
            if index in prepared.by_value:
                # Many rows share a value (captured_at): convert each distinct one once.
                distinct = {value: convert(value) for value in dict.fromkeys(columns[index])}
                columns[index] = tuple(map(distinct.__getitem__, columns[index]))
            else:
                columns[index] = tuple(map(convert, columns[index]))
        values = list(zip(*columns, strict=True))
    if not prepared.positional:
        names = prepared.names
        values = [dict(zip(names, row, strict=True)) for row in values]
    connection.exec_driver_sql(prepared.sql, values)


@lru_cache(maxsize=64)
def _prepare(
    dialect: Dialect,
    model: Any,
    columns: tuple[str, ...],
    key: tuple[str, ...] | None,
    keep: tuple[str, ...],
) -> _Prepared:
    statement = insert(model) if key is None else upsert_statement(dialect, model, key, keep=keep)
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if compiled.positiontup is not None:
        names, positional = tuple(compiled.positiontup), True
    else:
        names, positional = tuple(compiled.binds), False
    if sorted(names) != sorted(columns):
        raise ValueError(f"{model.__tablename__}: statement binds {names}, rows have {columns}")
    types = [model.__table__.columns[name].type for name in names]
    conversions = ((i, _converter(t, dialect)) for i, t in enumerate(types))
    converters = tuple((i, c) for i, c in conversions if c is not None)
    by_value = frozenset(i for i, t in enumerate(types) if isinstance(t, UtcDateTime))
    return _Prepared(compiled.string, names, converters, by_value, positional)


def _converter(column_type: TypeEngine[Any], dialect: Dialect) -> Converter | None:
    """The function that turns a Python value into the driver's value (None: as is).

    The ledger's own hot types get one plain function each (SQLAlchemy's processors
    cost a call chain per value); any other type gets SQLAlchemy's own bind processor
    for the dialect, so a new column type is stored exactly as executemany would."""
    if isinstance(column_type, (Money, UtcDateTime)):
        return column_type.driver_converter(dialect)
    if isinstance(column_type, Date):
        return _iso_date if dialect.name == "sqlite" else None
    if isinstance(column_type, (Boolean, Integer, String)):  # Text is a String
        return None  # every driver takes bool, int and str as they are
    processor: Converter | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _iso_date(value: Any) -> Any:
    return None if value is None else value.isoformat()
