"""keyledger from Python: one sync run from a settings object, for orchestrators
(Airflow, Dagster, Prefect) and scripts. ``keyledger sync`` is a thin shell over it.

    from etl.api import load_settings, sync

    settings = load_settings(
        management_key=key, database_url="postgresql+psycopg://ledger@db/ledger"
    )
    report = sync(settings)  # a SyncReport: report.keys_new, report.exit_code, ...

No click, no ``sys.exit``, no printing, no logging configuration: keyledger's loggers
(``etl.*``) log through whatever handlers the caller set up. A workspace that fails is
in the report, not an exception (unless ``check=True``). What does raise, all of it
``KeyledgerError`` (etl.core.errors): ``ConfigError`` (from load_settings),
``DatabaseUnavailableError`` (cannot connect), ``SchemaOutdatedError`` (the schema is
behind: ``migrate=True`` or ``keyledger db upgrade``), ``MigrationLockedError``,
``LoadError`` (the database failed before anything committed), ``AuthError`` (every
account's management key was refused, so nothing synced) and, with ``check=True``,
``SyncFailedError`` for any run that did not end ok.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from etl.core.config import Settings, load_settings
from etl.core.errors import (
    AuthError,
    ConfigError,
    DatabaseUnavailableError,
    KeyledgerError,
    LoadError,
)
from etl.core.exit_codes import EXIT_FAILURE, EXIT_LOCKED, EXIT_OK, exit_code_of
from etl.core.progress import NO_OBSERVER, SyncObserver
from etl.core.statuses import WorkspaceStatus
from etl.core.stop import Stop
from etl.store.database import open_engine
from etl.store.migrations import MigrationLockedError, SchemaOutdatedError, prepare_schema
from etl.sync import SyncResult, run_sync

__all__ = [
    "AuthError",
    "ConfigError",
    "DatabaseUnavailableError",
    "KeyledgerError",
    "LoadError",
    "MigrationLockedError",
    "SchemaOutdatedError",
    "Settings",
    "SyncFailedError",
    "SyncReport",
    "WorkspaceReport",
    "exit_code_for",
    "load_settings",
    "sync",
]


@dataclass(frozen=True)
class WorkspaceReport:
    """How one workspace fared; the counts are of committed work only."""

    account: str
    workspace_id: str  # "*" when the account's workspaces could not even be listed
    status: str  # ok, failed, skipped or delisted (etl.core.statuses.WorkspaceStatus)
    pages: int
    keys_seen: int
    keys_new: int
    keys_changed: int
    keys_deleted: int
    snapshots_written: int
    error: str | None


@dataclass(frozen=True)
class SyncReport:
    """A run's figures: those of its summary line, plus requests, retries and the exit
    code ``keyledger sync`` would end with. ``to_dict()`` is JSON-ready (an XCom)."""

    run_id: int | None
    status: str  # ok, partial, failed or locked (etl.core.statuses.RunStatus)
    exit_code: int
    dry_run: bool
    workspaces_ok: int
    workspaces_failed: int
    workspaces_skipped: int
    workspaces_delisted: int
    keys_seen: int
    keys_new: int
    keys_changed: int
    keys_deleted: int
    snapshots_written: int
    pages: int
    requests: int
    retries: int
    seconds: float
    error: str | None  # why the run stopped short (the database failed), if it did
    workspaces: tuple[WorkspaceReport, ...]
    result: SyncResult = field(repr=False, compare=False)  # the run's own record
    # What was done to the schema first: "created schema at rev X" (an empty database),
    # "upgraded A -> B" (migrate=True); None when it was current.
    schema_change: str | None = None
    # GET /activity (etl/activity_sync.py): workspace-days stored, rows written, days
    # recorded missing, and accounts whose activity part failed (the run is then partial).
    activity_days_fetched: int = 0
    activity_rows: int = 0
    activity_days_missing: int = 0
    activity_failed: int = 0

    @property
    def ok(self) -> bool:
        """Whether the command line would exit 0."""
        return self.exit_code == EXIT_OK

    def summary(self) -> str:
        """The run's summary line, as ``keyledger sync`` prints it."""
        return self.result.summary()

    def to_dict(self) -> dict[str, Any]:
        """Every figure as plain JSON values (no ``result``)."""
        figures = asdict(self)
        del figures["result"]
        return figures


class SyncFailedError(KeyledgerError):
    """A run that did not end ok, raised only when the caller asked (``check=True``);
    ``report`` holds its figures."""

    def __init__(self, report: SyncReport) -> None:
        super().__init__(
            f"the run ended {report.status} (exit {report.exit_code}): {report.summary()}"
        )
        self.report = report


