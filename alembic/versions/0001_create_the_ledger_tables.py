"""create the ledger tables

Revision ID: 0001
Revises:
Create Date: 2026-11-28 09:04:49.150477
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import models.types

# Unicode names verbatim and byte-exact comparisons on MariaDB/MySQL, whatever the
# server's defaults (which may be latin1).
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column(
            "hash",
            sa.String(length=128),
            nullable=False,
            comment="The key's hash: its stable identifier.",
        ),
        sa.Column(
            "workspace_id",
            sa.String(length=64),
            nullable=False,
            comment="UUID of the workspace the key belongs to.",
        ),
        sa.Column("name", sa.Text(), nullable=False, comment="Name of the key."),
        sa.Column(
            "label",
            sa.Text(),
            nullable=False,
            comment="Human-readable label (a masked form of the key, e.g. sk-or-v1-0e6...1c96).",
        ),
        sa.Column(
            "disabled", sa.Boolean(), nullable=False, comment="True when the key is disabled."
        ),
        sa.Column(
            "credit_limit",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="Spending limit in USD (the API's `limit`); NULL = no limit.",
        ),
        sa.Column(
            "limit_remaining",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="USD left under the limit at the last sync; NULL = no limit.",
        ),
        sa.Column(
            "limit_reset",
            sa.String(length=32),
            nullable=True,
            comment="How often the limit resets: daily, weekly, monthly; NULL = never.",
        ),
        sa.Column(
            "include_byok_in_limit",
            sa.Boolean(),
            nullable=False,
            comment="True when BYOK usage counts toward the limit.",
        ),
        sa.Column(
            "usage",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="Total OpenRouter credit usage in USD since the key was created.",
        ),
        sa.Column(
            "usage_daily",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="USD used in the current UTC day, as of the last sync.",
        ),
        sa.Column(
            "usage_weekly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="USD used in the current UTC week (from Monday), as of the last sync.",
        ),
        sa.Column(
            "usage_monthly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="USD used in the current UTC month, as of the last sync.",
        ),
        sa.Column(
            "byok_usage",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="Total external BYOK usage in USD since the key was created.",
        ),
        sa.Column(
            "byok_usage_daily",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK USD in the current UTC day, as of the last sync.",
        ),
        sa.Column(
            "byok_usage_weekly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK USD in the current UTC week (from Monday), as of the last sync.",
        ),
        sa.Column(
            "byok_usage_monthly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK USD in the current UTC month, as of the last sync.",
        ),
        sa.Column(
            "created_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="When the key was created (UTC, from the API).",
        ),
        sa.Column(
            "updated_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="When the key was last updated (UTC, from the API).",
        ),
        sa.Column(
            "creator_user_id",
            sa.Text(),
            nullable=True,
            comment="User who created the key (for organization keys, the member).",
        ),
        sa.Column(
            "expires_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="When the key expires (UTC); NULL = never.",
        ),
        sa.Column(
            "last_used_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="When the key was last used (UTC); NULL when unknown or never.",
        ),
        sa.Column(
            "external_user",
            sa.Text(),
            nullable=True,
            comment="External user the key was issued for, when the API reports one.",
        ),
        sa.Column(
            "raw_json",
            sa.Text().with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
            comment="The latest API payload of the key, verbatim JSON with exact numbers, including fields this version of keyledger does not know.",
        ),
        sa.Column(
            "first_seen_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Server time (UTC) of the sync that first saw the key.",
        ),
        sa.Column(
            "changed_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Server time (UTC) of the sync that last changed this row.",
        ),
        sa.Column(
            "deleted_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) when the key was confirmed deleted (404); NULL = live.",
        ),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_api_keys")),
        comment="One row per OpenRouter API key ever seen: its latest known state. Rows are never deleted; deleted keys have deleted_at set.",
        **MYSQL_TABLE,
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_api_keys_workspace_id_deleted_at", ["workspace_id", "deleted_at"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="Run id.",
        ),
        sa.Column(
            "started_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Local clock (UTC) when the run started.",
        ),
        sa.Column(
            "finished_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Local clock (UTC) when the run ended; NULL while running.",
        ),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="running, ok (every workspace synced), partial (some failed or were skipped), failed (none synced) or abandoned (the process died mid-run).",
        ),
        sa.Column(
            "keyledger_version",
            sa.String(length=64),
            nullable=False,
            comment="Version of keyledger that ran.",
        ),
        sa.Column(
            "hostname", sa.String(length=255), nullable=False, comment="Host the run ran on."
        ),
        sa.Column("pid", sa.Integer(), nullable=False, comment="Process id of the run."),
        sa.Column(
            "lock_token",
            sa.String(length=36),
            nullable=False,
            comment="Names the lock the run holds while it lives; a later run that can take it knows this run died and marks it abandoned.",
        ),
        sa.Column(
            "dry_run",
            sa.Boolean(),
            nullable=False,
            comment="True for --dry-run (such runs are rolled back and never stored).",
        ),
        sa.Column(
            "error",
            sa.Text(),
            nullable=True,
            comment="Why the run failed as a whole (no secrets); NULL otherwise.",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
        comment="One row per `keyledger sync` run.",
        **MYSQL_TABLE,
    )
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
        comment="Scratch space of a running sync: the keys a listing has seen, so keys missing from it can be found in SQL. Emptied before each workspace commits.",
        **MYSQL_TABLE,
    )
    op.create_table(
        "workspaces",
        sa.Column(
            "id",
            sa.String(length=64),
            nullable=False,
            comment="Workspace UUID as the API gives it ('default' until the default workspace's UUID is learnt from one of its keys).",
        ),
        sa.Column("name", sa.Text(), nullable=True, comment="Workspace name, when known."),
        sa.Column(
            "slug", sa.Text(), nullable=True, comment="URL slug of the workspace, when known."
        ),
        sa.Column(
            "first_seen_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="UTC time of the first sync that saw this workspace.",
        ),
        sa.Column(
            "last_synced_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) of the last successful sync of this workspace: every live key in it was confirmed as of then.",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        comment="OpenRouter workspaces keyledger has synced.",
        **MYSQL_TABLE,
    )
    op.create_table(
        "sync_run_workspaces",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="Row id.",
        ),
        sa.Column(
            "sync_run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="The run (sync_runs.id).",
        ),
        sa.Column(
            "account",
            sa.String(length=255),
            nullable=False,
            comment="Configured account name the workspace was read with.",
        ),
        sa.Column(
            "requested_as",
            sa.String(length=64),
            nullable=False,
            comment="The workspace as configured: 'default' or its UUID.",
        ),
        sa.Column(
            "workspace_id",
            sa.String(length=64),
            nullable=False,
            comment="Workspace UUID ('default' while the default workspace's UUID is unknown).",
        ),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="running, ok, failed, skipped (held by another run) or abandoned.",
        ),
        sa.Column(
            "started_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Local clock (UTC) when this workspace started.",
        ),
        sa.Column(
            "finished_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Local clock (UTC) when this workspace ended.",
        ),
        sa.Column(
            "server_time",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC, Date header) of the first page of a successful listing: every live key of the workspace was observed at about this time.",
        ),
        sa.Column("pages", sa.Integer(), nullable=False, comment="Pages of GET /keys read."),
        sa.Column("keys_seen", sa.Integer(), nullable=False, comment="Distinct keys listed."),
        sa.Column(
            "keys_new", sa.Integer(), nullable=False, comment="Keys seen for the first time."
        ),
        sa.Column(
            "keys_changed",
            sa.Integer(),
            nullable=False,
            comment="Known keys whose stored row changed.",
        ),
        sa.Column(
            "keys_deleted",
            sa.Integer(),
            nullable=False,
            comment="Keys confirmed deleted (404) in this run.",
        ),
        sa.Column(
            "snapshots_written",
            sa.Integer(),
            nullable=False,
            comment="usage_snapshots rows written.",
        ),
        sa.Column(
            "error",
            sa.Text(),
            nullable=True,
            comment="One line saying what went wrong (no secrets); NULL when ok.",
        ),
        sa.ForeignKeyConstraint(
            ["sync_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_sync_run_workspaces_sync_run_id_sync_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run_workspaces")),
        comment="One row per workspace per run: outcome and counts.",
        **MYSQL_TABLE,
    )
    with op.batch_alter_table("sync_run_workspaces", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_run_workspaces_workspace_id_finished_at",
            ["workspace_id", "finished_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sync_run_workspaces_requested_as_status",
            ["requested_as", "status"],
            unique=False,
        )

    op.create_table(
        "usage_snapshots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="Row id.",
        ),
        sa.Column(
            "key_hash", sa.String(length=128), nullable=False, comment="The key (api_keys.hash)."
        ),
        sa.Column(
            "workspace_id",
            sa.String(length=64),
            nullable=False,
            comment="Workspace the key belonged to when captured.",
        ),
        sa.Column(
            "sync_run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="The run that wrote the row (sync_runs.id).",
        ),
        sa.Column(
            "captured_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Server time (UTC, the response's Date header) the values were observed.",
        ),
        sa.Column(
            "usage",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="Cumulative USD usage at capture.",
        ),
        sa.Column(
            "usage_daily",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="USD used in the capture's UTC day up to capture; usage - usage_daily is the cumulative usage at 00:00 UTC of that day.",
        ),
        sa.Column(
            "usage_weekly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="USD used in the capture's UTC week (from Monday 00:00) up to capture.",
        ),
        sa.Column(
            "usage_monthly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="USD used in the capture's UTC month up to capture.",
        ),
        sa.Column(
            "byok_usage",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="Cumulative BYOK USD at capture.",
        ),
        sa.Column(
            "byok_usage_daily",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK USD in the capture's UTC day up to capture.",
        ),
        sa.Column(
            "byok_usage_weekly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK USD in the capture's UTC week up to capture.",
        ),
        sa.Column(
            "byok_usage_monthly",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK USD in the capture's UTC month up to capture.",
        ),
        sa.Column(
            "credit_limit",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="Spending limit in USD at capture; NULL = no limit.",
        ),
        sa.Column(
            "limit_remaining",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="USD left under the limit at capture; NULL = no limit.",
        ),
        sa.Column(
            "limit_reset",
            sa.String(length=32),
            nullable=True,
            comment="Limit reset period at capture (daily, weekly, monthly or NULL).",
        ),
        sa.Column(
            "include_byok_in_limit",
            sa.Boolean(),
            nullable=False,
            comment="Whether BYOK usage counted toward the limit at capture.",
        ),
        sa.Column(
            "disabled", sa.Boolean(), nullable=False, comment="Whether the key was disabled."
        ),
        sa.Column(
            "expires_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Expiry of the key at capture (UTC); NULL = never.",
        ),
        sa.ForeignKeyConstraint(
            ["key_hash"], ["api_keys.hash"], name=op.f("fk_usage_snapshots_key_hash_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["sync_run_id"], ["sync_runs.id"], name=op.f("fk_usage_snapshots_sync_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_snapshots")),
        comment="Change-only usage history: a row when a key is first seen or when any usage, limit or state value differs from its previous row.",
        **MYSQL_TABLE,
    )
    with op.batch_alter_table("usage_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_snapshots_key_hash_captured_at", ["key_hash", "captured_at"], unique=False
        )
        batch_op.create_index(
            "ix_usage_snapshots_workspace_id_captured_at",
            ["workspace_id", "captured_at"],
            unique=False,
        )


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign
    # key needs), so drop the tables alone, children first.
    for table in (
        "usage_snapshots",
        "sync_seen_keys",
        "sync_run_workspaces",
        "workspaces",
        "sync_runs",
        "api_keys",
    ):
        op.drop_table(table)
