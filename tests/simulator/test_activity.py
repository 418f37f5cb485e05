"""The simulator's GET /activity: the published contract, the window, filters, faults, truth."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from etl.simulator.activity import CATALOGUE, ENDPOINT_IDS, WINDOW_MESSAGE
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World

TOKEN = "sim-activity-token-42"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "openrouter-activity.openapi.yaml"
SPEC_URI = "urn:keyledger:openrouter-activity"
ACTIVITY_200 = "#/paths/~1activity/get/responses/200/content/application~1json/schema"
ITEM_FIELDS = {
    "date",
    "model",
    "model_permaslug",
    "endpoint_id",
    "provider_name",
    "usage",
    "byok_usage_inference",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
}
MONEY = ("usage", "byok_usage_inference")
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens")
UNKNOWN_WS = "00000000-0000-4000-8000-000000000000"
Row = tuple[str, str, str]  # (date, workspace id or "", endpoint id)


# -- fixtures and helpers ----------------------------------------------------------------
@pytest.fixture(scope="module")
def validate() -> Any:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    def check(instance: object, pointer: str) -> None:
        schema = {"$ref": SPEC_URI + pointer}
        checker = Draft202012Validator.FORMAT_CHECKER
        Draft202012Validator(schema, registry=registry, format_checker=checker).validate(instance)

    return check


@pytest.fixture
def world() -> World:
    """Three workspaces, 35 simulated days on, so all 30 days of the window have events."""
    built = World(seed=21, workspaces=3, keys_per_workspace=40)
    built.advance(timedelta(days=35, hours=5))
    return built


@pytest.fixture
def sim(world: World) -> Simulator:
    return Simulator(world, token=TOKEN, seed=5)


@pytest.fixture
def client(sim: Simulator, validate: Any) -> Iterator[httpx.Client]:
    """In-process; every 200 from /activity is checked against the contract on the way."""

    def check(response: httpx.Response) -> None:
        response.read()
        if response.request.url.path.endswith("/activity") and response.status_code == 200:
            validate(json.loads(response.content), ACTIVITY_200)

    with httpx.Client(
        transport=sim.mock_transport(),
        base_url="http://simulator.test/api/v1",
        headers=AUTH,
        event_hooks={"response": [check]},
    ) as c:
        yield c


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim) as running:
        yield running


def items(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Served items, each JSON number with a fraction read as the Decimal of its text."""
    response = client.get("/activity", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = json.loads(response.content, parse_float=Decimal)["data"]
    return data


def by_row(data: list[dict[str, Any]]) -> dict[Row, dict[str, Any]]:
    rows: dict[Row, dict[str, Any]] = {}
    for item in data:
        row = (item["date"], item.get("workspace_id", ""), item["endpoint_id"])
        assert row not in rows, f"two items for {row}"
        rows[row] = item
    return rows


def summed(rows: dict[Row, dict[str, Any]], split: bool) -> dict[Row, tuple[Any, ...]]:
    """Money and counts per row, merged across workspaces unless ``split``."""
    out: dict[Row, list[Any]] = {}
    for (day, ws, endpoint), item in rows.items():
        total = out.setdefault((day, ws if split else "", endpoint), [Decimal(0)] * 2 + [0] * 4)
        for i, name in enumerate(MONEY + COUNTS):
            total[i] += item[name]
    return {row: tuple(total) for row, total in out.items()}


def truth_rows(world: World, key_hash: str | None = None) -> dict[Row, tuple[Any, ...]]:
    window = {d.isoformat() for d in window_days(world)}
    return {
        (day.isoformat(), ws, endpoint): (
            t.usage,
            t.byok_usage_inference,
            t.requests,
            t.prompt_tokens,
            t.completion_tokens,
            t.reasoning_tokens,
        )
        for (day, ws, endpoint), t in world.activity_truth(key_hash).items()
        if day.isoformat() in window
    }


def spent_key(world: World, ws: str) -> str:
    """A live key of ``ws`` with spend in the window."""
    first = window_days(world)[0]
    spent = {h for (h, day) in world.activity_daily_spend() if first <= day < world.now.date()}
    return next(h for h in world.live_hashes(ws) if h in spent)


def window_days(world: World) -> list[date]:
    today = world.now.date()
    return [today - timedelta(days=n) for n in range(30, 0, -1)]


def control(server: SimulatorServer, action: str) -> str:
    return server.base_url.removesuffix("/api/v1") + "/_sim/" + action


# -- the contract ------------------------------------------------------------------------
def test_every_parameter_combination_validates_and_items_carry_the_contract_fields(
    client: httpx.Client, world: World, validate: Any
) -> None:
    ws = world.workspace_ids[1]
    key = spent_key(world, ws)
    creator = next(k["creator_user_id"] for k in world.truth_keys() if k["creator_user_id"])
    day = window_days(world)[-1].isoformat()
    cases: list[dict[str, str]] = [
        {},
        {"date": day},
        {"group_by": "workspace"},
        {"workspace_id": ws},
        {"workspace_id": ws, "group_by": "workspace", "date": day},
        {"api_key_hash": key},
        {"api_key_hash": key, "group_by": "workspace"},
        {"user_id": creator},
    ]
    for params in cases:
        data = items(client, **params)  # validated by the client fixture
        assert data, params
        fields = ITEM_FIELDS | ({"workspace_id"} if "group_by" in params else set())
        assert all(set(item) == fields for item in data), params
    sample = items(client)[0]
    with pytest.raises(ValidationError):  # the $ref really reaches the contract's schema
        validate({"data": [{**sample, "usage": "0.5"}]}, ACTIVITY_200)
    with pytest.raises(ValidationError):
        validate({"data": [{k: v for k, v in sample.items() if k != "requests"}]}, ACTIVITY_200)


def test_usage_is_sent_as_doubles_on_the_wire(client: httpx.Client, world: World) -> None:
    raw = client.get("/activity").json()  # floats, as any JSON client reads them
    assert all(isinstance(item["usage"], float) for item in raw["data"])
    assert all(isinstance(item["byok_usage_inference"], float) for item in raw["data"])
    assert all(isinstance(item[name], int) for item in raw["data"] for name in COUNTS)
    assert {item["endpoint_id"] for item in raw["data"]} <= set(ENDPOINT_IDS)
    catalogue = {
        (e.model, e.model_permaslug, e.provider_name, eid)
        for e, eid in zip(CATALOGUE, ENDPOINT_IDS, strict=True)
    }
    assert {
        (i["model"], i["model_permaslug"], i["provider_name"], i["endpoint_id"])
        for i in raw["data"]
    } <= catalogue
    reasoning = {eid for e, eid in zip(CATALOGUE, ENDPOINT_IDS, strict=True) if e.reasoning}
    assert all(
        (item["reasoning_tokens"] > 0) == (item["endpoint_id"] in reasoning) for item in raw["data"]
    )


@pytest.mark.parametrize(
    ("query", "headers", "status", "schema"),
    [
        ("", {}, 401, "UnauthorizedResponse"),
        ("", {"Authorization": "Bearer not-the-key"}, 401, "UnauthorizedResponse"),
        ("date=2026-02-30", AUTH, 400, "BadRequestResponse"),
        ("group_by=key", AUTH, 400, "BadRequestResponse"),
        ("workspace_id=not-a-uuid", AUTH, 400, "BadRequestResponse"),
        (f"workspace_id={UNKNOWN_WS}", AUTH, 404, "NotFoundResponse"),
    ],
)
def test_error_bodies_match_the_contract(
    sim: Simulator,
    validate: Any,
    query: str,
    headers: dict[str, str],
    status: int,
    schema: str,
) -> None:
    response = sim.handle("GET", "/api/v1/activity", query, headers)
    assert response.status == status
    payload = json.loads(response.body)
    validate(payload, f"#/components/schemas/{schema}")
    assert payload["error"]["code"] == status
    assert TOKEN not in response.body.decode() and "not-the-key" not in response.body.decode()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
def test_activity_status_fails_activity_alone_with_the_contracts_body(
    sim: Simulator, client: httpx.Client, validate: Any, status: int
) -> None:
    sim.faults.update({"activity_status": status})
    response = client.get("/activity")
    assert response.status_code == status
    schema = {
        400: "BadRequestResponse",
        401: "UnauthorizedResponse",
        403: "ForbiddenResponse",
        404: "NotFoundResponse",
        500: "InternalServerResponse",
    }[status]
    validate(response.json(), f"#/components/schemas/{schema}")
    assert client.get("/keys").status_code == 200
    assert client.get("/workspaces").status_code == 200
    sim.faults.update({"activity_status": 0})
    assert client.get("/activity").status_code == 200
    with pytest.raises(ValueError, match="activity_status"):
        sim.faults.update({"activity_status": 418})


def test_other_methods_get_405(client: httpx.Client) -> None:
    assert client.post("/activity").status_code == 405


# -- the window --------------------------------------------------------------------------
def test_without_date_every_one_of_the_30_completed_days_is_served(
    client: httpx.Client, world: World
) -> None:
    served = {item["date"] for item in items(client)}
    assert served == {d.isoformat() for d in window_days(world)}
    assert world.now.date().isoformat() not in served  # today is not complete yet
    assert len(served) == 30


def test_date_serves_that_day_only_and_the_window_edges(client: httpx.Client, world: World) -> None:
    everything = by_row(items(client))
    today = world.now.date()
    for back in (1, 17, 30):
        day = (today - timedelta(days=back)).isoformat()
        one = by_row(items(client, date=day))
        assert one and {row[0] for row in one} == {day}
        assert one == {row: item for row, item in everything.items() if row[0] == day}


@pytest.mark.parametrize("shift", [0, 31, 45, -1, -400])
def test_dates_outside_the_window_get_400_with_the_contracts_message(
    client: httpx.Client, world: World, shift: int
) -> None:
    day = (world.now.date() - timedelta(days=shift)).isoformat()
    response = client.get("/activity", params={"date": day})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "message": WINDOW_MESSAGE}}


