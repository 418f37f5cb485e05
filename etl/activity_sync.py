"""One account's GET /activity part of a run: which days, the fetches, one transaction.

It runs after the account's key sync and never blocks it: its failure (an error status,
a bad payload, a timeout, the database) rolls back only this part, recorded on its own
line of the run ledger (sync_run_activity) and of the summary; the keys stay committed
and the run ends partial.

Which days: the API serves the 30 completed UTC days before the server's today, and
"today" is the server's clock (the Date of the account's key listings in this run, then
of each activity response), never the local one. For every workspace whose key sync
succeeded, a run fetches each day of that window not stored yet (a first run: all 30)
and the latest ``refetch_days`` again, because late usage still lands on them. Days
between a workspace's first stored day and the window that no run fetched are recorded
missing, never guessed. One request per day covers every workspace of the account
(``group_by=workspace``; ``workspace_id`` too when only one workspace needs the day).

Per key (``activity_keys``, off by default): the same per (key, day) through
``api_key_hash``, at most ``key_requests`` requests a run: the re-fetched days first,
then the oldest days (the next to leave the window); the rest waits for the next run.

Everything is fetched before anything is written, and everything is written in one
transaction: a day's rows are replaced whole, so a re-fetch never double-counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from etl.core.activity_item import ActivityItem
from etl.core.clock import utcnow
from etl.core.config import DEFAULT_WORKSPACE, Account
from etl.core.errors import ApiError, Interrupted, PayloadError
from etl.core.statuses import ActivityStatus, WorkspaceStatus
from etl.openrouter.activity import ActivityReport
from etl.openrouter.client import OpenRouterClient
from etl.store import activity as store
from etl.store.activity_runs import ActivityCounts, listing_server_time, record_activity
from etl.store.database import one_line
from etl.store.transactions import Units
from etl.workspace_sync import WorkspaceResult

log = logging.getLogger(__name__)

WINDOW_DAYS = 30  # "the last 30 (completed) UTC days"


@dataclass
class ActivityResult:
    """How one account's activity part fared (its line of the ledger and summary)."""

    account: str
    status: ActivityStatus
    counts: ActivityCounts = field(default_factory=ActivityCounts)
    requests: int = 0
    error: str | None = None
    server_time: datetime | None = None


def window(today: date) -> list[date]:
    """The completed UTC days the API serves on the server's ``today``, oldest first."""
    return [today - timedelta(days=n) for n in range(WINDOW_DAYS, 0, -1)]


def days_to_fetch(stored: store.StoredDays, today: date, refetch_days: int) -> list[date]:
    """The days of the window not stored whole yet, and the latest ``refetch_days``."""
    days = window(today)
    recent = set(days[len(days) - refetch_days :]) if refetch_days else set()
    return [d for d in days if d not in stored.fetched or d in recent]


def sync_activity(
    units: Units,
    client: OpenRouterClient,
    run_id: int,
    account: Account,
    workspaces: Sequence[WorkspaceResult],
) -> ActivityResult | None:
    """Fetch and store the account's activity, and write its ledger line; None when the
    account has it switched off. Raises SQLAlchemyError only when the database cannot
    even record the outcome."""
    if not account.activity.enabled:
        return None
    started = utcnow()
    requests_before = client.stats.requests
    synced = sorted(
        {
            w.workspace_id
            for w in workspaces
            if w.status is WorkspaceStatus.OK and w.workspace_id != DEFAULT_WORKSPACE
        }
    )
    result = ActivityResult(account.name, ActivityStatus.SKIPPED)
    if not synced:
        result.error = "no workspace of the account synced in this run, so none was fetched"
    else:
        try:
            _fetch_and_store(units, client, run_id, account, synced, result, started)
        except Interrupted as exc:
            result.status, result.error = ActivityStatus.INTERRUPTED, str(exc)
        except (ApiError, SQLAlchemyError) as exc:
            error = one_line(exc)
            if not error.startswith("GET /activity"):
                error = f"GET /activity: {error}"  # a refused key, a timeout, the database
            result.status, result.error = ActivityStatus.FAILED, error
            log.warning("account %s: %s", account.name, result.error)
        if result.status is ActivityStatus.OK:
            return result  # its line committed with its rows
        result.counts = ActivityCounts()  # rolled back: nothing of it counts
    result.requests = client.stats.requests - requests_before
    with units.unit() as connection:
        _record(connection, run_id, result, started)
    return result


