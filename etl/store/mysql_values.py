"""MariaDB/MySQL: a batch of rows written as one INSERT of literal VALUES, rendered here.

PyMySQL's executemany sends the same multi-row INSERT, but renders it value by value in
Python (``Cursor._mogrify``: a dict per row, ``escape_item`` dispatch, ``translate`` of
every string), and that was about half of a first sync's time into MariaDB (py-spy, 10
workspaces x 10,000 keys). Here each value becomes its literal with one type lookup, and
a string is escaped only when it holds a character that needs it: the payload text
(``raw_json``), the longest value of a row, is JSON full of double quotes, which need no
escape inside single quotes, and rarely anything else.

Where a string does need escaping, the connection's own ``escape`` does it, so
the server's ``NO_BACKSLASH_ESCAPES`` mode is honoured as PyMySQL honours it. Numbers,
times and bytes are written as PyMySQL writes them (``pymysql.converters``: Decimal in
fixed notation, floats with an exponent, naive datetimes with microseconds only when
there are any), bytes as a hex literal. ``tests/store/test_bulk.py`` checks that both
paths store identical values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

# What PyMySQL's escape_string escapes, but the double quote (a literal in '...').
_NEEDS_ESCAPE = re.compile(r"[\x00\n\r\x1a\\']")
# The VALUES row of a compiled pyformat INSERT: INSERT ... VALUES (%(a)s, ...) [ON ...].
_INSERT = re.compile(r"(.+?\bVALUES\s*)(\((?:\s*%\(\w+\)s\s*,?)+\))(.*)\Z", re.S | re.I)
_BIND = re.compile(r"%\((\w+)\)s")
# PyMySQL splits an executemany statement at about this size (Cursor.max_stmt_length).
MAX_STATEMENT_CHARS = 1_024_000


@lru_cache(maxsize=64)
def _template(sql: str) -> tuple[str, tuple[str, ...], str]:
    """(head up to VALUES, bind names in the row's order, tail) of a compiled INSERT."""
    match = _INSERT.match(sql)
    if match is None:
        raise ValueError(f"not an INSERT ... VALUES statement: {sql[:80]}")
    head, row, tail = match.groups()
    return head, tuple(_BIND.findall(row)), tail


def execute_values(
    connection: Connection, sql: str, names: Sequence[str], values: Sequence[Sequence[Any]]
) -> None:
    """Run the compiled pyformat INSERT ``sql`` for every row of ``values`` (driver values
    in ``names``' order), as literal multi-row INSERTs of at most MAX_STATEMENT_CHARS."""
    head, order, tail = _template(sql)
    positions = [names.index(name) for name in order]
    literal = _literal_for(connection.connection.driver_connection)
    rows = ["(" + ",".join([literal(row[i]) for i in positions]) + ")" for row in values]
    for chunk in _chunks(rows, MAX_STATEMENT_CHARS - len(head) - len(tail)):
        # exec_driver_sql hands the text to PyMySQL as a format string: double every %.
        connection.exec_driver_sql(head + ",".join(chunk).replace("%", "%%") + tail)


def _chunks(rows: list[str], budget: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for row in rows:
        if chunk and size + len(row) + 1 > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += len(row) + 1
    if chunk:
        yield chunk


def _literal_for(driver_connection: Any) -> Callable[[Any], str]:
    """The SQL literal of a driver value, escaped for ``driver_connection``'s mode."""
    # PyMySQL's Connection.escape: the quoted literal, as its cursors render it.
    escape: Callable[[str], str] = driver_connection.escape

    def literal(value: Any) -> str:
        kind = type(value)
        if kind is str:
            return escape(value) if _NEEDS_ESCAPE.search(value) else "'" + value + "'"
        if value is None:
            return "NULL"
        if kind is bool:
            return "1" if value else "0"
        if kind is int:
            return str(value)
        if kind is Decimal:
            return format(value, "f")
        if kind is datetime:
            if value.tzinfo is not None:  # the converters hand over naive UTC only
                raise TypeError(f"an aware datetime reached the driver: {value!r}")
            return f"'{value.isoformat(' ')}'"
        if kind is date:
            return f"'{value.isoformat()}'"
        if kind is bytes:
            return f"X'{value.hex()}'"
        if kind is float:
            text = repr(value)
            if text in ("inf", "-inf", "nan"):
                raise ValueError(f"{text} cannot be stored")
            return text if "e" in text else text + "e0"
        raise TypeError(f"no SQL literal for a {kind.__name__}")

    return literal
