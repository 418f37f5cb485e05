"""The limits the parser enforces are what the compiled DDL of the servers holds.

etl.core.column_limits and etl.core.key_fields declare how much each key field's
columns hold; the models build their types from the same numbers. Here each column
that holds an API field (in any key table: one with a ``hash`` or ``key_hash``) is
compiled for PostgreSQL and MariaDB and read back, so a declaration and a column type
can never drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from sqlalchemy import Column, Table
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect

import models
from etl.core.column_limits import MONEY_FRACTION_DIGITS, MONEY_INTEGER_DIGITS, TEXT_UTF8_BYTES
from etl.core.key_fields import KEY_FIELDS, TEXT_LIMITS, Kind
from models import Workspace

# SQLite stores any length whatever VARCHAR(n) says: only these two bound the text.
DIALECTS: tuple[Dialect, ...] = (PGDialect(), MySQLDialect())  # type: ignore[no-untyped-call]
# MariaDB's TEXT family holds this many bytes (of utf8mb4, whatever the characters).
TEXT_BYTES = {
    "TINYTEXT": 2**8 - 1,
    "TEXT": 2**16 - 1,
    "MEDIUMTEXT": 2**24 - 1,
    "LONGTEXT": 2**32 - 1,
}
VARCHAR = re.compile(r"(?:VARCHAR|CHAR)\((\d+)\)")
NUMERIC = re.compile(r"(?:NUMERIC|DECIMAL)\((\d+), (\d+)\)")
# The API's name for a value, where the columns holding it are named otherwise.
COLUMN_NAMES = {"hash": ("hash", "key_hash"), "limit": ("credit_limit",)}


@dataclass(frozen=True)
class CompiledText:
    """The narrowest text any of the columns holds, as their DDL says."""

    characters: int | None = None
    characters_column: str = ""
    utf8_bytes: int | None = None
    bytes_column: str = ""


def key_columns(field: str) -> list[Column[object]]:
    """Every column of a key table that holds the API field ``field``."""
    names = COLUMN_NAMES.get(field, (field,))
    columns = [
        table.c[name]
        for table in models.Base.metadata.sorted_tables
        if holds_keys(table)
        for name in names
        if name in table.c
    ]
    if not columns:
        raise LookupError(f"no key table has a column for the API field {field!r}")
    return columns


def holds_keys(table: Table) -> bool:
    return "hash" in table.c or "key_hash" in table.c


def compiled_text(columns: list[Column[object]]) -> CompiledText:
    """What the columns hold once compiled for PostgreSQL and MariaDB."""
    limit = CompiledText()
    for column in columns:
        where = f"{column.table.name}.{column.name}"
        for dialect in DIALECTS:
            ddl = column.type.compile(dialect=dialect)
            if match := VARCHAR.fullmatch(ddl):
                if limit.characters is None or int(match[1]) < limit.characters:
                    limit = CompiledText(int(match[1]), where, limit.utf8_bytes, limit.bytes_column)
            elif ddl in TEXT_BYTES:
                size = TEXT_BYTES[ddl] if dialect.name == "mysql" else None
                if size is not None and (limit.utf8_bytes is None or size < limit.utf8_bytes):
                    limit = CompiledText(limit.characters, limit.characters_column, size, where)
            else:
                raise TypeError(f"{where} is {ddl} on {dialect.name}: not a text type")
    return limit


def compiled_money_digits(column: Column[object]) -> set[tuple[int, int]]:
    """(digits before the point, after it) of a money column on each server."""
    digits = set()
    for dialect in DIALECTS:
        ddl = column.type.compile(dialect=dialect)
        match = NUMERIC.fullmatch(ddl)
        assert match, f"{column.table.name}.{column.name} is {ddl} on {dialect.name}"
        precision, scale = int(match[1]), int(match[2])
        digits.add((precision - scale, scale))
    return digits


@pytest.mark.parametrize("name", [f.name for f in KEY_FIELDS if f.kind is Kind.TEXT])
def test_declared_text_limits_are_what_the_ddl_holds(name: str) -> None:
    declared = TEXT_LIMITS[name]
    compiled = compiled_text(key_columns(name))
    if declared.characters is not None:
        assert (compiled.characters, compiled.characters_column) == (
            declared.characters,
            declared.column,
        )
        assert compiled.utf8_bytes is None
    else:
        assert (compiled.utf8_bytes, compiled.bytes_column) == (
            declared.utf8_bytes,
            declared.column,
        )
        assert compiled.characters is None


def test_declared_money_digits_are_what_the_ddl_holds() -> None:
    money = [f.name for f in KEY_FIELDS if f.kind is Kind.MONEY]
    columns = [column for name in money for column in key_columns(name)]
    assert len(columns) > len(money)  # api_keys, usage_snapshots, api_key_versions
    for column in columns:
        assert compiled_money_digits(column) == {(MONEY_INTEGER_DIGITS, MONEY_FRACTION_DIGITS)}


def test_workspace_columns_hold_what_the_workspace_parser_admits() -> None:
    # parse_workspace_list checks a workspace's id as a key's workspace_id, its name
    # and slug as a key's name.
    table = Workspace.__table__
    assert compiled_text([table.c.id]).characters == TEXT_LIMITS["workspace_id"].characters
    for column in (table.c.name, table.c.slug):
        assert compiled_text([column]).utf8_bytes == TEXT_UTF8_BYTES


def test_a_field_no_table_holds_is_an_error() -> None:
    with pytest.raises(LookupError):
        key_columns("no_such_field")
