"""Workspaces, keys and the change-only usage history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from etl.core.key_fields import key_field
from models.base import MYSQL_TABLE, Base
from models.key_columns import key_column, snapshot_column
from models.types import UtcDateTime

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Every column holding a key's hash or a workspace's id is as wide as the declaration's.
HASH_LENGTH = key_field("hash").max_length
ID_LENGTH = key_field("workspace_id").max_length


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = {**MYSQL_TABLE, "comment": "OpenRouter workspaces keyledger has synced."}

    id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        primary_key=True,
        comment="Workspace UUID as the API gives it ('default' until the default "
        "workspace's UUID is learnt from one of its keys).",
    )
    name: Mapped[str | None] = mapped_column(Text, comment="Workspace name, when known.")
    slug: Mapped[str | None] = mapped_column(Text, comment="URL slug of the workspace, when known.")
    first_seen_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="UTC time of the first sync that saw this workspace."
    )
    last_synced_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        comment="Server time (UTC) of the last successful sync of this workspace: every "
        "live key in it was confirmed as of then.",
    )
    delisted_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        comment="UTC time (local clock) of the sync that found GET /workspaces no longer "
        "listing this workspace; its keys were then confirmed one by one (404: deleted). "
        "NULL while listed.",
    )


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_workspace_id_deleted_at", "workspace_id", "deleted_at"),
        {
            **MYSQL_TABLE,
            "comment": "One row per OpenRouter API key ever seen: its latest known state. "
            "Rows are never deleted; deleted keys have deleted_at set.",
        },
    )

    hash: Mapped[str] = key_column("hash")
    workspace_id: Mapped[str] = key_column("workspace_id")
    name: Mapped[str] = key_column("name")
    label: Mapped[str] = key_column("label")
    disabled: Mapped[bool] = key_column("disabled")
    credit_limit: Mapped[Decimal | None] = key_column("limit")
    limit_remaining: Mapped[Decimal | None] = key_column("limit_remaining")
    limit_reset: Mapped[str | None] = key_column("limit_reset")
    include_byok_in_limit: Mapped[bool] = key_column("include_byok_in_limit")
    usage: Mapped[Decimal] = key_column("usage")
    usage_daily: Mapped[Decimal] = key_column("usage_daily")
    usage_weekly: Mapped[Decimal] = key_column("usage_weekly")
    usage_monthly: Mapped[Decimal] = key_column("usage_monthly")
    byok_usage: Mapped[Decimal] = key_column("byok_usage")
    byok_usage_daily: Mapped[Decimal] = key_column("byok_usage_daily")
    byok_usage_weekly: Mapped[Decimal] = key_column("byok_usage_weekly")
    byok_usage_monthly: Mapped[Decimal] = key_column("byok_usage_monthly")
    created_at: Mapped[datetime] = key_column("created_at")
    updated_at: Mapped[datetime | None] = key_column("updated_at")
    creator_user_id: Mapped[str | None] = key_column("creator_user_id")
    expires_at: Mapped[datetime | None] = key_column("expires_at")
    last_used_at: Mapped[datetime | None] = key_column("last_used_at")
    external_user: Mapped[str | None] = key_column("external_user")
    raw_json: Mapped[str] = mapped_column(
        Text().with_variant(mysql.LONGTEXT(), "mysql"),
        comment="The latest API payload of the key, verbatim JSON with exact numbers, "
        "including fields this version of keyledger does not know.",
    )
    digest: Mapped[bytes | None] = mapped_column(
        LargeBinary().with_variant(mysql.VARBINARY(16), "mysql"),
        comment="Digest (blake2b, 16 bytes) of the latest payload: an equal digest "
        "means the key is unchanged. NULL until a sync has computed it (rows from "
        "before 0007).",
    )
    first_seen_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Server time (UTC) of the sync that first saw the key."
    )
    changed_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Server time (UTC) of the sync that last changed this row."
    )
    deleted_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        comment="Server time (UTC) when the key was confirmed deleted (404); NULL = live.",
    )


class UsageSnapshot(Base):
    __tablename__ = "usage_snapshots"
    __table_args__ = (
        Index("ix_usage_snapshots_key_hash_captured_at", "key_hash", "captured_at"),
        Index("ix_usage_snapshots_workspace_id_captured_at", "workspace_id", "captured_at"),
        {
            **MYSQL_TABLE,
            "comment": "Change-only usage history: a row when a key is first seen or when any "
            "usage, limit or state value differs from its previous row.",
        },
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Row id.")
    key_hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH), ForeignKey("api_keys.hash"), comment="The key (api_keys.hash)."
    )
    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), comment="Workspace the key belonged to when captured."
    )
    sync_run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sync_runs.id"), comment="The run that wrote the row (sync_runs.id)."
    )
    captured_at: Mapped[datetime] = mapped_column(
        UtcDateTime,
        comment="Server time (UTC, the response's Date header) the values were observed.",
    )
    usage: Mapped[Decimal] = snapshot_column("usage")
    usage_daily: Mapped[Decimal] = snapshot_column("usage_daily")
    usage_weekly: Mapped[Decimal] = snapshot_column("usage_weekly")
    usage_monthly: Mapped[Decimal] = snapshot_column("usage_monthly")
    byok_usage: Mapped[Decimal] = snapshot_column("byok_usage")
    byok_usage_daily: Mapped[Decimal] = snapshot_column("byok_usage_daily")
    byok_usage_weekly: Mapped[Decimal] = snapshot_column("byok_usage_weekly")
    byok_usage_monthly: Mapped[Decimal] = snapshot_column("byok_usage_monthly")
    credit_limit: Mapped[Decimal | None] = snapshot_column("limit")
    limit_remaining: Mapped[Decimal | None] = snapshot_column("limit_remaining")
    limit_reset: Mapped[str | None] = snapshot_column("limit_reset")
    include_byok_in_limit: Mapped[bool] = snapshot_column("include_byok_in_limit")
    disabled: Mapped[bool] = snapshot_column("disabled")
    expires_at: Mapped[datetime | None] = snapshot_column("expires_at")
