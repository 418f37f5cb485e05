"""money as REAL on SQLite

Revision ID: 0005
Revises: 0004

SQLite kept money as decimal TEXT, so ordinary SQL compared strings: ORDER BY usage
put 9.97 above 32.71 and `usage > 10` was true of 9.97. The API's money fields are
doubles printed in shortest round-trip form, so a REAL holds each of them without
losing a digit; this revision converts every money column to REAL in place, every row
and snapshot kept. Derived amounts (daily spend) become their nearest double. Each
value is converted in Python (correctly rounded): SQLite's own CAST of text to REAL is
not (3.40 reads 5.292858516599662 as 5.2928585165996616), which rules out alembic's
batch rebuild (see _retype_table). Views, indexes and triggers, keyledger's and any a
BI tool added, are kept. PostgreSQL and MariaDB keep exact NUMERIC: nothing changes
there.
Downgrading writes each REAL back as the decimal text of its shortest repr.
Create Date: 2026-12-01 09:50:00
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USAGE = tuple(
    f"{prefix}usage{period}"
    for prefix in ("", "byok_")
    for period in ("", "_daily", "_weekly", "_monthly")
)
# Every money column as of 0004 (models.types.Money), by table.
MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "api_keys": ("credit_limit", "limit_remaining", *_USAGE),
    "usage_snapshots": (*_USAGE, "credit_limit", "limit_remaining"),
    "api_key_versions": ("credit_limit",),
    "daily_key_spend": ("spend_usd", "byok_spend_usd"),
}
CHUNK = 10_000


def _to_real(value: Any) -> float | None:
    # float() of the text is correctly rounded: the nearest double, the API's digits.
    return None if value is None else float(Decimal(str(value)))


def _to_text(value: Any) -> str | None:
    # What 0004 wrote: plain decimal digits (never "1E-9"), here of the shortest repr.
    if value is None:
        return None
    return format(Decimal(repr(float(value))).normalize(), "f")


def upgrade() -> None:
    _retype_money("REAL", _to_real)


def downgrade() -> None:
    _retype_money("TEXT", _to_text)


def _retype_money(ddl: str, convert: Callable[[Any], Any]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # exact NUMERIC/DECIMAL on PostgreSQL and MariaDB, and their BI objects, stay
    # Views (keyledger's and any a BI tool added) need no care: SQLite keeps them as
    # SQL resolved when read, and each table is dropped and created again under its own
    # name (a rename, as alembic's batch rebuild does, would make SQLite re-check them).
    #
    # Rebuilding api_keys drops it while other tables' rows point at it, and a
    # transaction cannot switch foreign keys off: defer their checks to the commit,
    # by which time every row is back (_retype_table inserts them after the drop).
    bind.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    inspector = sa.inspect(bind)
    for table, money in MONEY_COLUMNS.items():
        declared = {c["name"]: c["type"] for c in inspector.get_columns(table)}
        columns = [c for c in money if str(declared[c].compile(bind.dialect)) != ddl]
        if columns:  # a database created after this change has REAL from 0001 on
            _retype_table(table, columns, ddl, convert)


def _retype_table(table: str, columns: list[str], ddl: str, convert: Callable[[Any], Any]) -> None:
    """Rebuild ``table`` with ``columns`` declared ``ddl``, each value converted in Python.

    Not alembic's batch rebuild: it copies through SQLite's CAST, which is not correctly
    rounded, and renames its copy into place, which leaves the foreign keys of the rows
    pointing at api_keys counted as broken (only inserting the rows again clears that).
    So: the converted rows go to a side table, the table is dropped and created again
    from its own CREATE statement with the new types, the rows come back, and the
    indexes and triggers (a BI tool's too) are created again from theirs.
    """
    bind = op.get_bind()
    (create,) = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).one()
    indexes = (
        bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = ?"
            " AND sql IS NOT NULL ORDER BY rowid",
            (table,),
        )
        .scalars()
        .all()
    )
    for column in columns:
        create, found = re.subn(
            rf'(?m)^(\s*"?{column}"?\s+)(?:TEXT|REAL)\b', rf"\g<1>{ddl}", create
        )
        if found != 1:
            raise RuntimeError(f"0005: no single declaration of {table}.{column} in {create}")
    side = f"_keyledger_0005_{table}"
    name = re.compile(rf'^CREATE TABLE\s+"?{table}"?')
    bind.exec_driver_sql(name.sub(f'CREATE TABLE "{side}"', create, count=1))
    names = [c["name"] for c in sa.inspect(bind).get_columns(table)]
    money = {names.index(c) for c in columns}
    listed = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    source = bind.exec_driver_sql(f'SELECT {listed} FROM "{table}"')
    while chunk := source.fetchmany(CHUNK):
        converted = [
            tuple(convert(v) if i in money else v for i, v in enumerate(row)) for row in chunk
        ]
        bind.exec_driver_sql(f'INSERT INTO "{side}" ({listed}) VALUES ({marks})', converted)  # type: ignore[arg-type]
    bind.exec_driver_sql(f'DROP TABLE "{table}"')
    bind.exec_driver_sql(create)
    bind.exec_driver_sql(f'INSERT INTO "{table}" ({listed}) SELECT {listed} FROM "{side}"')
    bind.exec_driver_sql(f'DROP TABLE "{side}"')
    for index in indexes:
        bind.exec_driver_sql(index)
