"""Where extract meets load: one run, its ledger, its locks, one transaction per workspace.

A workspace is loaded atomically: every row a run writes for it (keys, snapshots,
deletions, its ledger counts) commits together or not at all, so readers see all of
a workspace's keys from a run or none. A workspace that fails is rolled back and
recorded as failed, counting nothing; the others still commit. When the database
cannot even record a failure, the run stops there, still reports what committed before
(partial), and tries once more to write the ledger rows it owes and close the run.
``--dry-run`` runs the same code inside one outer transaction that is rolled back at
the end (workspaces become savepoints).

An account's workspaces load ``workspace_concurrency`` at a time (PostgreSQL and
MariaDB; SQLite and dry runs one at a time), each with its own lock, ledger row,
connection and transaction, so all of the above holds for each of them as it does one
by one; results and ledger rows keep the workspaces' order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from etl import server_clock
from etl.core.clock import utcnow
from etl.core.config import Account, Settings, WorkspaceSpec
from etl.core.errors import ApiError, AuthError, LoadError
from etl.core.statuses import RunStatus, WorkspaceStatus
from etl.openrouter.client import OpenRouterClient, client_for
from etl.openrouter.confirm import confirm_each, confirm_missing
from etl.openrouter.extract import ClientFactory, resolve_workspaces
from etl.store import locks, runs
from etl.store.counts import PageCounts
from etl.store.database import WRITE, one_line
from etl.store.workspace_load import WorkspaceLoad

log = logging.getLogger(__name__)


# Why a workspace of the run was not attempted (its ledger row says so).
KEY_REFUSED = "not attempted: the management key was refused"
DATABASE_FAILED = "not attempted: the database failed"


@dataclass
class WorkspaceResult:
    """How one workspace fared in a run. The counts are of committed work only: a
    workspace whose transaction rolled back wrote nothing and counts nothing."""

    account: str
    workspace_id: str
    status: WorkspaceStatus  # ok, failed, skipped, or delisted (its keys confirmed)
    counts: PageCounts = field(default_factory=PageCounts)
    pages: int = 0
    deleted: int = 0
    error: str | None = None
    key_refused: bool = False  # the management key was refused (401/403)
    ledger_id: int | None = None  # its sync_run_workspaces row, once inserted
    ledger_pending: bool = False  # this outcome is still to be written to its ledger row


@dataclass
class SyncResult:
    """How a whole run fared."""

    run_id: int | None
    workspaces: list[WorkspaceResult]
    seconds: float
    dry_run: bool = False
    error: str | None = None  # why the run stopped short (the database failed)

    @property
    def status(self) -> RunStatus:
        """ok (nothing failed; workspaces another run had are skipped), partial (some
        failed, or the database failed after some committed), failed (none synced) or
        locked (every workspace held by another run)."""
        states = {w.status for w in self.workspaces}
        some_ok = RunStatus.PARTIAL if WorkspaceStatus.OK in states else RunStatus.FAILED
        if self.error is not None:
            return some_ok
        if states == {WorkspaceStatus.SKIPPED}:
            return RunStatus.LOCKED
        if WorkspaceStatus.FAILED not in states:
            return RunStatus.OK
        return some_ok

    def summary(self) -> str:
        """The one line a run prints on stderr."""
        by = [w.status for w in self.workspaces]
        total = PageCounts()
        for w in self.workspaces:
            total.add(w.counts)
        prefix = "sync (dry run, nothing written)" if self.dry_run else "sync"
        delisted = by.count(WorkspaceStatus.DELISTED)
        gone = f", {delisted} no longer listed" if delisted else ""
        return (
            f"{prefix}: {by.count(WorkspaceStatus.OK)} workspaces ok, "
            f"{by.count(WorkspaceStatus.FAILED)} failed, "
            f"{by.count(WorkspaceStatus.SKIPPED)} skipped{gone}; "
            f"keys seen {total.seen}, new {total.new}, "
            f"changed {total.changed}, deleted {sum(w.deleted for w in self.workspaces)}; "
            f"{total.snapshots} snapshot rows; {self.seconds:.1f}s"
        )


class _Unrecorded(Exception):
    """A workspace failed and the database could not even record that: the rest of
    the run would fail the same way. Carries the workspace's (failed) result."""

    def __init__(self, result: WorkspaceResult, cause: SQLAlchemyError) -> None:
        super().__init__(result.error)
        self.result = result
        self.cause = cause


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
    """Sync every configured workspace of every account; never raises for one workspace.

    A database failure before any workspace committed raises LoadError. After one
    committed, it ends the run early instead: the result says why (``error``) and
    counts as partial, so the work already committed is still reported.
    """
    started = time.monotonic()
    make_client = client_factory or client_for
    token = str(uuid.uuid4())
    run_lock = None
    units = _Units(engine, dry_run=dry_run)
    results: list[WorkspaceResult] = []
    try:
        # Held for the whole run: while it is held, nobody takes this run for dead.
        run_lock = locks.try_lock(engine, runs.run_lock_name(token), ephemeral=True)
        if not dry_run:
            runs.abandon_dead_runs(engine)
        run_started = utcnow()
        with units.unit() as connection:
            run_id = runs.start_run(connection, dry_run=dry_run, lock_token=token)
        lost = _sync_accounts(
            units, settings, make_client, run_id, run_started, wait_seconds, results
        )
        outcome = SyncResult(run_id, results, 0.0, dry_run)
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
        return outcome
    except SQLAlchemyError as exc:
        raise LoadError(one_line(exc)) from exc
    finally:
        units.close()
        if run_lock is not None:
            run_lock.release()


