"""The daily-spend rules of etl.store.daily_spend, as pure functions (no database)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from etl.store.daily_spend import deleted_key_rows, spend_row, utc_day

UTC = timezone.utc
TODAY = date(2026, 11, 3)
YESTERDAY = TODAY - timedelta(days=1)
NOW = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
LONG_AGO = datetime(2026, 10, 1, tzinfo=UTC)


def state(usage: str, daily: str, *, snapshot_at: datetime | None = None) -> dict[str, Any]:
    """A key's values (a row being written, or what is stored with its latest snapshot)."""
    return {
        "hash": "k",
        "workspace_id": "w",
        "usage": Decimal(usage),
        "usage_daily": Decimal(daily),
        "byok_usage": Decimal(0),
        "byok_usage_daily": Decimal(0),
        "snapshot_at": snapshot_at,
    }


def test_yesterdays_spend_is_the_difference_of_two_day_starts() -> None:
    before = state("25", "1", snapshot_at=datetime(2026, 11, 2, 8, tzinfo=UTC))  # start 24
    row = spend_row(before, state("30", "2"), NOW, LONG_AGO, frozenset())  # start 28
    assert row == {
        "key_hash": "k",
        "day": YESTERDAY,
        "workspace_id": "w",
        "spend_usd": Decimal(4),
        "byok_spend_usd": Decimal(0),
    }


def test_an_older_snapshot_counts_when_a_sync_observed_yesterday() -> None:
    before = state("25", "1", snapshot_at=LONG_AGO)
    row = spend_row(before, state("30", "2"), NOW, LONG_AGO, {YESTERDAY})
    assert row is not None and row["spend_usd"] == Decimal(4)


def test_yesterday_unobserved_makes_its_spend_unknown() -> None:
    before = state("25", "1", snapshot_at=LONG_AGO)
    row = spend_row(before, state("30", "2"), NOW, LONG_AGO, frozenset())
    assert row is not None and (row["day"], row["spend_usd"]) == (YESTERDAY, None)


def test_a_key_created_yesterday_started_it_at_zero() -> None:
    created = datetime(2026, 11, 2, 12, tzinfo=UTC)
    row = spend_row(None, state("3", "1"), NOW, created, frozenset())
    assert row is not None and row["spend_usd"] == Decimal(2)


def test_nothing_to_write() -> None:
    today_earlier = state("25", "1", snapshot_at=NOW - timedelta(hours=1))
    assert spend_row(today_earlier, state("30", "2"), NOW, LONG_AGO, frozenset()) is None
    assert spend_row(None, state("3", "1"), NOW, NOW - timedelta(hours=2), frozenset()) is None
    assert spend_row(None, state("30", "2"), NOW, LONG_AGO, frozenset()) is None  # first sight
    unchanged = state("30", "2", snapshot_at=datetime(2026, 11, 2, tzinfo=UTC))
    assert spend_row(unchanged, state("31", "3"), NOW, LONG_AGO, frozenset()) is None  # 0 spent


def test_a_deleted_key_leaves_its_last_seen_day_unknown() -> None:
    rows = deleted_key_rows(["k"], "w", NOW, {YESTERDAY - timedelta(days=1), YESTERDAY})
    assert [(r["key_hash"], r["day"], r["spend_usd"]) for r in rows] == [("k", YESTERDAY, None)]
    assert deleted_key_rows(["k"], "w", NOW, {TODAY - timedelta(days=2)}) == []  # a gap since


def test_days_are_utc_days() -> None:
    late_in_new_york = datetime(2026, 11, 2, 21, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_day(late_in_new_york) == TODAY
