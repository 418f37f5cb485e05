"""API JSON -> typed records. Pure functions: no I/O, no clock.

Money is parsed as ``Decimal`` straight from the JSON text (never through float) and
timestamps become timezone-aware UTC datetimes. Fields the API adds later are kept:
each record holds the whole payload in ``raw``, and ``extra`` lists the unknown ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from etl.core.errors import PayloadError
from etl.store.column_limits import money_limit, text_limit

MONEY_FIELDS = (
    "usage",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_weekly",
    "byok_usage_monthly",
)
# The reference marks these required (with null allowed where typed so).
_REQUIRED_TEXT = ("hash", "name", "label", "workspace_id")
_NULLABLE_TEXT = ("limit_reset", "creator_user_id")
_OPTIONAL_TEXT = ("external_user",)  # newer servers only
_BOOLEANS = ("disabled", "include_byok_in_limit")
_NULLABLE_MONEY = ("limit", "limit_remaining")
_OPTIONAL_TIMES = ("expires_at", "last_used_at")
KNOWN_KEY_FIELDS = frozenset(
    (
        *_REQUIRED_TEXT,
        *_NULLABLE_TEXT,
        *_OPTIONAL_TEXT,
        *_BOOLEANS,
        *_NULLABLE_MONEY,
        *MONEY_FIELDS,
        *_OPTIONAL_TIMES,
        "created_at",
        "updated_at",
    )
)


# The database stores money as NUMERIC(p, s) (exact TEXT on SQLite): amounts that do
# not fit would be rounded or refused by the server, so they are refused here, by name.
# The digits are the money columns' own (etl.store.column_limits reads them off the models).
_MONEY_LIMIT = money_limit((*MONEY_FIELDS, *_NULLABLE_MONEY))
MONEY_INTEGER_DIGITS = _MONEY_LIMIT.integer_digits
MONEY_FRACTION_DIGITS = _MONEY_LIMIT.fraction_digits
# Text the narrowest backend cannot hold (a hash over VARCHAR(128), a name over
# MariaDB's 65,535-byte TEXT, a NUL for PostgreSQL) is refused alike on every backend.
TEXT_LIMITS = {
    name: text_limit(name) for name in (*_REQUIRED_TEXT, *_NULLABLE_TEXT, *_OPTIONAL_TEXT)
}
_NAMED_HASH_LENGTH = 40  # an overlong hash is named by its start


def fits_money_column(amount: Decimal) -> bool:
    """True when ``amount`` is finite and fits the money columns without rounding."""
    if not amount.is_finite():
        return False
    if amount.is_zero():
        return True
    text = str(amount)
    if "E" not in text:  # plain digits, the usual case: count them in the text (fast)
        whole_text, _, fraction_text = text.lstrip("-").partition(".")
        return (
            len(fraction_text.rstrip("0")) <= MONEY_FRACTION_DIGITS
            and len(whole_text) <= MONEY_INTEGER_DIGITS
        )
    # Not normalize(): it rounds to the context's 28 digits, hiding the excess.
    _sign, digit_tuple, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    digits = list(digit_tuple)
    while exponent < 0 and digits and digits[-1] == 0:  # trailing zeros carry nothing
        digits.pop()
        exponent += 1
    fraction = max(0, -exponent)
    integer = max(0, len(digits) + exponent)
    return fraction <= MONEY_FRACTION_DIGITS and integer <= MONEY_INTEGER_DIGITS


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as the management API described it at one moment."""

    hash: str
    name: str
    label: str
    disabled: bool
    limit: Decimal | None
    limit_remaining: Decimal | None
    limit_reset: str | None
    include_byok_in_limit: bool
    usage: Decimal
    usage_daily: Decimal
    usage_weekly: Decimal
    usage_monthly: Decimal
    byok_usage: Decimal
    byok_usage_daily: Decimal
    byok_usage_weekly: Decimal
    byok_usage_monthly: Decimal
    created_at: datetime
    updated_at: datetime | None
    creator_user_id: str | None
    workspace_id: str
    expires_at: datetime | None
    last_used_at: datetime | None
    external_user: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Fields the API sent that this version of keyledger does not know."""
        return {k: v for k, v in self.raw.items() if k not in KNOWN_KEY_FIELDS}


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


class _KeyReader:
    """Reads typed fields out of one key object, naming the field on failure."""

    def __init__(self, payload: Mapping[str, Any], offset: int | None) -> None:
        self.payload = payload
        self.offset = offset
        hash_value = payload.get("hash")
        self.hash = hash_value if isinstance(hash_value, str) and hash_value else None

    def fail(self, name: str, problem: str) -> PayloadError:
        return PayloadError(f"{self.who()}: field '{name}' {problem}", offset=self.offset)

    def who(self) -> str:
        """The key, as a message names it: its hash, or (for a hash that is itself the
        problem) an escaped start of it, so one line stays short and printable."""
        if self.hash is None:
            return "a key without a hash"
        if self.hash.isprintable() and _text_problem("hash", self.hash) is None:
            return f"key {self.hash}"
        start = ascii(self.hash[:_NAMED_HASH_LENGTH])[1:-1]
        return f"key {start}{'...' if len(self.hash) > _NAMED_HASH_LENGTH else ''}"

    def key_hash(self) -> str:
        """The hash, checked as the other text fields are (Unicode, length, NUL)."""
        if self.hash is None:
            raise self.fail(
                "hash", "is missing or empty" if not self.payload.get("hash") else "is not a string"
            )
        return self.text("hash")

    def get(self, name: str, *, required: bool) -> Any:
        if name not in self.payload:
            if required:
                raise self.fail(name, "is missing")
            return None
        return self.payload[name]

    def text(self, name: str) -> str:
        value = self.get(name, required=True)
        if not isinstance(value, str):
            raise self.fail(name, f"should be a string, got {_describe(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800"-style escape
            raise self.fail(name, "is not valid Unicode (a lone surrogate escape)") from None
        problem = _text_problem(name, value)
        if problem is not None:
            raise self.fail(name, problem)
        return value

    def maybe_text(self, name: str, *, required: bool = True) -> str | None:
        value = self.get(name, required=required)
        return None if value is None else self.text(name)

    def boolean(self, name: str) -> bool:
        value = self.get(name, required=True)
        if not isinstance(value, bool):
            raise self.fail(name, f"should be true or false, got {_describe(value)}")
        return value

    def money(self, name: str) -> Decimal:
        value = self.get(name, required=True)
        # bool is an int subclass: true/false are not amounts.
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise self.fail(name, f"should be a number, got {_describe(value)}")
        amount = Decimal(value)
        if not fits_money_column(amount):
            raise self.fail(
                name,
                f"has more digits than can be stored exactly ({str(value)[:40]}; at most "
                f"{MONEY_INTEGER_DIGITS} before and {MONEY_FRACTION_DIGITS} after the point)",
            )
        return amount

    def maybe_money(self, name: str) -> Decimal | None:
        return None if self.get(name, required=True) is None else self.money(name)

    def time(self, name: str) -> datetime:
        value = self.get(name, required=True)
        if not isinstance(value, str):
            raise self.fail(name, f"should be an ISO 8601 timestamp, got {_describe(value)}")
        try:
            return parse_timestamp(value)
        except ValueError:
            raise self.fail(
                name, f"is not an ISO 8601 timestamp of the years 1 to 9999 UTC: {value[:40]!r}"
            ) from None

    def maybe_time(self, name: str, *, required: bool = True) -> datetime | None:
        value = self.get(name, required=required)
        return None if value is None else self.time(name)


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


def parse_key(payload: Any, *, offset: int | None = None) -> KeyRecord:
    """Turn one key object of the API into a ``KeyRecord``; reject what does not fit."""
    if not isinstance(payload, dict):
        raise PayloadError(
            f"a key should be a JSON object, got {_describe(payload)}", offset=offset
        )
    return _parse_usual_key(payload) or _parse_checked_key(payload, offset)


def _parse_checked_key(payload: dict[str, Any], offset: int | None) -> KeyRecord:
    r = _KeyReader(payload, offset)
    return KeyRecord(
        hash=r.key_hash(),
        name=r.text("name"),
        label=r.text("label"),
        disabled=r.boolean("disabled"),
        limit=r.maybe_money("limit"),
        limit_remaining=r.maybe_money("limit_remaining"),
        limit_reset=r.maybe_text("limit_reset"),
        include_byok_in_limit=r.boolean("include_byok_in_limit"),
        usage=r.money("usage"),
        usage_daily=r.money("usage_daily"),
        usage_weekly=r.money("usage_weekly"),
        usage_monthly=r.money("usage_monthly"),
        byok_usage=r.money("byok_usage"),
        byok_usage_daily=r.money("byok_usage_daily"),
        byok_usage_weekly=r.money("byok_usage_weekly"),
        byok_usage_monthly=r.money("byok_usage_monthly"),
        created_at=r.time("created_at"),
        updated_at=r.maybe_time("updated_at"),
        creator_user_id=r.maybe_text("creator_user_id"),
        workspace_id=r.text("workspace_id"),
        # Not in the reference's required list; newer servers add the last two.
        expires_at=r.maybe_time("expires_at", required=False),
        last_used_at=r.maybe_time("last_used_at", required=False),
        external_user=r.maybe_text("external_user", required=False),
        raw=payload,
    )


_NUMBER_TYPES = (int, Decimal)  # type() of a JSON number; bool is not among them
_USUAL_REQUIRED = (
    *_REQUIRED_TEXT,
    *_NULLABLE_TEXT,
    *_BOOLEANS,
    *_NULLABLE_MONEY,
    *MONEY_FIELDS,
    "created_at",
    "updated_at",
)
_USUAL_NULLABLE_TEXT = (*_NULLABLE_TEXT, *_OPTIONAL_TEXT)
# Per text field, in that order: a string no longer than this fits its columns whatever
# its characters, so the usual key needs only its lengths compared.
_HASH_MAX, _NAME_MAX, _LABEL_MAX, _WORKSPACE_MAX, _RESET_MAX, _CREATOR_MAX, _EXTERNAL_MAX = (
    TEXT_LIMITS[f].safe_length for f in (*_REQUIRED_TEXT, *_USUAL_NULLABLE_TEXT)
)
_USUAL_TIMES = ("created_at", "updated_at", *_OPTIONAL_TIMES)


def _parse_usual_key(payload: dict[str, Any]) -> KeyRecord | None:
    """The record of a key in the usual shape, checked in a few C-speed passes (this runs
    for every key; _KeyReader's field-by-field checks cost three times as much). None
    for anything unusual: then _KeyReader takes the payload and names what is wrong.
    Both accept exactly the same payloads (tests/openrouter/test_records.py checks it)."""
    if not all(name in payload for name in _USUAL_REQUIRED):
        return None
    get: Callable[[str], Any] = payload.get  # Any: each value's type is checked below
    key_hash, name, label, workspace_id = (get(f) for f in _REQUIRED_TEXT)
    limit_reset, creator_user_id, external_user = (get(f) for f in _USUAL_NULLABLE_TEXT)
    texts = [key_hash, name, label, workspace_id]
    texts += [t for t in (limit_reset, creator_user_id, external_user) if t is not None]
    if not key_hash or not all(type(t) is str for t in texts):
        return None
    if not (  # spelt out: a third of the cost of all(map(le, lengths, limits))
        len(key_hash) <= _HASH_MAX
        and len(name) <= _NAME_MAX
        and len(label) <= _LABEL_MAX
        and len(workspace_id) <= _WORKSPACE_MAX
        and (limit_reset is None or len(limit_reset) <= _RESET_MAX)
        and (creator_user_id is None or len(creator_user_id) <= _CREATOR_MAX)
        and (external_user is None or len(external_user) <= _EXTERNAL_MAX)
    ):
        return None  # perhaps too long: the checked path measures it, or names the field
    joined = "".join(texts)
    if "\x00" in joined:  # PostgreSQL cannot store it: the checked path names the field
        return None
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the checked path names the field
        return None
    disabled, include_byok = get("disabled"), get("include_byok_in_limit")
    if type(disabled) is not bool or type(include_byok) is not bool:
        return None
    amounts = [get(f) for f in MONEY_FIELDS]
    limit, limit_remaining = get("limit"), get("limit_remaining")
    if limit is not None:
        amounts.append(limit)
    if limit_remaining is not None:
        amounts.append(limit_remaining)
    if not all(type(a) in _NUMBER_TYPES for a in amounts):
        return None
    decimals = [a if type(a) is Decimal else Decimal(a) for a in amounts]
    if not all(map(fits_money_column, decimals)):
        return None
    stamps = [get(f) for f in _USUAL_TIMES]
    if type(stamps[0]) is not str or not all(t is None or type(t) is str for t in stamps):
        return None
    try:
        created_at, updated_at, expires_at, last_used_at = (
            None if t is None else parse_timestamp(t) for t in stamps
        )
    except ValueError:
        return None
    assert created_at is not None
    money = dict(zip(MONEY_FIELDS, decimals, strict=False))
    return KeyRecord(
        hash=key_hash,
        name=name,
        label=label,
        disabled=disabled,
        limit=None if limit is None else decimals[len(MONEY_FIELDS)],
        limit_remaining=None if limit_remaining is None else decimals[-1],
        limit_reset=limit_reset,
        include_byok_in_limit=include_byok,
        created_at=created_at,
        updated_at=updated_at,
        creator_user_id=creator_user_id,
        workspace_id=workspace_id,
        expires_at=expires_at,
        last_used_at=last_used_at,
        external_user=external_user,
        raw=payload,
        **money,
    )


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