@pytest.mark.parametrize(
    "raw", ["", "yesterday", "2026-11-5", "20261120", "2026-13-01", "2026-11-20T00:00:00Z"]
)
def test_malformed_dates_get_400(client: httpx.Client, raw: str) -> None:
    response = client.get("/activity", params={"date": raw})
    assert response.status_code == 400
    assert "YYYY-MM-DD" in response.json()["error"]["message"]


def test_the_window_moves_with_the_simulated_clock(client: httpx.Client, world: World) -> None:
    oldest = window_days(world)[0].isoformat()
    assert client.get("/activity", params={"date": oldest}).status_code == 200
    today = world.now.date().isoformat()
    world.advance(timedelta(days=1))
    assert client.get("/activity", params={"date": oldest}).status_code == 400
    assert client.get("/activity", params={"date": today}).status_code == 200
    assert {item["date"] for item in items(client)} == {d.isoformat() for d in window_days(world)}


# -- grouping and filters ----------------------------------------------------------------
def test_group_by_workspace_splits_rows_that_sum_to_the_ungrouped_ones(
    client: httpx.Client, world: World
) -> None:
    merged = by_row(items(client))
    split = by_row(items(client, group_by="workspace"))
    assert all(row[1] == "" for row in merged)
    assert {row[1] for row in split} == set(world.workspace_ids)
    assert len(split) > len(merged)
    assert summed(split, split=False) == summed(merged, split=False)


