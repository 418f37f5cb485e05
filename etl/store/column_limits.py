"""What the ledger's key columns can hold, read off the models.

A value may fit one backend and not another: a 10,000-character hash is stored by
SQLite (which ignores VARCHAR lengths) and refused by PostgreSQL and MariaDB with a
raw error naming no key; a 70,000-byte name fits PostgreSQL's TEXT, not MariaDB's. So
the parser refuses, before any SQL and alike on every backend, whatever the narrowest
backend cannot hold, naming the key, the field and the limit. The limits come from
the column types, compiled for each server dialect, so they move with the schema:
there is no second copy of a length to forget.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace

from sqlalchemy import Column, Table
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect

import models

# SQLite stores any length whatever VARCHAR(n) says: only these two bound the text.
_DIALECTS: tuple[Dialect, ...] = (PGDialect(), MySQLDialect())  # type: ignore[no-untyped-call]
# MariaDB's TEXT family holds this many bytes (of utf8mb4, whatever the characters);
# PostgreSQL's TEXT takes up to 1 GB, beyond any MariaDB limit that matters here.
_TEXT_BYTES = {
    "TINYTEXT": 2**8 - 1,
    "TEXT": 2**16 - 1,
    "MEDIUMTEXT": 2**24 - 1,
    "LONGTEXT": 2**32 - 1,
}
_VARCHAR = re.compile(r"(?:VARCHAR|CHAR)\((\d+)\)")
_NUMERIC = re.compile(r"(?:NUMERIC|DECIMAL)\((\d+), (\d+)\)")
UTF8_MAX_BYTES = 4  # per code point: a string of n characters is at most 4n bytes

# The API's name for a value, where the columns holding it are named otherwise.
_COLUMN_NAMES = {"hash": ("hash", "key_hash"), "limit": ("credit_limit",)}


@dataclass(frozen=True, slots=True)
class TextLimit:
    """How much text a key field's columns hold on every backend (None: no bound)."""

    characters: int | None = None  # VARCHAR(n): PostgreSQL and MariaDB count characters
    characters_column: str = ""  # the narrowest such column, to name ("api_keys.hash")
    utf8_bytes: int | None = None  # MariaDB's TEXT types count bytes
    bytes_column: str = ""

    @property
    def safe_length(self) -> int:
        """A string of at most this many characters fits, whatever its characters."""
        bounds = [sys.maxsize]
        if self.characters is not None:
            bounds.append(self.characters)
        if self.utf8_bytes is not None:
            bounds.append(self.utf8_bytes // UTF8_MAX_BYTES)
        return min(bounds)

    def problem(self, value: str) -> str | None:
        """Why some backend cannot store ``value`` in this field; None when all can."""
        if "\x00" in value:  # PostgreSQL refuses NUL in any text; the others keep it
            return "contains a NUL character (\\u0000), which PostgreSQL cannot store"
        if len(value) <= self.safe_length:
            return None
        if self.characters is not None and len(value) > self.characters:
            return (
                f"is {len(value):,} characters long; {self.characters_column} holds at "
                f"most {self.characters:,}"
            )
        size = len(value.encode("utf-8", "surrogatepass"))
        if self.utf8_bytes is not None and size > self.utf8_bytes:
            return (
                f"is {size:,} bytes long in UTF-8; {self.bytes_column} holds at most "
                f"{self.utf8_bytes:,} bytes"
            )
        return None


@dataclass(frozen=True, slots=True)
class MoneyLimit:
    """The digits every money column keeps exactly (the narrowest NUMERIC(p, s))."""

    integer_digits: int
    fraction_digits: int


def key_columns(field: str) -> list[Column[object]]:
    """Every column of a key table (one with a ``hash`` or ``key_hash``) that holds the
    API field ``field``."""
    names = _COLUMN_NAMES.get(field, (field,))
    return [
        table.c[name]
        for table in models.Base.metadata.sorted_tables
        if _holds_keys(table)
        for name in names
        if name in table.c
    ]


def text_limit(field: str) -> TextLimit:
    """The text limit of API field ``field``: the narrowest of its columns."""
    limit = TextLimit()
    for column in _columns_of(field):
        where = f"{column.table.name}.{column.name}"
        for dialect in _DIALECTS:
            ddl = column.type.compile(dialect=dialect)
            if match := _VARCHAR.fullmatch(ddl):
                if limit.characters is None or int(match[1]) < limit.characters:
                    limit = replace(limit, characters=int(match[1]), characters_column=where)
            elif ddl in _TEXT_BYTES:
                size = _TEXT_BYTES[ddl] if dialect.name == "mysql" else None
                if size is not None and (limit.utf8_bytes is None or size < limit.utf8_bytes):
                    limit = replace(limit, utf8_bytes=size, bytes_column=where)
            else:
                raise TypeError(f"{where} is {ddl} on {dialect.name}: not a text type")
    return limit


def money_limit(fields: tuple[str, ...]) -> MoneyLimit:
    """The digits all the columns of the money ``fields`` keep exactly."""
    integer, fraction = sys.maxsize, sys.maxsize
    for field in fields:
        for column in _columns_of(field):
            for dialect in _DIALECTS:
                ddl = column.type.compile(dialect=dialect)
                match = _NUMERIC.fullmatch(ddl)
                if match is None:
                    where = f"{column.table.name}.{column.name}"
                    raise TypeError(f"{where} is {ddl} on {dialect.name}: not NUMERIC(p, s)")
                precision, scale = int(match[1]), int(match[2])
                integer = min(integer, precision - scale)
                fraction = min(fraction, scale)
    return MoneyLimit(integer, fraction)


def _columns_of(field: str) -> list[Column[object]]:
    columns = key_columns(field)
    if not columns:
        raise LookupError(f"no key table has a column for the API field {field!r}")
    return columns


def _holds_keys(table: Table) -> bool:
    return "hash" in table.c or "key_hash" in table.c
