"""Exact daily spend, the BI views and key versions, on every backend."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, text

from models import ApiKey, ApiKeyVersion, Base, DailyKeySpend, WorkspaceDay
from tests.analytics_support import (
    Ledgered,
    at,
    check_daily_spend,
    make_world,
    spend_with_gaps,
    stored_spend,
    sync_at,
)

DAY = date(2026, 11, 3)  # the simulator starts on Monday 2026-11-02 09:00 UTC


def view_rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def as_date(value: Any) -> date:
    """Views give DATE values as strings on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@pytest.mark.parametrize("hour", [0, 2, 23])
def test_nightly_syncs_give_exact_daily_spend(engine: Engine, hour: int) -> None:
    ledger = make_world(keys=8)
    for n in range(5):
        sync_at(engine, ledger, at(DAY + timedelta(days=n), hour, 5 if hour == 0 else 50))
    assert check_daily_spend(engine, ledger) > 0
    assert any(v[0] for v in stored_spend(engine).values())  # some spend actually happened


def test_several_syncs_a_day_and_one_exactly_at_midnight(engine: Engine) -> None:
    ledger = make_world(keys=8)
    for moment in [
        at(DAY, 1),
        at(DAY, 13),
        at(DAY, 23, 59, 59),
        at(DAY + timedelta(days=1), 0),
        at(DAY + timedelta(days=1), 12),
        at(DAY + timedelta(days=2), 0, 0, 1),
    ]:
        sync_at(engine, ledger, moment)
    assert check_daily_spend(engine, ledger) > 0


def test_skipped_day_is_null_never_guessed(engine: Engine) -> None:
    ledger = make_world(keys=8)
    sync_at(engine, ledger, at(DAY, 2))
    sync_at(engine, ledger, at(DAY + timedelta(days=3), 2))  # two nights missed
    sync_at(engine, ledger, at(DAY + timedelta(days=4), 2))
    check_daily_spend(engine, ledger)
    stored = spend_with_gaps(engine)  # the missed days are in the gap view, not rows
    live = ledger.world.live_hashes(ledger.world.workspace_ids[0])
    for day in (DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)):
        for key_hash in live:
            if (key_hash, day) in stored or ledger.world.find_key(
                key_hash
            ).created_at.date() <= DAY:  # type: ignore[union-attr]
                assert stored.get((key_hash, day)) == (None, None), (key_hash, day)
    rows = view_rows(engine, "SELECT day, spend_usd FROM daily_workspace_spend ORDER BY day")
    by_day = {as_date(r.day): r.spend_usd for r in rows}
    assert by_day[DAY] is None and by_day[DAY + timedelta(days=2)] is None
    assert by_day[DAY + timedelta(days=3)] is not None  # observed, and so was the next day
    assert by_day[DAY + timedelta(days=4)] is None  # the next day is not observed yet


def test_workspace_spend_is_the_sum_of_its_keys(engine: Engine) -> None:
    ledger = make_world(keys=10, workspaces=2)
    for n in range(4):
        sync_at(engine, ledger, at(DAY + timedelta(days=n), 3))
    stored = stored_spend(engine)
    rows = view_rows(
        engine,
        "SELECT workspace_id, day, spend_usd, byok_spend_usd, active_keys, unknown_keys "
        "FROM daily_workspace_spend",
    )
    assert rows
    with engine.connect() as connection:
        owner = dict(connection.execute(select(ApiKey.hash, ApiKey.workspace_id)).all())
    for row in rows:
        day = as_date(row.day)
        keys = {h: v for (h, d), v in stored.items() if d == day and owner[h] == row.workspace_id}
        if day == DAY + timedelta(days=3):
            assert row.spend_usd is None  # the last day is not over
            continue
        expected = sum((v[0] for v in keys.values() if v[0] is not None), Decimal(0))
        assert abs(Decimal(str(row.spend_usd)) - expected) <= Decimal("1e-9")
        assert row.active_keys == sum(1 for v in keys.values() if v[0] or v[1])
        assert row.unknown_keys == sum(1 for v in keys.values() if v[0] is None)