def test_workspace_id_serves_only_that_workspace(client: httpx.Client, world: World) -> None:
    split = by_row(items(client, group_by="workspace"))
    for ws in world.workspace_ids:
        alone = by_row(items(client, workspace_id=ws))
        assert all(row[1] == "" for row in alone)  # workspace_id only with group_by
        mine = {row: item for row, item in split.items() if row[1] == ws}
        assert summed(alone, split=False) == summed(mine, split=False)
        grouped = by_row(items(client, workspace_id=ws, group_by="workspace"))
        assert grouped == mine


def test_api_key_hash_serves_that_keys_usage_deleted_keys_included(
    client: httpx.Client, world: World
) -> None:
    key = spent_key(world, world.workspace_ids[2])
    served = by_row(items(client, api_key_hash=key, group_by="workspace"))
    assert served and summed(served, split=True) == truth_rows(world, key)
    world.delete_key(key)
    assert by_row(items(client, api_key_hash=key, group_by="workspace")) == served
    assert items(client, api_key_hash="0" * 64) == []


def test_user_id_serves_the_keys_that_member_created(client: httpx.Client, world: World) -> None:
    keys = world.truth_keys()
    creator = next(k["creator_user_id"] for k in keys if k["creator_user_id"])
    expected: dict[Row, tuple[Any, ...]] = {}
    for key in keys:
        if key["creator_user_id"] == creator:
            for row, totals in truth_rows(world, key["hash"]).items():
                before = expected.get(row, (Decimal(0), Decimal(0), 0, 0, 0, 0))
                expected[row] = tuple(a + b for a, b in zip(before, totals, strict=True))
    assert summed(by_row(items(client, user_id=creator, group_by="workspace")), True) == expected
    assert items(client, user_id="user_nobody") == []


