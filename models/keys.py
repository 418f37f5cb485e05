"""Workspaces, keys and the change-only usage history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE, Base
from models.types import Money, UtcDateTime

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
HASH_LENGTH = 128
ID_LENGTH = 64


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

    hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH), primary_key=True, comment="The key's hash: its stable identifier."
    )
    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), comment="UUID of the workspace the key belongs to."
    )
    name: Mapped[str] = mapped_column(Text, comment="Name of the key.")
    label: Mapped[str] = mapped_column(
        Text, comment="Human-readable label (a masked form of the key, e.g. sk-or-v1-0e6...1c96)."
    )
    disabled: Mapped[bool] = mapped_column(Boolean, comment="True when the key is disabled.")
    credit_limit: Mapped[Decimal | None] = mapped_column(
        Money, comment="Spending limit in USD (the API's `limit`); NULL = no limit."
    )
    limit_remaining: Mapped[Decimal | None] = mapped_column(
        Money, comment="USD left under the limit at the last sync; NULL = no limit."
    )
    limit_reset: Mapped[str | None] = mapped_column(
        String(32), comment="How often the limit resets: daily, weekly, monthly; NULL = never."
    )
    include_byok_in_limit: Mapped[bool] = mapped_column(
        Boolean, comment="True when BYOK usage counts toward the limit."
    )
    usage: Mapped[Decimal] = mapped_column(
        Money, comment="Total OpenRouter credit usage in USD since the key was created."
    )
    usage_daily: Mapped[Decimal] = mapped_column(
        Money, comment="USD used in the current UTC day, as of the last sync."
    )
    usage_weekly: Mapped[Decimal] = mapped_column(
        Money, comment="USD used in the current UTC week (from Monday), as of the last sync."
    )
    usage_monthly: Mapped[Decimal] = mapped_column(
        Money, comment="USD used in the current UTC month, as of the last sync."
    )
    byok_usage: Mapped[Decimal] = mapped_column(
        Money, comment="Total external BYOK usage in USD since the key was created."
    )
    byok_usage_daily: Mapped[Decimal] = mapped_column(
        Money, comment="BYOK USD in the current UTC day, as of the last sync."
    )
    byok_usage_weekly: Mapped[Decimal] = mapped_column(
        Money, comment="BYOK USD in the current UTC week (from Monday), as of the last sync."
    )
    byok_usage_monthly: Mapped[Decimal] = mapped_column(
        Money, comment="BYOK USD in the current UTC month, as of the last sync."
    )
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="When the key was created (UTC, from the API)."
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="When the key was last updated (UTC, from the API)."
    )
    creator_user_id: Mapped[str | None] = mapped_column(
        Text, comment="User who created the key (for organization keys, the member)."
    )
    expires_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="When the key expires (UTC); NULL = never."
    )
    last_used_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="When the key was last used (UTC); NULL when unknown or never."
    )
    external_user: Mapped[str | None] = mapped_column(
        Text, comment="External user the key was issued for, when the API reports one."
    )
    raw_json: Mapped[str] = mapped_column(
        Text().with_variant(mysql.LONGTEXT(), "mysql"),
        comment="The latest API payload of the key, verbatim JSON with exact numbers, "
        "including fields this version of keyledger does not know.",
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
    usage: Mapped[Decimal] = mapped_column(Money, comment="Cumulative USD usage at capture.")
    usage_daily: Mapped[Decimal] = mapped_column(
        Money,
        comment="USD used in the capture's UTC day up to capture; usage - usage_daily "
        "is the cumulative usage at 00:00 UTC of that day.",
    )
    usage_weekly: Mapped[Decimal] = mapped_column(
        Money, comment="USD used in the capture's UTC week (from Monday 00:00) up to capture."
    )
    usage_monthly: Mapped[Decimal] = mapped_column(
        Money, comment="USD used in the capture's UTC month up to capture."
    )
    byok_usage: Mapped[Decimal] = mapped_column(Money, comment="Cumulative BYOK USD at capture.")
    byok_usage_daily: Mapped[Decimal] = mapped_column(
        Money, comment="BYOK USD in the capture's UTC day up to capture."
    )
    byok_usage_weekly: Mapped[Decimal] = mapped_column(
        Money, comment="BYOK USD in the capture's UTC week up to capture."
    )
    byok_usage_monthly: Mapped[Decimal] = mapped_column(
        Money, comment="BYOK USD in the capture's UTC month up to capture."
    )
    credit_limit: Mapped[Decimal | None] = mapped_column(
        Money, comment="Spending limit in USD at capture; NULL = no limit."
    )
    limit_remaining: Mapped[Decimal | None] = mapped_column(
        Money, comment="USD left under the limit at capture; NULL = no limit."
    )
    limit_reset: Mapped[str | None] = mapped_column(
        String(32), comment="Limit reset period at capture (daily, weekly, monthly or NULL)."
    )
    include_byok_in_limit: Mapped[bool] = mapped_column(
        Boolean, comment="Whether BYOK usage counted toward the limit at capture."
    )
    disabled: Mapped[bool] = mapped_column(Boolean, comment="Whether the key was disabled.")
    expires_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Expiry of the key at capture (UTC); NULL = never."
    )
