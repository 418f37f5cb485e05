"""One workspace of a run: its lock, its ledger row, its one transaction, its failure.

A workspace is loaded atomically: every row a run writes for it (keys, snapshots,
deletions, its ledger counts) commits together or not at all, so readers see all of
a workspace's keys from a run or none. A workspace that fails is rolled back and
recorded as failed, counting nothing. A transaction the database rolled back to break a
deadlock is run again from the start, alone (``Turns``). ``--dry-run`` runs the same
code inside one outer transaction that is rolled back at the end (``Units``,
etl/store/transactions.py: workspaces become savepoints). A run stopped by a signal
(``Stop``) rolls the workspace back the same way and records it ``interrupted``.
etl/workspace_pool.py decides which workspaces load at once; etl/sync.py runs the
whole sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from etl import server_clock
from etl.core.config import Account, WorkspaceSpec
from etl.core.errors import ApiError, AuthError, Interrupted
from etl.core.progress import NO_OBSERVER, SyncObserver
from etl.core.statuses import WorkspaceStatus
from etl.core.stop import Stop
from etl.openrouter.client import OpenRouterClient
from etl.openrouter.confirm import confirm_each, confirm_missing
from etl.store import locks, runs
from etl.store.counts import PageCounts
from etl.store.database import one_line
from etl.store.transactions import Units
from etl.store.workspace_load import WorkspaceLoad

log = logging.getLogger(__name__)


@dataclass
class WorkspaceResult:
    """How one workspace fared in a run. The counts are of committed work only: a
    workspace whose transaction rolled back wrote nothing and counts nothing."""

    account: str
    workspace_id: str
    status: WorkspaceStatus  # ok, failed, skipped, interrupted, or delisted (keys confirmed)
    counts: PageCounts = field(default_factory=PageCounts)
    pages: int = 0
    deleted: int = 0
    error: str | None = None
    key_refused: bool = False  # the management key was refused (401/403)
    ledger_id: int | None = None  # its sync_run_workspaces row, once inserted
    ledger_pending: bool = False  # this outcome is still to be written to its ledger row


class Unrecorded(Exception):
    """A workspace failed and the database could not even record that: the rest of
    the run would fail the same way. Carries the workspace's (failed) result."""

    def __init__(self, result: WorkspaceResult, cause: SQLAlchemyError) -> None:
        super().__init__(result.error)
        self.result = result
        self.cause = cause


class Turns:
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


def sync_workspace(
    units: Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    workspace: WorkspaceSpec,
    wait_seconds: float,
    *,
    delisted: bool = False,
    accepted: Callable[[], None] = lambda: None,
    turns: Turns | None = None,
    observer: SyncObserver = NO_OBSERVER,
    stop: Stop | None = None,
) -> WorkspaceResult:
    """Sync one workspace in its own transaction and record how it ended; when
    discovery no longer lists it (``delisted``), confirm each of its keys instead.
    ``accepted`` is called when a page of its listing arrives; ``turns`` is shared by
    the workspaces loading at once; ``observer`` hears it start, fetch and end. Once
    ``stop`` is requested the workspace is not started (skipped) or, in flight, rolled
    back and recorded interrupted.

    Raises SQLAlchemyError when the database fails outside that transaction (the
    workspace's lock or ledger row), and Unrecorded when it cannot record a failure.
    """
    ended = WorkspaceStatus.FAILED  # unless a result comes back
    try:
        result = _sync_workspace(
            units,
            client,
            run_id,
            run_started,
            account,
            workspace,
            wait_seconds,
            delisted=delisted,
            accepted=accepted,
            turns=turns or Turns(),
            observer=observer,
            stop=stop or Stop(),
        )
        ended = result.status
        return result
    finally:
        observer.workspace_finished(account.name, workspace.id, ended)


