"""Reading the run ledger back for people: recent runs, one run, each workspace's last sync.

Only SELECTs, through a Connection the caller opened (and never commits): ``keyledger
runs`` and ``keyledger status`` write nothing. The figures are the ledger's own
(sync_runs, sync_run_workspaces, workspaces), summed in Python so every backend
gives the same integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select
from sqlalchemy.exc import SQLAlchemyError

from etl.core.config import DEFAULT_WORKSPACE
from etl.core.errors import LoadError
from etl.core.statuses import WorkspaceStatus
from etl.store.database import one_line
from models import SyncRun, SyncRunActivity, SyncRunWorkspace, Workspace

# The ledger row of an account whose workspace listing failed (no workspace known).
WHOLE_ACCOUNT = "*"


@dataclass(frozen=True)
class KeyTotals:
    """Keys and pages a run (or one of its workspaces) counted."""

    pages: int = 0
    seen: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    snapshots: int = 0

    def plus(self, other: KeyTotals) -> KeyTotals:
        """The sum of both."""
        return KeyTotals(
            self.pages + other.pages,
            self.seen + other.seen,
            self.new + other.new,
            self.changed + other.changed,
            self.deleted + other.deleted,
            self.snapshots + other.snapshots,
        )


@dataclass(frozen=True)
class RunRow:
    """One sync_runs row with its workspaces' outcomes and counts."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    hostname: str
    pid: int
    keyledger_version: str
    error: str | None
    workspaces: dict[str, int]  # status -> how many of its workspaces ended so
    totals: KeyTotals


@dataclass(frozen=True)
class RunWorkspaceRow:
    """One sync_run_workspaces row, with the workspace's name when known."""

    account: str
    requested_as: str
    workspace_id: str
    name: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    server_time: datetime | None
    totals: KeyTotals
    error: str | None


@dataclass(frozen=True)
class RunActivityRow:
    """An account's GET /activity line of a run (sync_run_activity)."""

    account: str
    status: str
    days_fetched: int
    days_refetched: int
    days_missing: int
    rows_written: int
    key_days_fetched: int
    requests: int
    error: str | None


@dataclass(frozen=True)
class RunDetail:
    """One run and each of its workspaces, in the order the run recorded them, and its
    accounts' activity lines."""

    run: RunRow
    workspaces: list[RunWorkspaceRow]
    activity: list[RunActivityRow] = field(default_factory=list)


@dataclass(frozen=True)
class LastAttempt:
    """The newest ledger row of a workspace, whatever its outcome."""

    run_id: int
    status: str
    finished_at: datetime | None
    error: str | None


@dataclass
class WorkspaceSync:
    """When a workspace last synced, as the ledger knows it.

    ``last_ok_at`` is the local clock (UTC) when its last successful sync finished
    (sync_run_workspaces.finished_at): what "is the job still running" asks.
    ``server_time`` is workspaces.last_synced_at, the server's time of that listing.
    Both are None for a workspace that never synced.
    """

    workspace_id: str
    account: str | None
    name: str | None
    last_ok_at: datetime | None
    last_ok_run: int | None
    server_time: datetime | None
    delisted_at: datetime | None
    last_attempt: LastAttempt | None
    requested_as: set[str] = field(default_factory=set)


def recent_runs(connection: Connection, *, limit: int) -> list[RunRow]:
    """The newest ``limit`` runs, newest first."""
    runs = connection.execute(
        select(SyncRun).order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit)
    ).all()
    outcomes = _outcomes(connection, [r.id for r in runs])
    return [_run_row(r, *outcomes.get(r.id, ({}, KeyTotals()))) for r in runs]


def run_detail(connection: Connection, run_id: int) -> RunDetail | None:
    """One run with its workspaces, or None when there is no such run."""
    run = connection.execute(select(SyncRun).where(SyncRun.id == run_id)).first()
    if run is None:
        return None
    rows = connection.execute(
        select(SyncRunWorkspace, Workspace.name.label("workspace_name"))
        .outerjoin(Workspace, Workspace.id == SyncRunWorkspace.workspace_id)
        .where(SyncRunWorkspace.sync_run_id == run_id)
        .order_by(SyncRunWorkspace.id)
    ).all()
    workspaces = [
        RunWorkspaceRow(
            account=w.account,
            requested_as=w.requested_as,
            workspace_id=w.workspace_id,
            name=w.workspace_name,
            status=w.status,
            started_at=w.started_at,
            finished_at=w.finished_at,
            server_time=w.server_time,
            totals=_totals(w),
            error=w.error,
        )
        for w in rows
    ]
    counted, totals = _outcomes(connection, [run_id]).get(run_id, ({}, KeyTotals()))
    activity = [
        RunActivityRow(
            account=a.account,
            status=a.status,
            days_fetched=a.days_fetched,
            days_refetched=a.days_refetched,
            days_missing=a.days_missing,
            rows_written=a.rows_written,
            key_days_fetched=a.key_days_fetched,
            requests=a.requests,
            error=a.error,
        )
        for a in connection.execute(
            select(SyncRunActivity)
            .where(SyncRunActivity.sync_run_id == run_id)
            .order_by(SyncRunActivity.id)
        )
    ]
    return RunDetail(_run_row(run, counted, totals), workspaces, activity)


