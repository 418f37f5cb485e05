"""interrupted runs

Revision ID: 0008
Revises: 0007

sync_runs.status and sync_run_workspaces.status gain the value "interrupted": a run
stopped by SIGINT or SIGTERM (named in sync_runs.error), and the workspaces it rolled
back. The columns are plain strings (no CHECK, no enum), so only their comments change
here: no data moves and none is lost. SQLite keeps no comments: nothing to do there.
Create Date: 2026-12-01 17:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, type, nullable, comment before, comment after)
COMMENTS = [
    (
        "sync_runs",
        "status",
        sa.String(length=16),
        False,
        "running, ok (every workspace synced), partial (some failed or were skipped), "
        "failed (none synced) or abandoned (the process died mid-run).",
        "running, ok (every workspace synced), partial (some failed or were skipped), "
        "failed (none synced), abandoned (the process died mid-run) or interrupted "
        "(stopped by SIGINT or SIGTERM, named in error).",
    ),
    (
        "sync_runs",
        "error",
        sa.Text(),
        True,
        "Why the run failed as a whole (no secrets); NULL otherwise.",
        "Why the run failed as a whole or stopped short, e.g. 'interrupted by SIGTERM' "
        "(no secrets); NULL otherwise.",
    ),
    (
        "sync_run_workspaces",
        "status",
        sa.String(length=16),
        False,
        "running, ok, failed, skipped (held by another run), abandoned, or delisted (no "
        "longer listed by GET /workspaces: its keys were confirmed one by one).",
        "running, ok, failed, skipped (held by another run, or not attempted), abandoned, "
        "interrupted (its run was stopped while it loaded: rolled back), or delisted (no "
        "longer listed by GET /workspaces: its keys were confirmed one by one).",
    ),
]


def _comment(*, upgrading: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite keeps no comments
    for table, column, type_, nullable, before, after in COMMENTS:
        op.alter_column(
            table,
            column,
            existing_type=type_,
            existing_nullable=nullable,
            comment=after if upgrading else before,
            existing_comment=before if upgrading else after,
        )


def upgrade() -> None:
    _comment(upgrading=True)


def downgrade() -> None:
    _comment(upgrading=False)
