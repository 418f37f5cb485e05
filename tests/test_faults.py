"""`keyledger sync` through API faults and paging drift ends with the ground truth."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.exact_json import parse_json
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from etl.sync import SyncResult, run_sync
from models import ApiKey

TOKEN = "sk-or-v1-fault-test"
# A run under faults may make at most this many times the requests of a clean run.
REQUEST_BOUND = 3


def sync(engine: Engine, simulator: Simulator, **client: Any) -> SyncResult:
    account = Account(
        name="faults",
        management_key=Secret(TOKEN),
        workspaces=None,
        client=ClientSettings(
            base_url="http://sim/api/v1", requests_per_second=1e6, max_attempts=12, **client
        ),
    )

    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client,
            account.management_key,
            transport=simulator.mock_transport(),
            sleep=lambda seconds: None,  # backoff waits are skipped, not the retries
        )

    return run_sync(
        engine,
        Settings(database_url=str(engine.url), accounts=(account,)),
        client_factory=client_factory,
    )


def assert_ground_truth(engine: Engine, world: World) -> None:
    """Every live key stored with every value the API shows; deleted ones marked."""
    truth = {key["hash"]: key for key in world.truth_keys()}
    with engine.connect() as connection:
        rows = {row.hash: row for row in connection.execute(select(ApiKey))}
    live = {h for h, key in truth.items() if key["deleted_at"] is None}
    assert {h for h, row in rows.items() if row.deleted_at is None} == live
    for key_hash in live:
        stored = parse_json(rows[key_hash].raw_json.encode())
        expected = {k: v for k, v in truth[key_hash].items() if k != "deleted_at"}
        assert {k: stored[k] for k in expected} == expected


FAULTS = {
    "429 storm with Retry-After": {"rate_limit_rate": 0.25, "retry_after_seconds": 0.01},
    "429 storm without Retry-After": {"rate_limit_rate": 0.25, "retry_after": "none"},
    "5xx bursts": {"error_rate": 0.1, "error_burst": 2},
    "5xx with truncated or HTML bodies": {"error_rate": 0.2, "garbled_error_rate": 1.0},
    "dropped connections": {"drop_rate": 0.2},
    "responses slower than the timeout": {"slow_rate": 0.2, "slow_seconds": 5.0},
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_sync_through_faults_ends_with_the_ground_truth(engine: Engine, name: str) -> None:
    clean = Simulator(World(seed=31, workspaces=2, keys_per_workspace=450), token=TOKEN)
    assert sync(engine, clean).status == "ok"
    clean_requests = clean.stats.requests

    from etl.store.migrations import upgrade
    from tests.conftest import wipe  # a fresh ledger for the faulty run

    wipe(engine)
    upgrade(engine)
    world = World(seed=31, workspaces=2, keys_per_workspace=450)
    faulty = Simulator(world, token=TOKEN, faults=Faults(**FAULTS[name]), seed=5)
    result = sync(engine, faulty, timeout_seconds=1.0)
    assert result.status == "ok", result.summary()
    assert sum(faulty.stats.faults.values()) > 0
    assert_ground_truth(engine, world)
    assert faulty.stats.requests <= REQUEST_BOUND * clean_requests


@pytest.mark.parametrize(("deletes", "creates"), [(1, 0), (0, 3), (2, 2), (5, 5)])
def test_drift_while_paging_loses_nothing_and_deletes_nothing_alive(
    engine: Engine, deletes: int, creates: int
) -> None:
    world = World(seed=41, workspaces=2, keys_per_workspace=420)
    simulator = Simulator(world, token=TOKEN)
    assert sync(engine, simulator).status == "ok"
    # Keys come and go after each of the first pages, then the lists settle.
    simulator.faults.update({"drift_schedule": [[deletes, creates]] * 8})
    before = {h for w in world.workspace_ids for h in world.live_hashes(w)}
    assert sync(engine, simulator).status == "ok"  # keys come and go while it pages
    after = {h for w in world.workspace_ids for h in world.live_hashes(w)}
    with engine.connect() as connection:
        rows = dict(connection.execute(select(ApiKey.hash, ApiKey.deleted_at)).all())
    assert before & after <= {h for h, deleted in rows.items() if deleted is None}  # none lost
    truth = {key["hash"]: key for key in world.truth_keys()}
    marked = {h for h, deleted in rows.items() if deleted is not None}
    assert all(truth[h]["deleted_at"] is not None for h in marked)  # never while alive
    assert simulator.stats.faults["drift_deletes"] or simulator.stats.faults["drift_creates"]
    assert sync(engine, simulator).status == "ok"  # a quiet run settles the rest
    assert_ground_truth(engine, world)