# -- ground truth and the agreement with the keys ----------------------------------------
def test_served_rows_equal_the_truth_exactly(client: httpx.Client, world: World) -> None:
    split = by_row(items(client, group_by="workspace"))
    assert summed(split, split=True) == truth_rows(world)
    merged = summed(by_row(items(client)), split=False)
    assert sum(t[0] for t in merged.values()) == sum(t[0] for t in truth_rows(world).values())


def test_truth_endpoint_gives_the_same_exact_totals(server: SimulatorServer, world: World) -> None:
    with httpx.Client(headers=AUTH, timeout=5) as http:
        assert httpx.get(control(server, "activity_truth")).status_code == 401
        truth = http.get(control(server, "activity_truth")).json()
        served = json.loads(
            http.get(server.base_url + "/activity", params={"group_by": "workspace"}).content,
            parse_float=Decimal,
        )["data"]
        key = spent_key(world, world.workspace_ids[0])
        one_key = http.get(control(server, "activity_truth"), params={"api_key_hash": key})
        unknown = http.get(control(server, "activity_truth"), params={"api_key_hash": "ab"})
    assert truth["window"] == [d.isoformat() for d in window_days(world)]
    from_truth = {
        (r["date"], r["workspace_id"], r["endpoint_id"]): (
            Decimal(r["usage"]),
            Decimal(r["byok_usage_inference"]),
            *(r[name] for name in COUNTS),
        )
        for r in truth["rows"]
        if r["date"] in truth["window"]
    }
    assert from_truth == summed(by_row(served), split=True) == truth_rows(world)
    assert {(r["date"], r["workspace_id"], r["endpoint_id"]) for r in one_key.json()["rows"]} == {
        (d.isoformat(), ws, e) for d, ws, e in world.activity_truth(key)
    }
    assert unknown.status_code == 404


def test_usage_events_sum_to_each_keys_spend_per_day(world: World) -> None:
    events = world.activity_daily_spend()
    ledger = {k: v for k, v in world.daily_spend().items() if k[1] >= world.activity_since}
    assert events == ledger
    assert len(events) > 500


