"""The exact JSON reader and writer: every digit kept, and the writer's text pinned.

The store compares what a run writes with the raw_json earlier runs stored, so a
byte that ``dump_json`` writes differently would mark every key changed. The
expected texts below are what the writer before this module (records.dump_json, a
json.dumps with marked Decimals) wrote for the same values.
"""

from __future__ import annotations

import enum
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.core.exact_json import dump_json, parse_json, parse_json_quickly

PINNED: list[tuple[Any, str]] = [
    (
        {"hash": "ab", "usage": Decimal("1E-9"), "limit": None, "disabled": False, "n": 3},
        '{"hash":"ab","usage":1E-9,"limit":null,"disabled":false,"n":3}',
    ),
    (
        {"name": "zé 数据 🚀", "quote": 'a"b\\c', "line": "x\ny\u2028"},
        r'{"name":"z\u00e9 \u6570\u636e \ud83d\ude80","quote":"a\"b\\c","line":"x\ny\u2028"}',
    ),
    (
        {"name": "nul \x00 then 1.5", "usage": Decimal("0.30000000000000004")},
        r'{"name":"nul \u0000 then 1.5","usage":0.30000000000000004}',
    ),
    ({"\x00k": Decimal("2"), "v": [Decimal("-0.000001")]}, r'{"\u0000k":2,"v":[-0.000001]}'),
    (
        {"a": [Decimal("1.5E+2"), {"b": [None, True, []], "c": {}}, "d"], "e": Decimal("0E-10")},
        '{"a":[1.5E+2,{"b":[null,true,[]],"c":{}},"d"],"e":0E-10}',
    ),
    (
        [Decimal("123456789.0123456789"), -0, 10**30, "\x1f"],
        r'[123456789.0123456789,0,1000000000000000000000000000000,"\u001f"]',
    ),
]


@pytest.mark.parametrize(("value", "text"), PINNED)
def test_dump_json_writes_the_pinned_text(value: Any, text: str) -> None:
    assert dump_json(value) == text


@pytest.mark.parametrize(("value", "text"), PINNED)
def test_pinned_text_parses_back_to_the_same_value(value: Any, text: str) -> None:
    assert parse_json(text) == value
    assert parse_json(text.encode()) == value


def test_unescaped_form_is_utf8_as_a_server_sends_it() -> None:
    value = {"name": 'zé"\x00', "usage": Decimal("1E-9")}
    assert dump_json(value, ensure_ascii=False) == '{"name":"zé\\"\\u0000","usage":1E-9}'


# JSON values as parse_json returns them: Decimal for every number with a point or
# exponent, int for the others.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_dump_json_is_what_json_dumps_writes_with_exact_numbers(value: Any) -> None:
    text = dump_json(value)
    assert parse_json(text) == value
    # json.dumps itself, with each Decimal's str() where it cannot write one.
    assert text == _reference_dump(value)


@given(json_values)
def test_both_forms_differ_only_in_escaping(value: Any) -> None:
    assert json.loads(dump_json(value, ensure_ascii=False), parse_float=Decimal) == json.loads(
        dump_json(value), parse_float=Decimal
    )


def _reference_dump(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{json.dumps(k)}:{_reference_dump(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_reference_dump(v) for v in value) + "]"
    return json.dumps(value)


@pytest.mark.parametrize("number", [Decimal("NaN"), Decimal("-Infinity"), float("nan")])
def test_a_number_json_cannot_hold_is_refused(number: object) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        dump_json({"usage": number})


def test_a_value_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError, match="set"):
        dump_json({"tags": {"a"}})


class Tier(str, enum.Enum):
    GOLD = "gold"


class Level(enum.IntEnum):
    TWO = 2


def test_subclasses_are_written_as_json_dumps_writes_them() -> None:
    value = {"tier": Tier.GOLD, "level": Level.TWO, "pair": (1, "x"), "ratio": 0.5}
    assert dump_json(value) == json.dumps(value, separators=(",", ":"))


def test_nan_and_infinity_are_not_parsed() -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="not a valid JSON number"):
            parse_json(f'{{"usage": {constant}}}')


def _typed(value: Any) -> Any:
    """The value with the type of every scalar beside it: 1 and Decimal(1) differ."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value), str(value))


@given(json_values)
def test_parse_json_quickly_is_parse_json(value: Any) -> None:
    for text in (dump_json(value), dump_json(value, ensure_ascii=False)):
        assert _typed(parse_json_quickly(text)) == _typed(parse_json(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2.50}',  # the last of a repeated name wins
        "[1E400, -0, -0.0, 123456789012345678901234567890, 1e-7]",
        '"\\ud800"',  # a lone surrogate: msgspec refuses it, parse_json reads it
        ' {"usage" : 0.0140768076 } ',
    ],
)
def test_parse_json_quickly_reads_the_edges_as_parse_json_does(text: str) -> None:
    assert _typed(parse_json_quickly(text)) == _typed(parse_json(text))


def test_parse_json_quickly_refuses_what_parse_json_refuses() -> None:
    for text in ("[NaN]", "{", '{"a": Infinity}'):
        with pytest.raises(ValueError):
            parse_json(text)
        with pytest.raises(ValueError):
            parse_json_quickly(text)
