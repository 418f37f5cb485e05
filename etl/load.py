"""Records -> tables, through a Connection the caller gives (and commits).

Set-based on purpose: per page one SELECT of the stored state of the page's keys, then
one executemany each for the key upsert, the new snapshot rows and the seen-key list.
Nothing here commits; ``sync.py`` owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, and_, delete, insert, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from etl.records import KeyRecord, dump_json
from models import ApiKey, SyncSeenKey, UsageSnapshot, Workspace

# Values whose change writes a usage_snapshots row (descriptive fields do not).
SNAPSHOT_FIELDS = (
    "usage",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_weekly",
    "byok_usage_monthly",
    "credit_limit",
    "limit_remaining",
    "limit_reset",
    "include_byok_in_limit",
    "disabled",
    "expires_at",
)
_KEY_COLUMNS = [c.name for c in ApiKey.__table__.columns]


@dataclass
class PageCounts:
    """What loading one page (or one looked-up key) changed."""

    seen: int = 0
    new: int = 0
    changed: int = 0
    snapshots: int = 0

    def add(self, other: PageCounts) -> None:
        """Accumulate ``other`` into this tally."""
        self.seen += other.seen
        self.new += other.new
        self.changed += other.changed
        self.snapshots += other.snapshots


def key_row(record: KeyRecord, captured_at: datetime) -> dict[str, Any]:
    """The api_keys row for ``record`` (first_seen_at is kept by the upsert)."""
    return {
        "hash": record.hash,
        "workspace_id": record.workspace_id,
        "name": record.name,
        "label": record.label,
        "disabled": record.disabled,
        "credit_limit": record.limit,
        "limit_remaining": record.limit_remaining,
        "limit_reset": record.limit_reset,
        "include_byok_in_limit": record.include_byok_in_limit,
        "usage": record.usage,
        "usage_daily": record.usage_daily,
        "usage_weekly": record.usage_weekly,
        "usage_monthly": record.usage_monthly,
        "byok_usage": record.byok_usage,
        "byok_usage_daily": record.byok_usage_daily,
        "byok_usage_weekly": record.byok_usage_weekly,
        "byok_usage_monthly": record.byok_usage_monthly,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "creator_user_id": record.creator_user_id,
        "expires_at": record.expires_at,
        "last_used_at": record.last_used_at,
        "external_user": record.external_user,
        "raw_json": dump_json(dict(record.raw)),
        "first_seen_at": captured_at,
        "changed_at": captured_at,
        "deleted_at": None,
    }


def upsert_statement(connection: Connection) -> Insert:
    """The dialect's native INSERT ... ON CONFLICT/DUPLICATE KEY UPDATE for api_keys."""
    updated = [c for c in _KEY_COLUMNS if c not in ("hash", "first_seen_at")]
    name = connection.dialect.name
    if name == "mysql":
        my_insert = mysql.insert(ApiKey)
        return my_insert.on_duplicate_key_update({c: my_insert.inserted[c] for c in updated})
    if name in ("postgresql", "sqlite"):
        dialect_insert = postgresql.insert if name == "postgresql" else sqlite.insert
        stmt = dialect_insert(ApiKey)
        return stmt.on_conflict_do_update(
            index_elements=["hash"], set_={c: stmt.excluded[c] for c in updated}
        )
    raise NotImplementedError(f"no upsert for the {name} dialect")


def load_keys(
    connection: Connection,
    records: Sequence[KeyRecord],
    *,
    captured_at: datetime,
    sync_run_id: int,
    sync_run_workspace_id: int | None,
) -> PageCounts:
    """Upsert changed keys, append snapshots where usage/limit/state changed."""
    counts = PageCounts(seen=len(records))
    if not records:
        return counts
    stored = _stored_state(connection, [r.hash for r in records])
    upserts: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    for record in records:
        row = key_row(record, captured_at)
        before = stored.get(record.hash)
        if before is None:
            counts.new += 1
        elif (
            before["raw_json"] == row["raw_json"]
            and before["deleted_at"] is None
            and before["workspace_id"] == row["workspace_id"]
        ):
            continue  # unchanged: leave the row alone
        else:
            counts.changed += 1
        upserts.append(row)
        if before is None or any(before[f] != row[f] for f in SNAPSHOT_FIELDS):
            snapshots.append(_snapshot_row(row, captured_at, sync_run_id))
    if upserts:
        connection.execute(upsert_statement(connection), upserts)
    if snapshots:
        connection.execute(insert(UsageSnapshot), snapshots)
    if sync_run_workspace_id is not None:
        connection.execute(
            insert(SyncSeenKey),
            [{"sync_run_workspace_id": sync_run_workspace_id, "key_hash": r.hash} for r in records],
        )
    counts.snapshots = len(snapshots)
    return counts


def _stored_state(connection: Connection, hashes: list[str]) -> dict[str, Any]:
    columns = [ApiKey.hash, ApiKey.raw_json, ApiKey.deleted_at, ApiKey.workspace_id]
    columns += [getattr(ApiKey, f) for f in SNAPSHOT_FIELDS]
    result = connection.execute(select(*columns).where(ApiKey.hash.in_(hashes)))
    return {row.hash: row._mapping for row in result}


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


def mark_deleted(connection: Connection, hashes: Iterable[str], deleted_at: datetime) -> int:
    """Set deleted_at on keys the API confirmed gone (404); history stays."""
    hashes = list(hashes)
    if not hashes:
        return 0
    connection.execute(
        update(ApiKey)
        .where(ApiKey.hash.in_(hashes), ApiKey.deleted_at.is_(None))
        .values(deleted_at=deleted_at, changed_at=deleted_at)
    )
    return len(hashes)


def clear_seen(connection: Connection, sync_run_workspace_id: int) -> None:
    """Empty the scratch list of seen keys (it is only needed inside the transaction)."""
    connection.execute(
        delete(SyncSeenKey).where(SyncSeenKey.sync_run_workspace_id == sync_run_workspace_id)
    )


def upsert_workspace(
    connection: Connection,
    workspace_id: str,
    *,
    name: str | None,
    slug: str | None,
    synced_at: datetime | None,
    now: datetime,
) -> None:
    """Insert the workspace, or refresh its name and last successful sync time."""
    existing = connection.execute(select(Workspace.id).where(Workspace.id == workspace_id)).first()
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if slug is not None:
        values["slug"] = slug
    if synced_at is not None:
        values["last_synced_at"] = synced_at
    if existing is None:
        connection.execute(
            insert(Workspace),
            [
                {
                    "id": workspace_id,
                    "first_seen_at": now,
                    "name": name,
                    "slug": slug,
                    "last_synced_at": synced_at,
                }
            ],
        )
    elif values:
        connection.execute(update(Workspace).where(Workspace.id == workspace_id).values(**values))