def test_activity_agrees_with_the_growth_the_keys_endpoint_shows(
    client: httpx.Client, world: World
) -> None:
    """Snapshots of every key at midnight: each key's growth over a day is its activity."""

    def usage_now() -> dict[str, tuple[Decimal, Decimal]]:
        out = {}
        for ws in world.workspace_ids:
            offset = 0
            while True:
                page = json.loads(
                    client.get(
                        "/keys",
                        params={
                            "workspace_id": ws,
                            "offset": str(offset),
                            "include_disabled": "true",
                            "include_expired": "true",
                        },
                    ).content,
                    parse_float=Decimal,
                )["data"]
                if not page:
                    break
                out.update({k["hash"]: (k["usage"], k["byok_usage"]) for k in page})
                offset += len(page)
        return out

    midnight = datetime.combine(world.now.date() + timedelta(days=1), datetime.min.time())
    world.advance(midnight.replace(tzinfo=timezone.utc) - world.now)
    for _ in range(2):
        before = usage_now()
        world.advance(timedelta(days=1))
        after = usage_now()
        day = (world.now.date() - timedelta(days=1)).isoformat()
        grown = {
            h: (after[h][0] - u, after[h][1] - b)
            for h, (u, b) in before.items()
            if h in after and after[h] != (u, b)
        }
        assert grown
        for key_hash, (usage, byok) in grown.items():
            rows = items(client, api_key_hash=key_hash, date=day)
            assert sum((r["usage"] for r in rows), Decimal(0)) == usage
            assert sum((r["byok_usage_inference"] for r in rows), Decimal(0)) == byok
        served = items(client, date=day)
        assert sum((r["usage"] for r in served), Decimal(0)) == sum(
            (u for (_, d), (u, _) in world.daily_spend().items() if d.isoformat() == day),
            Decimal(0),
        )


def test_amounts_with_ten_decimals_survive_the_doubles_exactly(
    client: httpx.Client, world: World
) -> None:
    ws = world.workspace_ids[1]
    key = world.create_key(ws)
    for amount in ("0.1234567891", "1E-9", "249.9999999999", "0.0000000003"):
        world.spend(key, Decimal(amount), byok=Decimal("0.0000000001"))
    world.advance(timedelta(days=1), activity=False)
    day = (world.now.date() - timedelta(days=1)).isoformat()
    rows = items(client, api_key_hash=key, date=day)
    assert sum((r["usage"] for r in rows), Decimal(0)) == Decimal("250.1234567903")
    assert sum((r["byok_usage_inference"] for r in rows), Decimal(0)) == Decimal("4E-10")
    assert sum(r["requests"] for r in rows) >= 4


def test_same_seed_gives_the_same_activity_and_keys_as_without_it() -> None:
    def run(seed: int) -> tuple[object, object]:
        built = World(seed=seed, workspaces=2, keys_per_workspace=30)
        built.advance(timedelta(days=3))
        return built.activity_truth(), built.truth_json()

    assert run(4) == run(4)
    assert run(4)[0] != run(5)[0]


# -- late usage --------------------------------------------------------------------------
def test_late_usage_lands_on_a_completed_day_and_in_the_keys_total(
    server: SimulatorServer, world: World, client: httpx.Client
) -> None:
    yesterday = window_days(world)[-1]
    day_before = window_days(world)[-2].isoformat()
    before = by_row(items(client, date=yesterday.isoformat()))
    other_day = by_row(items(client, date=day_before))
    key = world.live_hashes(world.default_workspace_id)[-1]
    payload = json.loads(client.get(f"/keys/{key}").content, parse_float=Decimal)["data"]
    with httpx.Client(headers=AUTH, timeout=5) as http:
        late = http.post(
            control(server, "late_usage"),
            params={"date": yesterday.isoformat(), "usage": "0.3", "byok": "1.25"},
        )
        assert late.status_code == 200 and late.json()["api_key_hash"] == key
        for bad in (
            {"date": world.now.date().isoformat(), "usage": "1"},  # today is not completed
            {"date": "2026-13-01", "usage": "1"},
            {"date": yesterday.isoformat(), "usage": "-1"},
            {"date": yesterday.isoformat(), "usage": "1e3"},
            {"date": yesterday.isoformat(), "usage": "0"},
        ):
            assert http.post(control(server, "late_usage"), params=bad).status_code == 400, bad
        missing = {"date": yesterday.isoformat(), "usage": "1", "api_key_hash": "nope"}
        assert http.post(control(server, "late_usage"), params=missing).status_code == 404
    after = by_row(items(client, date=yesterday.isoformat()))
    grown = summed(after, False)
    was = summed(before, False)
    assert sum(t[0] for t in grown.values()) - sum(t[0] for t in was.values()) == Decimal("0.3")
    assert sum(t[1] for t in grown.values()) - sum(t[1] for t in was.values()) == Decimal("1.25")
    assert by_row(items(client, date=day_before)) == other_day
    assert summed(by_row(items(client, group_by="workspace")), True) == truth_rows(world)
    now = json.loads(client.get(f"/keys/{key}").content, parse_float=Decimal)["data"]
    assert now["usage"] == payload["usage"] + Decimal("0.3")
    assert now["usage_daily"] == payload["usage_daily"]  # booked to yesterday, not today
    assert world.activity_daily_spend() == {
        k: v for k, v in world.daily_spend().items() if k[1] >= world.activity_since
    }


