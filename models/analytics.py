"""Relations the sync maintains for analysis: observed days, daily spend, key versions.

They are tables rather than views because answering them from usage_snapshots alone
takes a scan per question at 100,000 keys; the sync keeps them up to date inside each
workspace's transaction, so they are exactly as fresh as the rest of the ledger.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE, Base
from models.key_columns import version_column
from models.keys import HASH_LENGTH, ID_LENGTH, BigId
from models.types import Money, UtcDateTime


class WorkspaceDay(Base):
    __tablename__ = "workspace_days"
    __table_args__ = {
        **MYSQL_TABLE,
        "comment": "One row per workspace and UTC day since its first successful sync: "
        "whether a successful sync observed it that day (every live key was then "
        "observed too, changed or not) and whether the next day was observed.",
    }

    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), primary_key=True, comment="Workspace UUID."
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="The UTC day.")
    observed: Mapped[bool] = mapped_column(
        Boolean, comment="True when a successful sync observed the workspace on this day."
    )
    first_observed_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Server time (UTC) of the first successful sync that day."
    )
    next_day_observed: Mapped[bool] = mapped_column(
        Boolean,
        comment="True when the following UTC day was observed too: only then is the "
        "day's spend known (it is the difference of the two day-start totals).",
    )
    gap_since: Mapped[date | None] = mapped_column(
        Date,
        comment="On a day no sync observed: the workspace's last observed day before it. "
        "The keys with a daily_key_spend row on that day have unknown spend on this one "
        "(view daily_key_spend_gaps). NULL on observed days.",
    )


class DailyKeySpend(Base):
    __tablename__ = "daily_key_spend"
    __table_args__ = (
        Index("ix_daily_key_spend_workspace_id_day", "workspace_id", "day"),
        Index("ix_daily_key_spend_day", "day"),
        {
            **MYSQL_TABLE,
            "comment": "Exact spend per key per UTC day, from the day-start totals "
            "(usage - usage_daily) observed on that day and the next. Sparse: a row for "
            "every key-day with spend, and a NULL row for a key-day whose spend is unknown "
            "(a bounding day was not observed). The days inside a gap of unobserved days "
            "have no row per key: the view daily_key_spend_gaps lists them (spend "
            "unknown). A key-day in neither had no spend.",
        },
    )

    key_hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH),
        ForeignKey("api_keys.hash"),
        primary_key=True,
        comment="The key (api_keys.hash).",
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="The UTC day.")
    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), comment="Workspace the key belonged to on that day."
    )
    spend_usd: Mapped[Decimal | None] = mapped_column(
        Money, comment="OpenRouter credit spent that UTC day in USD; NULL = unknown."
    )
    byok_spend_usd: Mapped[Decimal | None] = mapped_column(
        Money, comment="External BYOK spend that UTC day in USD; NULL = unknown."
    )


class ApiKeyVersion(Base):
    __tablename__ = "api_key_versions"
    __table_args__ = (
        Index("ix_api_key_versions_key_hash_valid_from", "key_hash", "valid_from"),
        {
            **MYSQL_TABLE,
            "comment": "History of each key's descriptive attributes as validity "
            "intervals: one row per change, valid_to NULL for the current version. "
            "'What was this key called, and what was its limit, at time X' is: "
            "valid_from <= X AND (valid_to IS NULL OR valid_to > X).",
        },
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Row id.")
    key_hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH), ForeignKey("api_keys.hash"), comment="The key (api_keys.hash)."
    )
    valid_from: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Server time (UTC) from which this version was observed."
    )
    valid_to: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        comment="Server time (UTC) when the next version (or the deletion) was observed; "
        "NULL for the current version.",
    )
    workspace_id: Mapped[str] = version_column("workspace_id")
    name: Mapped[str] = version_column("name")
    label: Mapped[str] = version_column("label")
    credit_limit: Mapped[Decimal | None] = version_column("limit")
    limit_reset: Mapped[str | None] = version_column("limit_reset")
    include_byok_in_limit: Mapped[bool] = version_column("include_byok_in_limit")
    disabled: Mapped[bool] = version_column("disabled")
    expires_at: Mapped[datetime | None] = version_column("expires_at")