def _sync_accounts(
    units: _Units,
    settings: Settings,
    make_client: ClientFactory,
    run_id: int,
    run_started: datetime,
    wait_seconds: float,
    results: list[WorkspaceResult],
) -> SQLAlchemyError | None:
    """Sync every account's workspaces into ``results``; returns the database failure
    that stopped the run early, if one did."""
    for account in settings.accounts:
        with make_client(account) as client:
            try:
                workspaces = resolve_workspaces(client, account.workspaces)
            except ApiError as exc:
                results.append(
                    WorkspaceResult(account.name, "*", WorkspaceStatus.FAILED, error=one_line(exc))
                )
                log.info("account %s: cannot list workspaces: %s", account.name, exc)
                continue
            job = _Job(units, client, run_id, run_started, account, wait_seconds)
            at_once = _workspaces_at_once(units, account)
            if at_once == 1:
                loaded, not_attempted = _load_one_by_one(job, workspaces)
            else:
                loaded, not_attempted = _load_at_once(job, workspaces, at_once)
            results.extend(result for result, _ in loaded)
            lost = next((cause for _, cause in loaded if cause is not None), None)
            if lost is not None:
                return lost  # later accounts are not even listed: they need the database too
            if account.workspaces is None and not_attempted is None:
                lost = _retire_delisted(
                    units, client, run_id, run_started, account, workspaces, wait_seconds, results
                )
                if lost is not None:
                    return lost
    return None


def _workspaces_at_once(units: _Units, account: Account) -> int:
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


# A workspace's outcome: its result, and the database failure that ended the run, if one did.
_Outcome = tuple[WorkspaceResult, SQLAlchemyError | None]


class _Turns:
    """The workspace transactions of one account: any number open at once, or one alone
    (a transaction run again after a deadlock waits for the others to end, and no other
    opens until it has ended)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open = 0
        self._alone = False

    @contextmanager
    def take(self, *, alone: bool) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._alone)
            if alone:
                self._alone = True
                self._changed.wait_for(lambda: self._open == 0)
            self._open += 1
        try:
            yield
        finally:
            with self._changed:
                self._open -= 1
                self._alone = self._alone and not alone
                self._changed.notify_all()


@dataclass(frozen=True)
class _Job:
    """What every workspace load of one account shares."""

    units: _Units
    client: OpenRouterClient
    run_id: int
    run_started: datetime
    account: Account
    wait_seconds: float
    turns: _Turns = field(default_factory=_Turns)

    def load(
        self, workspace: WorkspaceSpec, accepted: Callable[[], None] = lambda: None
    ) -> _Outcome:
        """Sync one workspace; a database failure is returned with its result, not raised."""
        try:
            result = _sync_workspace(
                self.units,
                self.client,
                self.run_id,
                self.run_started,
                self.account,
                workspace,
                self.wait_seconds,
                accepted=accepted,
                turns=self.turns,
            )
        except _Unrecorded as exc:
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

    def not_attempted(self, workspace: WorkspaceSpec, reason: str) -> _Outcome:
        """A workspace the run does not start; its ledger row is written with the run's end."""
        skipped = WorkspaceResult(
            self.account.name, workspace.id, WorkspaceStatus.SKIPPED, error=reason
        )
        skipped.ledger_pending = True
        return skipped, None


def _stop_reason(outcome: _Outcome) -> str | None:
    """Why no further workspace is started after this outcome, if it gives a reason."""
    result, lost = outcome
    if lost is not None:
        return DATABASE_FAILED  # each would fail the same way
    if result.key_refused:
        return KEY_REFUSED  # the others would be refused too
    return None


def _load_one_by_one(
    job: _Job, workspaces: list[WorkspaceSpec]
) -> tuple[list[_Outcome], str | None]:
    """Each workspace in turn; the outcomes in the workspaces' order, and why the run
    stopped starting them, if it did."""
    outcomes: list[_Outcome] = []
    not_attempted: str | None = None
    for workspace in workspaces:
        if not_attempted is not None:
            outcomes.append(job.not_attempted(workspace, not_attempted))
            continue
        outcome = job.load(workspace)
        outcomes.append(outcome)
        not_attempted = _stop_reason(outcome)
    return outcomes, not_attempted


