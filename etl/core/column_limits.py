"""What the ledger's text and money columns hold, declared for the parser and the models.

A value may fit one backend and not another: a 10,000-character hash is stored by
SQLite (which ignores VARCHAR lengths) and refused by PostgreSQL and MariaDB with a
raw error naming no key; a 70,000-byte name fits PostgreSQL's TEXT, not MariaDB's. So
the parser refuses, before any SQL and alike on every backend, whatever the narrowest
backend cannot hold, naming the key, the field and the limit. The models build their
column types from the same numbers (models.types, models.keys), and a test compiles
those types for PostgreSQL and MariaDB and checks that they hold exactly this much
(tests/store/test_column_limits.py), so a declaration and a column cannot drift apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal

# Money is NUMERIC(65, 30): MariaDB's widest DECIMAL (PostgreSQL's NUMERIC holds it
# too). 35 digits before the point and 30 after are far beyond any USD amount the API
# can send as a double; amounts that do not fit would be rounded or refused by the
# server, so the parser refuses them, by name.
MONEY_INTEGER_DIGITS = 35
MONEY_FRACTION_DIGITS = 30
# MariaDB's TEXT holds this many bytes (of utf8mb4, whatever the characters);
# PostgreSQL's TEXT takes up to 1 GB, beyond any MariaDB limit that matters here.
TEXT_UTF8_BYTES = 2**16 - 1
UTF8_MAX_BYTES = 4  # per code point: a string of n characters is at most 4n bytes
# A plain (no exponent) amount printed in at most this many characters has at most
# 30 digits after the point and fewer than 35 before it: it fits without counting.
_SHORT_AMOUNT = MONEY_FRACTION_DIGITS + 2


@dataclass(frozen=True, slots=True)
class TextLimit:
    """How much text a key field's columns hold on every backend (None: no bound)."""

    column: str  # the column named in messages, e.g. "api_keys.hash"
    characters: int | None = None  # VARCHAR(n): PostgreSQL and MariaDB count characters
    utf8_bytes: int | None = None  # MariaDB's TEXT types count bytes
    # A string of at most this many characters fits, whatever its characters.
    safe_length: int = field(init=False)

    def __post_init__(self) -> None:
        bounds = [sys.maxsize]
        if self.characters is not None:
            bounds.append(self.characters)
        if self.utf8_bytes is not None:
            bounds.append(self.utf8_bytes // UTF8_MAX_BYTES)
        object.__setattr__(self, "safe_length", min(bounds))

    def problem(self, value: str) -> str | None:
        """Why some backend cannot store ``value`` in this field; None when all can."""
        if "\x00" in value:  # PostgreSQL refuses NUL in any text; the others keep it
            return "contains a NUL character (\\u0000), which PostgreSQL cannot store"
        if len(value) <= self.safe_length:
            return None
        if self.characters is not None and len(value) > self.characters:
            return (
                f"is {len(value):,} characters long; {self.column} holds at "
                f"most {self.characters:,}"
            )
        size = len(value.encode("utf-8", "surrogatepass"))
        if self.utf8_bytes is not None and size > self.utf8_bytes:
            return (
                f"is {size:,} bytes long in UTF-8; {self.column} holds at most "
                f"{self.utf8_bytes:,} bytes"
            )
        return None


def fits_money_column(amount: Decimal) -> bool:
    """True when ``amount`` is finite and fits the money columns without rounding."""
    if not amount.is_finite():
        return False
    if amount.is_zero():
        return True
    text = str(amount)
    if "E" not in text:  # plain digits, the usual case: count them in the text (fast)
        if len(text) <= _SHORT_AMOUNT:
            return True
        whole_text, _, fraction_text = text.lstrip("-").partition(".")
        return (
            len(fraction_text.rstrip("0")) <= MONEY_FRACTION_DIGITS
            and len(whole_text) <= MONEY_INTEGER_DIGITS
        )
    # Not normalize(): it rounds to the context's 28 digits, hiding the excess.
    _sign, digit_tuple, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    digits = list(digit_tuple)
    while exponent < 0 and digits and digits[-1] == 0:  # trailing zeros carry nothing
        digits.pop()
        exponent += 1
    fraction = max(0, -exponent)
    integer = max(0, len(digits) + exponent)
    return fraction <= MONEY_FRACTION_DIGITS and integer <= MONEY_INTEGER_DIGITS
