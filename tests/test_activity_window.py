"""Which activity days a run asks for: the server's clock decides, also when a UTC day
ends while the run fetches."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from etl.activity_sync import _Fetcher, days_to_fetch, window
from etl.openrouter.activity import ActivityReport
from etl.store.activity import NOTHING_STORED, StoredDays, lost_days

WS = "0df9e665-d932-5740-b2c7-b52af166bc11"


class FakeClient:
    """Answers every GET /activity with no items, served at ``served_at``."""

    def __init__(self, served_at: datetime) -> None:
        self.served_at = served_at
        self.stats = SimpleNamespace(requests=0)
        self.asked: list[date] = []

    def get_activity(self, day: date, **narrowed: Any) -> ActivityReport:
        self.asked.append(day)
        self.stats.requests += 1
        return ActivityReport(day, (), self.served_at)


def test_the_window_is_the_30_days_before_the_servers_today() -> None:
    days = window(date(2026, 11, 3))
    assert (days[0], days[-1], len(days)) == (date(2026, 10, 4), date(2026, 11, 2), 30)


def test_stored_days_are_not_asked_again_except_the_latest_ones() -> None:
    today = date(2026, 11, 3)
    stored = StoredDays(frozenset(window(today)[:-1]), frozenset())
    assert days_to_fetch(stored, today, 2) == window(today)[-2:]
    assert days_to_fetch(stored, today, 0) == window(today)[-1:]
    assert days_to_fetch(NOTHING_STORED, today, 2) == window(today)


def test_a_day_that_ends_while_the_run_fetches_moves_the_window_on() -> None:
    # The key listing said 23:59:59; the first activity answer comes after midnight.
    listed = datetime(2026, 11, 2, 23, 59, 59, tzinfo=timezone.utc)
    client = FakeClient(listed + timedelta(seconds=3))
    fetch = _Fetcher(client, listed)  # type: ignore[arg-type]
    reports = fetch.workspace_days({WS: NOTHING_STORED}, 2)
    new_window = window(date(2026, 11, 3))
    assert client.asked[0] == date(2026, 11, 1)  # the newest completed day at 23:59:59
    assert set(client.asked) == set(reports) == set(new_window)  # then the server's window
    assert date(2026, 10, 3) not in client.asked  # it left the window: the server refuses it
    assert fetch.today == date(2026, 11, 3) and len(client.asked) == 30


def test_a_local_clock_far_ahead_changes_nothing() -> None:
    # The server's Date is all that counts: the local clock is never read for the window.
    listed = datetime(2020, 1, 15, 9, 0, tzinfo=timezone.utc)
    client = FakeClient(listed)
    fetch = _Fetcher(client, listed)  # type: ignore[arg-type]
    fetch.workspace_days({WS: NOTHING_STORED}, 2)
    assert min(client.asked) == date(2019, 12, 16) and max(client.asked) == date(2020, 1, 14)


def test_days_lost_are_those_between_the_first_stored_and_the_window() -> None:
    first = date(2026, 9, 1)
    stored = StoredDays(frozenset({first, first + timedelta(days=1)}), frozenset())
    lost = lost_days(stored, date(2026, 9, 6))
    assert lost == [date(2026, 9, 3), date(2026, 9, 4), date(2026, 9, 5)]
    assert lost_days(NOTHING_STORED, date(2026, 9, 6)) == []