class _Flight:
    """One workspace loading in the pool, as its dispatcher sees it."""

    def __init__(self) -> None:
        # Set once the workspace's first page came (the key works for it) or it ended.
        self.going = threading.Event()
        self.outcome: _Outcome | None = None  # set before it releases its slot


def _load_at_once(
    job: _Job, workspaces: list[WorkspaceSpec], at_once: int
) -> tuple[list[_Outcome], str | None]:
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
    order: list[_Flight | _Outcome] = []
    not_attempted: str | None = None

    def fly(flight: _Flight, workspace: WorkspaceSpec) -> None:
        try:
            flight.outcome = job.load(workspace, accepted=flight.going.set)
        finally:
            flight.going.set()
            slots.release()

    with ThreadPoolExecutor(at_once, thread_name_prefix="keyledger-workspace") as pool:
        futures: list[Future[None]] = []
        for workspace in workspaces:
            if not_attempted is None:
                if flights:
                    flights[-1].going.wait()
                slots.acquire()
                so_far = [f.outcome for f in flights if f.outcome is not None]
                not_attempted = next(filter(None, map(_stop_reason, so_far)), None)
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
    return ended, not_attempted or next(filter(None, map(_stop_reason, ended)), None)


def _retire_delisted(
    units: _Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    listed: list[WorkspaceSpec],
    wait_seconds: float,
    results: list[WorkspaceResult],
) -> SQLAlchemyError | None:
    """Workspaces this account synced before that discovery no longer lists: confirm
    their keys and mark them; returns a database failure that stopped it."""
    try:
        with units.unit() as connection:
            gone = runs.delisted_workspaces(connection, account.name, {w.id for w in listed})
        for workspace_id in gone:
            result = _sync_workspace(
                units,
                client,
                run_id,
                run_started,
                account,
                WorkspaceSpec(workspace_id),
                wait_seconds,
                delisted=True,
            )
            results.append(result)
    except _Unrecorded as exc:
        results.append(exc.result)
        return exc.cause
    except SQLAlchemyError as exc:
        return exc
    return None


def _record_end(units: _Units, run_id: int, outcome: SyncResult) -> SQLAlchemyError | None:
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
                    _record_unopened(connection, run_id, result)
                else:
                    _close(connection, result.ledger_id, result)
            runs.finish_run(connection, run_id, status, error=outcome.error)
    except SQLAlchemyError as exc:
        log.info("run %s: cannot record its end: %s", run_id, one_line(exc))
        return exc
    return None


def _sync_workspace(
    units: _Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    workspace: WorkspaceSpec,
    wait_seconds: float,
    *,
    delisted: bool = False,
    accepted: Callable[[], None] = lambda: None,
    turns: _Turns | None = None,
) -> WorkspaceResult:
    """Sync one workspace in its own transaction and record how it ended; when
    discovery no longer lists it (``delisted``), confirm each of its keys instead.
    ``accepted`` is called when a page of its listing arrives; ``turns`` is shared by
    the workspaces loading at once.

    Raises SQLAlchemyError when the database fails outside that transaction (the
    workspace's lock or ledger row), and _Unrecorded when it cannot record a failure.
    """
    lock = locks.acquire(units.engine, workspace.id, wait_seconds=wait_seconds)
    if lock is None:
        reason = f"held by another run ({runs.holder(units.engine, workspace.id)})"
        with units.unit() as connection:
            return _skip(connection, run_id, account, workspace, reason)
    try:
        with units.unit() as connection:
            other = runs.synced_since(connection, workspace.id, run_started)
            if other is not None:
                # Another run (another cron host, say) synced it while this run went on.
                reason = f"already synced by run {other} while this run was going"
                return _skip(connection, run_id, account, workspace, reason)
            ledger_id = runs.open_workspace(
                connection, run_id, account=account.name, requested_as=workspace.id
            )
        turns = turns or _Turns()
        tries = 0
        while True:
            tries += 1
            attempt = WorkspaceResult(
                account.name, workspace.id, WorkspaceStatus.OK, ledger_id=ledger_id
            )
            try:
                with turns.take(alone=tries > 1), units.unit() as connection:
                    # Every server time is checked before anything is filed under it.
                    watched = server_clock.watch(
                        client,
                        connection,
                        workspace.id,
                        max_jump_days=account.client.max_clock_jump_days,
                    )
                    if delisted:
                        _retire_workspace(
                            connection, watched, run_id, ledger_id, workspace, attempt
                        )
                        attempt.status = WorkspaceStatus.DELISTED
                    else:
                        _load_workspace(
                            connection, watched, run_id, ledger_id, workspace, attempt, accepted
                        )
                    _close(connection, ledger_id, attempt)
                return attempt
            except SQLAlchemyError as exc:
                if tries < DEADLOCK_TRIES and _deadlocked(exc):
                    # Rolled back whole, nothing of it kept: list it again from the start,
                    # alone this time, so it cannot meet the same deadlock again.
                    log.info("workspace %s: deadlock, tried again: %s", workspace.id, one_line(exc))
                    continue
                error: ApiError | SQLAlchemyError = exc
            except ApiError as exc:
                error = exc
            break
        # The attempt's counts rolled back with its rows: a failed workspace counts
        # nothing, so the ledger and the summary describe only what was committed.
        failed = WorkspaceResult(
            account.name,
            attempt.workspace_id,
            WorkspaceStatus.FAILED,
            error=one_line(error),
            key_refused=isinstance(error, AuthError),
            ledger_id=ledger_id,
        )
        log.info("workspace %s failed: %s", workspace.id, failed.error)
        try:
            with units.unit() as connection:
                _close(connection, ledger_id, failed)
        except SQLAlchemyError as lost:
            failed.ledger_pending = True
            raise _Unrecorded(failed, lost) from lost
        return failed
    finally:
        lock.release()


