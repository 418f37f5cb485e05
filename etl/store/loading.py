"""Key records -> api_keys, usage_snapshots and their history, through a Connection the
caller gives (and commits).

Set-based on purpose: per page one SELECT of what decides whether the page's keys
changed, one SELECT of the stored state of those that did, then one executemany each
(straight to the driver, etl.store.bulk) for the key upsert, the new snapshot rows, the new
versions and the seen-key list.
Nothing here commits; ``etl.store.workspace_load`` calls these for one workspace, inside
the transaction ``etl.sync`` owns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    and_,
    bindparam,
    delete,
    func,
    select,
    update,
)

from etl.core.exact_json import dump_json, parse_json
from etl.core.key_fields import (
    KEY_COLUMNS,
    KEY_FIELDS,
    MONEY_COLUMNS,
    SNAPSHOT_FIELDS,
    VERSIONED_FIELDS,
    KeyRecord,
)
from etl.store import bulk, daily_spend, versions
from etl.store.counts import PageCounts
from models import ApiKey, SyncSeenKey, UsageSnapshot
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


def load_keys(
    connection: Connection,
    records: Sequence[KeyRecord],
    *,
    captured_at: datetime,
    sync_run_id: int,
    sync_run_workspace_id: int | None,
    observed_days: Collection[date] = frozenset(),
) -> PageCounts:
    """Upsert changed keys; append snapshots, versions and daily spend where they changed.

    ``observed_days`` are the days earlier runs observed the keys' workspace on.
    """
    counts = PageCounts(seen=len(records))
    if not records:
        return counts
    # Most keys are unchanged on most nights: find those from three untyped columns
    # (comparing parsed payloads, all in C), and read the typed state only of the keys
    # that differ.
    known = _stored_payloads(connection, [r.hash for r in records])
    rows = []
    for record in records:
        if record.hash in known:
            workspace_id, raw_json, live = known[record.hash]
            if live and workspace_id == record.workspace_id and parse_json(raw_json) == record.raw:
                continue  # unchanged: leave the row alone
        rows.append(key_row(record, dump_json(record.raw), captured_at))
    if connection.dialect.name == "sqlite":
        # Compare and derive from what the columns will hold (a REAL there): an amount
        # a double cannot hold would otherwise differ from its stored self every run.
        for row in rows:
            for field in MONEY_COLUMNS:
                row[field] = money_as_stored(row[field], connection.dialect)
    stored = _stored_state(connection, [row["hash"] for row in rows if row["hash"] in known])
    snapshots: list[dict[str, Any]] = []
    new_versions: list[dict[str, Any]] = []
    spend: list[dict[str, Any]] = []
    for row in rows:
        before = stored.get(row["hash"])
        if before is None:
            counts.new += 1
        else:
            counts.changed += 1
        if versions.version_changed(before, row):
            new_versions.append(versions.version_row(row, captured_at))
        if before is None or any(before[f] != row[f] for f in SNAPSHOT_FIELDS):
            snapshots.append(_snapshot_row(row, captured_at, sync_run_id))
            day_row = daily_spend.spend_row(
                before, row, captured_at, row["created_at"], observed_days
            )
            if day_row is not None:
                spend.append(day_row)
    bulk.upsert_rows(connection, ApiKey, ["hash"], rows, keep=["first_seen_at"])
    bulk.insert_rows(connection, UsageSnapshot, snapshots)
    versions.close_versions(
        connection, [v["key_hash"] for v in new_versions if v["key_hash"] in stored], captured_at
    )
    versions.open_versions(connection, new_versions)
    daily_spend.write_spend(connection, spend)
    if sync_run_workspace_id is not None:
        bulk.insert_rows(
            connection,
            SyncSeenKey,
            [{"sync_run_workspace_id": sync_run_workspace_id, "key_hash": r.hash} for r in records],
        )
    counts.snapshots = len(snapshots)
    return counts


# Built once: a statement object memoizes its cache key, so executing it per page costs
# no statement building (it showed in the profile of an unchanged sync).
_HASHES: BindParameter[list[str]] = bindparam("hashes", expanding=True)
_STORED_PAYLOADS = select(
    ApiKey.hash, ApiKey.workspace_id, ApiKey.raw_json, ApiKey.deleted_at.is_(None)
).where(ApiKey.hash.in_(_HASHES))
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
    ApiKey.hash, *(getattr(ApiKey, f) for f in _STATE_FIELDS), _SNAPSHOT_AT
).where(ApiKey.hash.in_(_HASHES))


def _stored_payloads(connection: Connection, hashes: list[str]) -> dict[str, tuple[str, str, bool]]:
    """(workspace_id, raw_json, live) of each stored key: a live key that arrives from
    the same workspace with an equal payload is unchanged.

    Payloads are compared as parsed JSON values: a number the API writes differently
    (1.0, then 1.00) is the same value and changes nothing.
    """
    rows = connection.execute(_STORED_PAYLOADS, {"hashes": hashes}).all()
    return {h: (workspace, raw, bool(live)) for h, workspace, raw, live in rows}


def _stored_state(connection: Connection, hashes: list[str]) -> dict[str, Any]:
    """What the database knows of these keys: the fields change detection compares,
    and when each key's latest snapshot was captured."""
    if not hashes:
        return {}
    rows = connection.execute(_STORED_STATE, {"hashes": hashes}).all()
    return {row.hash: row._mapping for row in rows}


def _snapshot_row(row: dict[str, Any], captured_at: datetime, sync_run_id: int) -> dict[str, Any]:
    snapshot = {f: row[f] for f in SNAPSHOT_FIELDS}
    snapshot.update(
        key_hash=row["hash"],
        workspace_id=row["workspace_id"],
        sync_run_id=sync_run_id,
        captured_at=captured_at,
    )
    return snapshot


def missing_keys(
    connection: Connection, workspace_id: str, sync_run_workspace_id: int
) -> list[str]:
    """Live keys of the workspace that this run's listing did not show."""
    seen = select(SyncSeenKey.key_hash).where(
        SyncSeenKey.sync_run_workspace_id == sync_run_workspace_id
    )
    query = select(ApiKey.hash).where(
        and_(
            ApiKey.workspace_id == workspace_id,
            ApiKey.deleted_at.is_(None),
            ApiKey.hash.not_in(seen),
        )
    )
    return list(connection.scalars(query))


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


def clear_seen(connection: Connection, sync_run_workspace_id: int) -> None:
    """Empty the scratch list of seen keys (it is only needed inside the transaction)."""
    connection.execute(
        delete(SyncSeenKey).where(SyncSeenKey.sync_run_workspace_id == sync_run_workspace_id)
    )