def test_late_usage_on_a_day_the_key_had_no_spend_keeps_the_counters_right(
    world: World,
) -> None:
    key = world.create_key()
    world.advance(timedelta(days=3), activity=False)
    world.spend(key, Decimal(2))
    world.late_usage(key, world.now.date() - timedelta(days=2), Decimal("0.5"))
    found = world.find_key(key)
    assert found is not None
    payload = world.key_payload(found)
    assert payload["usage"] == Decimal("2.5") and payload["usage_daily"] == Decimal(2)
    assert list(found.ledger) == sorted(found.ledger)
    with pytest.raises(ValueError):
        world.late_usage(key, world.now.date(), Decimal(1))


# -- faults ------------------------------------------------------------------------------
def test_rate_limit_5xx_garbled_drop_malformed_and_slow_reach_activity(
    sim: Simulator, client: httpx.Client
) -> None:
    sim.faults.update({"rate_limit_rate": 1.0, "retry_after_seconds": 3})
    limited = client.get("/activity")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    sim.faults.update({"rate_limit_rate": 0.0, "error_rate": 1.0, "error_burst": 2})
    assert client.get("/activity").status_code in (500, 502, 503, 504)
    sim.faults.update({"error_rate": 0.0})
    assert client.get("/activity").status_code in (500, 502, 503, 504)  # the burst's second
    assert client.get("/activity").status_code == 200
    sim.faults.update({"error_rate": 1.0, "error_burst": 1, "garbled_error_rate": 1.0})
    garbled = client.get("/activity")
    assert garbled.status_code >= 500
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbled.content)
    sim.faults.update({"error_rate": 0.0, "garbled_error_rate": 0.0, "drop_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/activity")
    sim.faults.update({"drop_rate": 0.0, "malformed_json_rate": 1.0})
    malformed = client.get("/activity", params={"date": "x"})  # errors stay well-formed
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == 400
    cut = sim.handle("GET", "/api/v1/activity", "", AUTH)  # past the validating client
    assert cut.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.body)
    sim.faults.update({"malformed_json_rate": 0.0, "slow_rate": 1.0, "slow_seconds": 9.0})
    with pytest.raises(httpx.ReadTimeout):
        client.get("/activity", timeout=0.5)
    counted = sim.stats.faults
    assert counted["rate_limited"] == 1 and counted["server_errors"] == 3
    assert counted["dropped"] == 1 and counted["malformed_json"] == 1 and counted["slow"] == 1
    assert sim.stats.by_kind["activity"] == 9


