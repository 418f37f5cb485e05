"""The run ledger: sync_runs and sync_run_workspaces rows, written through a Connection.

Ledger rows are committed apart from the data (a failed workspace is still recorded),
except a workspace's final counts, which commit with its data.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from etl import __version__
from etl.core.clock import utcnow
from etl.core.config import DEFAULT_WORKSPACE
from etl.core.statuses import RunStatus, WorkspaceStatus
from etl.store import locks
from etl.store.counts import PageCounts
from models import SyncRun, SyncRunWorkspace, Workspace


def start_run(connection: Connection, *, dry_run: bool, lock_token: str) -> int:
    """Insert the run's row (status running) and return its id."""
    result = connection.execute(
        insert(SyncRun).values(
            started_at=utcnow(),
            status=RunStatus.RUNNING.value,
            keyledger_version=__version__,
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            dry_run=dry_run,
            lock_token=lock_token,
        )
    )
    return _new_id(result.inserted_primary_key)


def run_lock_name(lock_token: str) -> str:
    """The lock a run holds for as long as its process lives."""
    return f"run:{lock_token}"


def abandon_dead_runs(engine: Engine) -> int:
    """Mark abandoned every run left "running" whose lock nobody holds: its process died
    (a killed run never gets to write its own end). Returns how many."""
    with engine.connect() as connection:
        running = connection.execute(
            select(SyncRun.id, SyncRun.lock_token).where(SyncRun.status == RunStatus.RUNNING.value)
        ).all()
    dead = []
    for run_id, token in running:
        lock = locks.try_lock(engine, run_lock_name(token), ephemeral=True)
        if lock is not None:
            dead.append(run_id)
            lock.release()
    if dead:
        with engine.begin() as connection:
            connection.execute(
                update(SyncRun)
                .where(SyncRun.id.in_(dead), SyncRun.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.ABANDONED.value, finished_at=utcnow())
            )
            connection.execute(
                update(SyncRunWorkspace)
                .where(
                    SyncRunWorkspace.sync_run_id.in_(dead),
                    SyncRunWorkspace.status == WorkspaceStatus.RUNNING.value,
                )
                .values(status=WorkspaceStatus.ABANDONED.value)
            )
    return len(dead)


def finish_run(
    connection: Connection, run_id: int, status: RunStatus, *, error: str | None = None
) -> None:
    """Close the run's row with its final status (and why it stopped short, if it did)."""
    connection.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(finished_at=utcnow(), status=status.value, error=error)
    )


def open_workspace(
    connection: Connection,
    run_id: int,
    *,
    account: str,
    requested_as: str,
    status: WorkspaceStatus = WorkspaceStatus.RUNNING,
    error: str | None = None,
) -> int:
    """Insert a workspace's row for this run; a running one abandons dead runs' rows."""
    running = status is WorkspaceStatus.RUNNING
    if running:
        # The caller holds the workspace's lock: a row still "running" is a dead run's.
        connection.execute(
            update(SyncRunWorkspace)
            .where(
                SyncRunWorkspace.requested_as == requested_as,
                SyncRunWorkspace.status == WorkspaceStatus.RUNNING.value,
            )
            .values(status=WorkspaceStatus.ABANDONED.value)
        )
    result = connection.execute(
        insert(SyncRunWorkspace).values(
            sync_run_id=run_id,
            account=account[:255],
            requested_as=requested_as,
            workspace_id=requested_as,
            status=status.value,
            started_at=utcnow(),
            finished_at=None if running else utcnow(),
            pages=0,
            keys_seen=0,
            keys_new=0,
            keys_changed=0,
            keys_deleted=0,
            snapshots_written=0,
            error=error,
        )
    )
    return _new_id(result.inserted_primary_key)


def close_workspace(
    connection: Connection,
    ledger_id: int,
    *,
    status: WorkspaceStatus,
    pages: int,
    counts: PageCounts,
    deleted: int,
    error: str | None,
) -> None:
    """Record how the workspace ended, with its counts."""
    connection.execute(
        update(SyncRunWorkspace)
        .where(SyncRunWorkspace.id == ledger_id)
        .values(
            status=status.value,
            finished_at=utcnow(),
            pages=pages,
            keys_seen=counts.seen,
            keys_new=counts.new,
            keys_changed=counts.changed,
            keys_deleted=deleted,
            snapshots_written=counts.snapshots,
            error=error,
        )
    )


def resolve_workspace(
    connection: Connection, ledger_id: int, workspace_id: str, server_time: datetime
) -> None:
    """Record the workspace's UUID (learnt from its keys) and the listing's server time."""
    connection.execute(
        update(SyncRunWorkspace)
        .where(SyncRunWorkspace.id == ledger_id)
        .values(workspace_id=workspace_id, server_time=server_time)
    )


def synced_since(connection: Connection, requested_as: str, since: datetime) -> int | None:
    """The run that finished syncing the workspace at or after ``since``, if any."""
    return connection.scalar(
        select(SyncRunWorkspace.sync_run_id)
        .where(
            SyncRunWorkspace.requested_as == requested_as,
            SyncRunWorkspace.status == WorkspaceStatus.OK.value,
            SyncRunWorkspace.finished_at >= since,
        )
        .limit(1)
    )


def delisted_workspaces(connection: Connection, account: str, listed: set[str]) -> list[str]:
    """Workspaces this account synced before that discovery no longer lists (and that
    are not yet marked so)."""
    synced = (
        select(SyncRunWorkspace.workspace_id)
        .where(
            SyncRunWorkspace.account == account[:255],
            SyncRunWorkspace.status == WorkspaceStatus.OK.value,
        )
        .distinct()
    )
    query = select(Workspace.id).where(
        Workspace.id.in_(synced),
        Workspace.delisted_at.is_(None),
        Workspace.id.not_in({*listed, DEFAULT_WORKSPACE}),
    )
    return sorted(connection.scalars(query))


def last_resolved(connection: Connection, requested_as: str) -> str | None:
    """The UUID an earlier run learnt for ``requested_as`` (for an empty default)."""
    return connection.scalar(
        select(SyncRunWorkspace.workspace_id)
        .where(
            SyncRunWorkspace.requested_as == requested_as,
            SyncRunWorkspace.workspace_id != requested_as,
        )
        .order_by(SyncRunWorkspace.id.desc())
        .limit(1)
    )


def holder(engine: Engine, workspace_id: str) -> str:
    """Which run holds a workspace, as far as the ledger tells."""
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(SyncRun.id, SyncRun.hostname, SyncRun.pid, SyncRun.started_at)
                .join(SyncRunWorkspace, SyncRunWorkspace.sync_run_id == SyncRun.id)
                .where(
                    SyncRunWorkspace.requested_as == workspace_id,
                    SyncRunWorkspace.status == WorkspaceStatus.RUNNING.value,
                )
                .order_by(SyncRunWorkspace.id.desc())
                .limit(1)
            ).first()
    except SQLAlchemyError:
        row = None
    if row is None:
        return "a run that has not recorded itself yet"
    since = f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC"
    return f"run {row.id} on {row.hostname}, pid {row.pid}, started {since}"


def _new_id(primary_key: object) -> int:
    new_id = primary_key[0] if primary_key else None  # type: ignore[index]
    assert isinstance(new_id, int)
    return new_id
