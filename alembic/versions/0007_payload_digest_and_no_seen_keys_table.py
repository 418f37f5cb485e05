"""payload digest on api_keys; sync_seen_keys dropped

Revision ID: 0007
Revises: 0006

api_keys.digest: a digest of the key's latest payload, so a sync tells an unchanged key
by comparing 16 bytes instead of re-parsing raw_json. Existing rows get NULL: the next
sync compares them by value once (as before) and then stores their digest, so no data
moves here and none is lost.

sync_seen_keys goes: it only ever held rows inside an open workspace transaction, and
writing (then deleting) a row per key per run was most of an unchanged sync's writes.
The keys a listing has seen now live in a temporary table of the loading connection
(etl/store/seen_keys.py). The downgrade recreates the (empty) table as 0001 made it.
Create Date: 2026-12-01 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

DIGEST_COMMENT = (
    "Digest (blake2b, 16 bytes) of the latest payload: an equal digest means "
    "the key is unchanged. NULL until a sync has computed it (rows from before 0007)."
)


def upgrade() -> None:
    # A plain ALTER TABLE on every backend (SQLite adds and drops columns in place since
    # 3.35): a batch copy of api_keys would break the views that read it.
    op.add_column(
        "api_keys",
        sa.Column(
            "digest",
            sa.LargeBinary().with_variant(mysql.VARBINARY(16), "mysql"),
            nullable=True,
            comment=DIGEST_COMMENT,
        ),
    )
    op.drop_table("sync_seen_keys")


def downgrade() -> None:
    op.create_table(
        "sync_seen_keys",
        sa.Column(
            "sync_run_workspace_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="The workspace's row in sync_run_workspaces.",
        ),
        sa.Column(
            "key_hash",
            sa.String(length=128),
            nullable=False,
            comment="A key hash seen in the listing.",
        ),
        sa.PrimaryKeyConstraint(
            "sync_run_workspace_id", "key_hash", name=op.f("pk_sync_seen_keys")
        ),
        comment="Scratch space of a running sync: the keys a listing has seen, so keys "
        "missing from it can be found in SQL. Emptied before each workspace commits.",
        **MYSQL_TABLE,
    )
    op.drop_column("api_keys", "digest")
