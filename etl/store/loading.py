"""Key records -> api_keys, usage_snapshots and their history, through a Connection the
caller gives (and commits).

Set-based on purpose, a batch of keys (several pages) at a time: the batch's hashes and
digests are staged in a temporary table (etl.store.seen_keys), and one join with api_keys
names the keys that are not unchanged (an equal digest of a live key from the same
workspace is unchanged: no payload is parsed); one SELECT of the stored state of those;
then one bulk write (etl.store.bulk: COPY on PostgreSQL) of the key upsert, after which
the snapshot and version rows are copied from the fresh rows in SQL (etl.store.derived)
and the daily spend is upserted. Which keys get a snapshot, a version and a spend row
is decided in Python: they are few on most nights, the rules are daily_spend's, and
on SQLite the money they derive must be computed exactly (in Decimal) before it is
stored as a double, which SQL arithmetic on REAL columns would not do.
Nothing here commits; ``etl.store.workspace_load`` calls these for one workspace, inside
the transaction ``etl.workspace_sync`` owns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, func, select, update

from etl.core.exact_json import dump_json, parse_json_quickly
from etl.core.key_fields import (
    KEY_COLUMNS,
    KEY_FIELDS,
    MONEY_COLUMNS,
    SNAPSHOT_FIELDS,
    VERSIONED_FIELDS,
    KeyRecord,
    Listing,
)
from etl.store import bulk, daily_spend, derived, seen_keys, versions
from etl.store.counts import PageCounts
from models import ApiKey, UsageSnapshot
from models.types import money_as_stored

# The fields and their columns are declared once, in etl.core.key_fields: a change of
# SNAPSHOT_FIELDS writes a usage_snapshots row (descriptive fields do not).

# The record's values in KEY_COLUMNS' order, in one C call.
_FIELD_VALUES = attrgetter(*(f.name for f in KEY_FIELDS))


def key_row(record: KeyRecord, raw_json: str, captured_at: datetime) -> dict[str, Any]:
    """The api_keys row for ``record`` (first_seen_at is kept by the upsert)."""
    row = dict(zip(KEY_COLUMNS, _FIELD_VALUES(record), strict=False))  # both from KEY_FIELDS
    # Item by item: a third cheaper than update(**...) per changed key.
    row["raw_json"] = raw_json
    row["first_seen_at"] = row["changed_at"] = captured_at
    row["deleted_at"] = None
    return row


@dataclass(frozen=True, slots=True)
class Listed:
    """A key record and the server time of the response that carried it."""

    record: Listing  # read in full (``full()``) only once found new or changed
    captured_at: datetime


def load_keys(
    connection: Connection,
    records: Sequence[KeyRecord],
    *,
    captured_at: datetime,
    sync_run_id: int,
    observed_days: Collection[date] = frozenset(),
) -> PageCounts:
    """``load_batch`` of records all captured at ``captured_at`` (a key looked up alone)."""
    return load_batch(
        connection,
        [Listed(r, captured_at) for r in records],
        sync_run_id=sync_run_id,
        observed_days=observed_days,
    )


def load_batch(
    connection: Connection,
    batch: Sequence[Listed],
    *,
    sync_run_id: int,
    observed_days: Collection[date] = frozenset(),
) -> PageCounts:
    """Upsert changed keys; append snapshots, versions and daily spend where they changed.

    No key may appear twice in ``batch`` (each is compared with what was stored before
    the batch). ``observed_days`` are the days earlier runs observed the keys' workspace on.
    """
    counts = PageCounts(seen=len(batch))
    if not batch:
        return counts
    stored, refreshed, changed = _split_unchanged(connection, batch)
    if refreshed:
        connection.execute(_REFRESH_DIGEST, refreshed)
    rows = [_key_row(listed) for listed in changed]
    if connection.dialect.name == "sqlite":
        # Compare and derive from what the columns will hold (a REAL there): an amount
        # a double cannot hold would otherwise differ from its stored self every run.
        for row in rows:
            for field in MONEY_COLUMNS:
                row[field] = money_as_stored(row[field], connection.dialect)
    snapshots: list[str] = []
    new_versions: list[str] = []
    closing: dict[datetime, list[str]] = {}  # current versions that end, by moment
    spend: list[dict[str, Any]] = []
    for row in rows:
        captured_at = row["changed_at"]
        before = stored.get(row["hash"])
        if before is None:
            counts.new += 1
        else:
            counts.changed += 1
        if versions.version_changed(before, row):
            new_versions.append(row["hash"])
            if before is not None:
                closing.setdefault(captured_at, []).append(row["hash"])
        if before is None or any(before[f] != row[f] for f in SNAPSHOT_FIELDS):
            snapshots.append(row["hash"])
            day_row = daily_spend.spend_row(
                before, row, captured_at, row["created_at"], observed_days
            )
            if day_row is not None:
                spend.append(day_row)
    bulk.upsert_rows(connection, ApiKey, ["hash"], rows, keep=["first_seen_at"])
    for at, hashes in closing.items():
        versions.close_versions(connection, hashes, at)
    # The snapshot and version rows are copies of the rows just written: made in SQL.
    derived.write_derived(
        connection, snapshots=snapshots, versions=new_versions, sync_run_id=sync_run_id
    )
    daily_spend.write_spend(connection, spend)
    counts.snapshots = len(snapshots)
    return counts


def _key_row(listed: Listed) -> dict[str, Any]:
    record = listed.record.full()
    # The text as served when there is one: verbatim, and no cost to write out again.
    row = key_row(record, record.raw_text or dump_json(record.raw), listed.captured_at)
    row["digest"] = record.digest or None
    return row


def _split_unchanged(
    connection: Connection, batch: Sequence[Listed]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Listed]]:
    """The stored state of the keys that are not unchanged but stored (by hash), the
    digests to refresh of keys found unchanged by value, and the keys that are new or
    changed.

    A live key that arrives from the same workspace with the digest it was stored with
    is unchanged. One whose digest differs (or was never stored: rows from before 0007)
    may still be unchanged: the same value written differently (1.0, then 1.00). Those
    are compared as parsed JSON values, as before digests; an equal one only gets its
    digest stored, so the next run can tell it cheaply.
    """
    seen_keys.stage_batch(connection, [listed.record for listed in batch])
    # Only the keys not found unchanged come back: none, on an unchanged night.
    unmatched = {h: (bool(known), bool(same)) for h, known, same in seen_keys.unmatched(connection)}
    changed: list[Listed] = []
    compare: list[Listed] = []
    for listed in batch:
        flags = unmatched.get(listed.record.hash)
        if flags is None:
            continue  # unchanged, its row is left alone
        known, same_workspace_and_live = flags
        if known and same_workspace_and_live:
            compare.append(listed)  # only the digest differs (or was never stored)
        else:
            changed.append(listed)
    # One read of what is stored of them: the state change detection compares, and the
    # payload of those whose digest alone differs.
    stored = _stored_state(connection, [h for h, (known, _) in unmatched.items() if known])
    refreshed: list[dict[str, Any]] = []
    for listed in compare:
        record = listed.record
        if parse_json_quickly(stored[record.hash]["raw_json"]) != record.full().raw:
            changed.append(listed)
        elif record.digest:
            refreshed.append({"b_hash": record.hash, "b_digest": record.digest})
    return stored, refreshed, changed


# Built once: a statement object memoizes its cache key, so executing it per page costs
# no statement building (it showed in the profile of an unchanged sync).
_HASHES: BindParameter[list[str]] = bindparam("hashes", expanding=True)
_REFRESH_DIGEST = (
    update(ApiKey).where(ApiKey.hash == bindparam("b_hash")).values(digest=bindparam("b_digest"))
)
# A correlated MAX per key: every planner answers it from the (key_hash, captured_at)
# index, even before statistics exist (a grouped subquery was a full scan then).
_SNAPSHOT_AT = (
    select(func.max(UsageSnapshot.captured_at))
    .where(UsageSnapshot.key_hash == ApiKey.hash)
    .correlate(ApiKey)
    .scalar_subquery()
    .label("snapshot_at")
)
_STATE_FIELDS = sorted({"deleted_at", *SNAPSHOT_FIELDS, *VERSIONED_FIELDS})
_STORED_STATE = select(
    ApiKey.hash, *(getattr(ApiKey, f) for f in _STATE_FIELDS), ApiKey.raw_json, _SNAPSHOT_AT
).where(ApiKey.hash.in_(_HASHES))


def _stored_state(connection: Connection, hashes: list[str]) -> dict[str, Any]:
    """What the database knows of these keys: the fields change detection compares,
    the payload, and when each key's latest snapshot was captured."""
    if not hashes:
        return {}
    rows = connection.execute(_STORED_STATE, {"hashes": hashes}).all()
    return {row.hash: row._mapping for row in rows}


def mark_deleted(
    connection: Connection,
    hashes: Sequence[str],
    deleted_at: datetime,
    *,
    workspace_id: str,
    observed_days: Collection[date] = frozenset(),
) -> int:
    """Set deleted_at on keys the API confirmed gone (404); their history stays."""
    if not hashes:
        return 0
    connection.execute(
        update(ApiKey)
        .where(ApiKey.hash.in_(hashes), ApiKey.deleted_at.is_(None))
        .values(deleted_at=deleted_at, changed_at=deleted_at)
    )
    versions.close_versions(connection, hashes, deleted_at)
    daily_spend.write_spend(
        connection, daily_spend.deleted_key_rows(hashes, workspace_id, deleted_at, observed_days)
    )
    return len(hashes)
