"""API JSON -> typed records. Pure functions: no I/O, no clock.

Money is parsed as ``Decimal`` straight from the JSON text (never through float) and
timestamps become timezone-aware UTC datetimes. Fields the API adds later are kept:
each record holds the whole payload in ``raw``, and ``extra`` lists the unknown ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from etl.core.column_limits import (
    MONEY_FRACTION_DIGITS,
    MONEY_INTEGER_DIGITS,
    TextLimit,
    fits_money_column,
)
from etl.core.errors import PayloadError
from etl.core.exact_json import dump_json
from etl.core.key_fields import KEY_FIELDS, TEXT_LIMITS, KeyRecord, Kind

# The parser reads the fields in the declaration's order: first the hash (etl.core.
# key_fields makes sure it comes first), which names the key in every message.
_HASH_LIMIT = TEXT_LIMITS["hash"]
_NAMED_HASH_LENGTH = 40  # an overlong hash is named by its start


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    """One workspace from ``GET /workspaces``."""

    id: str
    name: str | None
    slug: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 timestamp into an aware UTC datetime (naive means UTC)."""
    # Python 3.10's fromisoformat does not accept a trailing "Z".
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # "9999-12-31T23:59:59-01:00" is past the year 9999 in UTC
        raise ValueError(f"{value!r} is out of range in UTC") from None


def _text_problem(name: str, value: str) -> str | None:
    limit = TEXT_LIMITS.get(name)
    return None if limit is None else limit.problem(value)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, float):
        return "a float (digits already lost)"
    return f"a JSON {'object' if isinstance(value, dict) else 'array'}"


class _Refused(Exception):
    """Why one field's value is refused: the end of the PayloadError's message."""


_ABSENT = object()  # a field the payload does not have (not the same as null)


def _read_text(value: Any, limit: TextLimit | None) -> str:
    if not isinstance(value, str):
        raise _Refused(f"should be a string, got {_describe(value)}")
    if not value.isascii():  # ASCII (the usual text) is valid UTF-8: no need to encode it
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800"-style escape
            raise _Refused("is not valid Unicode (a lone surrogate escape)") from None
    assert limit is not None
    if len(value) > limit.safe_length or "\x00" in value:  # else it fits, whatever it holds
        problem = limit.problem(value)
        if problem is not None:
            raise _Refused(problem)
    return value


def _read_boolean(value: Any, _limit: TextLimit | None) -> bool:
    if value is True or value is False:
        return value
    raise _Refused(f"should be true or false, got {_describe(value)}")


def _read_money(value: Any, _limit: TextLimit | None) -> Decimal:
    # bool is an int subclass: true/false are not amounts.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise _Refused(f"should be a number, got {_describe(value)}")
    amount = value if type(value) is Decimal else Decimal(value)
    if not fits_money_column(amount):
        raise _Refused(
            f"has more digits than can be stored exactly ({str(value)[:40]}; at most "
            f"{MONEY_INTEGER_DIGITS} before and {MONEY_FRACTION_DIGITS} after the point)"
        )
    return amount


def _read_timestamp(value: Any, _limit: TextLimit | None) -> datetime:
    if not isinstance(value, str):
        raise _Refused(f"should be an ISO 8601 timestamp, got {_describe(value)}")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _Refused(
            f"is not an ISO 8601 timestamp of the years 1 to 9999 UTC: {value[:40]!r}"
        ) from None


_READERS: dict[Kind, Callable[[Any, TextLimit | None], Any]] = {
    Kind.TEXT: _read_text,
    Kind.BOOLEAN: _read_boolean,
    Kind.MONEY: _read_money,
    Kind.TIMESTAMP: _read_timestamp,
}
# Per field after the hash, in the declaration's order: what parse_key needs of it.
_PLAN = tuple(
    (f.name, f.nullable, f.required, _READERS[f.kind], TEXT_LIMITS.get(f.name))
    for f in KEY_FIELDS[1:]
)


