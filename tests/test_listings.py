"""Every key, whatever the pages look like: irregular listings, missing keys confirmed
sensibly, workspaces that disappear. `run_sync` against the simulator on every backend."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from etl.simulator.service import Simulator
from models import ApiKey, SyncRunWorkspace, UsageSnapshot, Workspace
from tests.test_faults import assert_ground_truth
from tests.test_sync import count, make_simulator, stored_keys, sync

IRREGULAR = {
    "a key listed twice next to itself": ({"duplicate_key_rate": 1.0}, 1, 1_500),
    "page sizes 100, 150, 50, 101, 7 while keys are deleted": (
        {"page_sizes": [100, 150, 50, 101, 7], "drift_schedule": [[2, 0]] * 25},
        2,
        1_000,
    ),
    "pages shrinking from 150 to 100 while keys are deleted": (
        {"page_sizes": [150] * 4 + [100] * 60, "drift_schedule": [[3, 0]] * 20},
        2,
        1_000,
    ),
    "keys created and deleted while pages change size": (
        {"page_sizes": [60, 3, 120, 2], "drift_schedule": [[1, 2], [2, 1]] * 10},
        1,
        700,
    ),
}


def live_stored(engine: Engine) -> set[str]:
    return {h for h, row in stored_keys(engine).items() if row.deleted_at is None}


@pytest.mark.parametrize("case", list(IRREGULAR))
def test_first_sync_of_irregular_listings_stores_every_key(engine: Engine, case: str) -> None:
    faults, workspaces, keys = IRREGULAR[case]
    simulator = make_simulator(workspaces=workspaces, keys=keys, **faults)
    world = simulator.world
    before = {h for w in world.workspace_ids for h in world.live_hashes(w)}
    result = sync(engine, simulator)
    after = {h for w in world.workspace_ids for h in world.live_hashes(w)}
    assert result.status == "ok", result.summary()
    assert before & after <= live_stored(engine)  # every key that lived throughout
    # The lists settle; a second run confirms the keys deleted meanwhile and ends exact.
    simulator.faults.update({"drift_schedule": [], "duplicate_key_rate": 0.0})
    assert sync(engine, simulator).status == "ok"
    assert_ground_truth(engine, world)


def spoil_listing(simulator: Simulator, workspace: str) -> None:
    """Every GET /keys of ``workspace`` answers an empty page, as a broken server might."""
    original = simulator.handle

    def empty(method: str, path: str, query: str, *rest: Any) -> Any:
        response = original(method, path, query, *rest)
        if path.endswith("/keys") and workspace in query and response.status == 200:
            return type(response)(200, response.headers, b'{"data": []}')
        return response

    simulator.handle = empty  # type: ignore[method-assign]


def test_empty_listing_of_a_known_workspace_fails_after_a_sample_of_lookups(
    engine: Engine,
) -> None:
    simulator = make_simulator(workspaces=2, keys=600)
    assert sync(engine, simulator).status == "ok"
    broken = simulator.world.workspace_ids[1]
    spoil_listing(simulator, broken)
    lookups_before = simulator.stats.by_kind.get("key", 0)
    result = sync(engine, simulator)
    assert result.status == "partial"
    failed = {w.workspace_id: w.error for w in result.workspaces if w.status == "failed"}
    assert list(failed) == [broken]
    error = failed[broken] or ""
    assert "lacks 600 of 600 known keys" in error and "listing is incomplete" in error
    assert "\n" not in error
    assert simulator.stats.by_kind.get("key", 0) - lookups_before == 20  # a sample, not 600
    assert count(engine, ApiKey, ApiKey.deleted_at.is_not(None)) == 0


def test_many_missing_keys_are_confirmed_deleted_with_bounded_concurrency(
    engine: Engine,
) -> None:
    simulator = make_simulator(workspaces=1, keys=400)
    assert sync(engine, simulator).status == "ok"
    world = simulator.world
    doomed = world.live_hashes(world.workspace_ids[0])[::2][:250]
    doomed += world.live_hashes(world.workspace_ids[0])[1::2][: 250 - len(doomed)]
    for key_hash in doomed:
        world.delete_key(key_hash)
    in_flight, peak, lock, original = 0, 0, threading.Lock(), simulator.handle
    gate = threading.Event()

    def measure(method: str, path: str, *rest: Any) -> Any:
        nonlocal in_flight, peak
        if "/keys/" not in path:
            return original(method, path, *rest)
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        gate.wait(0.005)  # long enough for the other lookups to arrive
        try:
            return original(method, path, *rest)
        finally:
            with lock:
                in_flight -= 1

    simulator.handle = measure  # type: ignore[method-assign]
    result = sync(engine, simulator)
    assert result.status == "ok", result.summary()
    assert result.workspaces[0].deleted == 250
    assert 1 < peak <= 4  # the client's concurrency (4 in these tests), never more
    assert_ground_truth(engine, world)


def test_keys_moved_away_in_bulk_are_updated_not_taken_for_a_broken_listing(
    engine: Engine,
) -> None:
    simulator = make_simulator(workspaces=2, keys=200)
    assert sync(engine, simulator).status == "ok"
    world = simulator.world
    first, second = world.workspace_ids
    moved = world.live_hashes(first)[:150]
    for key_hash in moved:
        world.move_key(key_hash, second)
    result = sync(engine, simulator)
    assert result.status == "ok", result.summary()
    stored = stored_keys(engine)
    assert {stored[h].workspace_id for h in moved} == {second}
    assert count(engine, ApiKey, ApiKey.deleted_at.is_not(None)) == 0
    assert_ground_truth(engine, world)


def test_workspace_discovery_stops_listing_has_its_keys_confirmed_and_is_marked(
    engine: Engine,
) -> None:
    simulator = make_simulator(workspaces=3, keys=40)
    assert sync(engine, simulator).status == "ok"
    world = simulator.world
    gone = world.workspace_ids[2]
    snapshots = count(engine, UsageSnapshot, UsageSnapshot.workspace_id == gone)
    world.delete_workspace(gone)
    result = sync(engine, simulator)
    assert result.status == "ok", result.summary()
    assert "2 workspaces ok, 0 failed, 0 skipped, 1 no longer listed" in result.summary()
    retired = [w for w in result.workspaces if w.status == "delisted"]
    assert [(w.workspace_id, w.deleted) for w in retired] == [(gone, 40)]
    assert count(engine, ApiKey, ApiKey.workspace_id == gone, ApiKey.deleted_at.is_(None)) == 0
    assert count(engine, UsageSnapshot, UsageSnapshot.workspace_id == gone) == snapshots
    with engine.connect() as connection:
        delisted_at = connection.scalar(select(Workspace.delisted_at).where(Workspace.id == gone))
        statuses = connection.scalars(
            select(SyncRunWorkspace.status).where(SyncRunWorkspace.workspace_id == gone)
        ).all()
    assert delisted_at is not None
    assert statuses == ["ok", "delisted"]
    assert_ground_truth(engine, world)
    lookups = simulator.stats.by_kind.get("key", 0)
    again = sync(engine, simulator)  # marked once: later runs leave it alone
    assert again.status == "ok" and "no longer listed" not in again.summary()
    assert simulator.stats.by_kind.get("key", 0) == lookups


def test_configured_workspace_that_answers_404_still_fails(engine: Engine) -> None:
    simulator = make_simulator(workspaces=3, keys=10)
    gone = simulator.world.workspace_ids[2]
    assert sync(engine, simulator).status == "ok"
    simulator.world.delete_workspace(gone)
    result = sync(engine, simulator, workspaces=(gone,))
    assert result.status == "failed"
    assert "HTTP 404" in (result.workspaces[0].error or "")
    assert count(engine, ApiKey, ApiKey.workspace_id == gone, ApiKey.deleted_at.is_(None)) == 10
