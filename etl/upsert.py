"""The dialect's native upsert, chosen in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert
from sqlalchemy.dialects import mysql, postgresql, sqlite


def upsert_statement(
    connection: Connection, model: Any, key: Sequence[str], *, keep: Sequence[str] = ()
) -> Insert:
    """INSERT ... ON CONFLICT DO UPDATE (PostgreSQL, SQLite) or ON DUPLICATE KEY UPDATE
    (MariaDB/MySQL) of every column but ``key`` and ``keep``."""
    columns = [c.name for c in model.__table__.columns]
    updated = [c for c in columns if c not in key and c not in keep]
    name = connection.dialect.name
    if name == "mysql":
        my_insert = mysql.insert(model)
        return my_insert.on_duplicate_key_update({c: my_insert.inserted[c] for c in updated})
    if name in ("postgresql", "sqlite"):
        dialect_insert = postgresql.insert if name == "postgresql" else sqlite.insert
        stmt = dialect_insert(model)
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in updated}
        )
    raise NotImplementedError(f"no upsert for the {name} dialect")


def upsert(
    connection: Connection,
    model: Any,
    key: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    keep: Sequence[str] = (),
) -> None:
    """Upsert ``rows`` in one executemany."""
    if rows:
        connection.execute(upsert_statement(connection, model, key, keep=keep), rows)