def parse_key(payload: Any, *, offset: int | None = None) -> KeyRecord:
    """Turn one key object of the API into a ``KeyRecord``; reject what does not fit.

    The fields are read in the declaration's order (etl.core.key_fields), each by the
    reader of its kind, and the first one refused is named with the key and the reason.
    """
    if not isinstance(payload, dict):
        raise PayloadError(
            f"a key should be a JSON object, got {_describe(payload)}", offset=offset
        )
    key_hash = payload.get("hash")
    if not isinstance(key_hash, str) or not key_hash:
        problem = "is missing or empty" if not key_hash else "is not a string"
        raise PayloadError(f"{_who(payload)}: field 'hash' {problem}", offset=offset)
    values: list[Any] = [key_hash]
    get = payload.get
    name = "hash"
    try:
        _read_text(key_hash, _HASH_LIMIT)
        for name, nullable, required, read, limit in _PLAN:
            value = get(name, _ABSENT)
            if value is None and nullable:
                values.append(None)
            elif value is _ABSENT:
                if required:
                    raise _Refused("is missing")
                values.append(None)
            else:
                values.append(read(value, limit))
    except _Refused as refused:
        raise PayloadError(f"{_who(payload)}: field '{name}' {refused}", offset=offset) from None
    values.append(payload)  # raw: the whole payload, unknown fields too
    values.append(payload_digest(payload))
    return KeyRecord(*values)


def payload_digest(payload: Any) -> bytes:
    """``KeyRecord.digest`` of a payload read by this parser: of ``dump_json``'s text
    (the fast path digests the server's own bytes, etl.openrouter.fast_keys)."""
    return hashlib.blake2b(dump_json(payload).encode(), digest_size=16).digest()


def _who(payload: dict[str, Any]) -> str:
    """The key, as a message names it: its hash, or (for a hash that is itself the
    problem) an escaped start of it, so one line stays short and printable."""
    key_hash = payload.get("hash")
    if not isinstance(key_hash, str) or not key_hash:
        return "a key without a hash"
    if key_hash.isprintable() and _HASH_LIMIT.problem(key_hash) is None:
        return f"key {key_hash}"
    start = ascii(key_hash[:_NAMED_HASH_LENGTH])[1:-1]
    return f"key {start}{'...' if len(key_hash) > _NAMED_HASH_LENGTH else ''}"


def parse_key_list(body: Any, *, offset: int | None = None) -> list[KeyRecord]:
    """Parse the ``{"data": [key, ...]}`` body of ``GET /keys``."""
    items = _data(body, list, offset)
    return [parse_key(item, offset=offset) for item in items]


def parse_workspace_list(body: Any, *, offset: int | None = None) -> list[WorkspaceRecord]:
    """Parse the ``{"data": [workspace, ...]}`` body of ``GET /workspaces``."""
    records = []
    for item in _data(body, list, offset):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise PayloadError("a workspace has no 'id' string", offset=offset)
        name, slug = item.get("name"), item.get("slug")
        # The id goes where a key's workspace_id goes; name and slug into TEXT columns.
        for name_in_api, value, limit in (
            ("id", item["id"], "workspace_id"),
            ("name", name, "name"),
            ("slug", slug, "name"),
        ):
            problem = _text_problem(limit, value) if isinstance(value, str) else None
            if problem is not None:
                who = ascii(item["id"][:_NAMED_HASH_LENGTH])[1:-1]
                raise PayloadError(
                    f"workspace {who}: field '{name_in_api}' {problem}", offset=offset
                )
        records.append(
            WorkspaceRecord(
                id=item["id"],
                name=name if isinstance(name, str) else None,
                slug=slug if isinstance(slug, str) else None,
                raw=item,
            )
        )
    return records


def _data(body: Any, kind: type, offset: int | None) -> Any:
    if not isinstance(body, dict) or "data" not in body:
        raise PayloadError("the response has no 'data' field", offset=offset)
    if not isinstance(body["data"], kind):
        raise PayloadError(
            f"'data' should be a JSON {'array' if kind is list else 'object'}, "
            f"got {_describe(body['data'])}",
            offset=offset,
        )
    return body["data"]
