"""The run ledger's activity line (sync_run_activity), and the server time it starts from.

One row per account per run: written with the activity data when it commits (so an ok
line and its rows commit together), or on its own after a rollback (failed, skipped,
interrupted), so `keyledger runs show` names the failure either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from etl.core.statuses import ActivityStatus, WorkspaceStatus
from models import SyncRunActivity, SyncRunWorkspace


@dataclass
class ActivityCounts:
    """What one account's activity part stored (committed work only)."""

    workspaces: int = 0
    days_fetched: int = 0
    days_refetched: int = 0
    days_missing: int = 0
    rows_written: int = 0
    key_days_fetched: int = 0
    key_rows_written: int = 0


def listing_server_time(
    connection: Connection, run_id: int, workspace_ids: Iterable[str]
) -> datetime | None:
    """The latest server time (Date) of this run's successful listings of these
    workspaces: the server's clock as the key sync read it."""
    return connection.scalar(
        select(func.max(SyncRunWorkspace.server_time)).where(
            SyncRunWorkspace.sync_run_id == run_id,
            SyncRunWorkspace.workspace_id.in_(sorted(set(workspace_ids))),
            SyncRunWorkspace.status == WorkspaceStatus.OK.value,
        )
    )


def record_activity(
    connection: Connection,
    run_id: int,
    account: str,
    status: ActivityStatus,
    counts: ActivityCounts,
    *,
    started_at: datetime,
    finished_at: datetime,
    server_time: datetime | None,
    requests: int,
    error: str | None,
) -> None:
    """Write the account's activity line of run ``run_id``."""
    connection.execute(
        insert(SyncRunActivity).values(
            sync_run_id=run_id,
            account=account[:255],
            status=status.value,
            started_at=started_at,
            finished_at=finished_at,
            server_time=server_time,
            workspaces=counts.workspaces,
            days_fetched=counts.days_fetched,
            days_refetched=counts.days_refetched,
            days_missing=counts.days_missing,
            rows_written=counts.rows_written,
            key_days_fetched=counts.key_days_fetched,
            key_rows_written=counts.key_rows_written,
            requests=requests,
            error=error,
        )
    )
