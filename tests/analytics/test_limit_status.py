"""key_limit_status: utilization and projections, hand-computed, on every backend.

One simulated workspace, keys created fresh (nothing spent before), synced at 12:00 every
day from Tuesday 2026-11-03 to Thursday 2026-11-12 (the as-of day) with a fixed spend
after each sync but the last. The 7 latest complete days are 11-05..11-11, so the burn
rate is exactly the daily amount. Each expectation is worked out in its comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from tests.analytics_support import QUIET, at, make_world, sync_at

FIRST = date(2026, 11, 3)
AS_OF = date(2026, 11, 12)  # a Thursday: next Monday 11-16, next month 12-01


@dataclass(frozen=True)
class Case:
    limit: str | None
    reset: str | None
    per_day: str  # spent on each of 11-03..11-11
    utilization: str | None  # expected, exact
    days: int | None  # expected days_until_limit (projected = AS_OF + days)
    resets_on: date | None = None
    today: str = "0"  # spent on the as-of day, before its sync
    disabled: bool = False
    expires_at: datetime | None = None


CASES = {
    # No reset: 9 used of 14.5, 5.5 left at 1 a day: 11-13 4.5 ... 11-18 reached.
    "no_reset": Case("14.5", None, "1", "9/14.5", 6),
    # Already at its limit: 0 days, today, whatever the rate.
    "no_reset_at_limit": Case("9", None, "1", "1", 0),
    # The key: daily limit 1, all of it left, 0.16 a day. 1/0.16 = 6.25 -> 7 days,
    # far past tomorrow's reset: never (it used to say 5-6 days with a NULL date).
    "daily_roomy": Case("1", "daily", "0.16", "0", None, date(2026, 11, 13)),
    # Nothing spent today but 0.25 a day against 0.1: reached tomorrow at the earliest,
    # when the limit has reset. Never "0.0% used, 0 days left".
    "daily_nothing_spent": Case("0.1", "daily", "0.25", "0", None, date(2026, 11, 13)),
    # Today's 0.5 used all of the daily 0.5: at its limit until tomorrow's reset.
    "daily_at_limit": Case("0.5", "daily", "0.25", "1", 0, date(2026, 11, 13), today="0.5"),
    # Week of 11-09: 3 used of 5.5, 2.5 left -> 3 days -> Sunday 11-15, before the reset.
    "weekly": Case("5.5", "weekly", "1", "3/5.5", 3, date(2026, 11, 16)),
    # 4 left -> 11-16, the day the week resets: never reached.
    "weekly_reset_first": Case("7", "weekly", "1", "3/7", None, date(2026, 11, 16)),
    # November: 9 used of 19.5, 10.5 left -> 11 days -> 11-23.
    "monthly": Case("19.5", "monthly", "1", "9/19.5", 11, date(2026, 12, 1)),
    # 19 left -> 12-01, the day the month resets: never reached.
    "monthly_reset_first": Case("28", "monthly", "1", "9/28", None, date(2026, 12, 1)),
    # 2.5 left would be 3 days, but the key expired this morning: it spends no more.
    "expired": Case(
        "11.5", None, "1", "9/11.5", None, expires_at=datetime(2026, 11, 12, 6, tzinfo=timezone.utc)
    ),
    # Would reach it on 11-18, expires on 11-17.
    "expires_first": Case(
        "14.5",
        None,
        "1",
        "9/14.5",
        None,
        expires_at=datetime(2026, 11, 17, 23, tzinfo=timezone.utc),
    ),
    # Expires after 11-18: the projection stands.
    "expires_later": Case(
        "14.5", None, "1", "9/14.5", 6, expires_at=datetime(2026, 11, 19, tzinfo=timezone.utc)
    ),
    # Disabled (today): cannot spend, so no projection; utilization still says 9/11.5.
    "disabled": Case("11.5", None, "1", "9/11.5", None, disabled=True),
    # No limit: nothing to use up or project.
    "no_limit": Case(None, None, "1", None, None),
    # A limit and no spend: 0% used, never reached (not "0 days").
    "idle": Case("10", None, "0", "0", None),
}


def fraction(expression: str) -> Decimal:
    top, _, bottom = expression.partition("/")
    return Decimal(top) / Decimal(bottom or "1")


def as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def build(engine: Engine) -> dict[str, Any]:
    ledger = make_world(keys=1, **QUIET)
    world = ledger.world
    hashes = {name: world.create_key() for name in CASES}
    for name, case in CASES.items():
        world.update_key(
            hashes[name],
            limit=None if case.limit is None else Decimal(case.limit),
            limit_reset=case.reset,
            include_byok_in_limit=False,
            disabled=False,
            expires_at=case.expires_at,
        )
    for n in range((AS_OF - FIRST).days):
        sync_at(engine, ledger, at(FIRST + timedelta(days=n), 12))
        for name, case in CASES.items():
            if Decimal(case.per_day):
                world.spend(hashes[name], Decimal(case.per_day))
    world.advance(at(AS_OF, 11) - world.now)
    for name, case in CASES.items():
        if Decimal(case.today):
            world.spend(hashes[name], Decimal(case.today))
        if case.disabled:
            world.update_key(hashes[name], disabled=True)
    sync_at(engine, ledger, at(AS_OF, 12))
    with engine.connect() as connection:
        rows = {r.key_hash: r for r in connection.execute(text("SELECT * FROM key_limit_status"))}
    return {name: rows[hashes[name]] for name in CASES}


def test_limit_status_matches_hand_computed_projections(engine: Engine) -> None:
    rows = build(engine)
    for name, case in CASES.items():
        row = rows[name]
        assert as_date(row.as_of_day) == AS_OF, name
        assert Decimal(str(row.spend_last_7_days)) == 7 * Decimal(case.per_day), name
        if case.utilization is None:
            assert row.utilization is None, name
        else:
            got = Decimal(str(row.utilization))
            assert abs(got - fraction(case.utilization)) < Decimal("1e-9"), (name, got)
        assert row.days_until_limit == case.days, (name, row.days_until_limit)
        expected_date = None if case.days is None else AS_OF + timedelta(days=case.days)
        assert as_date(row.projected_limit_date) == expected_date, (name, row)
        assert as_date(row.limit_resets_on) == case.resets_on, (name, row.limit_resets_on)


def test_limit_projection_never_contradicts_itself(engine: Engine) -> None:
    for name, row in build(engine).items():
        days, projected = row.days_until_limit, as_date(row.projected_limit_date)
        assert (days is None) == (projected is None), name
        if days is None:
            continue
        assert projected == as_date(row.as_of_day) + timedelta(days=days), name
        resets_on = as_date(row.limit_resets_on)
        assert resets_on is None or projected < resets_on, name  # reached before a reset
        # 0 days means at the limit now, never "nothing used and 0 days left".
        assert (days == 0) == (Decimal(str(row.limit_remaining)) == 0), name
        assert days > 0 or Decimal(str(row.utilization)) == 1, name
