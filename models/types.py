"""Column types that mean the same on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import REAL, DateTime, Dialect, Numeric
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

from etl.core.column_limits import MONEY_FRACTION_DIGITS, MONEY_INTEGER_DIGITS

# NUMERIC(65, 30), from the digits declared in etl.core.column_limits (where the
# parser reads them to refuse amounts that would not fit).
MONEY_PRECISION = MONEY_INTEGER_DIGITS + MONEY_FRACTION_DIGITS
MONEY_SCALE = MONEY_FRACTION_DIGITS


MONEY_CONTEXT_DIGITS = 28  # decimal's default precision


def without_padding(amount: Decimal) -> Decimal:
    """``amount`` without the trailing zeros NUMERIC(65,30) pads it with, exactly.

    (``Decimal.normalize`` and ``quantize`` round to the context's 28 digits.)
    """
    sign, digit_tuple, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        return amount  # NaN or infinity: never stored, left as is
    if amount.is_zero():
        return Decimal(0)
    if exponent >= 0 or digit_tuple[-1] != 0:
        return amount  # no padding to drop
    if len(digit_tuple) <= MONEY_CONTEXT_DIGITS:  # normalize() is exact at this size
        normal = amount.normalize()
        return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal  # type: ignore[operator]
    digits = list(digit_tuple)
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    return Decimal((sign, tuple(digits), exponent))


class Money(TypeDecorator[Decimal]):
    """A USD amount: exact NUMERIC/DECIMAL, or REAL (a double) on SQLite.

    SQLite has no decimal type. The API's money fields are doubles (``format: double``)
    printed in shortest round-trip form, so a REAL holds every value it sends without
    losing a digit, and ordinary SQL (ORDER BY, <, SUM, AVG) is numeric with no casts;
    TEXT, the first choice, sorted 9.97 above 32.71. A REAL is read back as the Decimal
    of its shortest repr: the digits the API printed. Amounts keyledger derives are
    exact in Python and stored there as their nearest double.
    """

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(REAL())
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return money_double(value) if dialect.name == "sqlite" else value

    def driver_converter(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """``process_bind_param`` as one function, for etl.store.bulk (None: as is)."""
        return money_double if dialect.name == "sqlite" else None

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            return decimal_of_double(value)
        amount = value if isinstance(value, Decimal) else Decimal(value)
        return without_padding(amount)


def money_as_stored(amount: Decimal | None, dialect: Dialect) -> Decimal | None:
    """``amount`` as a money column on ``dialect`` gives it back: itself, or on SQLite
    the Decimal of its nearest double (the same but for amounts of more than 17
    significant digits, which the API, sending doubles, does not send)."""
    if amount is None or dialect.name != "sqlite":
        return amount
    double = float(amount)
    if Decimal(repr(double)) == amount:
        # The usual case (the API sends doubles): the same value, found in C. It was
        # a third of a first sync into SQLite through decimal_of_double's Python.
        return amount
    return decimal_of_double(double)


def money_double(value: Decimal | None) -> float | None:
    """The nearest double to ``value`` (correctly rounded), as SQLite stores money."""
    return None if value is None else float(value)


def decimal_of_double(value: float) -> Decimal:
    """The Decimal of the shortest repr of ``value``, with the digits NUMERIC gives:
    ``1e+20`` as 100000000000000000000, ``5.0`` as 5."""
    text = repr(value)
    if "e" not in text and not text.endswith(".0"):
        # The usual amount ("0.0140768076"): the shortest repr has no zeros to drop.
        return Decimal(text)
    amount = without_padding(Decimal(text))
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return Decimal(int(amount))  # exact at any size, unlike quantize
    return amount


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC instant, microseconds kept; always timezone-aware in Python.

    PostgreSQL stores TIMESTAMPTZ; MariaDB (DATETIME(6)) and SQLite have no zone, so
    they store naive UTC and the zone is put back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        # SQLAlchemy's DATETIME processor then writes SQLite's text.
        return _utc(value) if dialect.name == "postgresql" else _naive_utc(value)

    def driver_converter(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The value the driver gets, as one function for etl.store.bulk: what
        ``process_bind_param`` and then the dialect's DATETIME processor do."""
        return {"postgresql": _utc, "mysql": _naive_utc, "sqlite": _sqlite_text}[dialect.name]

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]
        return value.astimezone(timezone.utc)  # type: ignore[no-any-return]


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime given where a UTC instant is required")
    return value.astimezone(timezone.utc)


def _naive_utc(value: datetime | None) -> datetime | None:
    utc = _utc(value)
    return None if utc is None else utc.replace(tzinfo=None)


def _sqlite_text(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME text: "YYYY-MM-DD HH:MM:SS.ffffff", always 6 digits
    # (the first 26 characters of the UTC isoformat, before its "+00:00").
    utc = _utc(value)
    return None if utc is None else utc.isoformat(" ", "microseconds")[:26]
