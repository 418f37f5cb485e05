"""Cells of the report's renderings: exact money for CSV and JSON, rounded money and
marks for people, and the aligned table the terminal report is made of."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from etl.reports.text_width import display_width, pad
from models.types import without_padding

ABSENT = "—"  # a table cell whose value is unknown (or, for a projection, not made)
AT_LEAST = "≥ "  # before a total of the known part only
KEY_NAME_WIDTH = 32  # terminal columns
TABLE_QUANTUM = Decimal("0.0001")  # the table shows money to 1/100 of a cent


def money(amount: Decimal | None) -> str | None:
    """An exact amount as plain decimal digits (never exponent notation)."""
    return None if amount is None else format(without_padding(amount), "f")


def rounded(amount: Decimal | None) -> str:
    """An amount for people: four decimal places, '—' when unknown or absent."""
    return ABSENT if amount is None else str(amount.quantize(TABLE_QUANTUM, ROUND_HALF_UP))


def bound(amount: Decimal | None, *, lower_bound: bool) -> str:
    """A rounded total, marked '≥' when it is only the known part of the true total."""
    text = rounded(amount)
    return AT_LEAST + text if lower_bound and amount is not None else text


def plain(value: Any) -> Any:
    """A field as JSON/CSV wants it: exact money strings, ISO dates, the rest as is."""
    if isinstance(value, Decimal):
        return money(value)
    return value.isoformat() if isinstance(value, date) else value


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(display_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            pad(cell, width, right=i in right)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
