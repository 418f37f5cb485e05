"""An account's workspaces, scheduled: one by one, or a bounded pool of them at once.

An account's workspaces load ``workspace_concurrency`` at a time (PostgreSQL and
MariaDB; SQLite and dry runs one at a time), each with its own lock, ledger row,
connection and transaction (etl/workspace_sync.py), so each is as atomic as it is one
by one; outcomes keep the workspaces' order. After a workspace ends with the key
refused or the database dead, or once the run is stopped (a signal), no other starts:
each gets a not-attempted ledger row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from etl.core.config import Account, WorkspaceSpec
from etl.core.errors import Interrupted
from etl.core.log_context import ContextThreadPoolExecutor, log_fields
from etl.core.progress import NO_OBSERVER, SyncObserver
from etl.core.statuses import WorkspaceStatus
from etl.core.stop import Stop
from etl.openrouter.client import OpenRouterClient
from etl.store.database import one_line
from etl.store.transactions import Units
from etl.workspace_sync import (
    Turns,
    Unrecorded,
    WorkspaceResult,
    interrupted_reason,
    sync_workspace,
)

# Why a workspace of the run was not attempted (its ledger row says so).
KEY_REFUSED = "not attempted: the management key was refused"
DATABASE_FAILED = "not attempted: the database failed"

# A workspace's outcome: its result, and the database failure that ended the run, if one did.
Outcome = tuple[WorkspaceResult, SQLAlchemyError | None]


def load_workspaces(
    units: Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    workspaces: list[WorkspaceSpec],
    wait_seconds: float,
    observer: SyncObserver = NO_OBSERVER,
    stop: Stop | None = None,
) -> tuple[list[Outcome], str | None]:
    """Sync the account's listed workspaces; their outcomes in the workspaces' order, and
    why the run stopped starting them (``KEY_REFUSED``, ``DATABASE_FAILED``, or the
    ``stop`` was requested), if it did."""
    job = _Job(units, client, run_id, run_started, account, wait_seconds, observer, stop or Stop())
    at_once = _workspaces_at_once(units, account)
    if at_once == 1:
        return _load_one_by_one(job, workspaces)
    return _load_at_once(job, workspaces, at_once)


def _workspaces_at_once(units: Units, account: Account) -> int:
    """How many of the account's workspaces load at once.

    A dry run has one outer transaction, so its workspaces are savepoints of one
    connection: one at a time. So is SQLite: it has one writer, and every write of a
    second workspace (BEGIN IMMEDIATE, etl/store/database.py), its ledger row first,
    would wait for the first to commit (and fail after the 30 s busy timeout behind a
    big one). Fetching its pages ahead would mean fetching before its lock and ledger
    row are taken, which the skip and crash guarantees rely on; one by one, a SQLite
    sync at 50 ms a request was measured at 1.7x the latency floor unchanged and 2.4x
    on a first sync (PostgreSQL, 4 at once: 1.3x and 1.6x; benchmarks/README.md).
    """
    if units.dry_run or units.engine.dialect.name == "sqlite":
        return 1
    return account.client.workspace_concurrency


@dataclass(frozen=True)
class _Job:
    """What every workspace load of one account shares."""

    units: Units
    client: OpenRouterClient
    run_id: int
    run_started: datetime
    account: Account
    wait_seconds: float
    observer: SyncObserver
    stop: Stop
    turns: Turns = field(default_factory=Turns)

    def load(
        self, workspace: WorkspaceSpec, accepted: Callable[[], None] = lambda: None
    ) -> Outcome:
        """Sync one workspace; a database failure is returned with its result, not raised."""
        try:
            with log_fields(workspace=workspace.id):
                result = sync_workspace(
                    self.units,
                    self.client,
                    self.run_id,
                    self.run_started,
                    self.account,
                    workspace,
                    self.wait_seconds,
                    accepted=accepted,
                    turns=self.turns,
                    observer=self.observer,
                    stop=self.stop,
                )
        except Unrecorded as exc:
            return exc.result, exc.cause
        except SQLAlchemyError as exc:
            # Outside the workspace's transaction (its lock or its ledger row): nothing
            # of it was written.
            result = WorkspaceResult(
                self.account.name, workspace.id, WorkspaceStatus.FAILED, error=one_line(exc)
            )
            result.ledger_pending = True
            return result, exc
        return result, None

    def not_attempted(self, workspace: WorkspaceSpec, reason: str) -> Outcome:
        """A workspace the run does not start; its ledger row is written with the run's end."""
        skipped = WorkspaceResult(
            self.account.name, workspace.id, WorkspaceStatus.SKIPPED, error=reason
        )
        skipped.ledger_pending = True
        return skipped, None

    def stopped(self) -> str | None:
        """Why no further workspace starts once the run is stopped, if it is."""
        if not self.stop.requested:
            return None
        return interrupted_reason(Interrupted(self.stop.signal_name or "a stop request"))


