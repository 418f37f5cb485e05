"""Fuzzed key payloads served by the simulator: stored faithfully or refused cleanly."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select

from etl.core.column_limits import MONEY_FRACTION_DIGITS, MONEY_INTEGER_DIGITS, TEXT_UTF8_BYTES
from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.errors import PayloadError
from etl.core.exact_json import dump_json, parse_json
from etl.core.key_fields import KEY_FIELDS, KeyField, Kind
from etl.openrouter.client import OpenRouterClient
from etl.openrouter.records import parse_key
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


def expected_outcome(payload: dict[str, Any]) -> dict[str, Any] | str:
    """What the declared rules (etl.core.key_fields) make of ``payload``, worked out
    slowly and apart from the parser: every field's value, or the first field (in the
    declaration's order) that they refuse."""
    values: dict[str, Any] = {}
    for field in KEY_FIELDS:
        value = payload.get(field.name, ABSENT)
        if field.primary_key and not (isinstance(value, str) and value):
            return field.name
        if value is ABSENT:
            if field.required:
                return field.name
            values[field.name] = None
        elif value is None and field.nullable:
            values[field.name] = None
        else:
            ok, converted = RULES[field.kind](value, field)
            if not ok:
                return field.name
            values[field.name] = converted
    return values


ABSENT = object()


def text_rule(value: Any, field: KeyField) -> tuple[bool, Any]:
    if not isinstance(value, str) or "\x00" in value:
        return False, None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False, None
    if field.max_length is not None:
        return len(value) <= field.max_length, value
    return size <= TEXT_UTF8_BYTES, value


def boolean_rule(value: Any, field: KeyField) -> tuple[bool, Any]:
    return isinstance(value, bool), value


def money_rule(value: Any, field: KeyField) -> tuple[bool, Any]:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return False, None
    amount = Decimal(value)
    if not amount.is_finite():
        return False, None
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    significant = "".join(map(str, digits)).rstrip("0") if exponent < 0 else "x"
    stripped = len("".join(map(str, digits))) - len(significant) if exponent < 0 else 0
    fraction = max(0, -(exponent + min(stripped, -exponent)))
    integer = max(0, len(digits) + exponent)
    fits = amount.is_zero() or (
        fraction <= MONEY_FRACTION_DIGITS and integer <= MONEY_INTEGER_DIGITS
    )
    return fits, amount


def timestamp_rule(value: Any, field: KeyField) -> tuple[bool, Any]:
    if not isinstance(value, str):
        return False, None
    try:
        moment = datetime.fromisoformat(re.sub("[Zz]$", "+00:00", value))
        moment = (
            moment.replace(tzinfo=timezone.utc)
            if moment.tzinfo is None
            else moment.astimezone(timezone.utc)
        )
    except (ValueError, OverflowError):
        return False, None
    return True, moment


RULES = {
    Kind.TEXT: text_rule,
    Kind.BOOLEAN: boolean_rule,
    Kind.MONEY: money_rule,
    Kind.TIMESTAMP: timestamp_rule,
}


def assert_parsed_by_the_declared_rules(payload: dict[str, Any]) -> None:
    """parse_key accepts exactly what the declared rules accept, with the same values,
    and names the field they refuse first."""
    body = parse_json(dump_json(payload))
    expected = expected_outcome(body)
    try:
        record = parse_key(body, offset=0)
    except PayloadError as refused:
        assert isinstance(expected, str), f"refused what the rules accept: {refused}"
        assert f"field '{expected}' " in str(refused)
        assert "\n" not in str(refused)  # one line, as the run ledger keeps it
        return
    assert isinstance(expected, dict), f"accepted a key whose {expected!r} the rules refuse"
    for name, value in expected.items():
        parsed = getattr(record, name)
        assert type(parsed) is type(value) and parsed == value, name
        if isinstance(value, Decimal):
            assert str(parsed) == str(value), name  # every digit, as sent
    assert record.raw is body


@settings(max_examples=300, deadline=None)
@given(fuzzed_key(1))
def test_fuzzed_keys_are_parsed_by_the_declared_rules(
    case: tuple[dict[str, Any], dict[str, str]],
) -> None:
    assert_parsed_by_the_declared_rules(case[0])


PROBES = [
    *[None, True, False, 0, 1, -1, 10**40, "", "x", "\ud800", [], {"a": 1}],
    *[Decimal("1.5"), Decimal("-0"), Decimal("1E+40"), Decimal("1E-31"), Decimal("1E-30")],
    *[Decimal("1" * 35), Decimal("1" * 36), Decimal("0." + "1" * 30), Decimal("0." + "1" * 31)],
    *[Decimal("1.50000000000000000000000000000000000"), Decimal("-0." + "0" * 29 + "1")],
    *["2026-11-02T08:59:00Z", "2026-11-02T08:59:00+05:00", "2026-11-02", "not a time"],
    *["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"],  # past UTC's range
    # Text at and past the columns' limits, and past the length checked by length alone.
    *["x" * 32, "x" * 33, "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 20_000],
    *["é" * 32_767, "é" * 32_768, "😀" * 16_384, "a\x00b"],
]


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_is_parsed_by_the_declared_rules(field: str) -> None:
    without = key_payload(2)
    del without[field]
    assert_parsed_by_the_declared_rules(without)
    for value in PROBES:
        assert_parsed_by_the_declared_rules({**key_payload(2), field: value})


def test_the_rules_refuse_in_the_declarations_order() -> None:
    # Both name and usage are wrong: the earlier declared field is the one named.
    payload = key_payload(3, name=5, usage="1")
    assert expected_outcome(payload) == "name"
    with pytest.raises(PayloadError, match="field 'name' "):
        parse_key(payload, offset=0)


def test_a_plain_key_is_parsed() -> None:
    assert_parsed_by_the_declared_rules(key_payload(3))
    assert isinstance(expected_outcome(key_payload(3)), dict)
