"""A sync against a server that enforces a request quota, over a real loopback socket."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.exact_json import parse_json
from etl.openrouter.client import OpenRouterClient
from etl.simulator.server import run_simulator
from etl.simulator.service import Faults
from etl.sync import run_sync
from tests.test_sync import live_truth, stored_keys

TOKEN = "sk-or-v1-quota-test-token"


@pytest.mark.parametrize(("rps", "burst"), [(150.0, 10), (400.0, 5)])
def test_sync_under_a_quota_converges_with_few_429s_and_exact_keys(
    engine: Engine, rps: float, burst: int
) -> None:
    faults = Faults(quota_rps=rps, quota_burst=burst)
    clients: list[OpenRouterClient] = []

    def client_factory(account: Account) -> OpenRouterClient:
        clients.append(OpenRouterClient(account.client, account.management_key))
        return clients[-1]

    with run_simulator(workspaces=4, keys_per_workspace=1000, token=TOKEN, faults=faults) as server:
        # The user's defaults: no rate cap, the adaptive limit under its default ceiling.
        account = Account("quota", Secret(TOKEN), None, ClientSettings(base_url=server.base_url))
        settings = Settings(database_url=str(engine.url), accounts=(account,))
        result = run_sync(engine, settings, client_factory=client_factory)
        simulator = server.simulator
        requests = simulator.stats.requests
        limited = simulator.stats.faults["quota_limited"]
    assert result.status == "ok"
    assert limited <= 0.05 * requests
    assert clients[0].stats.throttled == limited
    truth = live_truth(simulator.world)
    stored = stored_keys(engine)
    assert set(stored) == set(truth)
    for key_hash, payload in truth.items():
        row = stored[key_hash]
        assert (row.usage, row.usage_daily, row.credit_limit, row.name) == (
            payload["usage"],
            payload["usage_daily"],
            payload["limit"],
            payload["name"],
        )
        sent = {name: value for name, value in payload.items() if name != "deleted_at"}
        assert parse_json(row.raw_json.encode()) == sent
