"""Bulk writes: executemany straight to the driver, and the dialect's native upsert.

SQLAlchemy's executemany works through every value of every row in Python
(``construct_params`` and one bind processor call per value): at four rows per key that
was most of a sync's time. Here each statement is compiled once per dialect, each
column's conversion is chosen once from its type, and the rows go to the driver's own
executemany (through ``exec_driver_sql``, so errors and events are SQLAlchemy's as
before). ``tests/store/test_bulk.py`` checks that both paths store identical values.

On PostgreSQL a large batch goes by COPY instead (several times faster than psycopg's
pipelined executemany): straight into the table for an insert; into a temporary table
of the same shape, then one ``INSERT ... SELECT ... ON CONFLICT`` for an upsert. psycopg
adapts each value ``Copy.write_row`` gets "as they would be in normal querying" (its
docs, "Using COPY TO and COPY FROM"), so the converted values are the executemany ones.
Text COPY, not binary: binary needs every column's type given with ``set_types`` and
exact Python types (an int for a NUMERIC would not do). On MariaDB/MySQL a large batch is
one INSERT of literal VALUES rendered by etl.store.mysql_values (PyMySQL renders the same
statement value by value in Python, at about twice the cost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Dialect,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.type_api import TypeEngine

from etl.store import mysql_values
from models.types import Money, UtcDateTime

Converter = Callable[[Any], Any]

# Below this many rows one executemany beats COPY's extra statements (a stage table to
# create and empty) and COPY's own round trips; MariaDB's literal VALUES follow suit.
COPY_MIN_ROWS = 50


@dataclass(frozen=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # row keys, in the driver's parameter order
    converters: tuple[tuple[int, Converter], ...]  # (index in names, conversion)
    # Indexes whose equal values convert alike (equal aware datetimes are one instant;
    # equal Decimals are not: 1.0 and 1.00 have different texts).
    by_value: frozenset[int]
    positional: bool


def insert_rows(connection: Connection, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``model``'s table (a model or a
    Table)."""
    if not rows:
        return
    prepared = _prepare(connection.dialect, model, tuple(rows[0]), None, ())
    if _copies(connection, rows):
        _copy(connection, _table(model).name, prepared.names, _values(prepared, rows))
    else:
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
    if not rows:
        return
    if _copies(connection, rows):
        _copy_upsert(connection, model, tuple(key), tuple(keep), rows)
        return
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


@contextmanager
def batch_lookups(connection: Connection) -> Iterator[None]:
    """Statements joining a batch's temporary table with a permanent table: look each
    batch row up by the permanent table's index.

    PostgreSQL plans from statistics that, inside a first sync's transaction, still say
    api_keys is small (autovacuum cannot count rows nobody else sees yet, and nothing
    analyzes temporary tables), so it hashed the whole of api_keys once per batch:
    seen in the server log (auto_explain) as a Hash Join over a Seq Scan on api_keys,
    about 0.15 s a batch at 100,000 keys and growing. A batch is at most BATCH_KEYS
    rows, so index lookups are always the right plan; hash and merge joins are turned
    off for just these statements (SET LOCAL, then back to the session's value)."""
    if connection.dialect.name != "postgresql":
        yield
        return
    # One round trip each way (each is a statement per batch): set_config(..., true) is
    # SET LOCAL, and the values it replaced are put back after.
    hashjoin, mergejoin, _, _ = connection.exec_driver_sql(_JOINS_OFF).one()
    try:
        yield
    finally:
        connection.exec_driver_sql(_JOINS_BACK, (hashjoin, mergejoin))


_JOINS_OFF = (
    "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin'),"
    " set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
)
_JOINS_BACK = (
    "SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)"
)