def test_the_request_quota_applies_to_activity(world: World) -> None:
    sim = Simulator(world, token=TOKEN, faults=Faults(quota_rps=0.001, quota_burst=2))
    statuses = [sim.handle("GET", "/api/v1/activity", "", AUTH).status for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_schema_drift_adds_unknown_fields_that_still_validate(
    sim: Simulator, client: httpx.Client, validate: Any
) -> None:
    sim.faults.update({"schema_drift": True})
    payload = json.loads(client.get("/activity").content)
    validate(payload, ACTIVITY_200)
    assert "new_top_level_field" in payload
    assert all("new_field_x" in item for item in payload["data"])


@pytest.mark.parametrize("mode", ["missing", "doubled"])
def test_activity_skew_makes_one_day_disagree_with_the_truth(
    sim: Simulator, client: httpx.Client, world: World, mode: str
) -> None:
    day = window_days(world)[-5].isoformat()
    truth = truth_rows(world)
    sim.faults.update({"activity_skew": mode, "activity_skew_date": day})
    for split in (False, True):
        params = {"group_by": "workspace"} if split else {}
        served = summed(by_row(items(client, **params)), split=split)
        per_day: dict[str, Decimal] = {}
        for (d, _, _), totals in served.items():
            per_day[d] = per_day.get(d, Decimal(0)) + totals[0]
        expected: dict[str, Decimal] = {}
        by_endpoint: dict[str, Decimal] = {}
        for (d, _, endpoint), totals in truth.items():
            expected[d] = expected.get(d, Decimal(0)) + totals[0]
            if d == day:
                by_endpoint[endpoint] = by_endpoint.get(endpoint, Decimal(0)) + totals[0]
        top = max(by_endpoint.values())
        assert {d: v for d, v in per_day.items() if d != day} == {
            d: v for d, v in expected.items() if d != day
        }
        assert per_day[day] - expected[day] == (-top if mode == "missing" else top)
    assert items(client, date=window_days(world)[-6].isoformat())  # other days unaffected
    sim.faults.update({"activity_skew": "none"})
    assert summed(by_row(items(client, group_by="workspace")), True) == truth
    for bad in ({"activity_skew": "half"}, {"activity_skew_date": "2026-1-1"}):
        with pytest.raises(ValueError, match="activity_skew"):
            sim.faults.update(bad)


def test_activity_skew_defaults_to_the_last_completed_day(
    sim: Simulator, client: httpx.Client, world: World
) -> None:
    yesterday = window_days(world)[-1].isoformat()
    honest = summed(by_row(items(client, date=yesterday)), False)
    sim.faults.update({"activity_skew": "missing"})
    skewed = summed(by_row(items(client, date=yesterday)), False)
    assert len(skewed) == len(honest) - 1 and set(skewed) < set(honest)
    assert sim.stats.faults["activity_skewed"] >= 1


# -- the simulate command ----------------------------------------------------------------
def test_simulate_command_sets_the_activity_switches() -> None:
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = [
        sys.executable,
        "-c",
        "from etl.cli.simulate import simulate; simulate()",
        "--port",
        "0",
        "--token",
        "cli-token",
        "--keys-per-workspace",
        "5",
        "--activity-skew",
        "doubled",
        "--activity-skew-date",
        "2026-10-30",
        "--activity-status",
        "403",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=20)
        if not ready:
            proc.kill()
        base_url = proc.stdout.readline().strip()
        auth = {"Authorization": "Bearer cli-token"}
        refused = httpx.get(base_url + "/activity", headers=auth)
        faults = httpx.get(base_url.removesuffix("/api/v1") + "/_sim/faults", headers=auth)
        keys = httpx.get(base_url + "/keys", headers=auth)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only management keys can perform this operation"
    assert keys.status_code == 200
    assert faults.json()["activity_skew"] == "doubled"
    assert faults.json()["activity_skew_date"] == "2026-10-30"
    assert proc.returncode == 0 and "_sim/late_usage" in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--activity-skew", "half"],
        ["--activity-skew-date", "2026-02-30"],
        ["--activity-skew-date", "20261030"],
        ["--activity-status", "418"],
    ],
)
def test_simulate_command_refuses_bad_activity_switches(args: list[str]) -> None:
    from etl.cli.simulate import simulate

    result = CliRunner().invoke(simulate, ["--port", "0", *args])
    assert result.exit_code == 2
    assert "Invalid value for '--activity-" in result.output
    assert "Traceback" not in result.output


def test_stats_keep_the_parameters_of_each_activity_request(
    server: SimulatorServer, sim: Simulator
) -> None:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as http:
        http.get("/activity", params={"group_by": "workspace", "date": "2026-12-01"})
        http.get("/activity", params={"date": "bad"})
        http.get("/keys")
        stats = http.get(control(server, "stats")).json()
    assert stats["activity_queries"] == [
        {"group_by": ["workspace"], "date": ["2026-12-01"]},
        {"date": ["bad"]},
    ]
    for n in range(1005):
        sim.handle("GET", "/api/v1/activity", f"user_id=u{n}", AUTH)
    assert len(sim.stats.activity_queries) == 1000
    assert sim.stats.activity_queries[-1] == {"user_id": ["u1004"]}
