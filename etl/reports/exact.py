"""Exact sums of money for the report: never rounded, without NUMERIC's padding."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, localcontext

from models.types import without_padding

EXACT_DIGITS = 200  # far above NUMERIC(65,30)'s 65: sums are never rounded


def exact_sum(amounts: Iterable[Decimal]) -> Decimal:
    """The exact sum of Decimal amounts, without trailing zeros."""
    with localcontext() as context:
        context.prec = EXACT_DIGITS
        return without_padding(sum(amounts, Decimal(0)))