def workspace_syncs(
    connection: Connection, *, expected: Iterable[tuple[str | None, str]] = ()
) -> list[WorkspaceSync]:
    """Every workspace the database knows (synced, or only attempted), and each of
    ``expected`` ((account or None, "default" or UUID): configured ones), with when
    it last synced successfully. Sorted by workspace id."""
    last_ok = {
        workspace_id: (finished, run_id)
        for workspace_id, finished, run_id in connection.execute(
            select(
                SyncRunWorkspace.workspace_id,
                SyncRunWorkspace.finished_at,
                SyncRunWorkspace.sync_run_id,
            ).where(
                SyncRunWorkspace.id.in_(
                    select(func.max(SyncRunWorkspace.id))
                    .where(SyncRunWorkspace.status == WorkspaceStatus.OK.value)
                    .group_by(SyncRunWorkspace.workspace_id)
                )
            )
        )
    }
    newest = connection.execute(
        select(SyncRunWorkspace).where(
            SyncRunWorkspace.id.in_(
                select(func.max(SyncRunWorkspace.id)).group_by(
                    SyncRunWorkspace.account,
                    SyncRunWorkspace.requested_as,
                    SyncRunWorkspace.workspace_id,
                )
            ),
            SyncRunWorkspace.requested_as != WHOLE_ACCOUNT,
        )
    ).all()
    known: dict[str, WorkspaceSync] = {}
    for w in connection.execute(select(Workspace)).all():
        finished, run_id = last_ok.get(w.id, (None, None))
        known[w.id] = WorkspaceSync(
            w.id, None, w.name, finished, run_id, w.last_synced_at, w.delisted_at, None
        )
    # (account, as requested) -> the workspace it is filed under.
    targets: dict[tuple[str, str], WorkspaceSync] = {}
    unresolved = []
    for row in sorted(newest, key=lambda r: r.id):
        sync = known.get(row.workspace_id)
        if sync is None:
            unresolved.append(row)
            continue
        _note_attempt(sync, row)
        targets[(row.account, row.requested_as)] = sync
    for row in unresolved:
        # A workspace never loaded: it has no workspaces row. A configured "default"
        # whose UUID an earlier run learnt is filed under that UUID instead.
        target = targets.get((row.account, row.requested_as))
        if target is None:
            target = known.setdefault(
                row.workspace_id,
                WorkspaceSync(row.workspace_id, row.account, None, None, None, None, None, None),
            )
            targets[(row.account, row.requested_as)] = target
        _note_attempt(target, row)
    for account, requested in expected:
        if _is_known(known, targets, account, requested):
            continue
        missing = WorkspaceSync(requested, account, None, None, None, None, None, None)
        missing.requested_as.add(requested)
        known[requested if account is None else f"{account}:{requested}"] = missing
    return sorted(known.values(), key=lambda s: (s.workspace_id, s.account or ""))


def _is_known(
    known: dict[str, WorkspaceSync],
    targets: dict[tuple[str, str], WorkspaceSync],
    account: str | None,
    requested: str,
) -> bool:
    if account is not None and (account, requested) in targets:
        return True
    if requested != DEFAULT_WORKSPACE:
        return requested in known  # a UUID is filed under itself
    # "default" is a different workspace for each account; without one, any will do.
    return account is None and any(r == DEFAULT_WORKSPACE for _account, r in targets)


def _note_attempt(sync: WorkspaceSync, row: Row[Any]) -> None:
    sync.requested_as.add(row.requested_as)
    if sync.last_attempt is None or row.sync_run_id > sync.last_attempt.run_id:
        sync.last_attempt = LastAttempt(row.sync_run_id, row.status, row.finished_at, row.error)
        sync.account = row.account


def _outcomes(
    connection: Connection, run_ids: Sequence[int]
) -> dict[int, tuple[dict[str, int], KeyTotals]]:
    """Per run: how many workspaces ended in each status, and the summed counts."""
    if not run_ids:
        return {}
    w = SyncRunWorkspace
    rows = connection.execute(
        select(
            w.sync_run_id,
            w.status,
            func.count(),
            func.sum(w.pages),
            func.sum(w.keys_seen),
            func.sum(w.keys_new),
            func.sum(w.keys_changed),
            func.sum(w.keys_deleted),
            func.sum(w.snapshots_written),
        )
        .where(w.sync_run_id.in_(run_ids))
        .group_by(w.sync_run_id, w.status)
    ).all()
    found: dict[int, tuple[dict[str, int], KeyTotals]] = {}
    for run_id, status, count, *sums in rows:
        counted, totals = found.get(run_id, ({}, KeyTotals()))
        counted[status] = int(count)
        found[run_id] = (counted, totals.plus(KeyTotals(*(int(s or 0) for s in sums))))
    return found


def _totals(w: Any) -> KeyTotals:
    return KeyTotals(
        w.pages, w.keys_seen, w.keys_new, w.keys_changed, w.keys_deleted, w.snapshots_written
    )


def _run_row(run: Row[Any], workspaces: dict[str, int], totals: KeyTotals) -> RunRow:
    return RunRow(
        id=run.id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status,
        hostname=run.hostname,
        pid=run.pid,
        keyledger_version=run.keyledger_version,
        error=run.error,
        workspaces=workspaces,
        totals=totals,
    )


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection that can only read (the database refuses writes where it can), its
    database errors raised as one-line LoadErrors; rolled back, never committed."""
    try:
        with engine.connect() as connection:
            _refuse_writes(connection)
            try:
                yield connection
            finally:
                if connection.dialect.name == "sqlite":
                    connection.exec_driver_sql("PRAGMA query_only = OFF")  # pooled again
    except SQLAlchemyError as exc:
        raise LoadError(f"cannot read the run ledger: {one_line(exc)}") from exc


def _refuse_writes(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")
    else:  # the first statement of the connection's transaction
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