def test_deleted_key_keeps_its_spend_history(engine: Engine) -> None:
    ledger = make_world(keys=6, active_fraction=3.0, deletes=0.0)
    sync_at(engine, ledger, at(DAY, 2))
    sync_at(engine, ledger, at(DAY + timedelta(days=1), 2))
    sync_at(engine, ledger, at(DAY + timedelta(days=2), 2))
    world = ledger.world
    spent = [h for (h, d) in stored_spend(engine) if d == DAY][:1]
    assert spent, "no key spent on the first full day"
    world.advance(timedelta(hours=5))
    world.delete_key(spent[0])
    sync_at(engine, ledger, at(DAY + timedelta(days=3), 2))
    stored = stored_spend(engine)
    assert stored[(spent[0], DAY)][0] is not None  # history stays
    assert stored[(spent[0], DAY + timedelta(days=2))] == (None, None)  # its last day: unknown
    check_daily_spend(engine, ledger)
    monthly = view_rows(
        engine, "SELECT spend_usd FROM monthly_key_spend WHERE key_hash = :h", h=spent[0]
    )
    assert len(monthly) == 1 and monthly[0].spend_usd is None  # the month has an unknown day
    workspace_day = view_rows(
        engine,
        "SELECT spend_usd, unknown_keys FROM daily_workspace_spend WHERE day = :d",
        d=DAY + timedelta(days=2),
    )
    # The workspace's day is still known: the deleted key is left out and counted.
    assert workspace_day[0].spend_usd is not None and workspace_day[0].unknown_keys == 1


def test_key_created_between_syncs_has_its_first_day_spend(engine: Engine) -> None:
    ledger = make_world(keys=2, creates=0.0, deletes=0.0)
    sync_at(engine, ledger, at(DAY, 2))
    world = ledger.world
    world.advance(timedelta(hours=3))
    new_key = world.create_key()
    world.spend(new_key, Decimal("0.123456789"))
    sync_at(engine, ledger, at(DAY + timedelta(days=1), 2))
    truth = world.daily_spend()[(new_key, DAY)][0]
    assert truth >= Decimal("0.123456789")
    assert stored_spend(engine)[(new_key, DAY)][0] == truth  # its start that day was 0
    check_daily_spend(engine, ledger)


def test_key_versions_are_validity_intervals(engine: Engine) -> None:
    ledger = make_world(keys=3, renames=0.0, relimits=0.0, disables=0.0, enables=0.0)
    sync_at(engine, ledger, at(DAY, 2))
    world = ledger.world
    key_hash = world.live_hashes(world.workspace_ids[0])[0]
    first_seen = world.now
    world.update_key(key_hash, name="renamed", limit=Decimal("12.5"), limit_reset="weekly")
    sync_at(engine, ledger, at(DAY + timedelta(days=1), 2))
    renamed_at = world.now
    world.spend(key_hash, Decimal("0.5"))  # spend alone is not a new version
    sync_at(engine, ledger, at(DAY + timedelta(days=2), 2))
    with engine.connect() as connection:
        versions = connection.execute(
            select(ApiKeyVersion)
            .where(ApiKeyVersion.key_hash == key_hash)
            .order_by(ApiKeyVersion.valid_from)
        ).all()
        at_noon = connection.execute(
            select(ApiKeyVersion.name, ApiKeyVersion.credit_limit).where(
                ApiKeyVersion.key_hash == key_hash,
                ApiKeyVersion.valid_from <= first_seen + timedelta(hours=10),
                (ApiKeyVersion.valid_to.is_(None))
                | (ApiKeyVersion.valid_to > first_seen + timedelta(hours=10)),
            )
        ).one()
    assert len(versions) == 2
    assert versions[0].valid_from == first_seen and versions[0].valid_to == renamed_at
    assert versions[1].name == "renamed" and versions[1].valid_to is None
    assert versions[1].credit_limit == Decimal("12.5")
    assert at_noon.name != "renamed"


