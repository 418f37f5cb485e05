"""Spend by model and provider, and its reconciliation with the key ledger, against the
simulator's truth on every backend (views of migration 0010)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from etl.simulator.activity import ENDPOINT_IDS
from tests.activity_support import (
    Sums,
    day_of,
    mark_missing,
    model_of,
    provider_of,
    store_served_activity,
    stored_days,
    truth_by,
)
from tests.analytics_support import Ledgered, at, make_world, normalize, sync_at

FIRST = date(2026, 11, 24)  # the first sync; the world starts on 2026-11-02
NIGHTS = 11  # syncs on 11-24 .. 12-04 at 02:30: the ledger knows 11-24 .. 12-03
LAST = FIRST + timedelta(days=NIGHTS - 1)
LEDGER_DAYS = [FIRST + timedelta(days=n) for n in range(NIGHTS - 1)]
MEASURES = (
    "usage_usd",
    "byok_usage_inference_usd",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
)


@dataclass
class History:
    engine: Engine
    ledger: Ledgered
    fetched: set[date]  # the days whose activity the syncs stored, every workspace

    @property
    def exact(self) -> bool:
        """SQLite sums money as doubles: within 1e-9 USD there, exact elsewhere."""
        return self.engine.dialect.name != "sqlite"


def build(engine: Engine) -> History:
    """Eleven nights across a month boundary in two workspaces, no key deleted (so every
    ledger day is complete); each sync stores the activity of the days it has not yet
    (the first one the whole 30-day window) and re-fetches the latest two."""
    ledger = make_world(keys=6, workspaces=2, seed=31, deletes=0.0, active_fraction=0.7)
    for n in range(NIGHTS):
        sync_at(engine, ledger, at(FIRST + timedelta(days=n), 2, 30))
    days = stored_days(engine)
    assert set(days.values()) == {"fetched"}
    fetched = {d for _, d in days}
    assert len(fetched) == 30 + NIGHTS - 1
    for workspace_id in ledger.world.workspace_ids:
        assert {d for w, d in days if w == workspace_id} == fetched
    return History(engine, ledger, fetched)


@pytest.fixture
def history(engine: Engine) -> History:
    return build(engine)


def query(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(normalize(v) for v in row) for row in connection.execute(text(sql))]


def assert_money(got: Any, expected: Decimal, *, exact: bool) -> None:
    assert got is not None, expected
    if exact:
        assert got == expected
    else:
        assert abs(got - expected) <= Decimal("1e-9"), (got, expected)


def assert_sums(got: tuple[Any, ...], expected: Sums, *, exact: bool, where: object) -> None:
    assert_money(got[0], expected[0], exact=exact)
    assert_money(got[1], expected[1], exact=exact)
    assert tuple(got[2:]) == expected[2:], where  # counts are whole numbers everywhere


def by_key(rows: list[tuple[Any, ...]], width: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {}
    for row in rows:
        key = tuple(day_of(v) if i == 1 else v for i, v in enumerate(row[:width]))
        assert key not in out, key
        out[key] = row[width:]
    return out


def test_daily_model_spend_equals_the_truth(history: History) -> None:
    rows = query(
        history.engine,
        f"SELECT workspace_id, day, model, {', '.join(MEASURES)} FROM daily_model_spend",
    )
    got = by_key(rows, 3)
    truth = truth_by(history.ledger, lambda d, w, e: (w, d, model_of(e)), history.fetched)
    assert set(got) == set(truth)
    assert len({k[2] for k in got}) >= 4 and {k[1].month for k in got} == {10, 11, 12}
    for key, expected in truth.items():
        assert_sums(got[key], expected, exact=history.exact, where=key)
    # Two providers serve one model: per model is not per endpoint.
    assert len(got) < len(truth_by(history.ledger, lambda d, w, e: (w, d, e), history.fetched))


def test_daily_provider_spend_equals_the_truth(history: History) -> None:
    rows = query(
        history.engine,
        f"SELECT workspace_id, day, provider_name, {', '.join(MEASURES)} FROM daily_provider_spend",
    )
    got = by_key(rows, 3)
    truth = truth_by(history.ledger, lambda d, w, e: (w, d, provider_of(e)), history.fetched)
    assert set(got) == set(truth)
    for key, expected in truth.items():
        assert_sums(got[key], expected, exact=history.exact, where=key)


def test_monthly_model_spend_equals_the_truth_and_counts_stored_and_lost_days(
    history: History,
) -> None:
    world = history.ledger.world
    lost_workspace = world.workspace_ids[0]
    lost = min(history.fetched) - timedelta(days=1)  # before the first fetch: never fetched
    mark_missing(history.engine, lost_workspace, lost)
    rows = query(
        history.engine,
        f"SELECT workspace_id, month, model, {', '.join(MEASURES)}, active_days, "
        "fetched_days, missing_days FROM monthly_model_spend",
    )
    got = by_key(rows, 3)

    def month(d: date) -> date:
        return d.replace(day=1)

    truth = truth_by(history.ledger, lambda d, w, e: (w, month(d), model_of(e)), history.fetched)
    assert set(got) == set(truth)
    stored = defaultdict(int)
    for day in history.fetched:
        for workspace_id in world.workspace_ids:
            stored[(workspace_id, month(day))] += 1
    active = defaultdict(set)
    for d, w, e in world.activity_truth():
        if d in history.fetched:
            active[(w, month(d), model_of(e))].add(d)
    for key, expected in truth.items():
        workspace_id, first_of_month, _ = key
        assert_sums(got[key][:6], expected, exact=history.exact, where=key)
        missing = int(workspace_id == lost_workspace and first_of_month == month(lost))
        assert got[key][6:] == (len(active[key]), stored[key[:2]], missing), key


def reconciliation(engine: Engine) -> dict[tuple[str, date], dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM activity_reconciliation"))
        columns = list(result.keys())
        rows = {}
        for row in result:
            values = dict(zip(columns, (normalize(v) for v in row), strict=True))
            key = (values["workspace_id"], day_of(values["day"]))
            assert key not in rows, key
            rows[key] = values
    return rows


def test_reconciliation_agrees_exactly_in_the_simulator(history: History) -> None:
    world = history.ledger.world
    rows = reconciliation(history.engine)
    activity = truth_by(history.ledger, lambda d, w, e: (w, d), history.fetched)
    spend: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for (d, w, _), totals in world.activity_truth().items():
        spend[(w, d)] += totals.usage
    for workspace_id in world.workspace_ids:
        for day in LEDGER_DAYS:
            row = rows[(workspace_id, day)]
            assert row["activity_status"] == "fetched"
            assert row["agree"] == 1, row
            assert row["difference_usd"] == 0 and row["byok_difference_usd"] == 0, row
            assert row["ledger_complete"] == 1
            expected = activity.get((workspace_id, day), (Decimal(0), Decimal(0)))
            assert_money(row["activity_usd"], expected[0], exact=history.exact)
            assert_money(row["ledger_usd"], expected[0], exact=history.exact)
            assert_money(row["activity_byok_usd"], expected[1], exact=history.exact)
            assert_money(row["ledger_byok_usd"], expected[1], exact=history.exact)
            assert row["month"] == day.replace(day=1)
        assert sum(spend[(workspace_id, d)] for d in LEDGER_DAYS) > 0
        # Before the first key sync only activity is known; the latest day is not over.
        before = rows[(workspace_id, FIRST - timedelta(days=1))]
        assert before["activity_status"] == "fetched" and before["activity_usd"] is not None
        assert (before["ledger_usd"], before["difference_usd"], before["agree"]) == (None, None, 0)
        latest = rows[(workspace_id, LAST)]
        assert (latest["activity_status"], latest["activity_usd"]) == (None, None)
        assert (latest["ledger_usd"], latest["agree"]) == (None, 0)
    lost = min(history.fetched) - timedelta(days=1)
    mark_missing(history.engine, world.workspace_ids[1], lost)
    row = reconciliation(history.engine)[(world.workspace_ids[1], lost)]
    assert (row["activity_status"], row["activity_usd"], row["agree"]) == ("missing", None, 0)


def top_endpoint(history: History, day: date) -> str:
    """The endpoint with the most usage on ``day`` over every workspace (the skew's)."""
    usage: dict[str, Decimal] = defaultdict(Decimal)
    for (d, _, endpoint_id), totals in history.ledger.world.activity_truth().items():
        if d == day:
            usage[endpoint_id] += totals.usage
    return max(usage, key=lambda e: (usage[e], e))


@pytest.mark.parametrize(("mode", "factor"), [("doubled", 2), ("missing", 0)])
def test_skewed_activity_surfaces_as_a_difference(history: History, mode: str, factor: int) -> None:
    world, engine = history.ledger.world, history.engine
    day = LEDGER_DAYS[-3]
    top = top_endpoint(history, day)
    history.ledger.simulator.faults.update(
        {"activity_skew": mode, "activity_skew_date": day.isoformat()}
    )
    store_served_activity(engine, history.ledger)  # re-read the window, older days too
    rows = reconciliation(engine)
    skewed = truth_by(history.ledger, lambda d, w, e: (w, d, e), [day])
    differ = 0
    for workspace_id in world.workspace_ids:
        for d in LEDGER_DAYS:
            row = rows[(workspace_id, d)]
            usage, byok = skewed.get((workspace_id, d, top), (Decimal(0), Decimal(0)))[:2]
            if d != day or not (usage or byok):
                assert row["agree"] == 1, row
                continue
            differ += 1
            assert row["agree"] == 0 and row["ledger_complete"] == 1
            assert_money(row["difference_usd"], usage * (factor - 1), exact=history.exact)
            assert_money(row["byok_difference_usd"], byok * (factor - 1), exact=history.exact)
            assert_money(row["activity_usd"] - row["ledger_usd"], usage * (factor - 1), exact=False)
    assert differ >= 1
    assert ENDPOINT_IDS.index(top) >= 0


def test_late_usage_after_the_ledger_closed_the_day_surfaces_as_a_difference(
    history: History,
) -> None:
    world, engine = history.ledger.world, history.engine
    workspace_id, other = world.workspace_ids[:2]
    key_hash = world.live_hashes(workspace_id)[0]
    closed = LAST - timedelta(days=1)  # its ledger row was written at the last sync
    world.advance(timedelta(hours=8))
    world.late_usage(key_hash, closed, Decimal("0.5"))
    sync_at(engine, history.ledger, at(LAST + timedelta(days=1), 2, 30))  # re-fetches it
    rows = reconciliation(engine)
    # Activity books it on the day it belongs to; the ledger sees the key's total grow
    # after that day closed, so it lands on the day of the sync that saw it grow.
    assert rows[(workspace_id, closed)]["difference_usd"] == Decimal("0.5")
    assert rows[(workspace_id, LAST)]["difference_usd"] == Decimal("-0.5")
    assert rows[(workspace_id, closed)]["agree"] == rows[(workspace_id, LAST)]["agree"] == 0
    for day in (closed, LAST):
        assert rows[(other, day)]["agree"] == 1
    total = sum(rows[(workspace_id, d)]["difference_usd"] for d in (*LEDGER_DAYS, LAST))
    assert total == 0  # over both days the two sources add up again


def test_a_day_the_ledger_knows_only_in_part_differs_by_the_left_out_key(
    history: History,
) -> None:
    world, engine = history.ledger.world, history.engine
    workspace_id = world.workspace_ids[0]
    victim = world.live_hashes(workspace_id)[0]
    world.advance(timedelta(hours=6))
    world.spend(victim, Decimal("0.75"))
    world.delete_key(victim)  # between two syncs: its spend on LAST is unknown to the ledger
    sync_at(engine, history.ledger, at(LAST + timedelta(days=1), 2, 30))
    row = reconciliation(engine)[(workspace_id, LAST)]
    assert row["ledger_complete"] == 0 and row["agree"] == 0
    assert row["activity_status"] == "fetched"
    # The ledger's known part leaves out exactly the deleted key's day.
    victim_day = world.activity_daily_spend()[(victim, LAST)]
    assert_money(row["difference_usd"], victim_day[0], exact=history.exact)
    assert victim_day[0] >= Decimal("0.75")


def test_a_day_the_ledger_knows_only_in_part_agrees_when_the_left_out_key_spent_nothing(
    history: History,
) -> None:
    world, engine = history.ledger.world, history.engine
    workspace_id = world.workspace_ids[0]
    spent = world.activity_daily_spend()
    idle = [h for h in world.live_hashes(workspace_id) if (h, LAST) not in spent]
    assert idle, "every key of the workspace spent on the last day"
    world.advance(timedelta(hours=6))
    world.delete_key(idle[0])  # between two syncs: the ledger cannot know its last day
    sync_at(engine, history.ledger, at(LAST + timedelta(days=1), 2, 30))
    assert (idle[0], LAST) not in world.activity_daily_spend()  # it spent nothing
    row = reconciliation(engine)[(workspace_id, LAST)]
    assert row["ledger_complete"] == 0
    assert_money(row["difference_usd"], Decimal(0), exact=history.exact)
    assert row["agree"] == 1  # the lower bound is the whole: the activity total says so
