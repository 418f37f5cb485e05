"""The fast path of ``GET /keys`` pages: the usual page, decoded and checked in C.

``parse_key_page`` reads a page body with msgspec into ``KeyRecord``s, or answers None
for any page it does not vouch for; the client then parses that page with the careful
parser (``parse_json`` and etl.openrouter.records.parse_key_list), so every message a
refused payload gets stays that parser's. The fast path therefore only has to accept
less than the careful one and build the same records from what it accepts:

- Each key is decoded from its own bytes (``msgspec.Raw``) into plain values
  (``KeyRecord.raw``) with an exact-Decimal ``float_hook``: what ``parse_json`` makes
  of the same text. ``msgspec.convert`` then checks those values against a Struct
  typed from the declaration (etl.core.key_fields): every field's type, presence and
  text length, in C; the record is built from the Struct's fields.
- Money stays exact: msgspec hands ``float_hook`` each float's own text
  (``parse_number_inline`` and ``json_float_hook`` in msgspec's src/msgspec/_core.c,
  0.23), and ``convert`` keeps a ``Decimal`` as it is and makes one of an int. It also
  makes one of a *string*, which keyledger refuses: a money value that is a string
  sends the page to the careful parser.
- What msgspec accepts and the careful parser might not is left to the careful
  parser: a page with a long number (``_short_decimal``: it may not fit the money
  columns) or with a ``\\u0000`` escape (PostgreSQL cannot store NUL). msgspec itself
  refuses lone surrogates, invalid UTF-8 and control characters in strings.
- Timestamps are read as the careful parser's ``parse_timestamp`` reads them.

``KeyRecord.digest`` is here the blake2b of the key's bytes exactly as the server sent
them (the careful parser digests ``dump_json``'s text): one C call, no re-encoding.

``list_key_page`` reads a listing's page only as far as paging and change detection
need: each key's hash, creation time and workspace, and the digest of its bytes, as a
``ListedKey`` whose ``full()`` reads the rest (``read_key``: the fast path, or the
careful parser for a key it does not vouch for). An unchanged key (most of them, most
nights) is then never read in full: its bytes are the ones stored, read in full then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from functools import partial
from operator import attrgetter, itemgetter
from typing import Annotated, Any

import msgspec

from etl.core.column_limits import MONEY_INTEGER_DIGITS
from etl.core.exact_json import parse_json
from etl.core.key_fields import KEY_FIELDS, KeyField, KeyRecord, Kind, ListedKey
from etl.openrouter.records import parse_key, parse_timestamp

# Money the fast path vouches for without counting digits: a JSON float of at most 20
# characters with at most a one-digit exponent (at most 27 digits after the point and
# 28 before), an integer of at most 35 digits. Others go to the careful parser.
_SHORT_FLOAT = 20


def _short_decimal(text: str) -> Decimal:
    """``float_hook``: the float as ``Decimal``, or ValueError for one that may not fit."""
    if len(text) > _SHORT_FLOAT or (("e" in text or "E" in text) and text[-2] not in "eE+-"):
        raise ValueError("a long number")
    return Decimal(text)


_NUL_ESCAPE = b"\\u0000"


def _wire_type(field: KeyField) -> Any:
    """The Struct field type that holds what the careful parser accepts of ``field``."""
    if field.kind is Kind.TEXT:
        limit = field.text_limit
        # Longer strings may still fit (the careful parser counts their UTF-8 bytes).
        wire: Any = Annotated[
            str,
            msgspec.Meta(min_length=1 if field.primary_key else 0, max_length=limit.safe_length),
        ]
    elif field.kind is Kind.MONEY:
        wire = Decimal
    elif field.kind is Kind.BOOLEAN:
        wire = bool
    else:
        wire = str  # a timestamp: parse_timestamp reads it
    return wire | None if field.nullable else wire


_WireKey = msgspec.defstruct(
    "_WireKey",
    [(f.name, _wire_type(f)) if f.required else (f.name, _wire_type(f), None) for f in KEY_FIELDS],
    gc=False,
)


class _WirePage(msgspec.Struct, gc=False):
    data: list[msgspec.Raw]


_FIELDS = {f.name: f for f in KEY_FIELDS}
# What a listing needs of a key before it is read in full (unknown fields ignored).
_ListedWire = msgspec.defstruct(
    "_ListedWire",
    [(name, _wire_type(_FIELDS[name])) for name in ("hash", "created_at", "workspace_id")],
    gc=False,
)


_PAGE = msgspec.json.Decoder(_WirePage)
_LISTED = msgspec.json.Decoder(_ListedWire)
_VALUES = msgspec.json.Decoder(float_hook=_short_decimal)
_FIELD_VALUES = attrgetter(*(f.name for f in KEY_FIELDS))
_TIMESTAMPS = tuple(i for i, f in enumerate(KEY_FIELDS) if f.kind is Kind.TIMESTAMP)
_MONEY_NAMES = [f.name for f in KEY_FIELDS if f.kind is Kind.MONEY]
_MONEY = itemgetter(*_MONEY_NAMES)  # of the plain values, and by position of the fields
_MONEY_AT = itemgetter(*(i for i, f in enumerate(KEY_FIELDS) if f.kind is Kind.MONEY))


def parse_key_page(body: bytes) -> list[KeyRecord] | None:
    """The records of a ``{"data": [key, ...]}`` body; None: let the careful parser read it."""
    if _NUL_ESCAPE in body:
        return None
    try:
        items = _PAGE.decode(body).data
        return [_record(item) for item in items]
    # ValidationError is a DecodeError is a ValueError; msgspec's depth limit raises
    # RecursionError. Whatever the reason, the careful parser gives the answer.
    except (ValueError, KeyError, ArithmeticError, RecursionError):
        return None


def list_key_page(body: bytes, read: Callable[[msgspec.Raw], KeyRecord]) -> list[ListedKey] | None:
    """The keys of a ``{"data": [key, ...]}`` body as far as a listing needs them, each
    read in full by ``read(its bytes)`` when asked; None: let the careful parser read
    the page."""
    if _NUL_ESCAPE in body:
        return None
    try:
        return [_listed(item, read) for item in _PAGE.decode(body).data]
    except (ValueError, KeyError, ArithmeticError, RecursionError):
        return None


def _listed(item: msgspec.Raw, read: Callable[[msgspec.Raw], KeyRecord]) -> ListedKey:
    wire: Any = _LISTED.decode(item)
    return ListedKey(
        wire.hash,
        _timestamp(wire.created_at),
        wire.workspace_id,
        hashlib.blake2b(item, digest_size=16).digest(),
        partial(read, item),
    )


def read_key(item: msgspec.Raw, *, offset: int | None = None) -> KeyRecord:
    """One key's bytes read in full: by the fast path, else by the careful parser
    (which words the refusal, naming the page at ``offset``, as for the whole page).
    Either way the record keeps the server's text and the digest of its bytes."""
    try:
        return _record(item)
    except (ValueError, KeyError, ArithmeticError, RecursionError):
        pass
    text = bytes(item).decode()
    record = parse_key(parse_json(text), offset=offset)
    record.raw_text = text
    record.digest = hashlib.blake2b(item, digest_size=16).digest()
    return record


def _timestamp(text: str) -> datetime:
    """``parse_timestamp(text)``, sooner for the usual "...Z" (read by Python 3.11+)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return parse_timestamp(text)
    return value if value.tzinfo is timezone.utc else parse_timestamp(text)


def _record(item: msgspec.Raw) -> KeyRecord:
    payload = _VALUES.decode(item)
    values = list(_FIELD_VALUES(msgspec.convert(payload, _WireKey)))
    if str in map(type, _MONEY(payload)):  # "1.5" decodes into a Decimal field too
        raise ValueError("money as a string")
    # _short_decimal vouched for the floats; this bounds the integers (adjusted(): digits - 1).
    if (
        max(map(Decimal.adjusted, filter(None, _MONEY_AT(values))), default=0)
        >= MONEY_INTEGER_DIGITS
    ):
        raise ValueError("a long integer")
    for index in _TIMESTAMPS:
        text = values[index]
        if text is not None:
            values[index] = _timestamp(text)
    values.append(payload)  # raw
    values.append(hashlib.blake2b(item, digest_size=16).digest())
    values.append(bytes(item).decode())  # raw_text: msgspec has checked it is UTF-8
    return KeyRecord(*values)
