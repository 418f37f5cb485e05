"""activity kept for good

Revision ID: 0009
Revises: 0008

GET /activity kept past its 30-day window (issue 14): daily_activity (per workspace, UTC
day and endpoint) and activity_days (which workspace-days are stored whole, which were
lost); daily_key_activity and key_activity_days, the same per key (activity_keys, off by
default); sync_run_activity, the run ledger's activity line per account. New tables only:
no existing row moves. activity_days.row_count is not "rows", which MariaDB reserves.
Create Date: 2026-12-01 20:50:43.167068
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_days",
        sa.Column("workspace_id", sa.String(length=64), nullable=False, comment="Workspace UUID."),
        sa.Column("day", sa.Date(), nullable=False, comment="The UTC day."),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="'fetched' (the stored rows are the whole day: none means no activity) or 'missing' (the day left the API's 30-day window before any run fetched it: unknown, never guessed).",
        ),
        sa.Column(
            "row_count",
            sa.Integer(),
            nullable=False,
            comment="daily_activity rows stored for the day (0 when missing).",
        ),
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="The run that fetched it (sync_runs.id). NULL for a missing day.",
        ),
        sa.Column(
            "fetched_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) of the fetch whose rows are stored; NULL when missing.",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_activity_days_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("workspace_id", "day", name=op.f("pk_activity_days")),
        comment="One row per workspace and UTC day since the workspace's first activity fetch: whether daily_activity holds the whole day, or the day was lost.",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "daily_activity",
        sa.Column(
            "workspace_id",
            sa.String(length=64),
            nullable=False,
            comment="Workspace UUID (item field workspace_id).",
        ),
        sa.Column("day", sa.Date(), nullable=False, comment="The UTC day (item date)."),
        sa.Column(
            "endpoint_id",
            sa.String(length=64),
            nullable=False,
            comment="Endpoint id: one model served by one provider.",
        ),
        sa.Column(
            "model",
            sa.String(length=255),
            nullable=False,
            comment="Model slug, e.g. openai/gpt-4.1 (item field model).",
        ),
        sa.Column(
            "model_permaslug",
            sa.String(length=255),
            nullable=False,
            comment="Model permaslug, the model's dated version, e.g. openai/gpt-4.1-2025-04-14.",
        ),
        sa.Column(
            "provider_name",
            sa.String(length=255),
            nullable=False,
            comment="Provider serving the endpoint, e.g. OpenAI.",
        ),
        sa.Column(
            "usage_usd",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="OpenRouter credits spent that UTC day in USD (item field usage).",
        ),
        sa.Column(
            "byok_usage_inference_usd",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK inference cost that UTC day in USD, external credits (item field byok_usage_inference).",
        ),
        sa.Column("requests", sa.BigInteger(), nullable=False, comment="Requests made that day."),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False, comment="Prompt tokens used."),
        sa.Column(
            "completion_tokens",
            sa.BigInteger(),
            nullable=False,
            comment="Completion tokens generated.",
        ),
        sa.Column(
            "reasoning_tokens", sa.BigInteger(), nullable=False, comment="Reasoning tokens used."
        ),
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="The run that fetched it (sync_runs.id).",
        ),
        sa.Column(
            "fetched_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Server time (UTC, Date header) of the response that carried it.",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_daily_activity_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "day", "endpoint_id", name=op.f("pk_daily_activity")
        ),
        comment="Usage per workspace, UTC day and endpoint as GET /activity (group_by=workspace) reports it, kept after the API's 30-day window has passed. A day's rows for a workspace are replaced whole when re-fetched; activity_days says which days are stored.",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "daily_key_activity",
        sa.Column(
            "key_hash", sa.String(length=128), nullable=False, comment="The key (api_keys.hash)."
        ),
        sa.Column("day", sa.Date(), nullable=False, comment="The UTC day (item date)."),
        sa.Column(
            "endpoint_id",
            sa.String(length=64),
            nullable=False,
            comment="Endpoint id: one model served by one provider.",
        ),
        sa.Column(
            "workspace_id",
            sa.String(length=64),
            nullable=False,
            comment="Workspace the key's activity is attributed to.",
        ),
        sa.Column(
            "model",
            sa.String(length=255),
            nullable=False,
            comment="Model slug, e.g. openai/gpt-4.1 (item field model).",
        ),
        sa.Column(
            "model_permaslug",
            sa.String(length=255),
            nullable=False,
            comment="Model permaslug, the model's dated version, e.g. openai/gpt-4.1-2025-04-14.",
        ),
        sa.Column(
            "provider_name",
            sa.String(length=255),
            nullable=False,
            comment="Provider serving the endpoint, e.g. OpenAI.",
        ),
        sa.Column(
            "usage_usd",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="OpenRouter credits spent that UTC day in USD (item field usage).",
        ),
        sa.Column(
            "byok_usage_inference_usd",
            models.types.Money(precision=65, scale=30),
            nullable=False,
            comment="BYOK inference cost that UTC day in USD, external credits (item field byok_usage_inference).",
        ),
        sa.Column("requests", sa.BigInteger(), nullable=False, comment="Requests made that day."),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False, comment="Prompt tokens used."),
        sa.Column(
            "completion_tokens",
            sa.BigInteger(),
            nullable=False,
            comment="Completion tokens generated.",
        ),
        sa.Column(
            "reasoning_tokens", sa.BigInteger(), nullable=False, comment="Reasoning tokens used."
        ),
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="The run that fetched it (sync_runs.id).",
        ),
        sa.Column(
            "fetched_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Server time (UTC, Date header) of the response that carried it.",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_daily_key_activity_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint(
            "key_hash", "day", "endpoint_id", name=op.f("pk_daily_key_activity")
        ),
        comment="Usage per key, UTC day and endpoint (GET /activity?api_key_hash=), for the keys the activity_keys setting names; off by default. Replaced per key-day like daily_activity; key_activity_days says which key-days are stored.",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "key_activity_days",
        sa.Column(
            "key_hash", sa.String(length=128), nullable=False, comment="The key (api_keys.hash)."
        ),
        sa.Column("day", sa.Date(), nullable=False, comment="The UTC day."),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="'fetched' (the stored rows are the whole day: none means no activity) or 'missing' (the day left the API's 30-day window before any run fetched it for this key: unknown, never guessed).",
        ),
        sa.Column(
            "row_count",
            sa.Integer(),
            nullable=False,
            comment="daily_key_activity rows stored for the key-day (0 when missing).",
        ),
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="The run that fetched it (sync_runs.id). NULL for a missing day.",
        ),
        sa.Column(
            "fetched_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) of the fetch whose rows are stored; NULL when missing.",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_key_activity_days_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("key_hash", "day", name=op.f("pk_key_activity_days")),
        comment="One row per key and UTC day since the key's first activity fetch: whether daily_key_activity holds the whole key-day, or it was lost.",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "sync_run_activity",
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
            "account", sa.String(length=255), nullable=False, comment="Configured account name."
        ),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="ok, failed (nothing of it stored: rolled back; the key sync is unaffected), skipped (no workspace of the account synced, so none was fetched) or interrupted.",
        ),
        sa.Column(
            "started_at",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Local clock (UTC) when the activity fetch started.",
        ),
        sa.Column(
            "finished_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Local clock (UTC) when it ended.",
        ),
        sa.Column(
            "server_time",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) the window was worked out from: the completed days are the 30 before its UTC date.",
        ),
        sa.Column(
            "workspaces", sa.Integer(), nullable=False, comment="Workspaces whose activity it read."
        ),
        sa.Column(
            "days_fetched",
            sa.Integer(),
            nullable=False,
            comment="Workspace-days fetched and stored whole (new and re-fetched).",
        ),
        sa.Column(
            "days_refetched",
            sa.Integer(),
            nullable=False,
            comment="Of days_fetched, those already stored and replaced (late usage).",
        ),
        sa.Column(
            "days_missing",
            sa.Integer(),
            nullable=False,
            comment="Workspace-days newly recorded missing (left the window unfetched).",
        ),
        sa.Column(
            "rows_written", sa.Integer(), nullable=False, comment="daily_activity rows written."
        ),
        sa.Column(
            "key_days_fetched",
            sa.Integer(),
            nullable=False,
            comment="Key-days fetched for daily_key_activity (activity_keys).",
        ),
        sa.Column(
            "key_rows_written",
            sa.Integer(),
            nullable=False,
            comment="daily_key_activity rows written.",
        ),
        sa.Column(
            "requests",
            sa.Integer(),
            nullable=False,
            comment="GET /activity requests sent, retries included.",
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
            name=op.f("fk_sync_run_activity_sync_run_id_sync_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run_activity")),
        comment="The run ledger's activity line: one row per account per run for its GET /activity fetches, apart from its workspaces' key syncs.",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )


def downgrade() -> None:
    op.drop_table("sync_run_activity")
    op.drop_table("key_activity_days")
    op.drop_table("daily_key_activity")
    op.drop_table("daily_activity")
    op.drop_table("activity_days")