def empty_scratch(connection: Connection, table: Table) -> None:
    """Empty a temporary table of the connection, to be filled again.

    PostgreSQL: TRUNCATE, not DELETE. Autovacuum never visits temporary tables, so the
    rows DELETE leaves dead stay, and every later scan reads them: emptying a batch
    table a thousand times in a workspace of 1,000,000 keys made each batch read a
    million dead rows. TRUNCATE is transactional there (a rolled-back savepoint keeps
    the rows) and gives the table fresh storage. Elsewhere DELETE: SQLite empties a
    table without a WHERE in one step, and MariaDB's TRUNCATE would commit."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"TRUNCATE {table.name}")
    else:
        connection.execute(table.delete())


def _copies(connection: Connection, rows: Sequence[dict[str, Any]]) -> bool:
    return connection.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS


def _copy_upsert(
    connection: Connection,
    model: Any,
    key: tuple[str, ...],
    keep: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
) -> None:
    """PostgreSQL: COPY ``rows`` into the table's stage, then upsert them from there."""
    # ON CONFLICT may touch a row once per statement. Row by row (executemany), the
    # first of a key inserted it and each later one updated all but ``keep``: merge so.
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        identity = tuple(row[k] for k in key)
        earlier = merged.get(identity)
        merged[identity] = row if earlier is None else {**row, **{c: earlier[c] for c in keep}}
    if len(merged) < len(rows):
        rows = list(merged.values())
    columns = tuple(rows[0])
    create, empty, upsert = _stage_statements(connection.dialect, model, columns, key, keep)
    prepared = _prepare(connection.dialect, model, columns, None, ())
    connection.exec_driver_sql(create)
    connection.exec_driver_sql(empty)
    _copy(connection, _stage_name(model), prepared.names, _values(prepared, rows))
    connection.exec_driver_sql(upsert)


def _stage_name(model: Any) -> str:
    return f"keyledger_stage_{_table(model).name}"


@lru_cache(maxsize=32)
def _stage_statements(
    dialect: Dialect,
    model: Any,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    keep: tuple[str, ...],
) -> tuple[str, str, str]:
    """CREATE (once per transaction: ON COMMIT DROP), empty, and upsert from the stage."""
    table = _table(model)
    name = _stage_name(model)
    stage = Table(name, MetaData(), *(Column(c, table.columns[c].type) for c in columns))
    statement = postgresql.insert(table).from_select(list(columns), select(stage))
    updated = [c for c in columns if c not in key and c not in keep]
    upsert = statement.on_conflict_do_update(
        index_elements=list(key), set_={c: statement.excluded[c] for c in updated}
    )
    create = f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} (LIKE {table.name}) ON COMMIT DROP"
    return create, f"TRUNCATE {name}", str(upsert.compile(dialect=dialect))


def _copy(
    connection: Connection, table_name: str, names: tuple[str, ...], values: list[Any]
) -> None:
    """PostgreSQL: COPY ``values`` (tuples in ``names``' order) into ``table_name``."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY {table_name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in values:
            copy.write_row(row)


def _table(model: Any) -> Table:
    return model if isinstance(model, Table) else model.__table__


def _execute(connection: Connection, prepared: _Prepared, rows: Sequence[dict[str, Any]]) -> None:
    values = _values(prepared, rows)
    if connection.dialect.name == "mysql" and len(values) >= COPY_MIN_ROWS:
        mysql_values.execute_values(connection, prepared.sql, prepared.names, values)
        return
    if not prepared.positional:
        names = prepared.names
        values = [dict(zip(names, row, strict=True)) for row in values]
    connection.exec_driver_sql(prepared.sql, values)


def _values(prepared: _Prepared, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """The rows as driver values: tuples in ``prepared.names``' order."""
    # Column by column, so the loops over rows run in C (itemgetter, zip, map).
    if len(prepared.names) == 1:  # itemgetter of one name gives the value, not a tuple
        (name,) = prepared.names
        values: list[Any] = [(row[name],) for row in rows]
    else:
        values = list(map(itemgetter(*prepared.names), rows))
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
    return values


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
        raise ValueError(f"{_table(model).name}: statement binds {names}, rows have {columns}")
    types = [_table(model).columns[name].type for name in names]
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
    if isinstance(column_type, (Boolean, Integer, String, LargeBinary)):  # Text is a String
        return None  # every driver takes bool, int, str and bytes as they are
    processor: Converter | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _iso_date(value: Any) -> Any:
    return None if value is None else value.isoformat()
