"""The run ledger: one row per run, one per workspace per run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE, Base
from models.keys import ID_LENGTH, BigId
from models.types import UtcDateTime


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = {**MYSQL_TABLE, "comment": "One row per `keyledger sync` run."}

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Run id.")
    started_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Local clock (UTC) when the run started."
    )
    finished_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Local clock (UTC) when the run ended; NULL while running."
    )
    status: Mapped[str] = mapped_column(
        String(16),
        comment="running, ok (every workspace synced), partial (some failed or were "
        "skipped), failed (none synced), abandoned (the process died mid-run) or "
        "interrupted (stopped by SIGINT or SIGTERM, named in error).",
    )
    keyledger_version: Mapped[str] = mapped_column(
        String(64), comment="Version of keyledger that ran."
    )
    hostname: Mapped[str] = mapped_column(String(255), comment="Host the run ran on.")
    pid: Mapped[int] = mapped_column(Integer, comment="Process id of the run.")
    lock_token: Mapped[str] = mapped_column(
        String(36),
        comment="Names the lock the run holds while it lives; a later run that can take "
        "it knows this run died and marks it abandoned.",
    )
    dry_run: Mapped[bool] = mapped_column(
        Boolean, comment="True for --dry-run (such runs are rolled back and never stored)."
    )
    error: Mapped[str | None] = mapped_column(
        Text,
        comment="Why the run failed as a whole or stopped short, e.g. 'interrupted by "
        "SIGTERM' (no secrets); NULL otherwise.",
    )


class SyncRunWorkspace(Base):
    __tablename__ = "sync_run_workspaces"
    __table_args__ = (
        Index("ix_sync_run_workspaces_workspace_id_finished_at", "workspace_id", "finished_at"),
        Index("ix_sync_run_workspaces_requested_as_status", "requested_as", "status"),
        {**MYSQL_TABLE, "comment": "One row per workspace per run: outcome and counts."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Row id.")
    sync_run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sync_runs.id"), comment="The run (sync_runs.id)."
    )
    account: Mapped[str] = mapped_column(
        String(255), comment="Configured account name the workspace was read with."
    )
    requested_as: Mapped[str] = mapped_column(
        String(ID_LENGTH), comment="The workspace as configured: 'default' or its UUID."
    )
    workspace_id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        comment="Workspace UUID ('default' while the default workspace's UUID is unknown).",
    )
    status: Mapped[str] = mapped_column(
        String(16),
        comment="running, ok, failed, skipped (held by another run, or not attempted), "
        "abandoned, interrupted (its run was stopped while it loaded: rolled back), or "
        "delisted (no longer listed by GET /workspaces: its keys were confirmed one by one).",
    )
    started_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Local clock (UTC) when this workspace started."
    )
    finished_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Local clock (UTC) when this workspace ended."
    )
    server_time: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        comment="Server time (UTC, Date header) of the first page of a successful "
        "listing: every live key of the workspace was observed at about this time.",
    )
    pages: Mapped[int] = mapped_column(Integer, comment="Pages of GET /keys read.")
    keys_seen: Mapped[int] = mapped_column(Integer, comment="Distinct keys listed.")
    keys_new: Mapped[int] = mapped_column(Integer, comment="Keys seen for the first time.")
    keys_changed: Mapped[int] = mapped_column(
        Integer, comment="Known keys whose stored row changed."
    )
    keys_deleted: Mapped[int] = mapped_column(
        Integer, comment="Keys confirmed deleted (404) in this run."
    )
    snapshots_written: Mapped[int] = mapped_column(Integer, comment="usage_snapshots rows written.")
    error: Mapped[str | None] = mapped_column(
        Text, comment="One line saying what went wrong (no secrets); NULL when ok."
    )