def _stop_reason(outcome: Outcome) -> str | None:
    """Why no further workspace is started after this outcome, if it gives a reason."""
    result, lost = outcome
    if lost is not None:
        return DATABASE_FAILED  # each would fail the same way
    if result.key_refused:
        return KEY_REFUSED  # the others would be refused too
    return None


def _load_one_by_one(
    job: _Job, workspaces: list[WorkspaceSpec]
) -> tuple[list[Outcome], str | None]:
    """Each workspace in turn; the outcomes in the workspaces' order, and why the run
    stopped starting them, if it did."""
    outcomes: list[Outcome] = []
    not_attempted: str | None = None
    for workspace in workspaces:
        if not_attempted is not None:
            outcomes.append(job.not_attempted(workspace, not_attempted))
            continue
        not_attempted = job.stopped()
        if not_attempted is not None:
            outcomes.append(job.not_attempted(workspace, not_attempted))
            continue
        outcome = job.load(workspace)
        outcomes.append(outcome)
        not_attempted = _stop_reason(outcome) or job.stopped()
    return outcomes, not_attempted


class _Flight:
    """One workspace loading in the pool, as its dispatcher sees it."""

    def __init__(self) -> None:
        # Set once the workspace's first page came (the key works for it) or it ended.
        self.going = threading.Event()
        self.outcome: Outcome | None = None  # set before it releases its slot


def _load_at_once(
    job: _Job, workspaces: list[WorkspaceSpec], at_once: int
) -> tuple[list[Outcome], str | None]:
    """Up to ``at_once`` workspaces at a time, each with its own connection,
    transaction, lock and ledger row, as ``_load_one_by_one`` gives them.

    A workspace starts once the one before it has had its first page (or ended). So
    the ledger rows are opened in the workspaces' order, and a key refused on a
    workspace's first request stops every workspace after it, as it does one by one.
    Once a workspace ends with the key refused or the database dead, no other starts
    (each gets its not-attempted row); the ones in flight finish or fail on their own.
    The requests of all of them share the account's client and its concurrency bound.
    """
    slots = threading.Semaphore(at_once)
    flights: list[_Flight] = []
    order: list[_Flight | Outcome] = []
    not_attempted: str | None = None

    def fly(flight: _Flight, workspace: WorkspaceSpec) -> None:
        try:
            flight.outcome = job.load(workspace, accepted=flight.going.set)
        finally:
            flight.going.set()
            slots.release()

    # Each workspace's thread logs with the run and account it belongs to.
    with ContextThreadPoolExecutor(at_once, thread_name_prefix="keyledger-workspace") as pool:
        futures: list[Future[None]] = []
        for workspace in workspaces:
            if not_attempted is None:
                if flights:
                    flights[-1].going.wait()
                slots.acquire()
                so_far = [f.outcome for f in flights if f.outcome is not None]
                not_attempted = next(filter(None, map(_stop_reason, so_far)), job.stopped())
                if not_attempted is not None:
                    slots.release()
            if not_attempted is not None:
                order.append(job.not_attempted(workspace, not_attempted))
                continue
            flight = _Flight()
            flights.append(flight)
            order.append(flight)
            futures.append(pool.submit(fly, flight, workspace))
    for future in futures:
        future.result()  # an error no workspace could catch (a bug) ends the run, as before
    outcomes = [item.outcome if isinstance(item, _Flight) else item for item in order]
    ended = [outcome for outcome in outcomes if outcome is not None]
    # One that ended so after the last start still says why the rest (delisted
    # workspaces) is not attempted.
    return ended, not_attempted or next(filter(None, map(_stop_reason, ended)), job.stopped())
