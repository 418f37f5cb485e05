"""The two response headers the client reads the clock from: ``Date`` and ``Retry-After``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from etl.core.clock import utcnow


def server_time(response: httpx.Response, fallback: Callable[[], datetime]) -> datetime:
    """The server's clock from the ``Date`` header (aware UTC), else ``fallback()``."""
    value = response.headers.get("date")
    if value:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:  # "-0000" means UTC with an unknown source zone
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed.astimezone(timezone.utc)
    return fallback()


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    # Measured against the server's own clock, so client clock skew does not matter.
    reference = server_time(response, utcnow)
    return max(0.0, (when - reference).total_seconds())
