"""The client's clock headers: ``Date`` and ``Retry-After``."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from etl.openrouter.headers import retry_after_seconds, server_time

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