def _fetch_and_store(
    units: Units,
    client: OpenRouterClient,
    run_id: int,
    account: Account,
    workspace_ids: list[str],
    result: ActivityResult,
    started: datetime,
) -> None:
    settings = account.activity
    with units.unit() as connection:
        listed_at = listing_server_time(connection, run_id, workspace_ids)
        stored = store.stored_days(connection, workspace_ids)
    if listed_at is None:
        raise ApiError("no server time from the key listings to work out the window")
    result.server_time = listed_at
    fetch = _Fetcher(client, listed_at)
    reports = fetch.workspace_days({ws: stored[ws] for ws in workspace_ids}, settings.refetch_days)
    key_reports: dict[tuple[str, date], ActivityReport] = {}
    key_stored: dict[str, store.StoredDays] = {}
    if settings.per_key:
        with units.unit() as connection:
            hashes = list(settings.key_hashes) or store.top_spending_keys(
                connection, workspace_ids, fetch.today - timedelta(days=1), settings.top_keys
            )
            key_stored = store.stored_days(connection, hashes, per_key=True)
        key_reports = fetch.key_days(key_stored, settings.refetch_days, settings.key_requests)
    result.server_time = fetch.server_time
    start_of_window = window(fetch.today)[0]
    counts = result.counts
    counts.workspaces = len(workspace_ids)
    with units.unit() as connection:
        for workspace_id in workspace_ids:
            lost = store.lost_days(stored[workspace_id], start_of_window)
            counts.days_missing += store.mark_missing(connection, workspace_id, lost)
        for day, report in sorted(reports.items()):
            by_workspace: dict[str, list[ActivityItem]] = {}
            for item in report.items:
                by_workspace.setdefault(item.workspace_id, []).append(item)
            for workspace_id in fetch.wanted[day]:
                if day < start_of_window:
                    continue  # left the window while the run fetched: lost, not guessed
                counts.rows_written += store.replace_day(
                    connection,
                    workspace_id,
                    day,
                    by_workspace.get(workspace_id, []),
                    run_id=run_id,
                    fetched_at=report.server_time,
                )
                counts.days_fetched += 1
                counts.days_refetched += day in stored[workspace_id].fetched
        for key_hash, known in key_stored.items():
            lost = store.lost_days(known, start_of_window)
            store.mark_missing(connection, key_hash, lost, per_key=True)
        for (key_hash, day), report in sorted(key_reports.items()):
            if day < start_of_window:
                continue
            _one_row_per_endpoint(report, key_hash)
            counts.key_rows_written += store.replace_day(
                connection,
                key_hash,
                day,
                report.items,
                run_id=run_id,
                fetched_at=report.server_time,
                per_key=True,
            )
            counts.key_days_fetched += 1
        result.status, result.error = ActivityStatus.OK, None
        result.requests = client.stats.requests - fetch.requests_before
        _record(connection, run_id, result, started)


class _Fetcher:
    """The requests of one account's activity, newest server time kept: a day that
    ends while the run fetches moves the window on (the server's clock decides)."""

    def __init__(self, client: OpenRouterClient, listed_at: datetime) -> None:
        self._client = client
        self.server_time = listed_at
        self.today = listed_at.date()
        self.requests_before = client.stats.requests
        self.wanted: dict[date, list[str]] = {}  # day -> workspaces that needed it

    def _heard(self, report: ActivityReport) -> ActivityReport:
        if report.server_time > self.server_time:
            self.server_time = report.server_time
            self.today = max(self.today, report.server_time.date())
        return report

    def workspace_days(
        self, stored: dict[str, store.StoredDays], refetch_days: int
    ) -> dict[date, ActivityReport]:
        """One report per day some workspace needs, newest day first."""
        reports: dict[date, ActivityReport] = {}
        while True:
            for workspace_id, known in stored.items():
                for day in days_to_fetch(known, self.today, refetch_days):
                    if day not in reports and workspace_id not in self.wanted.get(day, []):
                        self.wanted.setdefault(day, []).append(workspace_id)
            pending = sorted((d for d in self.wanted if d not in reports), reverse=True)
            pending = [d for d in pending if d >= window(self.today)[0]]
            if not pending:
                return reports
            # Planned again after each answer: a new server day moves the window on.
            day = pending[0]
            only = self.wanted[day][0] if len(self.wanted[day]) == 1 else None
            reports[day] = self._heard(self._client.get_activity(day, workspace_id=only))

    def key_days(
        self, stored: dict[str, store.StoredDays], refetch_days: int, budget: int
    ) -> dict[tuple[str, date], ActivityReport]:
        """Reports per (key, day) needed, at most ``budget`` requests: the re-fetched
        days first, then the oldest (the next to leave the window)."""
        recent = set(window(self.today)[WINDOW_DAYS - refetch_days :]) if refetch_days else set()
        needed = [
            (key_hash, day)
            for key_hash, known in stored.items()
            for day in days_to_fetch(known, self.today, refetch_days)
        ]
        needed.sort(
            key=lambda kd: (0, -kd[1].toordinal()) if kd[1] in recent else (1, kd[1].toordinal())
        )
        reports: dict[tuple[str, date], ActivityReport] = {}
        for key_hash, day in needed[:budget]:
            if day < window(self.today)[0]:
                continue
            reports[key_hash, day] = self._heard(
                self._client.get_activity(day, api_key_hash=key_hash)
            )
        return reports


def _one_row_per_endpoint(report: ActivityReport, key_hash: str) -> None:
    endpoints = [item.endpoint_id for item in report.items]
    if len(set(endpoints)) != len(endpoints):
        raise PayloadError(
            f"GET /activity for {report.day.isoformat()} and key {key_hash[:12]}...: an "
            "endpoint is listed twice (in two workspaces)"
        )


def _record(connection: Connection, run_id: int, result: ActivityResult, started: datetime) -> None:
    record_activity(
        connection,
        run_id,
        result.account,
        result.status,
        result.counts,
        started_at=started,
        finished_at=utcnow(),
        server_time=result.server_time,
        requests=result.requests,
        error=result.error,
    )