def test_key_limit_status_lists_live_keys_with_burn_rate(engine: Engine) -> None:
    ledger = make_world(keys=5, deletes=0.0, relimits=0.0, active_fraction=0.0)
    world = ledger.world
    keys = world.live_hashes(world.workspace_ids[0])
    burner, idle, trickle = keys[0], keys[1], keys[2]
    world.update_key(burner, limit=Decimal(100), limit_reset=None, disabled=False)
    world.update_key(idle, limit=Decimal(50), limit_reset=None, disabled=False)
    world.update_key(trickle, limit=Decimal(10**12), limit_reset=None, disabled=False)
    for n in range(9):
        sync_at(engine, ledger, at(DAY + timedelta(days=n), 12))
        world.spend(burner, Decimal("2"))  # 2 USD every day
        world.spend(trickle, Decimal("0.000001"))  # would last ~1e18 days
    sync_at(engine, ledger, at(DAY + timedelta(days=9), 12))
    rows = {r.key_hash: r for r in view_rows(engine, "SELECT * FROM key_limit_status")}
    assert set(rows) == set(world.live_hashes(world.workspace_ids[0]))
    status = rows[burner]
    assert Decimal(str(status.spend_last_7_days)) == Decimal(14)
    assert Decimal(str(status.spend_last_30_days)) == Decimal(18)
    truth = {k["hash"]: k for k in world.truth_keys()}[burner]
    left = truth["limit_remaining"]
    days = math.ceil(left / 2)  # 2 USD a day from tomorrow: the first day that covers it
    assert as_date(status.projected_limit_date) == as_date(status.as_of_day) + timedelta(
        days=int(days)
    )
    assert abs(Decimal(str(status.utilization)) - (100 - left) / 100) < Decimal("1e-9")
    assert status.days_until_limit == days
    assert rows[idle].projected_limit_date is None  # no spend, never runs out
    assert rows[idle].days_until_limit is None
    # Beyond a century: never, rather than an integer or date overflow.
    assert rows[trickle].days_until_limit is None
    assert rows[trickle].projected_limit_date is None


def test_views_give_the_same_rows_as_a_python_recount(engine: Engine) -> None:
    ledger = make_world(keys=12, workspaces=2)
    for n in range(6):
        sync_at(engine, ledger, at(DAY + timedelta(days=n), 4))
    stored = stored_spend(engine)
    months: dict[tuple[str, date], Decimal] = {}
    for (key_hash, day), (spend, _byok) in stored.items():
        if spend is not None:
            month = day.replace(day=1)
            months[(key_hash, month)] = months.get((key_hash, month), Decimal(0)) + spend
    rows = view_rows(engine, "SELECT key_hash, month, spend_usd FROM monthly_key_spend")
    got = {(r.key_hash, as_date(r.month)): r.spend_usd for r in rows}
    for key, value in months.items():
        assert abs(Decimal(str(got[key])) - value) <= Decimal("1e-9")


# -- the property: any schedule, exact where both bounds were observed ------------------

SYNC_OFFSETS = st.lists(
    st.one_of(
        st.integers(min_value=60, max_value=60 * 60 * 50),  # 1 minute to 50 hours later
        st.just(-1),  # the next midnight exactly
    ),
    min_size=2,
    max_size=7,
)


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(offsets=SYNC_OFFSETS, seed=st.integers(min_value=0, max_value=2**16))
def test_daily_spend_matches_truth_for_any_sync_schedule(
    engine: Engine, offsets: list[int], seed: int
) -> None:
    reset(engine)
    ledger: Ledgered = make_world(keys=5, seed=seed, active_fraction=1.5, creates=0.3, deletes=0.2)
    moment = ledger.world.now
    for offset in offsets:
        if offset == -1:
            moment = datetime.combine(
                moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc
            )
        else:
            moment = moment + timedelta(seconds=offset)
        sync_at(engine, ledger, moment)
    check_daily_spend(engine, ledger)
    with engine.connect() as connection:
        observed = connection.scalar(
            select(WorkspaceDay.day).where(WorkspaceDay.observed.is_(True)).limit(1)
        )
        spend_rows = connection.scalar(select(DailyKeySpend.key_hash).limit(1))
    assert observed is not None
    del spend_rows


def test_weekly_spend_starts_on_monday(engine: Engine) -> None:
    ledger = make_world(keys=6)
    for n in range(9):  # Tuesday 2026-11-03 to Wednesday 2026-11-11
        sync_at(engine, ledger, at(DAY + timedelta(days=n), 2))
    daily = view_rows(engine, "SELECT day, spend_usd FROM daily_workspace_spend")
    weekly = view_rows(
        engine, "SELECT week_start, spend_usd, unknown_days FROM weekly_workspace_spend"
    )
    starts = {as_date(r.week_start) for r in weekly}
    assert starts == {date(2026, 11, 2), date(2026, 11, 9)}  # Mondays
    second = next(r for r in weekly if as_date(r.week_start) == date(2026, 11, 9))
    assert second.spend_usd is None and second.unknown_days == 1  # Wednesday is not over
    first = next(r for r in weekly if as_date(r.week_start) == date(2026, 11, 2))
    days = [Decimal(str(r.spend_usd)) for r in daily if as_date(r.day) < date(2026, 11, 9)]
    assert first.unknown_days == 0
    assert abs(Decimal(str(first.spend_usd)) - sum(days, Decimal(0))) <= Decimal("1e-9")
