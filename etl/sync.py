"""Where extract meets load: one run, its ledger, its locks, one transaction per workspace.

A workspace is loaded atomically: every row a run writes for it (keys, snapshots,
deletions, its ledger counts) commits together or not at all, so readers see all of
a workspace's keys from a run or none. A workspace that fails is rolled back and
recorded as failed; the others still commit. ``--dry-run`` runs the same code inside
one outer transaction that is rolled back at the end (workspaces become savepoints).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from etl import history, ledger, load, locks, server_clock
from etl.client import OpenRouterClient
from etl.config import DEFAULT_WORKSPACE, Account, Settings, WorkspaceSpec
from etl.database import WRITE
from etl.errors import ApiError, AuthError, LoadError
from etl.extract import resolve_workspaces

log = logging.getLogger(__name__)

ClientFactory = Callable[[Account], OpenRouterClient]


@dataclass
class WorkspaceResult:
    """How one workspace fared in a run."""

    account: str
    workspace_id: str
    status: str  # ok, failed or skipped
    counts: load.PageCounts = field(default_factory=load.PageCounts)
    pages: int = 0
    deleted: int = 0
    error: str | None = None
    key_refused: bool = False  # the management key was refused (401/403)


@dataclass
class SyncResult:
    """How a whole run fared."""

    run_id: int | None
    workspaces: list[WorkspaceResult]
    seconds: float
    dry_run: bool = False

    @property
    def status(self) -> str:
        """ok (nothing failed; workspaces another run had are skipped), partial (some
        failed), failed (none synced) or locked (every workspace held by another run)."""
        states = {w.status for w in self.workspaces}
        if states == {"skipped"}:
            return "locked"
        if "failed" not in states:
            return "ok"
        return "partial" if "ok" in states else "failed"

    def summary(self) -> str:
        """The one line a run prints on stderr."""
        by = [w.status for w in self.workspaces]
        total = load.PageCounts()
        for w in self.workspaces:
            total.add(w.counts)
        prefix = "sync (dry run, nothing written)" if self.dry_run else "sync"
        return (
            f"{prefix}: {by.count('ok')} workspaces ok, {by.count('failed')} failed, "
            f"{by.count('skipped')} skipped; keys seen {total.seen}, new {total.new}, "
            f"changed {total.changed}, deleted {sum(w.deleted for w in self.workspaces)}; "
            f"{total.snapshots} snapshot rows; {self.seconds:.1f}s"
        )


def one_line(exc: BaseException) -> str:
    """An error as one short line fit for the ledger and the terminal."""
    if isinstance(exc, SQLAlchemyError):
        original = getattr(exc, "orig", None) or exc
        text = f"database error: {type(original).__name__}: {str(original).strip()}"
    else:
        text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]


class _Units:
    """Hands out one transaction per unit of work, or savepoints of one outer
    transaction that is rolled back at the end (dry run)."""

    def __init__(self, engine: Engine, *, dry_run: bool) -> None:
        self.engine = engine
        self.dry_run = dry_run
        self._outer: Connection | None = None
        if dry_run:
            self._outer = engine.connect().execution_options(**WRITE)
            self._outer.begin()

    @contextmanager
    def unit(self) -> Iterator[Connection]:
        if self._outer is None:
            with (
                self.engine.connect().execution_options(**WRITE) as connection,
                connection.begin(),
            ):
                yield connection
        else:
            with self._outer.begin_nested():
                yield self._outer

    def close(self) -> None:
        if self._outer is not None:
            # A dead database rolls the dry run back by itself.
            with contextlib.suppress(SQLAlchemyError):
                self._outer.rollback()
                self._outer.close()


def run_sync(
    engine: Engine,
    settings: Settings,
    *,
    dry_run: bool = False,
    wait_seconds: float = 0.0,
    client_factory: ClientFactory | None = None,
) -> SyncResult:
    """Sync every configured workspace of every account; never raises for one workspace."""
    started = time.monotonic()
    make_client = client_factory or (lambda a: OpenRouterClient(a.client, a.management_key))
    token = str(uuid.uuid4())
    run_lock = None
    units = _Units(engine, dry_run=dry_run)
    results: list[WorkspaceResult] = []
    try:
        # Held for the whole run: while it is held, nobody takes this run for dead.
        run_lock = locks.try_lock(engine, ledger.run_lock_name(token), ephemeral=True)
        if not dry_run:
            ledger.abandon_dead_runs(engine)
        run_started = ledger.utcnow()
        with units.unit() as connection:
            run_id = ledger.start_run(connection, dry_run=dry_run, lock_token=token)
        for account in settings.accounts:
            with make_client(account) as client:
                try:
                    workspaces = resolve_workspaces(client, account.workspaces)
                except ApiError as exc:
                    results.append(
                        WorkspaceResult(account.name, "*", "failed", error=one_line(exc))
                    )
                    log.info("account %s: cannot list workspaces: %s", account.name, exc)
                    continue
                for workspace in workspaces:
                    result = _sync_workspace(
                        units, client, run_id, run_started, account, workspace, wait_seconds
                    )
                    results.append(result)
                    if result.key_refused:
                        break  # the other workspaces of this key would be refused too
        outcome = SyncResult(run_id, results, time.monotonic() - started, dry_run)
        with units.unit() as connection:
            status = "failed" if outcome.status == "locked" else outcome.status
            ledger.finish_run(connection, run_id, status)
        return outcome
    except SQLAlchemyError as exc:
        raise LoadError(one_line(exc)) from exc
    finally:
        units.close()
        if run_lock is not None:
            run_lock.release()


def _sync_workspace(
    units: _Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    workspace: WorkspaceSpec,
    wait_seconds: float,
) -> WorkspaceResult:
    lock = locks.acquire(units.engine, workspace.id, wait_seconds=wait_seconds)
    if lock is None:
        reason = f"held by another run ({ledger.holder(units.engine, workspace.id)})"
        with units.unit() as connection:
            return _skip(connection, run_id, account, workspace, reason)
    result = WorkspaceResult(account.name, workspace.id, "failed")
    try:
        with units.unit() as connection:
            other = ledger.synced_since(connection, workspace.id, run_started)
            if other is not None:
                # Another run (another cron host, say) synced it while this run went on.
                reason = f"already synced by run {other} while this run was going"
                return _skip(connection, run_id, account, workspace, reason)
            ledger_id = ledger.open_workspace(
                connection, run_id, account=account.name, requested_as=workspace.id
            )
        try:
            with units.unit() as connection:
                # Every server time is checked before anything is filed under it.
                watched = server_clock.watch(
                    client,
                    connection,
                    workspace.id,
                    max_jump_days=account.client.max_clock_jump_days,
                )
                _load_workspace(connection, watched, run_id, ledger_id, workspace, result)
                result.status = "ok"
                _close(connection, ledger_id, result)
        except (ApiError, SQLAlchemyError) as exc:
            result.status = "failed"
            result.error = one_line(exc)
            result.key_refused = isinstance(exc, AuthError)
            log.info("workspace %s failed: %s", workspace.id, result.error)
            with units.unit() as connection:
                _close(connection, ledger_id, result)
    finally:
        lock.release()
    return result


def _skip(
    connection: Connection, run_id: int, account: Account, workspace: WorkspaceSpec, reason: str
) -> WorkspaceResult:
    """Record the workspace as skipped by this run, for ``reason``."""
    ledger.open_workspace(
        connection,
        run_id,
        account=account.name,
        requested_as=workspace.id,
        status="skipped",
        error=reason,
    )
    return WorkspaceResult(account.name, workspace.id, "skipped", error=reason)


def _close(connection: Connection, ledger_id: int, result: WorkspaceResult) -> None:
    ledger.close_workspace(
        connection,
        ledger_id,
        status=result.status,
        pages=result.pages,
        counts=result.counts,
        deleted=result.deleted,
        error=result.error,
    )


def _load_workspace(
    connection: Connection,
    client: OpenRouterClient | server_clock.WatchedClient,
    run_id: int,
    ledger_id: int,
    workspace: WorkspaceSpec,
    result: WorkspaceResult,
) -> None:
    """List, load, confirm the missing, mark the deleted: all inside ``connection``'s
    transaction."""
    resolved = None if workspace.id == DEFAULT_WORKSPACE else workspace.id
    listed_at: datetime | None = None
    last_page_at: datetime | None = None
    observed: frozenset[date] | None = None
    for page in client.iter_key_pages(workspace.id):
        result.pages += 1
        listed_at = listed_at or page.server_time
        last_page_at = page.server_time
        if resolved is None and page.records:
            resolved = page.records[0].workspace_id
        if observed is None and resolved is not None:
            observed = _recent_observations(connection, resolved, listed_at)
        result.counts.add(
            load.load_keys(
                connection,
                page.records,
                captured_at=page.server_time,
                sync_run_id=run_id,
                sync_run_workspace_id=ledger_id,
                observed_days=observed or frozenset(),
            )
        )
    listed_at = listed_at or ledger.utcnow()
    resolved = resolved or ledger.last_resolved(connection, workspace.id) or workspace.id
    result.workspace_id = resolved
    if observed is None:
        observed = _recent_observations(connection, resolved, listed_at)
    # Offset paging can skip a key while others are deleted: ask before marking.
    gone = []
    for key_hash in load.missing_keys(connection, resolved, ledger_id):
        found = client.get_key(key_hash)
        if found is None:
            gone.append(key_hash)
        else:
            result.counts.add(
                load.load_keys(
                    connection,
                    [found.record],
                    captured_at=found.server_time,
                    sync_run_id=run_id,
                    sync_run_workspace_id=None,
                    observed_days=observed,
                )
            )
    result.deleted = load.mark_deleted(
        connection, gone, listed_at, workspace_id=resolved, observed_days=observed
    )
    # A listing that ran across midnight saw some keys on each day and all keys on
    # neither: it marks no day observed (its snapshots still count for their own day).
    if last_page_at is None or history.utc_day(last_page_at) == history.utc_day(listed_at):
        history.record_observation(connection, resolved, listed_at)
    load.clear_seen(connection, ledger_id)
    load.upsert_workspace(
        connection,
        resolved,
        name=workspace.name,
        slug=workspace.slug,
        synced_at=listed_at,
        now=ledger.utcnow(),
    )
    ledger.resolve_workspace(connection, ledger_id, resolved, listed_at)


def _recent_observations(
    connection: Connection, workspace_id: str, listed_at: datetime
) -> frozenset[date]:
    """Days just before this listing on which earlier runs observed the workspace."""
    return history.observed_days(
        connection, workspace_id, since=history.utc_day(listed_at) - timedelta(days=2)
    )
