"""An API key's fields, declared once: ``KeyRecord`` and what each field is to the ledger.

Each field of ``KeyRecord`` says, in its ``Annotated`` metadata (a ``Column``), where
and how the ledger keeps it; its Python type says the rest: ``str`` is text,
``Decimal`` money, ``bool`` a boolean, ``datetime`` a UTC timestamp, and ``| None``
that the API may send null. ``KEY_FIELDS`` is that table, read off the class. The
parser (etl.openrouter.records), the models and so the data dictionary
(models.key_columns), and the row builders (etl.store.loading, etl.store.versions) all
derive from it; none lists the fields again.

A new API field is one attribute here, one model line per table it lands in
(tests/core/test_key_fields.py fails until they match) and a migration.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from etl.core.column_limits import TEXT_UTF8_BYTES, TextLimit

KEY_TABLE = "api_keys"  # every field has its column there; messages name it


@dataclass(frozen=True, slots=True)
class Column:
    """Where and how the ledger keeps one API field (the ``Annotated`` metadata)."""

    comment: str  # of the api_keys column
    name: str | None = None  # the column, when not named as in the API
    max_length: int | None = None  # text: VARCHAR(n) instead of TEXT
    primary_key: bool = False  # the key's identity: read first, names it in messages
    may_be_absent: bool = False  # newer servers only: an absent field reads as null
    snapshot: bool = False  # a usage_snapshots column: its change writes a snapshot
    snapshot_comment: str | None = None  # when the snapshot column's differs
    versioned: bool = False  # an api_key_versions column: its change opens a version
    version_comment: str | None = None  # when the version column's differs


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made
# building the records a third of a 100,000-key extraction's CPU time. Nothing mutates
# a record once parsed; nothing hashes one either.
@dataclass(slots=True)
class KeyRecord:
    """One API key as the management API described it at one moment."""

    hash: Annotated[
        str,
        Column("The key's hash: its stable identifier.", max_length=128, primary_key=True),
    ]
    name: Annotated[str, Column("Name of the key.", versioned=True)]
    label: Annotated[
        str,
        Column(
            "Human-readable label (a masked form of the key, e.g. sk-or-v1-0e6...1c96).",
            versioned=True,
            version_comment="Label of the key.",
        ),
    ]
    disabled: Annotated[
        bool,
        Column(
            "True when the key is disabled.",
            snapshot=True,
            snapshot_comment="Whether the key was disabled.",
            versioned=True,
            version_comment="Whether the key was disabled.",
        ),
    ]
    limit: Annotated[
        Decimal | None,
        Column(
            "Spending limit in USD (the API's `limit`); NULL = no limit.",
            name="credit_limit",  # LIMIT is reserved in SQL
            snapshot=True,
            snapshot_comment="Spending limit in USD at capture; NULL = no limit.",
            versioned=True,
            version_comment="Spending limit in USD; NULL = no limit.",
        ),
    ]
    limit_remaining: Annotated[
        Decimal | None,
        Column(
            "USD left under the limit at the last sync; NULL = no limit.",
            snapshot=True,
            snapshot_comment="USD left under the limit at capture; NULL = no limit.",
        ),
    ]
    limit_reset: Annotated[
        str | None,
        Column(
            "How often the limit resets: daily, weekly, monthly; NULL = never.",
            max_length=32,
            snapshot=True,
            snapshot_comment="Limit reset period at capture (daily, weekly, monthly or NULL).",
            versioned=True,
            version_comment="Limit reset period: daily, weekly, monthly or NULL.",
        ),
    ]
    include_byok_in_limit: Annotated[
        bool,
        Column(
            "True when BYOK usage counts toward the limit.",
            snapshot=True,
            snapshot_comment="Whether BYOK usage counted toward the limit at capture.",
            versioned=True,
            version_comment="Whether BYOK usage counts toward the limit.",
        ),
    ]
    usage: Annotated[
        Decimal,
        Column(
            "Total OpenRouter credit usage in USD since the key was created.",
            snapshot=True,
            snapshot_comment="Cumulative USD usage at capture.",
        ),
    ]
    usage_daily: Annotated[
        Decimal,
        Column(
            "USD used in the current UTC day, as of the last sync.",
            snapshot=True,
            snapshot_comment="USD used in the capture's UTC day up to capture; usage - "
            "usage_daily is the cumulative usage at 00:00 UTC of that day.",
        ),
    ]
    usage_weekly: Annotated[
        Decimal,
        Column(
            "USD used in the current UTC week (from Monday), as of the last sync.",
            snapshot=True,
            snapshot_comment="USD used in the capture's UTC week (from Monday 00:00) up to "
            "capture.",
        ),
    ]
    usage_monthly: Annotated[
        Decimal,
        Column(
            "USD used in the current UTC month, as of the last sync.",
            snapshot=True,
            snapshot_comment="USD used in the capture's UTC month up to capture.",
        ),
    ]
    byok_usage: Annotated[
        Decimal,
        Column(
            "Total external BYOK usage in USD since the key was created.",
            snapshot=True,
            snapshot_comment="Cumulative BYOK USD at capture.",
        ),
    ]
    byok_usage_daily: Annotated[
        Decimal,
        Column(
            "BYOK USD in the current UTC day, as of the last sync.",
            snapshot=True,
            snapshot_comment="BYOK USD in the capture's UTC day up to capture.",
        ),
    ]
    byok_usage_weekly: Annotated[
        Decimal,
        Column(
            "BYOK USD in the current UTC week (from Monday), as of the last sync.",
            snapshot=True,
            snapshot_comment="BYOK USD in the capture's UTC week up to capture.",
        ),
    ]
    byok_usage_monthly: Annotated[
        Decimal,
        Column(
            "BYOK USD in the current UTC month, as of the last sync.",
            snapshot=True,
            snapshot_comment="BYOK USD in the capture's UTC month up to capture.",
        ),
    ]
    created_at: Annotated[datetime, Column("When the key was created (UTC, from the API).")]
    updated_at: Annotated[
        datetime | None, Column("When the key was last updated (UTC, from the API).")
    ]
    creator_user_id: Annotated[
        str | None, Column("User who created the key (for organization keys, the member).")
    ]
    workspace_id: Annotated[
        str,
        Column(
            "UUID of the workspace the key belongs to.",
            max_length=64,
            versioned=True,
            version_comment="Workspace UUID.",
        ),
    ]
    # Not in the reference's required list; newer servers add the last two.
    expires_at: Annotated[
        datetime | None,
        Column(
            "When the key expires (UTC); NULL = never.",
            may_be_absent=True,
            snapshot=True,
            snapshot_comment="Expiry of the key at capture (UTC); NULL = never.",
            versioned=True,
            version_comment="Expiry (UTC); NULL = never.",
        ),
    ]
    last_used_at: Annotated[
        datetime | None,
        Column("When the key was last used (UTC); NULL when unknown or never.", may_be_absent=True),
    ]
    external_user: Annotated[
        str | None,
        Column(
            "External user the key was issued for, when the API reports one.", may_be_absent=True
        ),
    ]
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    # A digest of the payload's JSON text (blake2b, 16 bytes): of the bytes the server
    # sent for the key (etl.openrouter.fast_keys), or of dump_json's text when the
    # careful parser read the page. Equal digests mean an unchanged payload, so the
    # store need not compare payloads. Unequal digests prove nothing (the same value
    # may be written differently): the store then compares values.
    digest: bytes = field(default=b"", repr=False, compare=False)
    # The key's JSON text exactly as the server sent it, when the fast path read the
    # page (etl.openrouter.fast_keys); "" when the careful parser did. The store keeps
    # it as raw_json ("verbatim JSON"), so it need not write the payload out again.
    raw_text: str = field(default="", repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Fields the API sent that this version of keyledger does not know."""
        return {k: v for k, v in self.raw.items() if k not in KNOWN_KEY_FIELDS}

    def full(self) -> KeyRecord:
        """The record itself (see ``ListedKey.full``)."""
        return self


