"""The keys a listing has seen, in temporary tables of the loading connection: all of
them (``keyledger_seen_keys``), so the keys missing from the listing are one anti-join
away; and the batch being loaded with its digests (``keyledger_batch_keys``), so one
join with api_keys tells which of its keys are not unchanged.

Temporary on every backend, so no permanent table gets a row per key per run and two
connections loading two workspaces at once each have their own table:

- PostgreSQL: ``ON COMMIT DROP``; a rolled-back transaction (or savepoint) takes the
  table with it.
- SQLite: a TEMP table; DDL is transactional there (etl.store.database begins
  transactions explicitly), so a rollback takes it too.
- MariaDB/MySQL: ``CREATE TEMPORARY TABLE`` does not commit implicitly, but is not rolled
  back either, and it outlives the transaction on a pooled connection.

So each load begins with ``start`` (create the tables if this connection has none, and
empty them: a rolled-back MariaDB load, or the previous workspace of a dry run, whose
workspaces are savepoints of one outer transaction, may have left rows) and ends with
``drop``. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    and_,
    exists,
    insert,
    not_,
    or_,
    select,
)

from etl.core.key_fields import Listing
from etl.store import bulk
from models import ApiKey
from models.keys import HASH_LENGTH, ID_LENGTH

TABLE_NAME = "keyledger_seen_keys"
BATCH_TABLE = "keyledger_batch_keys"
# Not in models' MetaData: no migration creates them, and the data dictionary is of
# permanent tables.
_SCRATCH = MetaData()
SEEN_KEYS = Table(TABLE_NAME, _SCRATCH, Column("key_hash", String(HASH_LENGTH), nullable=False))
BATCH_KEYS = Table(
    BATCH_TABLE,
    _SCRATCH,
    Column("key_hash", String(HASH_LENGTH), nullable=False),
    Column("workspace_id", String(ID_LENGTH), nullable=False),
    Column("digest", ApiKey.__table__.c.digest.type),
)

# Not unique: offset paging may list a key twice, and COPY cannot skip a duplicate.
_CREATE = {
    "postgresql": (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} "
        f"(key_hash VARCHAR({HASH_LENGTH}) NOT NULL) ON COMMIT DROP",
        f"CREATE INDEX IF NOT EXISTS {TABLE_NAME}_key_hash ON {TABLE_NAME} (key_hash)",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {BATCH_TABLE} "
        f"(key_hash VARCHAR({HASH_LENGTH}) NOT NULL, workspace_id VARCHAR({ID_LENGTH}) "
        "NOT NULL, digest BYTEA) ON COMMIT DROP",
    ),
    "sqlite": (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} (key_hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS temp.{TABLE_NAME}_key_hash ON {TABLE_NAME} (key_hash)",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {BATCH_TABLE} "
        "(key_hash TEXT NOT NULL, workspace_id TEXT NOT NULL, digest BLOB)",
    ),
    # InnoDB, so its rows roll back with the transaction; the collation of api_keys.hash,
    # so the anti-join compares (and uses the index) the same way.
    "mysql": (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} "
        f"(key_hash VARCHAR({HASH_LENGTH}) NOT NULL, INDEX (key_hash)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {BATCH_TABLE} "
        f"(key_hash VARCHAR({HASH_LENGTH}) NOT NULL, workspace_id VARCHAR({ID_LENGTH}) "
        "NOT NULL, digest VARBINARY(16)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ),
}
_DROP = {
    "postgresql": (),  # ON COMMIT DROP does it, and a rollback too
    "sqlite": tuple(f"DROP TABLE IF EXISTS temp.{t}" for t in (TABLE_NAME, BATCH_TABLE)),
    # No implicit commit either.
    "mysql": (f"DROP TEMPORARY TABLE IF EXISTS {TABLE_NAME}, {BATCH_TABLE}",),
}


def start(connection: Connection) -> None:
    """Empty seen-key tables on ``connection`` for a new listing."""
    for statement in _CREATE[connection.dialect.name]:
        connection.exec_driver_sql(statement)
    bulk.empty_scratch(connection, SEEN_KEYS)
    bulk.empty_scratch(connection, BATCH_KEYS)


def add(connection: Connection, hashes: Sequence[str]) -> None:
    """Record that the listing showed these keys."""
    bulk.insert_rows(connection, SEEN_KEYS, [{"key_hash": h} for h in hashes])


def stage_batch(connection: Connection, records: Sequence[Listing]) -> None:
    """Make ``records`` (no key twice) the batch ``unmatched`` reads, and record them
    as seen."""
    bulk.empty_scratch(connection, BATCH_KEYS)
    rows = [
        {"key_hash": r.hash, "workspace_id": r.workspace_id, "digest": r.digest or None}
        for r in records
    ]
    bulk.insert_rows(connection, BATCH_KEYS, rows)
    connection.execute(_SEE_BATCH)


def unmatched(connection: Connection) -> Any:
    """(hash, known, same workspace and live) of each key of the batch that is not a
    live key stored from the same workspace with the same digest."""
    with bulk.batch_lookups(connection):
        return connection.execute(_UNMATCHED).all()


def missing_keys(connection: Connection, workspace_id: str) -> list[str]:
    """Live keys of the workspace that the listing did not show."""
    seen = exists().where(SEEN_KEYS.c.key_hash == ApiKey.hash)
    query = select(ApiKey.hash).where(
        and_(ApiKey.workspace_id == workspace_id, ApiKey.deleted_at.is_(None), ~seen)
    )
    return list(connection.scalars(query))


def drop(connection: Connection) -> None:
    """Free the tables once the listing's keys are settled (a pooled MariaDB or SQLite
    connection would keep their rows)."""
    for statement in _DROP[connection.dialect.name]:
        connection.exec_driver_sql(statement)


_SEE_BATCH = insert(SEEN_KEYS).from_select(["key_hash"], select(BATCH_KEYS.c.key_hash))
_KEYS = ApiKey.__table__
_SAME_LIVE = and_(_KEYS.c.deleted_at.is_(None), _KEYS.c.workspace_id == BATCH_KEYS.c.workspace_id)
# Driven by the batch (its rows each look up api_keys' primary key).
_UNMATCHED = (
    select(
        BATCH_KEYS.c.key_hash,
        _KEYS.c.hash.is_not(None).label("known"),
        _SAME_LIVE.label("same_live"),
    )
    .select_from(BATCH_KEYS.outerjoin(_KEYS, _KEYS.c.hash == BATCH_KEYS.c.key_hash))
    .where(
        or_(
            _KEYS.c.hash.is_(None),
            not_(_SAME_LIVE),
            _KEYS.c.digest.is_(None),
            BATCH_KEYS.c.digest.is_(None),
            _KEYS.c.digest != BATCH_KEYS.c.digest,
        )
    )
)