def _sync_workspace(
    units: Units,
    client: OpenRouterClient,
    run_id: int,
    run_started: datetime,
    account: Account,
    workspace: WorkspaceSpec,
    wait_seconds: float,
    *,
    delisted: bool,
    accepted: Callable[[], None],
    turns: Turns,
    observer: SyncObserver,
    stop: Stop,
) -> WorkspaceResult:
    """sync_workspace, less telling the observer how it ended."""
    try:
        stop.check()
        lock = locks.acquire(
            units.engine, workspace.id, wait_seconds=wait_seconds, sleep=stop.pause
        )
    except Interrupted as exc:
        with units.unit() as connection:
            return _skip(connection, run_id, account, workspace, interrupted_reason(exc))
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
        tries = 0
        while True:
            tries += 1
            attempt = WorkspaceResult(
                account.name, workspace.id, WorkspaceStatus.OK, ledger_id=ledger_id
            )
            try:
                with turns.take(alone=tries > 1), units.unit() as connection:
                    observer.workspace_started(account.name, workspace.id)
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
                            connection,
                            watched,
                            run_id,
                            ledger_id,
                            workspace,
                            attempt,
                            accepted,
                            fetched=lambda keys: observer.page_fetched(
                                account.name, workspace.id, keys
                            ),
                            stop=stop,
                        )
                    close_ledger_row(connection, ledger_id, attempt)
                counts = attempt.counts
                log.info(
                    "workspace %s: %d pages; keys seen %d, new %d, changed %d, deleted %d",
                    attempt.status,
                    attempt.pages,
                    counts.seen,
                    counts.new,
                    counts.changed,
                    attempt.deleted,
                )
                return attempt
            except SQLAlchemyError as exc:
                if tries < DEADLOCK_TRIES and _deadlocked(exc):
                    # Rolled back whole, nothing of it kept: list it again from the start,
                    # alone this time, so it cannot meet the same deadlock again.
                    log.info("workspace %s: deadlock, tried again: %s", workspace.id, one_line(exc))
                    continue
                error: ApiError | SQLAlchemyError | Interrupted = exc
            except (ApiError, Interrupted) as exc:
                error = exc
            break
        # The attempt's counts rolled back with its rows: a failed (or interrupted)
        # workspace counts nothing, so the ledger and the summary describe only what was
        # committed.
        cut = isinstance(error, Interrupted)
        failed = WorkspaceResult(
            account.name,
            attempt.workspace_id,
            WorkspaceStatus.INTERRUPTED if cut else WorkspaceStatus.FAILED,
            error=f"the run was {error}; rolled back, nothing of it kept"
            if cut
            else one_line(error),
            key_refused=isinstance(error, AuthError),
            ledger_id=ledger_id,
        )
        log.info("workspace %s %s: %s", workspace.id, failed.status, failed.error)
        try:
            with units.unit() as connection:
                close_ledger_row(connection, ledger_id, failed)
        except SQLAlchemyError as lost:
            failed.ledger_pending = True
            raise Unrecorded(failed, lost) from lost
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


def interrupted_reason(interrupted: Interrupted) -> str:
    """Why a workspace the stopped run did not start is skipped (its ledger row says so)."""
    return f"not attempted: the run was {interrupted}"


def _skip(
    connection: Connection, run_id: int, account: Account, workspace: WorkspaceSpec, reason: str
) -> WorkspaceResult:
    """Record the workspace as skipped by this run, for ``reason``."""
    skipped = WorkspaceResult(account.name, workspace.id, WorkspaceStatus.SKIPPED, error=reason)
    record_unopened(connection, run_id, skipped)
    return skipped


def record_unopened(connection: Connection, run_id: int, result: WorkspaceResult) -> None:
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


def close_ledger_row(connection: Connection, ledger_id: int, result: WorkspaceResult) -> None:
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
    *,
    fetched: Callable[[int], None],
    stop: Stop,
) -> None:
    """List, load, confirm the missing, mark the deleted: all inside ``connection``'s
    transaction. ``accepted`` is called as each page arrives, ``fetched`` with its
    number of keys once it is loaded; a ``stop`` ends it between pages (Interrupted)."""
    load = WorkspaceLoad(
        connection, sync_run_id=run_id, ledger_id=ledger_id, requested_as=workspace.id
    )
    for page in client.iter_key_pages(workspace.id, expected_keys=load.live_keys_before()):
        accepted()
        stop.check()
        load.add_page(page.records, page.server_time)
        fetched(len(page.records))
    stop.check()
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
