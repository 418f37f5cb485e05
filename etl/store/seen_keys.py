"""The keys a listing has seen, kept in a temporary table of the loading connection, so
the keys missing from the listing are one anti-join away.

Temporary on every backend, so no permanent table gets a row per key per run and two
connections loading two workspaces at once each have their own table:

- PostgreSQL: ``ON COMMIT DROP``; a rolled-back transaction (or savepoint) takes the
  table with it.
- SQLite: a TEMP table; DDL is transactional there (etl.store.database begins
  transactions explicitly), so a rollback takes it too.
- MariaDB/MySQL: ``CREATE TEMPORARY TABLE`` does not commit implicitly, but is not rolled
  back either, and it outlives the transaction on a pooled connection.

So each load begins with ``start`` (create the table if this connection has none, and
empty it: a rolled-back MariaDB load, or the previous workspace of a dry run, whose
workspaces are savepoints of one outer transaction, may have left rows) and ends with
``drop``. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Connection, MetaData, String, Table, and_, exists, select

from etl.store import bulk
from models import ApiKey
from models.keys import HASH_LENGTH

TABLE_NAME = "keyledger_seen_keys"
# Not in models' MetaData: no migration creates it, and the data dictionary is of
# permanent tables.
SEEN_KEYS = Table(TABLE_NAME, MetaData(), Column("key_hash", String(HASH_LENGTH), nullable=False))

# Not unique: offset paging may list a key twice, and COPY cannot skip a duplicate.
_CREATE = {
    "postgresql": (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} "
        f"(key_hash VARCHAR({HASH_LENGTH}) NOT NULL) ON COMMIT DROP",
        f"CREATE INDEX IF NOT EXISTS {TABLE_NAME}_key_hash ON {TABLE_NAME} (key_hash)",
    ),
    "sqlite": (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} (key_hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS temp.{TABLE_NAME}_key_hash ON {TABLE_NAME} (key_hash)",
    ),
    # InnoDB, so its rows roll back with the transaction; the collation of api_keys.hash,
    # so the anti-join compares (and uses the index) the same way.
    "mysql": (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE_NAME} "
        f"(key_hash VARCHAR({HASH_LENGTH}) NOT NULL, INDEX (key_hash)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ),
}
_DROP = {
    "postgresql": None,  # ON COMMIT DROP does it, and a rollback too
    "sqlite": f"DROP TABLE IF EXISTS temp.{TABLE_NAME}",
    "mysql": f"DROP TEMPORARY TABLE IF EXISTS {TABLE_NAME}",  # no implicit commit either
}


def start(connection: Connection) -> None:
    """An empty seen-key table on ``connection`` for a new listing."""
    for statement in _CREATE[connection.dialect.name]:
        connection.exec_driver_sql(statement)
    connection.execute(SEEN_KEYS.delete())


def add(connection: Connection, hashes: Sequence[str]) -> None:
    """Record that the listing showed these keys."""
    bulk.insert_rows(connection, SEEN_KEYS, [{"key_hash": h} for h in hashes])


def missing_keys(connection: Connection, workspace_id: str) -> list[str]:
    """Live keys of the workspace that the listing did not show."""
    seen = exists().where(SEEN_KEYS.c.key_hash == ApiKey.hash)
    query = select(ApiKey.hash).where(
        and_(ApiKey.workspace_id == workspace_id, ApiKey.deleted_at.is_(None), ~seen)
    )
    return list(connection.scalars(query))


def drop(connection: Connection) -> None:
    """Free the table once the listing's keys are settled (a pooled MariaDB or SQLite
    connection would keep its rows)."""
    statement = _DROP[connection.dialect.name]
    if statement is not None:
        connection.exec_driver_sql(statement)