def sync(
    settings: Settings,
    *,
    dry_run: bool = False,
    migrate: bool = False,
    wait_seconds: float = 0.0,
    check: bool = False,
    observer: SyncObserver = NO_OBSERVER,
    stop: Stop | None = None,
) -> SyncReport:
    """Run one sync of every configured workspace into ``settings.database_url``.

    An empty database gets the schema first (but not in a dry run). ``migrate``
    upgrades an old schema first (else SchemaOutdatedError); ``dry_run``
    writes nothing; ``wait_seconds`` waits that long for workspaces another run holds
    (else they are skipped); ``check`` raises SyncFailedError unless the run ended ok;
    ``observer`` hears each workspace start, fetch its pages and end (from the threads
    that sync them); ``stop``, once requested (from a signal handler, say), ends the run
    soon: the workspaces in flight roll back, the run is recorded interrupted.
    """
    with open_engine(settings.database_url) as engine:
        # A dry run writes nothing, so it leaves an empty database empty too.
        change = prepare_schema(engine, migrate=migrate, create=not dry_run)
        result = run_sync(
            engine,
            settings,
            dry_run=dry_run,
            wait_seconds=wait_seconds,
            observer=observer,
            stop=stop,
        )
    report = _report(result, None if change is None else change.describe())
    refused = _refused_everywhere(report, several_accounts=len(settings.accounts) > 1)
    if refused is not None:
        raise refused
    if check and not report.ok:
        raise SyncFailedError(report)
    return report


def exit_code_for(error: KeyledgerError) -> int:
    """The exit code ``keyledger sync`` ends with when ``sync`` raises ``error``."""
    if isinstance(error, SyncFailedError):
        return error.report.exit_code
    return EXIT_LOCKED if isinstance(error, MigrationLockedError) else EXIT_FAILURE


def _report(result: SyncResult, schema_change: str | None) -> SyncReport:
    workspaces = tuple(
        WorkspaceReport(
            account=w.account,
            workspace_id=w.workspace_id,
            status=str(w.status),
            pages=w.pages,
            keys_seen=w.counts.seen,
            keys_new=w.counts.new,
            keys_changed=w.counts.changed,
            keys_deleted=w.deleted,
            snapshots_written=w.counts.snapshots,
            error=w.error,
        )
        for w in result.workspaces
    )
    states = [w.status for w in result.workspaces]
    status = result.status
    figures = {k: int(v) for k, v in result.figures().items()}
    return SyncReport(
        run_id=result.run_id,
        status=str(status),
        exit_code=exit_code_of(status, result.interrupted),
        dry_run=result.dry_run,
        workspaces_ok=states.count(WorkspaceStatus.OK),
        workspaces_failed=states.count(WorkspaceStatus.FAILED),
        workspaces_skipped=states.count(WorkspaceStatus.SKIPPED),
        workspaces_delisted=states.count(WorkspaceStatus.DELISTED),
        keys_seen=sum(w.keys_seen for w in workspaces),
        keys_new=sum(w.keys_new for w in workspaces),
        keys_changed=sum(w.keys_changed for w in workspaces),
        keys_deleted=sum(w.keys_deleted for w in workspaces),
        snapshots_written=sum(w.snapshots_written for w in workspaces),
        pages=sum(w.pages for w in workspaces),
        requests=result.requests,
        retries=result.retries,
        schema_change=schema_change,
        seconds=result.seconds,
        error=result.error,
        workspaces=workspaces,
        result=result,
        activity_days_fetched=figures["activity_days"],
        activity_rows=figures["activity_rows"],
        activity_days_missing=figures["activity_days_missing"],
        activity_failed=figures["activity_failed"],
    )


def _refused_everywhere(report: SyncReport, *, several_accounts: bool) -> AuthError | None:
    """The error to raise when nothing synced and the only cause was refused keys: a
    setup problem like a wrong URL, not a run with failed workspaces."""
    refused = [w for w in report.result.workspaces if w.key_refused]
    failed = [w for w in report.result.workspaces if w.status == WorkspaceStatus.FAILED]
    if report.workspaces_ok or not refused or any(not w.key_refused for w in failed):
        return None
    lines = [
        f"account {w.account}: {w.error}" if several_accounts else str(w.error) for w in refused
    ]
    return AuthError("; ".join(dict.fromkeys(lines)))  # one line per account, in order