class ListedKey:
    """A key as a page of a listing showed it, read only as far as paging and change
    detection need (its hash, creation time, workspace and digest); ``full()`` reads the
    rest, once, when the store finds the key new or changed.

    Most keys are unchanged on most nights, and their bytes are then exactly the bytes
    stored before, which were read and checked in full when they were stored: reading
    them again would find nothing new. ``full()`` raises what reading the whole page
    would have raised for this key (a PayloadError that names it and the page).
    """

    __slots__ = ("_read", "_record", "created_at", "digest", "hash", "workspace_id")

    def __init__(
        self,
        hash: str,
        created_at: datetime,
        workspace_id: str,
        digest: bytes,
        read: typing.Callable[[], KeyRecord],
    ) -> None:
        self.hash = hash
        self.created_at = created_at
        self.workspace_id = workspace_id
        self.digest = digest
        self._read: typing.Callable[[], KeyRecord] | None = read
        self._record: KeyRecord | None = None

    def full(self) -> KeyRecord:
        """The whole record (read on first call, then kept)."""
        if self._record is None:
            assert self._read is not None
            self._record, self._read = self._read(), None
        return self._record


# What a page of a listing holds: keys read in full, or as far as the listing needs.
Listing = KeyRecord | ListedKey


class Kind(enum.Enum):
    """What a field holds, from its Python type."""

    TEXT = str
    MONEY = Decimal
    BOOLEAN = bool
    TIMESTAMP = datetime


