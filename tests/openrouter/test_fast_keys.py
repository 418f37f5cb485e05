"""The fast path of GET /keys pages: the careful parser's records, or no answer at all."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.core.config import ClientSettings, Secret
from etl.core.errors import PayloadError
from etl.core.exact_json import dump_json, parse_json
from etl.core.key_fields import KEY_FIELDS
from etl.openrouter.client import OpenRouterClient
from etl.openrouter.fast_keys import list_key_page, parse_key_page, read_key
from etl.openrouter.records import parse_key_list
from etl.simulator.service import Simulator, encode_json
from etl.simulator.world import World
from tests.helpers import key_payload
from tests.openrouter.test_fuzz import PROBES, fuzzed_key, render


def careful(body: bytes) -> list[Any] | None:
    """What the careful parser makes of ``body``; None where it refuses it."""
    try:
        return parse_key_list(parse_json(body), offset=0)
    except (PayloadError, ValueError, RecursionError):
        return None


def assert_listed_keys_read_as_the_page(body: bytes) -> None:
    """A listing's keys (``list_key_page``), each read in full, are the careful parser's
    records, or the first that cannot be read raises the careful parser's message."""
    listed = list_key_page(body, lambda item: read_key(item, offset=0))
    if listed is None:
        return  # the careful parser reads the page, as before
    try:
        expected, refusal = parse_key_list(parse_json(body), offset=0), None
    except PayloadError as exc:
        expected, refusal = None, str(exc)
    try:
        got, got_refusal = [key.full() for key in listed], None
    except PayloadError as exc:
        got, got_refusal = None, str(exc)
    assert got_refusal == refusal
    if got is not None:
        assert got == expected
        for key, record in zip(listed, got, strict=True):
            assert (key.hash, key.created_at, key.workspace_id, key.digest) == (
                record.hash,
                record.created_at,
                record.workspace_id,
                record.digest,
            )
            assert parse_json(record.raw_text) == record.raw


def assert_same_or_declined(body: bytes) -> bool:
    """The fast path declines ``body`` or gives the careful parser's records; True if fast."""
    assert_listed_keys_read_as_the_page(body)
    fast = parse_key_page(body)
    if fast is None:
        return False
    expected = careful(body)
    assert expected is not None, "the fast path accepted a page the careful parser refuses"
    assert fast == expected
    for got, want in zip(fast, expected, strict=True):
        assert got.raw == want.raw
        assert dump_json(got.raw) == dump_json(want.raw)  # the raw_json text the store keeps
        assert list(got.raw) == list(want.raw)  # the payload's own order
        assert [type(v) for v in got.raw.values()] == [type(v) for v in want.raw.values()]
        assert got.extra == want.extra
        for field in KEY_FIELDS:
            assert type(getattr(got, field.name)) is type(getattr(want, field.name))
            assert repr(getattr(got, field.name)) == repr(getattr(want, field.name))
    return True


def page(*payloads: dict[str, Any]) -> bytes:
    return encode_json({"data": list(payloads)})


def test_simulator_pages_take_the_fast_path() -> None:
    world = World(seed=3, workspaces=2, keys_per_workspace=300)
    for workspace in world.workspace_ids:
        for offset in range(0, world.live_key_count(workspace), world.page_size):
            keys = world.page(workspace, offset, include_disabled=True, include_expired=True)
            body = page(*(world.key_payload(key) for key in keys))
            assert assert_same_or_declined(body)


def test_the_digest_is_of_the_bytes_the_server_sent_for_the_key() -> None:
    first, second = key_payload(1, name="é"), key_payload(2)
    body = b'{"data": [ ' + encode_json(first) + b" ,\n" + encode_json(second) + b"]}"
    records = parse_key_page(body)
    assert records is not None
    assert [r.digest for r in records] == [
        hashlib.blake2b(encode_json(p), digest_size=16).digest() for p in (first, second)
    ]


