"""GET /activity kept for good: daily usage per endpoint, per workspace and per key.

The API serves only the last 30 completed UTC days, so these tables are the only place
older days survive. A (workspace, day) is replaced whole when it is re-fetched, and
activity_days says which days are stored whole and which fell out of the window first.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE, Base
from models.keys import HASH_LENGTH, ID_LENGTH, BigId
from models.types import Money, UtcDateTime

# An endpoint id is a UUID; model slugs and provider names are short names.
ENDPOINT_ID_LENGTH = 64
NAME_LENGTH = 255
DAY_STATUSES = "'fetched' (the stored rows are the whole day: none means no activity) or "


def _run_id(*, nullable: bool) -> Mapped[int]:
    return mapped_column(
        BigId,
        ForeignKey("sync_runs.id"),
        nullable=nullable,
        sort_order=1,  # after the measures, as the tables list them
        comment="The run that fetched it (sync_runs.id)."
        + (" NULL for a missing day." if nullable else ""),
    )


class _Measures:
    """The item fields of GET /activity, shared by the per-workspace and per-key tables."""

    model: Mapped[str] = mapped_column(
        String(NAME_LENGTH), comment="Model slug, e.g. openai/gpt-4.1 (item field model)."
    )
    model_permaslug: Mapped[str] = mapped_column(
        String(NAME_LENGTH),
        comment="Model permaslug, the model's dated version, e.g. openai/gpt-4.1-2025-04-14.",
    )
    provider_name: Mapped[str] = mapped_column(
        String(NAME_LENGTH), comment="Provider serving the endpoint, e.g. OpenAI."
    )
    usage_usd: Mapped[Decimal] = mapped_column(
        Money, comment="OpenRouter credits spent that UTC day in USD (item field usage)."
    )
    byok_usage_inference_usd: Mapped[Decimal] = mapped_column(
        Money,
        comment="BYOK inference cost that UTC day in USD, external credits "
        "(item field byok_usage_inference).",
    )
    requests: Mapped[int] = mapped_column(BigInteger, comment="Requests made that day.")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, comment="Prompt tokens used.")
    completion_tokens: Mapped[int] = mapped_column(
        BigInteger, comment="Completion tokens generated."
    )
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, comment="Reasoning tokens used.")
    fetched_at: Mapped[datetime] = mapped_column(
        UtcDateTime,
        sort_order=2,
        comment="Server time (UTC, Date header) of the response that carried it.",
    )


class DailyActivity(_Measures, Base):
    __tablename__ = "daily_activity"
    __table_args__ = {
        **MYSQL_TABLE,
        "comment": "Usage per workspace, UTC day and endpoint as GET /activity "
        "(group_by=workspace) reports it, kept after the API's 30-day window has passed. "
        "A day's rows for a workspace are replaced whole when re-fetched; activity_days "
        "says which days are stored.",
    }

    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), primary_key=True, comment="Workspace UUID (item field workspace_id)."
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="The UTC day (item date).")
    endpoint_id: Mapped[str] = mapped_column(
        String(ENDPOINT_ID_LENGTH),
        primary_key=True,
        comment="Endpoint id: one model served by one provider.",
    )
    run_id: Mapped[int] = _run_id(nullable=False)


class ActivityDay(Base):
    __tablename__ = "activity_days"
    __table_args__ = {
        **MYSQL_TABLE,
        "comment": "One row per workspace and UTC day since the workspace's first activity "
        "fetch: whether daily_activity holds the whole day, or the day was lost.",
    }

    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), primary_key=True, comment="Workspace UUID."
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="The UTC day.")
    status: Mapped[str] = mapped_column(
        String(16),
        comment=DAY_STATUSES + "'missing' (the day left the API's 30-day window before any "
        "run fetched it: unknown, never guessed).",
    )
    row_count: Mapped[int] = mapped_column(
        Integer, comment="daily_activity rows stored for the day (0 when missing)."
    )
    run_id: Mapped[int | None] = _run_id(nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        sort_order=2,
        comment="Server time (UTC) of the fetch whose rows are stored; NULL when missing.",
    )


class DailyKeyActivity(_Measures, Base):
    __tablename__ = "daily_key_activity"
    __table_args__ = {
        **MYSQL_TABLE,
        "comment": "Usage per key, UTC day and endpoint (GET /activity?api_key_hash=), for "
        "the keys the activity_keys setting names; off by default. Replaced per key-day "
        "like daily_activity; key_activity_days says which key-days are stored.",
    }

    key_hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH), primary_key=True, comment="The key (api_keys.hash)."
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="The UTC day (item date).")
    endpoint_id: Mapped[str] = mapped_column(
        String(ENDPOINT_ID_LENGTH),
        primary_key=True,
        comment="Endpoint id: one model served by one provider.",
    )
    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), comment="Workspace the key's activity is attributed to."
    )
    run_id: Mapped[int] = _run_id(nullable=False)


class KeyActivityDay(Base):
    __tablename__ = "key_activity_days"
    __table_args__ = {
        **MYSQL_TABLE,
        "comment": "One row per key and UTC day since the key's first activity fetch: "
        "whether daily_key_activity holds the whole key-day, or it was lost.",
    }

    key_hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH), primary_key=True, comment="The key (api_keys.hash)."
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="The UTC day.")
    status: Mapped[str] = mapped_column(
        String(16),
        comment=DAY_STATUSES + "'missing' (the day left the API's 30-day window before any "
        "run fetched it for this key: unknown, never guessed).",
    )
    row_count: Mapped[int] = mapped_column(
        Integer, comment="daily_key_activity rows stored for the key-day (0 when missing)."
    )
    run_id: Mapped[int | None] = _run_id(nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        sort_order=2,
        comment="Server time (UTC) of the fetch whose rows are stored; NULL when missing.",
    )


class SyncRunActivity(Base):
    __tablename__ = "sync_run_activity"
    __table_args__ = {
        **MYSQL_TABLE,
        "comment": "The run ledger's activity line: one row per account per run for its "
        "GET /activity fetches, apart from its workspaces' key syncs.",
    }

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Row id.")
    sync_run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sync_runs.id"), comment="The run (sync_runs.id)."
    )
    account: Mapped[str] = mapped_column(String(255), comment="Configured account name.")
    status: Mapped[str] = mapped_column(
        String(16),
        comment="ok, failed (nothing of it stored: rolled back; the key sync is "
        "unaffected), skipped (no workspace of the account synced, so none was fetched) or "
        "interrupted.",
    )
    started_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Local clock (UTC) when the activity fetch started."
    )
    finished_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Local clock (UTC) when it ended."
    )
    server_time: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        comment="Server time (UTC) the window was worked out from: the completed days "
        "are the 30 before its UTC date.",
    )
    workspaces: Mapped[int] = mapped_column(Integer, comment="Workspaces whose activity it read.")
    days_fetched: Mapped[int] = mapped_column(
        Integer, comment="Workspace-days fetched and stored whole (new and re-fetched)."
    )
    days_refetched: Mapped[int] = mapped_column(
        Integer, comment="Of days_fetched, those already stored and replaced (late usage)."
    )
    days_missing: Mapped[int] = mapped_column(
        Integer, comment="Workspace-days newly recorded missing (left the window unfetched)."
    )
    rows_written: Mapped[int] = mapped_column(Integer, comment="daily_activity rows written.")
    key_days_fetched: Mapped[int] = mapped_column(
        Integer, comment="Key-days fetched for daily_key_activity (activity_keys)."
    )
    key_rows_written: Mapped[int] = mapped_column(
        Integer, comment="daily_key_activity rows written."
    )
    requests: Mapped[int] = mapped_column(
        Integer, comment="GET /activity requests sent, retries included."
    )
    error: Mapped[str | None] = mapped_column(
        Text, comment="One line saying what went wrong (no secrets); NULL when ok."
    )
