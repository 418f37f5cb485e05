"""Response headers the client reads: the clock (``Date``), and how long to hold back
(``Retry-After``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from etl.core.clock import utcnow
from etl.openrouter.pacing import Quota

# X-RateLimit-Reset comes in three forms; a number this large cannot be a wait in seconds.
_EPOCH_SECONDS_FROM = 1e9  # 2001-09-09: a Unix time in seconds (GitHub's form)
_EPOCH_MILLISECONDS_FROM = 1e11  # a Unix time in milliseconds (OpenRouter's form)


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


def rate_limit_quota(response: httpx.Response, *, epoch_now: float) -> Quota | None:
    """``X-RateLimit-Remaining`` and ``-Reset`` as a Quota; None when Remaining is absent.

    Reset is read in the form its size says: Unix milliseconds (what OpenRouter sends),
    Unix seconds, or else seconds from now; Unix times are measured against
    ``epoch_now``, the local clock, since ``Date`` counts only whole seconds.
    """
    remaining = _number(response.headers.get("x-ratelimit-remaining"))
    if remaining is None:
        return None
    reset = _number(response.headers.get("x-ratelimit-reset"))
    if reset is not None:
        if reset >= _EPOCH_MILLISECONDS_FROM:
            reset = reset / 1000 - epoch_now
        elif reset >= _EPOCH_SECONDS_FROM:
            reset = reset - epoch_now
        reset = max(0.0, reset)
    return Quota(max(0, int(remaining)), reset)


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None
