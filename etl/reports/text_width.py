"""How many terminal columns text takes, for tables that stay aligned.

Key and workspace names hold CJK characters and emoji, which a terminal draws two
columns wide, and combining accents, which it draws on the previous character. The
standard library's Unicode tables are enough for that (``wcwidth`` would add a
dependency for the same two rules plus cases keyledger's tables never meet).
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"
# Nonspacing and enclosing marks, format characters (zero-width joiner, variation
# selectors' neighbours): drawn on or between their neighbours, no column of their own.
ZERO_WIDTH_CATEGORIES = frozenset({"Mn", "Me", "Cf"})


def char_width(char: str) -> int:
    """Columns one character takes: 2 for wide/fullwidth, 0 for marks, else 1."""
    if unicodedata.category(char) in ZERO_WIDTH_CATEGORIES:
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal."""
    return sum(char_width(c) for c in text)


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` columns (on the left when ``right``)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def truncate(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` columns, ending in '…' when cut."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += char_width(char)
        if used > width - 1:  # one column for the ellipsis
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS
