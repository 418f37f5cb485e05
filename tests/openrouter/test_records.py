"""API JSON -> KeyRecord: exact money, UTC time, unknown fields kept, bad fields named."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from etl.core.errors import PayloadError
from etl.core.exact_json import dump_json, parse_json
from etl.openrouter.records import (
    parse_key,
    parse_key_list,
    parse_timestamp,
    parse_workspace_list,
)
from tests.helpers import key_payload


def parse_text(text: str) -> object:
    return parse_json(text.encode())


@pytest.mark.parametrize(
    "text", ["0.30000000000000004", "1e-9", "123456789.0123456789", "1E+34", "-0.5", "7", "1E-30"]
)
def test_money_keeps_every_digit(text: str) -> None:
    body = parse_text(
        '{"data": [' + dump_json(key_payload()).replace('"usage":25.5', f'"usage":{text}') + "]}"
    )
    record = parse_key_list(body)[0]
    assert record.usage == Decimal(text)
    assert str(record.usage) == str(Decimal(text))  # not a float's approximation


def test_numbers_never_pass_through_float() -> None:
    body = parse_text('{"x": 0.1, "y": 1}')
    assert body == {"x": Decimal("0.1"), "y": 1}
    assert isinstance(body["x"], Decimal)  # type: ignore[index]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(constant: str) -> None:
    with pytest.raises(ValueError, match=constant):
        parse_text('{"usage": ' + constant + "}")


def test_timestamps_are_aware_utc() -> None:
    assert parse_timestamp("2025-08-24T10:30:00Z") == datetime(
        2025, 8, 24, 10, 30, tzinfo=timezone.utc
    )
    shifted = parse_timestamp("2025-08-24T12:30:00.250+02:00")
    assert shifted.utcoffset() == timedelta(0)
    assert shifted == datetime(2025, 8, 24, 10, 30, 0, 250000, tzinfo=timezone.utc)
    # The API documents UTC; a timestamp without a zone is read as UTC, not local time.
    assert parse_timestamp("2025-08-24T10:30:00").tzinfo is not None


def test_record_has_typed_fields() -> None:
    record = parse_key(key_payload(3, expires_at="2027-12-31T23:59:59Z", limit=None))
    assert record.hash == f"{3:064x}"
    assert record.limit is None
    assert record.limit_remaining == Decimal("74.5")
    assert record.expires_at == datetime(2027, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert record.created_at.tzinfo is not None
    assert record.disabled is False


def test_unknown_fields_are_kept() -> None:
    payload = key_payload(new_field={"nested": [1, 2]}, another=Decimal("0.1"))
    record = parse_key(payload)
    assert record.extra == {"new_field": {"nested": [1, 2]}, "another": Decimal("0.1")}
    assert record.raw["new_field"] == {"nested": [1, 2]}


def test_optional_newer_fields_may_be_absent() -> None:
    payload = key_payload()
    for name in ("expires_at", "last_used_at", "external_user"):
        del payload[name]
    record = parse_key(payload)
    assert (record.expires_at, record.last_used_at, record.external_user) == (None, None, None)


def test_missing_field_is_named_with_hash_and_offset() -> None:
    payload = key_payload(7)
    del payload["usage_weekly"]
    with pytest.raises(PayloadError) as caught:
        parse_key(payload, offset=200)
    message = str(caught.value)
    assert "usage_weekly" in message and "missing" in message
    assert f"{7:064x}" in message
    assert "offset 200" in message


def test_missing_hash_is_named() -> None:
    payload = key_payload()
    del payload["hash"]
    with pytest.raises(PayloadError, match="'hash' is missing"):
        parse_key(payload, offset=0)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("usage", "25.5", "should be a number, got the string '25.5'"),
        ("usage_daily", None, "should be a number, got null"),
        ("limit", True, "should be a number, got a boolean"),
        ("disabled", "false", "should be true or false"),
        ("name", 12, "should be a string, got a number"),
        ("created_at", "yesterday", "is not an ISO 8601 timestamp"),
        ("workspace_id", None, "should be a string, got null"),
        ("hash", 5, "'hash' is not a string"),
    ],
)
def test_mistyped_field_is_rejected(field: str, value: object, expected: str) -> None:
    with pytest.raises(PayloadError, match=expected) as caught:
        parse_key(key_payload(**{field: value}), offset=100)
    assert f"'{field}'" in str(caught.value)


def test_page_without_data_is_rejected() -> None:
    with pytest.raises(PayloadError, match="no 'data'"):
        parse_key_list({"keys": []}, offset=0)
    with pytest.raises(PayloadError, match="should be a JSON array"):
        parse_key_list({"data": {}}, offset=0)


def test_dump_json_round_trips_exactly() -> None:
    payload = key_payload(usage=Decimal("0.30000000000000004"), name='quote " \\ é 🚀')
    text = dump_json(payload)
    assert parse_json(text.encode()) == payload
    assert "0.30000000000000004" in text


@pytest.mark.parametrize("text", ["1E+400", "1E-31", "0.1234567890123456789012345678901", "1" * 36])
def test_money_that_would_be_rounded_by_the_database_is_refused(text: str) -> None:
    payload = key_payload(7)
    payload["usage"] = parse_json(text.encode())
    with pytest.raises(PayloadError, match="'usage' has more digits than can be stored exactly"):
        parse_key(payload, offset=0)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "nul \x00 then digits", "usage": Decimal("1.5")},
        {"name": "\x001.5", "n": [Decimal("1E-9"), {"deep": Decimal("0.30000000000000004")}]},
        {"\x00key": Decimal("2"), "x": None, "y": True, "z": 3},
        {"plain": "ünïcode 🚀", "list": [1, "two", None], "money": Decimal("-0.000001")},
    ],
)
def test_dump_json_is_exact_even_with_nul_in_strings(payload: dict[str, object]) -> None:
    text = dump_json(payload)
    assert parse_json(text.encode()) == payload
    assert json.loads(text, parse_float=Decimal) == payload


def test_lone_surrogate_is_rejected_by_name() -> None:
    body = parse_json(b'{"name": "bad \\ud800 escape"}')
    with pytest.raises(PayloadError, match="'name' is not valid Unicode"):
        parse_key(key_payload(1, name=body["name"]), offset=0)  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("hash", "a" * 129, "is 129 characters long; api_keys.hash holds at most 128"),
        ("workspace_id", "w" * 65, "is 65 characters long; api_keys.workspace_id holds at most 64"),
        ("limit_reset", "m" * 33, "is 33 characters long; api_keys.limit_reset holds at most 32"),
        ("name", "n" * 65_536, "is 65,536 bytes long in UTF-8; api_keys.name holds at most 65,535"),
        ("label", "é" * 32_768, "is 65,536 bytes long in UTF-8; api_keys.label holds at most"),
        ("creator_user_id", "u" * 70_000, "api_keys.creator_user_id holds at most 65,535 bytes"),
        ("external_user", "x" * 70_000, "api_keys.external_user holds at most 65,535 bytes"),
        ("name", "nul \x00 inside", "contains a NUL character"),
        ("label", "\x00", "contains a NUL character"),
    ],
)
def test_text_the_schema_cannot_hold_is_refused_by_name(
    field: str, value: str, expected: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(expected)) as caught:
        parse_key(key_payload(4, **{field: value}), offset=200)
    message = str(caught.value)
    assert message.startswith("offset 200: key ")
    assert f"field '{field}' " in message
    assert len(message) < 300  # names the key and the limit, never echoes the value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hash", "a" * 128),
        ("workspace_id", "w" * 64),
        ("limit_reset", "m" * 32),
        ("name", "n" * 65_535),
        ("name", "😀" * 16_383 + "abc"),  # 65,535 bytes, past the length checked in bulk
        ("label", "é" * 32_767),
        ("creator_user_id", "'quoted' \"twice\" 🚀" * 1_000),
        ("external_user", "x" * 20_000),
    ],
)
def test_text_right_at_the_limits_is_kept(field: str, value: str) -> None:
    record = parse_key(parse_json(dump_json(key_payload(5, **{field: value}))), offset=0)
    assert getattr(record, field) == value


def test_an_overlong_hash_is_named_by_its_start() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_key(key_payload(hash="f" * 10_000), offset=0)
    assert str(caught.value) == (
        f"offset 0: key {'f' * 40}...: field 'hash' is 10,000 characters long; "
        "api_keys.hash holds at most 128"
    )


def test_an_unprintable_hash_is_named_escaped_on_one_line() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_key(key_payload(hash="ab\ncd", name=5), offset=0)
    assert str(caught.value) == (
        "offset 0: key ab\\ncd: field 'name' should be a string, got a number"
    )


def test_limits_are_declared_once_and_built_into_the_models() -> None:
    from etl.core.column_limits import MONEY_FRACTION_DIGITS, MONEY_INTEGER_DIGITS
    from etl.core.key_fields import TEXT_LIMITS, key_field
    from models import ApiKey, UsageSnapshot
    from models.types import MONEY_PRECISION, MONEY_SCALE

    assert TEXT_LIMITS["hash"].characters == ApiKey.__table__.c.hash.type.length
    assert TEXT_LIMITS["hash"].characters == UsageSnapshot.__table__.c.key_hash.type.length
    assert TEXT_LIMITS["name"].utf8_bytes == 2**16 - 1  # MariaDB's TEXT
    assert MONEY_INTEGER_DIGITS == MONEY_PRECISION - MONEY_SCALE
    assert MONEY_FRACTION_DIGITS == MONEY_SCALE
    with pytest.raises(LookupError):
        key_field("no_such_field")


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"])
def test_timestamp_out_of_range_in_utc_is_refused_by_name(stamp: str) -> None:
    # Converting to UTC overflowed (OverflowError): the run died with a traceback.
    with pytest.raises(
        PayloadError,
        match=re.escape("field 'created_at' is not an ISO 8601 timestamp of the years 1 to 9999"),
    ):
        parse_key(key_payload(6, created_at=stamp), offset=0)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            {"id": "w" * 65},
            "field 'id' is 65 characters long; api_keys.workspace_id holds at most 64",
        ),
        ({"id": "ws-1", "name": "n" * 65_536}, "field 'name' is 65,536 bytes long in UTF-8"),
        ({"id": "ws-1", "slug": "s\x00"}, "field 'slug' contains a NUL character"),
    ],
)
def test_workspace_the_schema_cannot_hold_is_refused_by_name(
    item: dict[str, str], expected: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(expected)) as caught:
        parse_workspace_list({"data": [item]}, offset=0)
    assert str(caught.value).startswith("offset 0: workspace ")
    assert len(str(caught.value)) < 200
