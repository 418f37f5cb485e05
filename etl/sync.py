"""Where extract meets load: one run, its ledger, its locks, its summary.

A run syncs every account's workspaces, each in its own transaction
(etl/workspace_sync.py), an account's workspaces scheduled one by one or several at
once (etl/workspace_pool.py). A workspace that fails is rolled back and recorded as
failed, counting nothing; the others still commit. When the database cannot even record
a failure, the run stops there, still reports what committed before (partial), and
tries once more to write the ledger rows it owes and close the run. ``--dry-run`` runs
the same code inside one outer transaction that is rolled back at the end.

A run given a ``Stop`` (the CLI requests it on SIGINT and SIGTERM) stops promptly: the
workspaces in flight roll back and are recorded interrupted, the rest not attempted,
the finished ones stay committed, and the run is closed ``interrupted`` with the signal
in sync_runs.error. Each account's workspaces go least recently synced first
(etl/store/recency.py), so repeated interrupts still get through all of them.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from etl.activity_sync import ActivityResult, sync_activity
from etl.core.clock import utcnow
from etl.core.config import Account, Settings, WorkspaceSpec
from etl.core.errors import ApiError, AuthError, Interrupted, LoadError
from etl.core.log_context import log_fields
from etl.core.progress import NO_OBSERVER, SyncObserver
from etl.core.statuses import ActivityStatus, RunStatus, WorkspaceStatus
from etl.core.stop import Stop
from etl.openrouter.client import OpenRouterClient, client_for
from etl.openrouter.extract import ClientFactory, resolve_workspaces
from etl.store import locks, recency, runs
from etl.store.counts import PageCounts
from etl.store.database import one_line
from etl.store.transactions import Units
from etl.workspace_pool import DATABASE_FAILED, KEY_REFUSED, load_workspaces
from etl.workspace_sync import Turns as _Turns
from etl.workspace_sync import (
    Unrecorded,
    WorkspaceResult,
    close_ledger_row,
    record_unopened,
    sync_workspace,
)

# Importable from here as before: the results, why a workspace was not attempted, and
# the turns the deadlock test takes.
__all__ = [
    "ALL_WORKSPACES",
    "DATABASE_FAILED",
    "KEY_REFUSED",
    "SyncResult",
    "WorkspaceResult",
    "_Turns",
    "run_sync",
]

log = logging.getLogger(__name__)

# The workspace of a result that stands for all of an account's (they could not be listed).
ALL_WORKSPACES = "*"


@dataclass
class SyncResult:
    """How a whole run fared."""

    run_id: int | None
    workspaces: list[WorkspaceResult]
    seconds: float
    dry_run: bool = False
    error: str | None = None  # why the run stopped short (the database failed)
    requests: int = 0  # sent to the API, retries included
    retries: int = 0  # requests sent again after a transient failure (429, 5xx, timeout)
    interrupted: str | None = None  # the signal that stopped the run ("SIGTERM"), if one did
    activity: list[ActivityResult] = field(default_factory=list)  # one per account with it on

    @property
    def status(self) -> RunStatus:
        """interrupted (stopped by a signal), ok (nothing failed; workspaces another run
        had are skipped), partial (some failed, an account's activity failed, or the
        database failed after some committed), failed (none synced) or locked (every
        workspace held by another run)."""
        if self.interrupted is not None:
            return RunStatus.INTERRUPTED
        states = {w.status for w in self.workspaces}
        some_ok = RunStatus.PARTIAL if WorkspaceStatus.OK in states else RunStatus.FAILED
        if self.error is not None:
            return some_ok
        if states == {WorkspaceStatus.SKIPPED}:
            return RunStatus.LOCKED
        if WorkspaceStatus.FAILED not in states:
            failed = any(a.status is ActivityStatus.FAILED for a in self.activity)
            return RunStatus.PARTIAL if failed else RunStatus.OK
        return some_ok

    def figures(self) -> dict[str, int | float]:
        """The run's numbers, as the summary line gives them (and JSON logs carry)."""
        by = [w.status for w in self.workspaces]
        total = PageCounts()
        for w in self.workspaces:
            total.add(w.counts)
        return {
            "workspaces_ok": by.count(WorkspaceStatus.OK),
            "workspaces_failed": by.count(WorkspaceStatus.FAILED),
            "workspaces_skipped": by.count(WorkspaceStatus.SKIPPED),
            "workspaces_delisted": by.count(WorkspaceStatus.DELISTED),
            "workspaces_interrupted": by.count(WorkspaceStatus.INTERRUPTED),
            "keys_seen": total.seen,
            "keys_new": total.new,
            "keys_changed": total.changed,
            "keys_deleted": sum(w.deleted for w in self.workspaces),
            "snapshot_rows": total.snapshots,
            "activity_days": sum(a.counts.days_fetched for a in self.activity),
            "activity_rows": sum(a.counts.rows_written for a in self.activity),
            "activity_days_missing": sum(a.counts.days_missing for a in self.activity),
            "activity_failed": sum(a.status is ActivityStatus.FAILED for a in self.activity),
            "requests": self.requests,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """The one line a run prints on stderr."""
        f = self.figures()
        prefix = "sync (dry run, nothing written)" if self.dry_run else "sync"
        if self.interrupted is not None:
            prefix += f" interrupted by {self.interrupted}"
        delisted = f["workspaces_delisted"]
        gone = f", {delisted} no longer listed" if delisted else ""
        cut = f["workspaces_interrupted"]
        gone += f", {cut} interrupted (rolled back)" if cut else ""
        # Retries that ended well are only counted here, not logged as warnings.
        return (
            f"{prefix}: {f['workspaces_ok']} workspaces ok, {f['workspaces_failed']} failed, "
            f"{f['workspaces_skipped']} skipped{gone}; "
            f"keys seen {f['keys_seen']}, new {f['keys_new']}, "
            f"changed {f['keys_changed']}, deleted {f['keys_deleted']}; "
            f"{f['snapshot_rows']} snapshot rows; {self._activity_summary()}"
            f"{f['requests']} requests, {f['retries']} retries; {self.seconds:.1f}s"
        )

    def _activity_summary(self) -> str:
        if not self.activity:
            return ""
        f = self.figures()
        missing = f", {f['activity_days_missing']} missing" if f["activity_days_missing"] else ""
        failed = f", failed for {f['activity_failed']} account" if f["activity_failed"] else ""
        failed += "s" if f["activity_failed"] > 1 else ""
        return (
            f"activity days fetched {f['activity_days']}{missing}, "
            f"{f['activity_rows']} rows{failed}; "
        )


def run_sync(
    engine: Engine,
    settings: Settings,
    *,
    dry_run: bool = False,
    wait_seconds: float = 0.0,
    client_factory: ClientFactory | None = None,
    observer: SyncObserver = NO_OBSERVER,
    stop: Stop | None = None,
) -> SyncResult:
    """Sync every configured workspace of every account; never raises for one workspace.
    ``observer`` hears each workspace start, fetch its pages and end (from the threads
    that load them).

    A database failure before any workspace committed raises LoadError. After one
    committed, it ends the run early instead: the result says why (``error``) and
    counts as partial, so the work already committed is still reported. Once ``stop``
    is requested the run ends as soon as it safely can (``interrupted``).
    """
    started = time.monotonic()
    stop = stop or Stop()
    clients: list[OpenRouterClient] = []  # their counters go into the summary

    def make_client(account: Account) -> OpenRouterClient:
        client = client_factory(account) if client_factory else client_for(account, stop)
        clients.append(client)
        return client

    token = str(uuid.uuid4())
    run_lock = None
    units = Units(engine, dry_run=dry_run)
    results: list[WorkspaceResult] = []
    activity: list[ActivityResult] = []
    try:
        # Held for the whole run: while it is held, nobody takes this run for dead.
        run_lock = locks.try_lock(engine, runs.run_lock_name(token), ephemeral=True)
        if not dry_run:
            runs.abandon_dead_runs(engine)
        run_started = utcnow()
        with units.unit() as connection:
            run_id = runs.start_run(connection, dry_run=dry_run, lock_token=token)
        with log_fields(run_id=run_id):
            lost = _sync_accounts(
                units,
                settings,
                make_client,
                run_id,
                run_started,
                wait_seconds,
                results,
                activity,
                observer,
                stop,
            )
        outcome = SyncResult(
            run_id, results, 0.0, dry_run, interrupted=stop.signal_name, activity=activity
        )
        if lost is not None:
            outcome.error = f"the database failed, so the run stopped: {one_line(lost)}"
        unclosed = _record_end(units, run_id, outcome)
        if unclosed is not None:
            lost = lost or unclosed
            stopped = outcome.error or f"the run's end was not recorded: {one_line(lost)}"
            outcome.error = (
                f"{stopped}; sync_runs shows it running until a later run marks it abandoned"
            )
        if lost is not None and (dry_run or WorkspaceStatus.OK not in {w.status for w in results}):
            # Nothing committed, so nothing to report but the database's failure.
            raise LoadError(one_line(lost)) from lost
        outcome.seconds = time.monotonic() - started
        outcome.requests = sum(c.stats.requests for c in clients)
        outcome.retries = sum(c.stats.retries for c in clients)
        return outcome
    except SQLAlchemyError as exc:
        raise LoadError(one_line(exc)) from exc
    finally:
        units.close()
        if run_lock is not None:
            run_lock.release()


def _sync_accounts(
    units: Units,
    settings: Settings,
    make_client: ClientFactory,
    run_id: int,
    run_started: datetime,
    wait_seconds: float,
    results: list[WorkspaceResult],
    activity: list[ActivityResult],
    observer: SyncObserver,
    stop: Stop,
) -> SQLAlchemyError | None:
    """Sync every account's workspaces into ``results``, then its activity into
    ``activity``; returns the database failure that stopped the run early, if one did.
    Once ``stop`` is requested no further account is listed."""
    for account in settings.accounts:
        if stop.requested:
            break
        with make_client(account) as client, log_fields(account=account.name):
            try:
                workspaces = resolve_workspaces(client, account.workspaces)
                stop.check()
            except Interrupted:
                break
            except ApiError as exc:
                results.append(
                    WorkspaceResult(
                        account.name,
                        ALL_WORKSPACES,
                        WorkspaceStatus.FAILED,
                        error=one_line(exc),
                        key_refused=isinstance(exc, AuthError),
                    )
                )
                log.info("account %s: cannot list workspaces: %s", account.name, exc)
                # Written at the run's end, so `keyledger runs show` names the failure.
                results[-1].ledger_pending = True
                continue
            try:
                with units.unit() as connection:
                    synced = recency.last_synced(connection, account.name)
            except SQLAlchemyError as exc:
                return exc
            oldest_first = recency.least_recently_synced(workspaces, synced)
            loaded, not_attempted = load_workspaces(
                units,
                client,
                run_id,
                run_started,
                account,
                oldest_first,
                wait_seconds,
                observer=observer,
                stop=stop,
            )
            results.extend(result for result, _ in loaded)
            lost = next((cause for _, cause in loaded if cause is not None), None)
            if lost is not None:
                return lost  # later accounts are not even listed: they need the database too
            if account.workspaces is None and not_attempted is None:
                lost = _retire_delisted(
                    units,
                    client,
                    run_id,
                    run_started,
                    account,
                    workspaces,
                    wait_seconds,
                    results,
                    observer,
                )
                if lost is not None:
                    return lost
            if stop.requested:
                break
            # After the key sync, never instead of it: a failure here is its own line.
            try:
                outcome = sync_activity(
                    units, client, run_id, account, [result for result, _ in loaded]
                )
            except SQLAlchemyError as exc:
                return exc
            if outcome is not None:
                activity.append(outcome)
    return None


def _retire_delisted(
    units: Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    listed: list[WorkspaceSpec],
    wait_seconds: float,
    results: list[WorkspaceResult],
    observer: SyncObserver,
) -> SQLAlchemyError | None:
    """Workspaces this account synced before that discovery no longer lists: confirm
    their keys and mark them; returns a database failure that stopped it."""
    try:
        with units.unit() as connection:
            gone = runs.delisted_workspaces(connection, account.name, {w.id for w in listed})
        for workspace_id in gone:
            with log_fields(workspace=workspace_id):
                result = sync_workspace(
                    units,
                    client,
                    run_id,
                    run_started,
                    account,
                    WorkspaceSpec(workspace_id),
                    wait_seconds,
                    delisted=True,
                    observer=observer,
                )
            results.append(result)
    except Unrecorded as exc:
        results.append(exc.result)
        return exc.cause
    except SQLAlchemyError as exc:
        return exc
    return None


def _record_end(units: Units, run_id: int, outcome: SyncResult) -> SQLAlchemyError | None:
    """Write the ledger rows still missing (workspaces not attempted, failures the
    database could not take at the time) and close the run, in one transaction.

    Best effort: returns the error when the database is really gone; then the run
    stays ``running`` until a later run finds its lock free and marks it abandoned.
    """
    # The ledger has no "locked" run: one that synced nothing failed.
    status = RunStatus.FAILED if outcome.status is RunStatus.LOCKED else outcome.status
    try:
        with units.unit() as connection:
            for result in outcome.workspaces:
                if not result.ledger_pending:
                    continue
                if result.ledger_id is None:
                    record_unopened(connection, run_id, result)
                else:
                    close_ledger_row(connection, result.ledger_id, result)
            error = outcome.error
            if outcome.interrupted is not None:
                error = "; ".join(filter(None, [f"interrupted by {outcome.interrupted}", error]))
            runs.finish_run(connection, run_id, status, error=error)
    except SQLAlchemyError as exc:
        log.info("run %s: cannot record its end: %s", run_id, one_line(exc))
        return exc
    return None