def test_unknown_fields_and_page_fields_are_kept() -> None:
    payload = key_payload(1, new_field={"nested": [1, Decimal("2.5")]})
    body = encode_json({"data": [payload], "new_top_level_field": {"api_revision": 2}})
    records = parse_key_page(body)
    assert records is not None
    assert records[0].extra == {"new_field": {"nested": [1, Decimal("2.5")]}}
    assert assert_same_or_declined(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"data": null}',
        b'{"data": {}}',
        b'{"nodata": []}',
        b'{"data": [1]}',
        b'{"data": [{}]}',
        page(key_payload(1, usage="1.5")),  # msgspec would read it into a Decimal field
        page(key_payload(1, limit=True)),
        page(key_payload(1, hash="")),
        page(key_payload(1, name="a\x00b")),
        page(key_payload(1, name="x" * 20_000)),  # may fit MariaDB's TEXT: counted carefully
        page(key_payload(1, limit_reset="x" * 33)),
        page(key_payload(1, created_at="not a time")),
        page(key_payload(1, created_at=None)),
        page(key_payload(1, usage=10**35)),
        page(key_payload(1, usage=Decimal("0." + "1" * 31))),
        page(key_payload(1, usage=Decimal("1E+40"))),
        page(key_payload(1, usage=Decimal("1E-31"))),
        page(key_payload(1, new_field=Decimal("1E-31"))),  # any long number: careful
        page(key_payload(1), {k: v for k, v in key_payload(2).items() if k != "name"}),
        page(key_payload(1)).replace(b'"key 1"', b'"\\ud800"'),  # a lone surrogate
        page(key_payload(1)).replace(b'"key 1"', b'"\xed\xa0\x80"'),  # one as UTF-8
        page(key_payload(1)).replace(b'"key 1"', b'"\xff"'),
        page(key_payload(1)).replace(b'"key 1"', b'"a\x01"'),
        page(key_payload(1)).replace(b"25.5", b"NaN", 1),
        page(key_payload(1)).replace(b"25.5", b"1e999", 1),
        page(key_payload(1)) + b"x",
        page(key_payload(1, deep="PROBE")).replace(b'"PROBE"', b"[" * 100_000 + b"]" * 100_000),
        page(key_payload(1)).decode().encode("utf-16"),
        b"\xef\xbb\xbf" + page(key_payload(1)),  # a BOM: json.loads reads it, msgspec not
    ],
)
def test_anything_unusual_is_left_to_the_careful_parser(body: bytes) -> None:
    assert parse_key_page(body) is None


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"usage": 0, "limit": None, "limit_remaining": None, "limit_reset": None},
        {"usage": Decimal("-0.0"), "usage_daily": Decimal("1E-9"), "usage_weekly": -7},
        {"usage": Decimal("123456789.123456789"), "byok_usage": 10**34},
        {"usage": Decimal("1" * 35), "byok_usage": Decimal("0." + "1" * 30)},
        {"created_at": "2026-11-02T08:59:00+05:00", "updated_at": "2026-11-02T08:59:00"},
        {"expires_at": "2026-12-02T08:59:00.123456Z", "last_used_at": "2026-11-02"},
        {"external_user": "é😀", "name": "x" * 16_383, "label": ""},
        {"hash": "h" * 128, "workspace_id": "w" * 64, "limit_reset": "x" * 32},
        {"disabled": True, "include_byok_in_limit": True},
    ],
)
def test_usual_variants_give_the_careful_records(overrides: dict[str, Any]) -> None:
    assert_same_or_declined(page(key_payload(1, **overrides), key_payload(2)))


def test_absent_newer_fields_give_the_careful_records() -> None:
    older = {k: v for k, v in key_payload(1).items() if k not in ("expires_at", "last_used_at")}
    assert assert_same_or_declined(page(older))


