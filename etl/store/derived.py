"""Snapshot and version rows derived in SQL from the api_keys rows a batch just wrote.

Which keys get a snapshot (new, or a snapshotted field changed) and which open a new
version is decided in Python (etl.store.loading, by the rules of etl.store.versions);
the rows themselves are copies of the fresh api_keys rows. So instead of sending each
row three times (the key, its snapshot, its version), a batch sends the keys once and
a narrow list of (hash, snapshot?, version?) to a temporary table of the connection,
and two INSERT ... SELECT statements copy the columns across inside the database. On a
first sync of 100,000 keys that is 200,000 wide rows the driver never formats.

The scratch table follows etl.store.seen_keys' rules: temporary on every backend (ON
COMMIT DROP on PostgreSQL; TEMP on SQLite; an InnoDB TEMPORARY table on MariaDB, which
neither commits nor rolls back its creation), created if missing and emptied before each
use, so a rolled-back workspace or the previous savepoint of a dry run leaves nothing
behind that counts. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)

from etl.core.key_fields import SNAPSHOT_FIELDS, VERSIONED_FIELDS
from etl.store import bulk
from models import ApiKey, ApiKeyVersion, UsageSnapshot
from models.keys import HASH_LENGTH

TABLE_NAME = "keyledger_changed_keys"
# Not in models' MetaData: no migration creates it, and the data dictionary is of
# permanent tables.
CHANGED_KEYS = Table(
    TABLE_NAME,
    MetaData(),
    Column("key_hash", String(HASH_LENGTH), nullable=False),
    Column("snapshot", Boolean, nullable=False),
    Column("version", Boolean, nullable=False),
)

_CREATE = {
    "postgresql": f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} (key_hash "
    f"VARCHAR({HASH_LENGTH}) NOT NULL, snapshot BOOLEAN NOT NULL, version BOOLEAN NOT NULL) "
    "ON COMMIT DROP",
    "sqlite": f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} "
    "(key_hash TEXT NOT NULL, snapshot BOOLEAN NOT NULL, version BOOLEAN NOT NULL)",
    # The collation of api_keys.hash, so the join compares (and uses its index) alike.
    "mysql": f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} (key_hash "
    f"VARCHAR({HASH_LENGTH}) NOT NULL, snapshot BOOL NOT NULL, version BOOL NOT NULL) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
}
_DROP = {
    "postgresql": None,  # ON COMMIT DROP does it, and a rollback too
    "sqlite": f"DROP TABLE IF EXISTS temp.{TABLE_NAME}",
    "mysql": f"DROP TEMPORARY TABLE IF EXISTS {TABLE_NAME}",  # no implicit commit
}


def write_derived(
    connection: Connection,
    *,
    snapshots: Sequence[str],
    versions: Sequence[str],
    sync_run_id: int,
) -> None:
    """Insert a usage_snapshots row for each key of ``snapshots`` and a new current
    api_key_versions row for each of ``versions``, from the keys' api_keys rows as the
    batch just wrote them (captured, and valid from, their ``changed_at``)."""
    if not snapshots and not versions:
        return
    connection.exec_driver_sql(_CREATE[connection.dialect.name])
    bulk.empty_scratch(connection, CHANGED_KEYS)
    wanted_snapshot, wanted_version = set(snapshots), set(versions)
    rows = [
        {"key_hash": h, "snapshot": h in wanted_snapshot, "version": h in wanted_version}
        for h in dict.fromkeys([*snapshots, *versions])
    ]
    bulk.insert_rows(connection, CHANGED_KEYS, rows)
    with bulk.batch_lookups(connection):
        if snapshots:
            connection.execute(_SNAPSHOTS, {"sync_run_id": sync_run_id})
        if versions:
            connection.execute(_VERSIONS)


def drop(connection: Connection) -> None:
    """Free the scratch table once the workspace is loaded (a pooled MariaDB or SQLite
    connection would keep it)."""
    statement = _DROP[connection.dialect.name]
    if statement is not None:
        connection.exec_driver_sql(statement)


_KEYS = ApiKey.__table__
_JOINED = _KEYS.join(CHANGED_KEYS, CHANGED_KEYS.c.key_hash == _KEYS.c.hash)
_SNAPSHOTS = insert(UsageSnapshot).from_select(
    ["key_hash", "workspace_id", "sync_run_id", "captured_at", *SNAPSHOT_FIELDS],
    select(
        _KEYS.c.hash,
        _KEYS.c.workspace_id,
        bindparam("sync_run_id", type_=UsageSnapshot.__table__.c.sync_run_id.type),
        _KEYS.c.changed_at,
        *(_KEYS.c[f] for f in SNAPSHOT_FIELDS),
    )
    .select_from(_JOINED)
    .where(CHANGED_KEYS.c.snapshot),
)
_VERSIONS = insert(ApiKeyVersion).from_select(
    ["key_hash", "valid_from", *VERSIONED_FIELDS],  # valid_to NULL: the current version
    select(
        _KEYS.c.hash,
        _KEYS.c.changed_at,
        *(_KEYS.c[f] for f in VERSIONED_FIELDS),
    )
    .select_from(_JOINED)
    .where(CHANGED_KEYS.c.version),
)
