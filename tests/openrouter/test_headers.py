"""The client's headers: ``Date``, ``Retry-After`` and ``X-RateLimit-*``."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from etl.openrouter.headers import rate_limit_quota, retry_after_seconds, server_time
from etl.openrouter.pacing import Quota

LOCAL = datetime(2030, 1, 1, tzinfo=timezone.utc)


def response(**headers: str) -> httpx.Response:
    return httpx.Response(200, headers=headers)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 02 Nov 2026 10:00:00 GMT", datetime(2026, 11, 2, 10, tzinfo=timezone.utc)),
        ("Mon, 02 Nov 2026 11:00:00 +0100", datetime(2026, 11, 2, 10, tzinfo=timezone.utc)),
        ("Mon, 02 Nov 2026 10:00:00 -0000", datetime(2026, 11, 2, 10, tzinfo=timezone.utc)),
        ("yesterday", LOCAL),
        ("", LOCAL),
    ],
)
def test_server_time_reads_date_or_falls_back(date: str, expected: datetime) -> None:
    got = server_time(response(date=date), lambda: LOCAL)
    assert got == expected and got.tzinfo is timezone.utc


@pytest.mark.parametrize(
    ("value", "expected"), [("7", 7.0), ("0.25", 0.25), ("-3", 0.0), ("", None), ("soon", None)]
)
def test_retry_after_in_seconds(value: str, expected: float | None) -> None:
    assert retry_after_seconds(response(**{"retry-after": value})) == expected


def test_retry_after_as_a_date_is_measured_on_the_servers_clock() -> None:
    headers = {
        "date": "Mon, 02 Nov 2026 23:59:58 GMT",
        "retry-after": "Tue, 03 Nov 2026 00:00:00 GMT",
    }
    assert retry_after_seconds(response(**headers)) == 2.0


def test_retry_after_date_in_the_past_means_no_wait() -> None:
    headers = {
        "date": "Mon, 02 Nov 2026 10:00:00 GMT",
        "retry-after": "Mon, 02 Nov 2026 09:00:00 GMT",
    }
    assert retry_after_seconds(response(**headers)) == 0.0


# -- X-RateLimit-* -----------------------------------------------------------------------
EPOCH = 1_800_000_000.0  # the local clock, in Unix seconds


def quota_of(**headers: str) -> Quota | None:
    return rate_limit_quota(response(**headers), epoch_now=EPOCH)


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [
        ("1800000002500", 2.5),  # Unix milliseconds, as OpenRouter sends
        ("1800000003", 3.0),  # Unix seconds
        ("0.25", 0.25),  # seconds from now
        ("1799999990000", 0.0),  # already past: no wait
        ("soon", None),
    ],
)
def test_rate_limit_reset_in_each_form(reset: str, seconds: float | None) -> None:
    quota = quota_of(**{"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    assert quota is not None and quota.remaining == 0
    assert quota.reset_seconds == (pytest.approx(seconds) if seconds is not None else None)


def test_rate_limit_remaining_alone_and_absent() -> None:
    assert quota_of(**{"x-ratelimit-remaining": "7"}) == Quota(7, None)
    assert quota_of(**{"x-ratelimit-limit": "10"}) is None
    assert quota_of(**{"x-ratelimit-remaining": "lots"}) is None
    assert quota_of(**{"x-ratelimit-remaining": "-3"}) == Quota(0, None)