def test_a_repeated_field_is_read_as_json_loads_reads_it_or_declined() -> None:
    # json.loads keeps the last value; msgspec checks every one it reads.
    for repeated in (b'"name":"x","name":"key 1"', b'"name":5,"name":"key 1"'):
        body = page(key_payload(1)).replace(b'"name":"key 1"', repeated)
        assert_same_or_declined(body)
    body = page(key_payload(1)).replace(b'"name":"key 1"', b'"name":"key 1","name":5')
    assert parse_key_page(body) is None


@pytest.mark.parametrize("field", [f.name for f in KEY_FIELDS])
def test_every_probe_in_every_field_is_read_alike_or_declined(field: str) -> None:
    for value in PROBES:
        try:
            body = page(key_payload(1, **{field: value}))
        except UnicodeEncodeError:  # "\ud800" cannot be sent as UTF-8
            body = page(key_payload(1, **{field: "PROBE"})).replace(b'"PROBE"', b'"\\ud800"')
        assert_same_or_declined(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(fuzzed_key(1), min_size=1, max_size=3))
def test_fuzzed_pages_are_read_alike_or_declined(keys: list[Any]) -> None:
    assert_same_or_declined(render(keys))


def test_the_decoder_reads_money_from_its_text() -> None:
    # What the fast path relies on (msgspec's _core.c, parse_number_inline): a JSON
    # number decodes into a Decimal field from its own digits, never through float.
    class Amount(msgspec.Struct):
        usage: Decimal

    decoded = msgspec.json.decode(b'{"usage": 0.30000000000000004000001}', type=Amount)
    assert str(decoded.usage) == "0.30000000000000004000001"


def test_the_client_reads_pages_by_the_fast_path() -> None:
    world = World(seed=5, workspaces=1, keys_per_workspace=150)
    simulator = Simulator(world, token="sk-or-v1-fast")
    settings = ClientSettings(base_url="http://sim.test/api/v1", requests_per_second=1e6)
    (workspace,) = world.workspace_ids
    with OpenRouterClient(
        settings, Secret("sk-or-v1-fast"), transport=simulator.mock_transport()
    ) as client:
        fetched = client.fetch_key_page(workspace, 0)
        by_hash = {
            k.hash: k for k in world.page(workspace, 0, include_disabled=True, include_expired=True)
        }
        for record in fetched.records:
            sent = encode_json(world.key_payload(by_hash[record.hash]))
            assert record.digest == hashlib.blake2b(sent, digest_size=16).digest()
        simulator.faults.update({"duplicate_key_rate": 0.0, "schema_drift": True})
        drifted = client.fetch_key_page(workspace, 0)
        assert [r.full() for r in drifted.records] == [r.full() for r in fetched.records]
        # Each digest is of the bytes sent, which now carry the new field.
        assert all(
            a.digest != b.digest for a, b in zip(drifted.records, fetched.records, strict=True)
        )
        assert all("new_field_x" in r.full().extra for r in drifted.records)


def test_a_listed_key_is_read_in_full_only_when_asked_and_refused_as_the_page_was() -> None:
    bad = key_payload(1, usage="12.5")  # money as a string: the careful parser refuses it
    body = page(key_payload(0), bad, key_payload(2))
    reads: list[bytes] = []

    def read(item: msgspec.Raw) -> Any:
        reads.append(bytes(item))
        return read_key(item, offset=99)

    listed = list_key_page(body, read)
    assert listed is not None and [k.hash for k in listed] == [
        key_payload(n)["hash"] for n in range(3)
    ]
    assert reads == []  # hashes, times, workspaces and digests need no full read
    assert listed[2].full().hash == key_payload(2)["hash"]
    with pytest.raises(PayloadError) as caught:
        listed[1].full()
    with pytest.raises(PayloadError) as whole_page:
        parse_key_list(parse_json(body), offset=99)
    assert str(caught.value) == str(whole_page.value)
    assert len(reads) == 2
