"""The simulator's request quota: a token bucket for the whole server."""

from __future__ import annotations

import json

import pytest

from etl.cli.simulate import simulate
from etl.simulator.quota import TokenBucket
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World

TOKEN = "quota-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_bucket_serves_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, 3, monotonic=clock, epoch=lambda: 1_000.0 + clock.now)
    answers = [bucket.take() for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    # Full again three tokens' time (0.3 s) after the bucket ran dry, in Unix milliseconds.
    assert answers[3].headers["X-RateLimit-Reset"] == str(round((1_050.0 + 0.3) * 1000))
    assert answers[3].headers["Retry-After"] == "0.1"  # the next token
    assert "Retry-After" not in answers[2].headers
    clock.now += 0.1
    assert bucket.take().allowed
    assert not bucket.take().allowed
    clock.now += 10
    assert [bucket.take().allowed for _ in range(4)] == [True, True, True, False]  # capped at 3


def quota_simulator(rps: float, burst: int) -> Simulator:
    world = World(seed=3, workspaces=1, keys_per_workspace=30)
    return Simulator(world, token=TOKEN, faults=Faults(quota_rps=rps, quota_burst=burst))


def test_server_answers_429_with_retry_after_once_the_quota_is_spent() -> None:
    sim = quota_simulator(0.5, 2)  # so slow that no token comes back during the test
    truth = json.dumps(sim.world.truth_json(), default=str)
    first, second, third = (sim.handle("GET", "/api/v1/keys", "", AUTH) for _ in range(3))
    assert (first.status, second.status, third.status) == (200, 200, 429)
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < float(third.headers["Retry-After"]) <= 2.0
    assert json.loads(third.body)["error"] == {"code": 429, "message": "Rate limit exceeded"}
    assert sim.stats.faults["quota_limited"] == 1
    # The test endpoints stay outside the quota, and a 429 changes nothing in the world.
    stats = sim.handle("GET", "/_sim/stats", "", AUTH)
    assert stats.status == 200 and "X-RateLimit-Remaining" not in stats.headers
    assert json.dumps(sim.world.truth_json(), default=str) == truth


def test_quota_can_be_switched_while_the_server_runs() -> None:
    sim = quota_simulator(0.5, 1)
    assert sim.handle("GET", "/api/v1/keys", "", AUTH).status == 200
    assert sim.handle("GET", "/api/v1/keys", "", AUTH).status == 429
    body = json.dumps({"quota_rps": 0}).encode()
    assert sim.handle("POST", "/_sim/faults", "", AUTH, body).status == 200
    off = sim.handle("GET", "/api/v1/keys", "", AUTH)
    assert off.status == 200 and "X-RateLimit-Limit" not in off.headers
    body = json.dumps({"quota_rps": 0.5, "quota_burst": 0}).encode()
    assert sim.handle("POST", "/_sim/faults", "", AUTH, body).status == 400


def test_quota_headers_ride_on_faults_too() -> None:
    sim = quota_simulator(1000.0, 50)
    sim.faults.update({"error_rate": 1.0})
    response = sim.handle("GET", "/api/v1/keys", "", AUTH)
    assert response.status >= 500 and "X-RateLimit-Remaining" in response.headers


@pytest.mark.parametrize(
    ("args", "rps", "burst"),
    [([], 0.0, 10), (["--quota-rps", "250", "--quota-burst", "5"], 250, 5)],
)
def test_simulate_command_takes_the_quota_options(args: list[str], rps: float, burst: int) -> None:
    context = simulate.make_context("simulate", args)
    assert (context.params["quota_rps"], context.params["quota_burst"]) == (rps, burst)
    faults = Faults()
    faults.update({"quota_rps": context.params["quota_rps"], "quota_burst": burst})
    assert (faults.quota_rps, faults.quota_burst) == (rps, burst)