# A workspace's transaction the database rolled back to break a deadlock is run again,
# alone: two workspaces loading at once meet on the same keys when keys move between
# them (the one that lost them stores them as found in the other, which lists them).
DEADLOCK_TRIES = 3
_DEADLOCK_SQLSTATES = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization
_DEADLOCK_ERRNOS = frozenset({1213})  # MariaDB/MySQL: ER_LOCK_DEADLOCK


def _deadlocked(exc: SQLAlchemyError) -> bool:
    """Whether the database rolled the transaction back to break a deadlock."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _DEADLOCK_SQLSTATES:  # psycopg
        return True
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _DEADLOCK_ERRNOS  # PyMySQL: (errno, message)


def _skip(
    connection: Connection, run_id: int, account: Account, workspace: WorkspaceSpec, reason: str
) -> WorkspaceResult:
    """Record the workspace as skipped by this run, for ``reason``."""
    skipped = WorkspaceResult(account.name, workspace.id, WorkspaceStatus.SKIPPED, error=reason)
    _record_unopened(connection, run_id, skipped)
    return skipped


def _record_unopened(connection: Connection, run_id: int, result: WorkspaceResult) -> None:
    """The ledger row of a workspace that ended before it was opened (skipped, or not
    attempted): written once, with its end already in it."""
    runs.open_workspace(
        connection,
        run_id,
        account=result.account,
        requested_as=result.workspace_id,
        status=result.status,
        error=result.error,
    )


def _close(connection: Connection, ledger_id: int, result: WorkspaceResult) -> None:
    runs.close_workspace(
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
    client: server_clock.WatchedClient,
    run_id: int,
    ledger_id: int,
    workspace: WorkspaceSpec,
    result: WorkspaceResult,
    accepted: Callable[[], None],
) -> None:
    """List, load, confirm the missing, mark the deleted: all inside ``connection``'s
    transaction. ``accepted`` is called as each page arrives."""
    load = WorkspaceLoad(
        connection, sync_run_id=run_id, ledger_id=ledger_id, requested_as=workspace.id
    )
    for page in client.iter_key_pages(workspace.id):
        accepted()
        load.add_page(page.records, page.server_time)
    missing = load.missing_keys()
    result.workspace_id = load.workspace_id
    # Offset paging can skip a key while others are deleted: ask before marking.
    confirmed = confirm_missing(
        client, missing, workspace_id=load.workspace_id, listed=load.known_keys_listed
    )
    load.settle(confirmed.found, confirmed.gone)
    load.finish(name=workspace.name, slug=workspace.slug)
    _take_counts(result, load)


def _retire_workspace(
    connection: Connection,
    client: server_clock.WatchedClient,
    run_id: int,
    ledger_id: int,
    workspace: WorkspaceSpec,
    result: WorkspaceResult,
) -> None:
    """Discovery stopped listing the workspace: ask for each of its live keys (404:
    deleted, history kept; found: stored as it is now) and mark the workspace delisted."""
    load = WorkspaceLoad(
        connection, sync_run_id=run_id, ledger_id=ledger_id, requested_as=workspace.id
    )
    confirmed = confirm_each(client, load.missing_keys())  # no listing: every live key
    load.settle(confirmed.found, confirmed.gone)
    load.retire()
    _take_counts(result, load)


def _take_counts(result: WorkspaceResult, load: WorkspaceLoad) -> None:
    """Copy what the load wrote into ``result`` (once it all succeeded)."""
    result.pages = load.pages
    result.counts = load.counts
    result.deleted = load.deleted
