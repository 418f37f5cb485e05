"""The local clock, in one place: ledger times and the fallback when a response has
no ``Date`` (data times come from the server, DESIGN.md "Data semantics")."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """The local clock, aware UTC."""
    return datetime.now(timezone.utc)
