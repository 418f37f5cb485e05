"""One rule for a workspace day (and week) with some keys unknown, on every backend.

spend_usd is NULL when the workspace was not observed on the day and the next; otherwise
it is the sum of the keys whose spend is known, and `complete` says whether that is every
key (unknown_keys counts the others). Weeks follow the same rule over their days.

Three fresh keys spend 1, 2 and 4 USD at 12:00 every day; a sync runs at 12:00 just before.
Key c is deleted at 18:00 on Thursday 11-05 (its spend that day is unknown: a NULL row),
no sync runs on 11-18 and 11-19 (a gap: NULL rows on 11-17, gap key-days after), and the
last sync is on Monday 11-23 (a day not over).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from tests.analytics_support import QUIET, at, make_world, sync_at

FIRST, LAST = date(2026, 11, 3), date(2026, 11, 23)
GAP = {date(2026, 11, 18), date(2026, 11, 19)}
DELETED_ON = date(2026, 11, 5)


def day_of(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def build(engine: Engine) -> None:
    ledger = make_world(keys=0, **QUIET)
    world = ledger.world
    spend = {world.create_key(): Decimal(amount) for amount in ("1", "2", "4")}
    deleted = list(spend)[2]
    day = FIRST
    while day <= LAST:
        if day not in GAP:
            sync_at(engine, ledger, at(day, 12))
        else:
            world.advance(at(day, 12) - world.now)
        for key_hash, amount in spend.items():
            world.spend(key_hash, amount)
        if day == DELETED_ON:
            world.advance(timedelta(hours=6))
            world.delete_key(deleted)
            del spend[deleted]
        day += timedelta(days=1)


def expected_day(day: date) -> tuple[Decimal | None, int, bool]:
    """(spend_usd, unknown_keys, complete) worked out by hand."""
    if day < DELETED_ON:
        return Decimal(7), 0, True
    if day == DELETED_ON:
        return Decimal(3), 1, False  # a + b; c's last day is unknown
    if day == date(2026, 11, 17):
        return None, 2, False  # the next day was not observed: a NULL row per key
    if day in GAP:
        return None, 2, False  # inside the gap: the gap key-days
    if day == LAST:
        return None, 0, False  # not over yet
    return Decimal(3), 0, True


def test_daily_workspace_spend_sums_known_keys_and_says_when_complete(engine: Engine) -> None:
    build(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT day, spend_usd, unknown_keys, complete FROM daily_workspace_spend "
                "ORDER BY day"
            )
        ).all()
    got = {day_of(r.day): (money(r.spend_usd), int(r.unknown_keys), bool(r.complete)) for r in rows}
    days = [FIRST + timedelta(days=n) for n in range((LAST - FIRST).days + 1)]
    assert got == {day: expected_day(day) for day in days}


def test_weekly_workspace_spend_follows_the_same_rule(engine: Engine) -> None:
    build(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT week_start, spend_usd, unknown_days, unknown_key_days, complete "
                "FROM weekly_workspace_spend ORDER BY week_start"
            )
        ).all()
    got = {
        day_of(r.week_start): (
            money(r.spend_usd),
            int(r.unknown_days),
            int(r.unknown_key_days),
            bool(r.complete),
        )
        for r in rows
    }
    assert got == {
        # 11-03..11-08 (the ledger starts on Tuesday): 7 + 7 + 3 + 3 + 3 + 3, c left out.
        date(2026, 11, 2): (Decimal(26), 0, 1, False),
        date(2026, 11, 9): (Decimal(21), 0, 0, True),
        # 11-17 before the gap, 11-18 and 11-19 inside it: 3 unknown days, 2 keys each.
        date(2026, 11, 16): (None, 3, 6, False),
        date(2026, 11, 23): (None, 1, 0, False),
    }