@dataclass(frozen=True, slots=True)
class KeyField:
    """One row of the declaration: a ``KeyRecord`` field and its ``Column``, resolved."""

    name: str  # in the API and on KeyRecord
    column: str  # in api_keys (and usage_snapshots, api_key_versions where flagged)
    kind: Kind
    nullable: bool  # the API may send null (and the columns allow NULL)
    required: bool  # must be present in every payload (False: newer servers only)
    max_length: int | None
    primary_key: bool
    comment: str
    snapshot: bool
    snapshot_comment: str
    versioned: bool
    version_comment: str

    @property
    def text_limit(self) -> TextLimit:
        """What this text field's columns hold (its VARCHAR length, or MariaDB's TEXT)."""
        where = f"{KEY_TABLE}.{self.column}"
        if self.max_length is not None:
            return TextLimit(where, characters=self.max_length)
        return TextLimit(where, utf8_bytes=TEXT_UTF8_BYTES)


def declared_fields(record_class: type) -> tuple[KeyField, ...]:
    """The fields a record class declares (``KeyRecord``'s are ``KEY_FIELDS``), in order."""
    fields = []
    for name, hint in typing.get_type_hints(record_class, include_extras=True).items():
        declared = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Column)]
        if not declared:
            continue  # raw and digest: the payload itself, not a field of it
        (column,) = declared
        python_type, *_ = typing.get_args(hint)
        members = set(typing.get_args(python_type)) if _is_union(python_type) else {python_type}
        nullable = type(None) in members
        kinds = [kind for kind in Kind if kind.value in members]
        if len(kinds) != 1 or len(members) != 1 + nullable:
            raise TypeError(f"{name}: a field is one of {[k.value.__name__ for k in Kind]}")
        if column.may_be_absent and not nullable:
            raise TypeError(f"{name}: a field that may be absent must allow None")
        if column.max_length is not None and kinds[0] is not Kind.TEXT:
            raise TypeError(f"{name}: only text has a max_length")
        fields.append(
            KeyField(
                name=name,
                column=column.name or name,
                kind=kinds[0],
                nullable=nullable,
                required=not column.may_be_absent,
                max_length=column.max_length,
                primary_key=column.primary_key,
                comment=column.comment,
                snapshot=column.snapshot,
                snapshot_comment=column.snapshot_comment or column.comment,
                versioned=column.versioned,
                version_comment=column.version_comment or column.comment,
            )
        )
    if [f.primary_key for f in fields[:1]] != [True] or sum(f.primary_key for f in fields) > 1:
        raise TypeError("the first field, and only it, is the primary key")
    return tuple(fields)


def _is_union(python_type: Any) -> bool:
    return typing.get_origin(python_type) in (typing.Union, types.UnionType)


KEY_FIELDS = declared_fields(KeyRecord)
KEY_FIELDS_BY_NAME = {f.name: f for f in KEY_FIELDS}
KNOWN_KEY_FIELDS = frozenset(KEY_FIELDS_BY_NAME)
# Column names, in declaration order: every field's api_keys column, the columns a
# change of which writes a usage_snapshots row, those that open an api_key_versions row.
KEY_COLUMNS = tuple(f.column for f in KEY_FIELDS)
SNAPSHOT_FIELDS = tuple(f.column for f in KEY_FIELDS if f.snapshot)
VERSIONED_FIELDS = tuple(f.column for f in KEY_FIELDS if f.versioned)
MONEY_COLUMNS = tuple(f.column for f in KEY_FIELDS if f.kind is Kind.MONEY)
TEXT_LIMITS = {f.name: f.text_limit for f in KEY_FIELDS if f.kind is Kind.TEXT}


def key_field(name: str) -> KeyField:
    """The declared field ``name`` (as the API and KeyRecord call it)."""
    try:
        return KEY_FIELDS_BY_NAME[name]
    except KeyError:
        raise LookupError(f"KeyRecord declares no field {name!r}") from None
