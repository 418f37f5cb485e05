"""workspaces no longer listed

Revision ID: 0004
Revises: 0003

workspaces.delisted_at: when discovery (GET /workspaces) stopped listing a workspace
keyledger had synced. Existing rows are listed workspaces (NULL), so no data moves.
sync_run_workspaces.status gains the value "delisted" (its comment says so).
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = (
    "UTC time (local clock) of the sync that found GET /workspaces no longer listing "
    "this workspace; its keys were then confirmed one by one (404: deleted). NULL while "
    "listed."
)

OLD_STATUS = "running, ok, failed, skipped (held by another run) or abandoned."
NEW_STATUS = (
    "running, ok, failed, skipped (held by another run), abandoned, or delisted (no "
    "longer listed by GET /workspaces: its keys were confirmed one by one)."
)


def _status_comment(new: str, old: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite keeps no comments
    op.alter_column(
        "sync_run_workspaces",
        "status",
        existing_type=sa.String(length=16),
        existing_nullable=False,
        comment=new,
        existing_comment=old,
    )


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(
            sa.Column("delisted_at", models.types.UtcDateTime(), nullable=True, comment=COMMENT)
        )
    _status_comment(NEW_STATUS, OLD_STATUS)


def downgrade() -> None:
    _status_comment(OLD_STATUS, NEW_STATUS)
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("delisted_at")
