"""End to end: real syncs against the simulator on loopback keep activity and the key
ledger, and activity_reconciliation shows they agree, or where they do not."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.activity_support import (
    day_of,
    model_of,
    stored_days,
    sync_over_loopback,
    truth_by,
    window,
)
from tests.analytics_support import Ledgered, at, make_world, normalize

FIRST = date(2026, 11, 5)
NIGHTS = 4  # the ledger knows FIRST .. FIRST + 2; activity the 30 days before each night
LEDGER_DAYS = [FIRST + timedelta(days=n) for n in range(NIGHTS - 1)]


@dataclass
class Synced:
    engine: Engine
    ledger: Ledgered

    @property
    def exact(self) -> bool:
        return self.engine.dialect.name != "sqlite"


@pytest.fixture
def synced(engine: Engine) -> Synced:
    ledger = make_world(keys=5, workspaces=2, seed=41, deletes=0.0, active_fraction=0.8)
    for n in range(NIGHTS):
        sync_over_loopback(engine, ledger, at(FIRST + timedelta(days=n), 3))
    return Synced(engine, ledger)


def reconciliation(engine: Engine) -> dict[tuple[str, date], dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM activity_reconciliation"))
        columns = list(result.keys())
        return {
            (row.workspace_id, day_of(row.day)): dict(
                zip(columns, (normalize(v) for v in row), strict=True)
            )
            for row in result
        }


def close(got: Any, expected: Decimal, *, exact: bool) -> bool:
    return got == expected if exact else abs(got - expected) <= Decimal("1e-9")


def test_synced_activity_equals_the_truth_and_agrees_with_the_ledger(synced: Synced) -> None:
    engine, world = synced.engine, synced.ledger.world
    days = stored_days(engine)
    fetched = sorted({d for (_, d), s in days.items() if s == "fetched"})
    # The first run backfilled the window, each later night added its day.
    first = window(FIRST)[0]
    assert fetched == [first + timedelta(days=n) for n in range(30 + NIGHTS - 1)]
    assert set(days.values()) == {"fetched"}
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT workspace_id, day, model, usage_usd, requests FROM daily_model_spend")
        )
        got = {(r.workspace_id, day_of(r.day), r.model): normalize(r[3:]) for r in rows}
    truth = truth_by(synced.ledger, lambda d, w, e: (w, d, model_of(e)), fetched)
    assert set(got) == set(truth)
    for key, expected in truth.items():
        assert close(normalize(got[key][0]), expected[0], exact=synced.exact), key
        assert got[key][1] == expected[2], key

    rows_by_day = reconciliation(engine)
    for workspace_id in world.workspace_ids:
        for day in LEDGER_DAYS:
            row = rows_by_day[(workspace_id, day)]
            assert row["agree"] == 1, row
            assert row["difference_usd"] == 0 and row["byok_difference_usd"] == 0
            assert row["activity_usd"] > 0
    assert sum(r["agree"] for r in rows_by_day.values()) == 2 * len(LEDGER_DAYS)


@pytest.mark.parametrize(("mode", "factor"), [("doubled", 2), ("missing", 0)])
def test_activity_skew_shows_as_a_difference_after_the_next_sync(
    synced: Synced, mode: str, factor: int
) -> None:
    engine, world = synced.engine, synced.ledger.world
    night = FIRST + timedelta(days=NIGHTS)
    skewed_day = night - timedelta(days=1)  # the fault's default: the last completed day
    synced.ledger.simulator.faults.update({"activity_skew": mode})
    sync_over_loopback(engine, synced.ledger, at(night, 3))
    # Worked out from the truth as the simulator does: the endpoint with the most usage.
    usage: dict[str, Decimal] = defaultdict(Decimal)
    cells = truth_by(synced.ledger, lambda d, w, e: (w, e), [skewed_day])
    for (_, endpoint_id), sums in cells.items():
        usage[endpoint_id] += sums[0]
    top = max(usage, key=lambda e: (usage[e], e))
    rows = reconciliation(engine)
    differing = 0
    for workspace_id in world.workspace_ids:
        for day in [*LEDGER_DAYS, skewed_day]:
            row = rows[(workspace_id, day)]
            moved = cells.get((workspace_id, top), (Decimal(0),))[0] * (factor - 1)
            if day != skewed_day or not moved:
                assert row["agree"] == 1, row
                continue
            differing += 1
            assert row["agree"] == 0 and row["ledger_complete"] == 1
            assert close(row["difference_usd"], moved, exact=synced.exact), row
    assert differing >= 1


def test_late_usage_shows_on_its_day_and_the_next_until_both_are_added_up(
    synced: Synced,
) -> None:
    engine, world = synced.engine, synced.ledger.world
    workspace_id, other = world.workspace_ids[:2]
    last_night = FIRST + timedelta(days=NIGHTS - 1)
    closed = last_night - timedelta(days=1)  # the ledger wrote its spend last night
    world.advance(timedelta(hours=6))
    world.late_usage(world.live_hashes(workspace_id)[0], closed, Decimal("1.25"))
    sync_over_loopback(engine, synced.ledger, at(last_night + timedelta(days=1), 3))
    rows = reconciliation(engine)
    # The run re-fetched the latest 2 completed days: activity has the late usage on its
    # day; the ledger saw the key's total grow after that day closed, so books it on the
    # day of the sync that saw it grow.
    assert rows[(workspace_id, closed)]["difference_usd"] == Decimal("1.25")
    assert rows[(workspace_id, last_night)]["difference_usd"] == Decimal("-1.25")
    for day in (closed, last_night):
        assert rows[(workspace_id, day)]["agree"] == 0
        assert rows[(other, day)]["agree"] == 1
    with engine.connect() as connection:
        difference = connection.scalar(
            text(
                "SELECT SUM(difference_usd) FROM activity_reconciliation "
                "WHERE workspace_id = :w AND difference_usd IS NOT NULL"
            ),
            {"w": workspace_id},
        )
    assert normalize(difference) == 0  # over the days compared, the sources add up
