"""Fuzzed key payloads served by the simulator: stored faithfully or refused cleanly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.exact_json import dump_json, parse_json
from etl.openrouter import records
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.sync import run_sync
from models import ApiKey, Base, UsageSnapshot
from tests.helpers import key_payload

TOKEN = "sk-or-v1-fuzz"

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d.adjusted()) < 60
    ),
    st.text(max_size=30),
    st.just(""),
    st.just("x" * 5000),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = list(key_payload())
RAW_TOKENS = ["NaN", "Infinity", '"\\ud800"', "1e999", "-0", "1E-400"]


@st.composite
def fuzzed_key(draw: st.DrawFn, n: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A key payload with some fields replaced, removed or added, plus raw JSON tokens
    to splice in where a parsed value cannot express them."""
    payload = key_payload(n)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        action = draw(st.sampled_from(["replace", "drop"]))
        if action == "drop":
            payload.pop(name, None)
        else:
            payload[name] = draw(JSON_VALUES)
    for name in draw(st.lists(st.text(min_size=1, max_size=10), max_size=2, unique=True)):
        payload.setdefault(name, draw(JSON_VALUES))
    raw: dict[str, str] = {}
    if draw(st.booleans()) and draw(st.booleans()):
        raw[draw(st.sampled_from(FIELDS))] = draw(st.sampled_from(RAW_TOKENS))
    return payload, raw


def render(page: list[tuple[dict[str, Any], dict[str, str]]]) -> bytes:
    items = []
    for payload, raw in page:
        text = dump_json({k: v for k, v in payload.items() if k not in raw})
        extra = "".join(f",{dump_json(k)}:{token}" for k, token in raw.items())
        items.append(text[:-1] + extra + "}" if text != "{}" else "{" + extra[1:] + "}")
    return ('{"data":[' + ",".join(items) + "]}").encode()


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    # Sorted: key n is n minutes old, so the page is newest first, as the API's are
    # (a fuzzed created_at may still break the order, which must then fail cleanly).
    page=st.lists(st.integers(0, 10**6), min_size=1, max_size=4, unique=True)
    .map(sorted)
    .flatmap(lambda ns: st.tuples(*(fuzzed_key(n) for n in ns)))
)
def test_fuzzed_payloads_are_stored_faithfully_or_refused(
    engine: Engine, page: tuple[tuple[dict[str, Any], dict[str, str]], ...]
) -> None:
    reset(engine)
    simulator = Simulator(World(seed=1, workspaces=1, keys_per_workspace=0), token=TOKEN)
    body = render(list(page))
    original = simulator.handle

    def serve_fuzz(method: str, path: str, query: str, *rest: Any) -> Any:
        response = original(method, path, query, *rest)
        if path.endswith("/keys") and "offset=0" in query:
            return type(response)(200, response.headers, body)
        return response

    simulator.handle = serve_fuzz  # type: ignore[method-assign]
    account = Account(
        name="fuzz",
        management_key=Secret(TOKEN),
        workspaces=None,
        client=ClientSettings(
            base_url="http://sim/api/v1", requests_per_second=1e6, max_attempts=2
        ),
    )
    result = run_sync(  # never raises for a bad page: the workspace fails instead
        engine,
        Settings(database_url=str(engine.url), accounts=(account,)),
        client_factory=lambda a: OpenRouterClient(
            a.client, a.management_key, transport=simulator.mock_transport()
        ),
    )
    (workspace,) = result.workspaces
    event(f"workspace {workspace.status}")  # both outcomes must be exercised
    with engine.connect() as connection:
        stored = {row.hash: row for row in connection.execute(select(ApiKey))}
        snapshots = connection.scalar(select(func.count()).select_from(UsageSnapshot))
    if workspace.status == "failed":
        assert workspace.error and "\n" not in workspace.error
        assert "offset 0" in workspace.error or "workspace" in workspace.error
        assert stored == {} and snapshots == 0  # nothing of the failed workspace
        return
    assert workspace.status == "ok", workspace.error
    parsed = parse_json(body)["data"]
    assert len(stored) == len({key["hash"] for key in parsed})
    for key in parsed:
        row = stored[key["hash"]]
        assert parse_json(row.raw_json.encode()) == key  # every field, unknown ones too
        assert row.usage == Decimal(key["usage"])
        assert row.name == key["name"]


def _outcome(parse: Any, body: Any) -> Any:
    try:
        return parse(body)
    except Exception as exc:  # compared by type: both paths must fail alike
        return type(exc)


def assert_parsings_agree(payload: dict[str, Any]) -> None:
    """parse_key's fast path accepts only what the field-by-field path accepts, and
    builds the same record; anything else it leaves to the checked path."""
    body = parse_json(dump_json(payload))
    usual = _outcome(records._parse_usual_key, body)
    checked = _outcome(lambda b: records._parse_checked_key(b, None), body)
    if usual is None:
        return
    if isinstance(usual, type):  # raised: so must the checked path, alike
        assert checked is usual
        return
    assert isinstance(checked, records.KeyRecord), f"usual path accepted what fails: {checked}"
    assert repr(usual) == repr(checked)
    assert usual.raw is checked.raw


@settings(max_examples=300, deadline=None)
@given(fuzzed_key(1))
def test_usual_and_checked_key_parsing_agree(case: tuple[dict[str, Any], dict[str, str]]) -> None:
    assert_parsings_agree(case[0])


PROBES = [
    *[None, True, False, 0, 1, -1, 10**40, "", "x", "\ud800", [], {"a": 1}],
    *[Decimal("1.5"), Decimal("-0"), Decimal("1E+40"), Decimal("1E-31"), Decimal("1E-30")],
    *["2026-11-02T08:59:00Z", "2026-11-02T08:59:00+05:00", "2026-11-02", "not a time"],
    *["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"],  # past UTC's range
    # Text at and past the columns' limits, and past the length the usual path checks.
    *["x" * 32, "x" * 33, "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 20_000],
    *["é" * 32_767, "é" * 32_768, "😀" * 16_384, "a\x00b"],
]


@pytest.mark.parametrize("field", FIELDS)
def test_usual_and_checked_key_parsing_agree_on_every_field(field: str) -> None:
    without = key_payload(2)
    del without[field]
    assert_parsings_agree(without)
    for value in PROBES:
        assert_parsings_agree({**key_payload(2), field: value})


def test_a_plain_key_takes_the_usual_path() -> None:
    assert records._parse_usual_key(parse_json(dump_json(key_payload(3)))) is not None
