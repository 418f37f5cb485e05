"""The bundled OpenRouter simulator: payload shape, API behaviour, simulated time, faults, CLI."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from etl.simulator.server import SimulatorServer, run_simulator
from etl.simulator.service import Faults, Simulator, encode_json
from etl.simulator.world import ActivityRates, World, iso_ms

TOKEN = "sim-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "openrouter-management.openapi.yaml"
SPEC_URI = "urn:keyledger:openrouter-management"
KEYS_200 = "#/paths/~1keys/get/responses/200/content/application~1json/schema"
KEY_200 = "#/paths/~1keys~1{hash}/get/responses/200/content/application~1json/schema"
WORKSPACES_200 = "#/paths/~1workspaces/get/responses/200/content/application~1json/schema"
ALL = {"include_disabled": "true", "include_expired": "true"}
NEWER_KEY_FIELDS = {"last_used_at", "external_user"}


# -- fixtures and helpers ----------------------------------------------------------------
@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validate(spec: dict[str, Any]) -> Any:
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    def check(instance: object, pointer: str) -> None:
        schema = {"$ref": SPEC_URI + pointer}
        checker = Draft202012Validator.FORMAT_CHECKER
        Draft202012Validator(schema, registry=registry, format_checker=checker).validate(instance)

    return check


@pytest.fixture
def world() -> World:
    return World(seed=7, workspaces=2, keys_per_workspace=250)


@pytest.fixture
def sim(world: World) -> Simulator:
    return Simulator(world, token=TOKEN, seed=3)


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    """In-process client through httpx.MockTransport."""
    base = "http://simulator.test/api/v1"
    with httpx.Client(transport=sim.mock_transport(), base_url=base, headers=AUTH) as c:
        yield c


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim) as running:
        yield running


@pytest.fixture
def http(server: SimulatorServer) -> Iterator[httpx.Client]:
    """A client over a real loopback socket."""
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as c:
        yield c


def body(response: httpx.Response) -> Any:
    """Parse like a careful client: every JSON number with a fraction as Decimal."""
    return json.loads(response.content, parse_float=Decimal)


def fetch_all(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    while True:
        page = body(client.get("/keys", params={**params, "offset": str(len(keys))}))["data"]
        if not page:
            return keys
        keys.extend(page)


def control_url(server: SimulatorServer, action: str) -> str:
    return server.base_url.removesuffix("/api/v1") + "/_sim/" + action


# -- payload shape -----------------------------------------------------------------------
def test_keys_page_matches_reference_schema(client: httpx.Client, validate: Any) -> None:
    for params in ({}, ALL):
        validate(body(client.get("/keys", params=params)), KEYS_200)
    key = body(client.get("/keys"))["data"][0]
    with pytest.raises(ValidationError):  # the $ref really reaches the reference schema
        validate({"data": [{**key, "usage": "0.5"}]}, KEYS_200)


def test_single_key_matches_reference_schema(
    client: httpx.Client, world: World, validate: Any
) -> None:
    key_hash = world.live_hashes(world.workspace_ids[1])[-1]
    validate(body(client.get(f"/keys/{key_hash}")), KEY_200)


def test_workspaces_match_reference_schema(client: httpx.Client, validate: Any) -> None:
    payload = body(client.get("/workspaces"))
    validate(payload, WORKSPACES_200)
    assert payload["total_count"] == 2


def test_error_bodies_match_reference_schema(sim: Simulator, validate: Any) -> None:
    cases = [
        ("/api/v1/keys", "", {}, "UnauthorizedResponse", 401),
        ("/api/v1/keys", "offset=x", AUTH, "BadRequestResponse", 400),
        ("/api/v1/keys/nope", "", AUTH, "NotFoundResponse", 404),
    ]
    for path, query, headers, schema, status in cases:
        response = sim.handle("GET", path, query, headers)
        assert response.status == status
        validate(json.loads(response.body), f"#/components/schemas/{schema}")
    sim.faults.error_rate = 1.0
    failed = sim.handle("GET", "/api/v1/keys", "", AUTH)
    validate(json.loads(failed.body), "#/components/schemas/InternalServerResponse")


def test_keys_carry_exactly_the_reference_fields_plus_newer_ones(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    item_schema = spec["paths"]["/keys"]["get"]["responses"]["200"]["content"]
    properties = item_schema["application/json"]["schema"]["properties"]["data"]["items"]
    expected = set(properties["properties"]) | NEWER_KEY_FIELDS
    keys = fetch_all(client, **ALL)
    assert len(keys) == 250
    assert all(set(key) == expected for key in keys)


def test_schema_drift_adds_unknown_fields_that_still_validate(
    sim: Simulator, client: httpx.Client, world: World, validate: Any
) -> None:
    sim.faults.schema_drift = True
    page = body(client.get("/keys"))
    validate(page, KEYS_200)
    assert "new_top_level_field" in page
    assert all("new_field_x" in key and set(key) >= NEWER_KEY_FIELDS for key in page["data"])
    single = body(client.get(f"/keys/{page['data'][0]['hash']}"))
    validate(single, KEY_200)
    assert "new_field_x" in single["data"]


def test_money_is_written_as_exact_json_numbers(client: httpx.Client, world: World) -> None:
    tiny, exact = world.create_key(), world.create_key()
    world.spend(tiny, Decimal("1E-9"))
    world.spend(exact, Decimal("0.1234567891"), byok=Decimal("3.0000000001"))
    world.spend(exact, Decimal("1E-9"))
    assert b'"usage":1E-9' in client.get(f"/keys/{tiny}").content
    key = body(client.get(f"/keys/{exact}"))["data"]
    assert key["usage"] == key["usage_daily"] == Decimal("0.1234567901")
    assert key["byok_usage_monthly"] == Decimal("3.0000000001")
    assert (
        encode_json({"a": [Decimal("1E+2"), None, True, 'zé"']})
        == b'{"a":[1E+2,null,true,"z\xc3\xa9\\""]}'
    )


def test_limit_remaining_follows_the_reset_period_and_byok_setting(world: World) -> None:
    key_hash = world.create_key()
    world.update_key(key_hash, limit=Decimal(10), limit_reset="daily", include_byok_in_limit=True)
    world.spend(key_hash, Decimal(3), byok=Decimal(2))
    key = world.find_key(key_hash)
    assert key is not None
    assert world.key_payload(key)["limit_remaining"] == Decimal(5)
    world.update_key(key_hash, include_byok_in_limit=False)
    assert world.key_payload(key)["limit_remaining"] == Decimal(7)
    world.advance(timedelta(days=1), activity=False)
    assert world.key_payload(key)["limit_remaining"] == Decimal(10)
    world.update_key(key_hash, limit_reset=None, limit=Decimal(2))
    assert world.key_payload(key)["limit_remaining"] == Decimal(0)
    world.update_key(key_hash, limit=None)
    assert world.key_payload(key)["limit_remaining"] is None


def test_update_key_rejects_unknown_fields_and_inexact_limits(world: World) -> None:
    key_hash = world.create_key()
    with pytest.raises(TypeError):
        world.update_key(key_hash, usage=Decimal(1))
    with pytest.raises(TypeError):
        world.update_key(key_hash, limit=1.5)
    with pytest.raises(ValueError):
        world.update_key(key_hash, limit_reset="yearly")


# -- the API over a real socket ----------------------------------------------------------
def test_missing_or_wrong_token_gets_401_without_echoing_it(server: SimulatorServer) -> None:
    missing = httpx.get(server.base_url + "/keys")
    assert missing.status_code == 401
    assert missing.json() == {"error": {"code": 401, "message": "Missing Authentication header"}}
    for value in ("Bearer wrong-secret-xyz", f"Basic {TOKEN}", "wrong-secret-xyz"):
        wrong = httpx.get(server.base_url + "/keys", headers={"Authorization": value})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == 401
        assert "wrong-secret-xyz" not in wrong.text and TOKEN not in wrong.text
        assert all("wrong-secret" not in v for v in wrong.headers.values())


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/keys", {"offset": "-1"}),
        ("/keys", {"offset": "abc"}),
        ("/keys", {"offset": "1.5"}),
        ("/keys", {"include_disabled": "yes"}),
        ("/keys", {"include_expired": "1"}),
        ("/keys", {"workspace_id": "not-a-uuid"}),
        ("/workspaces", {"limit": "0"}),
        ("/workspaces", {"limit": "101"}),
        ("/workspaces", {"offset": "-3"}),
    ],
)
def test_invalid_query_parameters_get_400(
    http: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = http.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400
    assert response.headers["content-type"] == "application/json"


def test_unknown_workspace_gets_404(http: httpx.Client) -> None:
    response = http.get("/keys", params={"workspace_id": "00000000-0000-4000-8000-000000000000"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


def test_keys_come_newest_first_in_pages_of_100_then_an_empty_page(
    http: httpx.Client, world: World
) -> None:
    sizes = [
        len(body(http.get("/keys", params={**ALL, "offset": o}))["data"])
        for o in (0, 100, 200, 250, 900)
    ]
    assert sizes == [100, 100, 50, 0, 0]
    keys = fetch_all(http, **ALL)
    order = [(k["created_at"], k["hash"]) for k in keys]
    assert order == sorted(order, reverse=True)
    assert [k["hash"] for k in keys] == world.live_hashes(world.default_workspace_id)


def test_disabled_and_expired_keys_are_listed_only_when_asked(
    http: httpx.Client, world: World
) -> None:
    plain = [
        k["hash"]
        for k in world.truth_keys()
        if k["workspace_id"] == world.default_workspace_id
        and not k["disabled"]
        and k["expires_at"] is None
        and k["deleted_at"] is None
    ]
    disabled, expired = plain[:2]
    world.update_key(disabled, disabled=True)
    world.update_key(expired, expires_at=world.now - timedelta(seconds=1))
    now = world.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def listed(**params: str) -> dict[str, dict[str, Any]]:
        return {k["hash"]: k for k in fetch_all(http, **params)}

    default = listed()
    assert disabled not in default and expired not in default
    assert not any(k["disabled"] or (k["expires_at"] or "9") <= now for k in default.values())
    with_disabled = listed(include_disabled="true")
    assert disabled in with_disabled and expired not in with_disabled
    with_expired = listed(include_expired="true", include_disabled="false")
    assert expired in with_expired and disabled not in with_expired
    assert len(listed(**ALL)) == world.live_key_count(world.default_workspace_id)


def test_default_workspace_is_served_without_workspace_id(http: httpx.Client, world: World) -> None:
    default, other = world.workspace_ids
    implicit = fetch_all(http, **ALL)
    assert implicit == fetch_all(http, workspace_id=default, **ALL)
    assert {k["workspace_id"] for k in implicit} == {default}
    assert {k["workspace_id"] for k in fetch_all(http, workspace_id=other.upper(), **ALL)} == {
        other
    }
    assert body(http.get("/workspaces"))["data"][0]["id"] == default


def test_workspaces_page_by_offset_and_limit(http: httpx.Client, world: World) -> None:
    page = body(http.get("/workspaces", params={"offset": "1", "limit": "1"}))
    assert [w["id"] for w in page["data"]] == world.workspace_ids[1:]
    assert page["total_count"] == 2


def test_date_header_is_the_simulated_time(http: httpx.Client, world: World) -> None:
    world.advance(timedelta(days=3, seconds=1234.5), activity=False)
    for path in ("/keys", "/workspaces", "/keys/unknown"):
        sent = parsedate_to_datetime(http.get(path).headers["date"])
        assert sent == world.now.replace(microsecond=0)
    assert world.now == datetime(2026, 11, 5, 9, 20, 34, 500000, tzinfo=timezone.utc)


def test_deleted_key_gets_404(http: httpx.Client, world: World) -> None:
    key_hash = world.live_hashes(world.default_workspace_id)[5]
    assert http.get(f"/keys/{key_hash}").status_code == 200
    world.delete_key(key_hash)
    response = http.get(f"/keys/{key_hash}")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": 404, "message": "Resource not found"}}
    assert key_hash not in {k["hash"] for k in fetch_all(http, **ALL)}


def test_unknown_paths_get_404_and_other_methods_405(http: httpx.Client) -> None:
    assert http.get("/credits").status_code == 404
    assert http.get("/keys/a/b").json()["error"]["code"] == 404
    response = http.post("/keys", json={"name": "x"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == 405


def test_control_endpoints_advance_report_and_reconfigure(
    http: httpx.Client, server: SimulatorServer, world: World, sim: Simulator
) -> None:
    start = world.now
    assert httpx.post(control_url(server, "advance?seconds=60")).status_code == 401
    advanced = http.post(control_url(server, "advance"), params={"seconds": "86400"})
    assert advanced.json()["now"] == "2026-11-03T09:00:00.000Z"
    assert world.now == start + timedelta(days=1)
    truth = http.get(control_url(server, "truth")).json()
    assert len(truth["keys"]) == len(world.truth_keys())
    assert all(isinstance(k["usage"], str) for k in truth["keys"])
    assert {(d["hash"], date.fromisoformat(d["day"])) for d in truth["daily_spend"]} == set(
        world.daily_spend()
    )
    changed = http.post(control_url(server, "faults"), json={"ignore_offset": True, "drop_rate": 0})
    assert changed.json()["ignore_offset"] is True and sim.faults.ignore_offset
    assert http.post(control_url(server, "faults"), json={"nope": 1}).status_code == 400
    assert http.post(control_url(server, "faults"), json={"drop_rate": "x"}).status_code == 400
    assert http.get(control_url(server, "stats")).json()["by_kind"]["control"] >= 5


def test_concurrent_clients_while_time_advances(server: SimulatorServer, world: World) -> None:
    failures: list[int] = []

    def page_through() -> None:
        with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
            for offset in range(0, 300, 100):
                response = c.get("/keys", params={"offset": offset})
                json.loads(response.content)
                if response.status_code != 200:
                    failures.append(response.status_code)

    threads = [threading.Thread(target=page_through) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        world.advance(timedelta(hours=3))
    for thread in threads:
        thread.join()
    assert failures == []


# -- determinism and simulated time ------------------------------------------------------
def test_same_seed_gives_identical_truth_and_different_seeds_differ() -> None:
    def run(seed: int) -> tuple[dict[str, Any], object]:
        world = World(seed=seed, workspaces=2, keys_per_workspace=40)
        for hours in (5, 19, 30, 1):
            world.advance(timedelta(hours=hours))
        world.create_key(world.workspace_ids[1])
        return world.truth_json(), world.daily_spend()

    assert run(11) == run(11)
    assert run(11)[0] != run(12)[0]


def test_counters_reset_at_midnight_monday_and_the_first(world: World) -> None:
    key_hash = world.create_key()  # at Monday 2026-11-02 09:00 UTC
    key = world.find_key(key_hash)
    assert key is not None
    world.spend(key_hash, Decimal("1.5"), byok=Decimal("0.25"))

    def counters() -> str:
        """usage, daily, weekly, monthly, then the byok ones, as exact decimal text."""
        p = world.key_payload(key)
        periods = ("", "_daily", "_weekly", "_monthly")
        return " ".join(
            str(p[kind + period]) for kind in ("usage", "byok_usage") for period in periods
        )

    world.advance(timedelta(hours=14, minutes=59, seconds=59, milliseconds=999), activity=False)
    assert counters() == "1.5 1.5 1.5 1.5 0.25 0.25 0.25 0.25"  # Monday 23:59:59.999
    world.advance(timedelta(milliseconds=1), activity=False)
    assert counters() == "1.5 0 1.5 1.5 0.25 0 0.25 0.25"  # Tuesday 00:00
    world.advance(timedelta(days=6), activity=False)
    assert counters() == "1.5 0 0 1.5 0.25 0 0 0.25"  # Monday 2026-11-09
    world.advance(datetime(2026, 11, 30, 12, tzinfo=timezone.utc) - world.now, activity=False)
    world.spend(key_hash, Decimal("2"))
    assert counters() == "3.5 2 2 3.5 0.25 0 0 0.25"  # Monday Nov 30
    world.advance(timedelta(hours=12), activity=False)
    assert counters() == "3.5 0 2 0 0.25 0 0 0"  # Tuesday Dec 1: same week, new month


def test_period_counters_agree_with_the_daily_ledger_at_every_capture() -> None:
    world = World(seed=4, workspaces=2, keys_per_workspace=60)
    for _ in range(16):  # odd steps so captures land at all times of day, across weeks and Dec 1
        world.advance(timedelta(hours=47, minutes=13, seconds=7))
        today = world.now.date()
        monday, first = today - timedelta(days=today.weekday()), today.replace(day=1)
        ledger = world.daily_spend()
        for key in world.truth_keys():
            for slot, prefix in enumerate(("usage", "byok_usage")):
                spent = {d: v[slot] for (h, d), v in ledger.items() if h == key["hash"]}
                zero = Decimal(0)
                assert key[prefix] == sum(spent.values(), zero)
                day_start = sum((v for d, v in spent.items() if d < today), zero)
                assert key[prefix] - key[prefix + "_daily"] == day_start
                assert key[prefix + "_weekly"] == sum(
                    (v for d, v in spent.items() if d >= monday), zero
                )
                assert key[prefix + "_monthly"] == sum(
                    (v for d, v in spent.items() if d >= first), zero
                )
    assert world.now.month == 12


def test_activity_creates_renames_disables_spends_and_deletes_keys() -> None:
    rates = ActivityRates(creates=0.1, renames=0.1, disables=0.1, relimits=0.1, deletes=0.05)
    world = World(seed=9, workspaces=1, keys_per_workspace=100, rates=rates)
    start = world.now
    before = {k["hash"]: k for k in world.truth_keys()}
    world.advance(timedelta(days=5))
    after = world.truth_keys()
    stamp = start.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert sum(k["hash"] not in before for k in after) > 10
    assert sum(k["deleted_at"] is not None for k in after) > 5
    assert sum(k["name"] != before.get(k["hash"], k)["name"] for k in after) > 5
    assert sum(k["updated_at"] > stamp for k in after) > 20
    assert sum((k["last_used_at"] or "") > stamp for k in after) > 50
    live = world.page(None, 0, include_disabled=True, include_expired=True)
    assert [k.created_at for k in live] == sorted((k.created_at for k in live), reverse=True)
    assert world.key_payload(live[0])["created_at"] > stamp  # new keys list first


# -- faults ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "seconds"), [("seconds", 2.0), ("seconds", 0.25), ("http-date", 2.0), ("none", 1.0)]
)
def test_429_carries_retry_after_in_the_chosen_form(
    sim: Simulator, client: httpx.Client, validate: Any, mode: str, seconds: float
) -> None:
    sim.faults.update({"rate_limit_rate": 1.0, "retry_after": mode, "retry_after_seconds": seconds})
    sim.world.advance(timedelta(milliseconds=400), activity=False)
    response = client.get("/keys")
    assert response.status_code == 429
    validate(response.json(), "#/components/schemas/TooManyRequestsResponse")
    retry_after = response.headers.get("retry-after")
    if mode == "seconds":
        assert retry_after == ("2" if seconds == 2 else "0.25")
    elif mode == "http-date":
        assert retry_after is not None
        wait = parsedate_to_datetime(retry_after) - sim.world.now
        assert timedelta(seconds=seconds) <= wait < timedelta(seconds=seconds + 1)
    else:
        assert retry_after is None
    assert sim.stats.faults["rate_limited"] == 1


def test_date_offset_moves_the_date_header_but_not_the_world_clock(
    http: httpx.Client, server: SimulatorServer, world: World
) -> None:
    ten_years = 3650 * 86400
    changed = http.post(control_url(server, "faults"), json={"date_offset_seconds": ten_years})
    assert changed.json()["date_offset_seconds"] == ten_years
    before = world.now.replace(microsecond=0)  # Date has whole seconds
    response = http.get(server.base_url + "/keys")
    assert parsedate_to_datetime(response.headers["date"]) == before + timedelta(days=3650)
    assert world.now.replace(microsecond=0) == before  # counters follow the world
    assert response.json()["data"][0]["usage_daily"] is not None


def test_date_alternate_swings_the_date_header_both_ways(
    sim: Simulator, client: httpx.Client
) -> None:
    sim.faults.update({"date_alternate_seconds": 2 * 86400})
    now = sim.world.now.replace(microsecond=0)
    shifts = [parsedate_to_datetime(client.get("/keys").headers["date"]) - now for _ in range(4)]
    assert shifts == [timedelta(days=2), timedelta(days=-2)] * 2


def test_error_burst_gives_that_many_5xx_in_a_row(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.error_rate, sim.faults.error_burst = 1.0, 3
    first = client.get("/keys")
    sim.faults.error_rate = 0.0
    statuses = [first.status_code] + [client.get("/workspaces").status_code for _ in range(3)]
    assert set(statuses[:3]) <= {500, 502, 503, 504}
    assert statuses[3] == 200
    assert first.json()["error"]["code"] == first.status_code
    assert sim.stats.faults["server_errors"] == 3


def test_garbled_errors_are_truncated_json_or_html(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.update({"error_rate": 1.0, "garbled_error_rate": 1.0})
    kinds = set()
    for _ in range(12):
        response = client.get("/keys")
        assert response.status_code >= 500
        if response.headers["content-type"] == "text/html":
            kinds.add("html")
            assert response.text.startswith("<html>")
        else:
            kinds.add("truncated")
            with pytest.raises(json.JSONDecodeError):
                response.json()
    assert kinds == {"html", "truncated"}


def test_drop_closes_the_connection_without_a_response(
    sim: Simulator, http: httpx.Client, client: httpx.Client
) -> None:
    sim.faults.drop_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/keys")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/keys")
    sim.faults.drop_rate = 0.0
    assert http.get("/keys").status_code == 200  # the client reconnects
    assert sim.stats.faults["dropped"] == 2


def test_malformed_json_page_is_invalid_json(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.malformed_json_rate = 1.0
    for offset in (0, 100, 5000):
        response = client.get("/keys", params={"offset": offset})
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            response.json()


def test_drift_deletes_and_creates_keys_between_pages(
    sim: Simulator, client: httpx.Client, world: World
) -> None:
    ws = world.default_workspace_id
    sim.faults.drift_deletes_per_page, sim.faults.drift_creates_per_page = 3, 2
    first = body(client.get("/keys", params=ALL))["data"]
    assert world.live_key_count(ws) == 249
    deleted = [k for k in world.truth_keys() if k["deleted_at"] is not None]
    assert len(deleted) == 3
    sim.faults.drift_deletes_per_page = sim.faults.drift_creates_per_page = 0
    again = body(client.get("/keys", params=ALL))["data"]
    assert {k["hash"] for k in again[:2]}.isdisjoint(k["hash"] for k in first)
    assert {k["created_at"] for k in again[:2]} == {iso_ms(world.now)}  # created at the head
    gone = {k["hash"] for k in deleted}
    assert gone.isdisjoint(k["hash"] for k in fetch_all(client, **ALL))
    assert sim.stats.faults["drift_deletes"] == 3 and sim.stats.faults["drift_creates"] == 2


def test_page_sizes_schedule_sizes_successive_pages(
    sim: Simulator, client: httpx.Client, world: World
) -> None:
    sim.faults.update({"page_sizes": [3, 150, 7]})
    sizes = [len(body(client.get("/keys", params=ALL))["data"]) for _ in range(4)]
    assert sizes == [3, 150, 7, 3]
    for bad in ([0], [2, "3"], "7", [True]):
        with pytest.raises(ValueError, match="page_sizes"):
            sim.faults.update({"page_sizes": bad})


def test_duplicate_key_is_listed_twice_next_to_itself(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.update({"duplicate_key_rate": 1.0})
    hashes = [k["hash"] for k in body(client.get("/keys", params=ALL))["data"]]
    assert len(hashes) == 101 and len(set(hashes)) == 100
    twin = next(i for i in range(100) if hashes[i] == hashes[i + 1])
    assert hashes[:twin] + hashes[twin + 1 :] == [
        k.hash for k in sim.world.page(None, 0, include_disabled=True, include_expired=True)
    ]
    assert sim.stats.faults["duplicated_keys"] == 1


def test_drift_schedule_changes_keys_after_the_next_pages_only(
    sim: Simulator, client: httpx.Client, world: World
) -> None:
    ws = world.default_workspace_id
    client.get("/keys", params=ALL)  # a schedule counts from when it is set
    sim.faults.update({"drift_schedule": [[2, 0], [0, 5]]})
    counts = []
    for _ in range(3):
        client.get("/keys", params=ALL)
        counts.append(world.live_key_count(ws))
    assert counts == [248, 253, 253]
    with pytest.raises(ValueError, match="drift_schedule"):
        sim.faults.update({"drift_schedule": [[1]]})


def test_ignore_offset_repeats_the_first_page(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.ignore_offset = True
    first = body(client.get("/keys", params=ALL))["data"]
    assert body(client.get("/keys", params={**ALL, "offset": "100"}))["data"] == first
    assert body(client.get("/keys", params={**ALL, "offset": "900"}))["data"] == first


def test_slow_response_outlasts_the_client_timeout(
    sim: Simulator, http: httpx.Client, client: httpx.Client
) -> None:
    sim.faults.slow_rate, sim.faults.slow_seconds = 1.0, 0.4
    with pytest.raises(httpx.ReadTimeout):
        http.get("/keys", timeout=0.1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/keys", timeout=0.1)  # in-process: raised at once, no sleeping
    assert time.monotonic() - started < 0.3
    assert sim.stats.faults["slow"] == 2


def test_latency_delays_every_request(world: World) -> None:
    sim = Simulator(world, token=TOKEN, latency_ms=60)
    with httpx.Client(
        transport=sim.mock_transport(), base_url="http://s/api/v1", headers=AUTH
    ) as c:
        started = time.monotonic()
        c.get("/workspaces")
        assert time.monotonic() - started >= 0.06


def test_faults_are_reproducible_for_a_seed(world: World) -> None:
    def statuses(seed: int) -> list[int]:
        faults = Faults(rate_limit_rate=0.3, error_rate=0.2, error_burst=2)
        sim = Simulator(world, token=TOKEN, faults=faults, seed=seed)
        return [sim.handle("GET", "/api/v1/workspaces", "", AUTH).status for _ in range(40)]

    assert statuses(1) == statuses(1)
    assert statuses(1) != statuses(2)
    assert {429, 200} <= set(statuses(1))


def test_echo_credentials_quotes_the_presented_key_in_errors_only(world: World) -> None:
    sim = Simulator(world, token=TOKEN, faults=Faults(echo_credentials="upper"))
    wrong = {"Authorization": "Bearer wrong-key"}
    refused = sim.handle("GET", "/api/v1/keys", "", wrong)
    assert refused.status == 401
    assert refused.headers["X-Echoed-Credentials"] == "WRONG-KEY"
    assert (
        "request failed for credentials WRONG-KEY" in json.loads(refused.body)["error"]["message"]
    )
    served = sim.handle("GET", "/api/v1/keys", "", AUTH)
    assert served.status == 200 and "X-Echoed-Credentials" not in served.headers
    with pytest.raises(ValueError, match="bad value for fault setting: echo_credentials"):
        sim.faults.update({"echo_credentials": "rot13"})


def test_stats_count_requests_by_kind(sim: Simulator, client: httpx.Client) -> None:
    client.get("/keys")
    client.get("/keys/abc")
    client.get("/workspaces")
    client.get("/other")
    assert sim.stats.requests == 4
    assert sim.stats.by_kind == {"keys": 1, "key": 1, "workspaces": 1, "other": 1}


def test_run_simulator_serves_its_world() -> None:
    with run_simulator(seed=2, keys_per_workspace=30, token="t") as running:
        assert running.base_url.startswith("http://127.0.0.1:")
        assert running.base_url.endswith("/api/v1")
        response = httpx.get(running.base_url + "/keys", headers={"Authorization": "Bearer t"})
        world = running.simulator.world
        served = world.page(None, 0, include_disabled=False, include_expired=False)
        assert [k["hash"] for k in response.json()["data"]] == [k.hash for k in served]


# -- the simulate command ----------------------------------------------------------------
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_simulate_command_serves_until_signalled(stop_signal: signal.Signals) -> None:
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
        "20",
        "--schema-drift",
        "--retry-after",
        "http-date",
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
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v1")
        response = httpx.get(base_url + "/keys", headers={"Authorization": "Bearer cli-token"})
        assert len(response.json()["data"]) > 0
        assert "new_field_x" in response.json()["data"][0]
        proc.send_signal(stop_signal)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "_sim/advance" in stderr and "Traceback" not in stderr
    assert "cli-token" not in stderr


def test_simulate_command_documents_every_option() -> None:
    from etl.cli.simulate import simulate

    for param in simulate.params:
        assert isinstance(param, click.Option) and param.help, param.name


def test_touch_spends_a_small_exact_amount_on_an_exact_share_of_live_keys(
    http: httpx.Client, server: SimulatorServer, world: World
) -> None:
    before = {k["hash"]: (k["workspace_id"], k["usage"]) for k in world.truth_keys()}
    assert httpx.post(control_url(server, "touch?fraction=0.1")).status_code == 401
    for bad in ("", "x", "1.5", "-0.1", "nan", "0.1e1"):
        assert http.post(control_url(server, "touch"), params={"fraction": bad}).status_code == 400
    touched = http.post(control_url(server, "touch"), params={"fraction": "0.1"})
    assert touched.status_code == 200 and touched.json()["touched"] == 50
    after = {k["hash"]: k["usage"] for k in world.truth_keys()}
    spent = {h: after[h] - usage for h, (_, usage) in before.items() if after[h] != usage}
    assert set(spent.values()) == {Decimal("0.0001")}
    assert sum(before[h][0] == world.workspace_ids[0] for h in spent) == 25  # 10% of 250
    # The same seed and calls choose the same keys.
    twin = World(seed=7, workspaces=2, keys_per_workspace=250)
    twin_before = {k["hash"]: k["usage"] for k in twin.truth_keys()}
    assert twin.touch(0.1) == 50
    assert {k["hash"] for k in twin.truth_keys() if k["usage"] != twin_before[k["hash"]]} == set(
        spent
    )
