"""Refuse a workspace's run when the server's clock jumps implausibly.

History is filed under the server's ``Date`` (DESIGN.md, "Data semantics"), so a
wrong server clock files a whole run under the wrong days: ten years ahead it opens
a decade-long gap and puts "today" in 2036; a clock that goes back files days a
second time and closes key versions before they opened. Every response a run files
under a workspace (key pages and key lookups) passes ``ClockWatch.check``; the first
implausible one raises ``ServerClockError``, which fails that workspace and rolls
back everything the run wrote for it. The rule, with H = the server time of the
workspace's last successful listing (``workspaces.last_synced_at``) and t = a
response's server time:

- t earlier than H, or than the latest snapshot already filed for the workspace (a
  listing's later pages come after H): refused, always. Time never runs backwards,
  so either the server's clock is wrong now or it was wrong then; filing this run
  would put it before data already filed. (No override: the run goes through once
  the server's clock has passed that time again.)
- t later than H + ``max_clock_jump_days`` (default 35): refused unless the limit is
  raised for the run (``KEYLEDGER_MAX_CLOCK_JUMP_DAYS``, see docs/operations.md).
- inside one run: t earlier than an earlier response's by more than
  ``STEP_BACK_TOLERANCE``, or more than ``MAX_RUN_SPAN`` after the first: refused.

The first sync of a workspace has no H; only the inside-one-run rule applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from etl.core.config import DEFAULT_WORKSPACE
from etl.core.errors import ServerClockError
from etl.openrouter.client import KeyLookup, OpenRouterClient
from etl.openrouter.paging import KeyPage
from etl.store import runs
from models import UsageSnapshot, Workspace

# Pages are fetched concurrently, possibly from servers a second or two apart, so
# their Dates need not be in order; minutes back is no longer jitter.
STEP_BACK_TOLERANCE = timedelta(minutes=5)
# A run of one workspace that lasts a day has stalled anyway (each request gives up
# within retry_deadline_seconds); a longer span is a clock that jumped mid-run.
MAX_RUN_SPAN = timedelta(days=1)


class ClockWatch:
    """The server times one run has filed under one workspace, and the rule above."""

    def __init__(self, connection: Connection, *, max_jump_days: float) -> None:
        self._connection = connection
        self._max_jump = timedelta(days=max_jump_days)
        self._workspace: str | None = None
        self._last_synced: datetime | None = None
        self._latest_filed: datetime | None = None
        self._pending: list[datetime] = []  # times seen before the workspace was known
        self._first: datetime | None = None
        self._latest: datetime | None = None

    @property
    def knows_workspace(self) -> bool:
        """Whether the workspace's UUID is known yet."""
        return self._workspace is not None

    def know_workspace(self, workspace_id: str) -> None:
        """Name the workspace (its UUID): from now on times are also checked against its
        last successful sync, the ones already seen included."""
        if self._workspace is not None:
            return
        self._workspace = workspace_id
        self._last_synced = self._connection.scalar(
            select(Workspace.last_synced_at).where(Workspace.id == workspace_id)
        )
        # last_synced_at is the first page of that listing; its later pages (and key
        # lookups) filed snapshots after it, and going back past those inverts history.
        latest = self._connection.scalar(
            select(func.max(UsageSnapshot.captured_at)).where(
                UsageSnapshot.workspace_id == workspace_id
            )
        )
        self._latest_filed = max(filter(None, (self._last_synced, latest)), default=None)
        pending, self._pending = self._pending, []
        for moment in pending:
            self._against_last_sync(moment)

    def check(self, moment: datetime) -> None:
        """Raise ServerClockError when ``moment`` breaks the rule."""
        if self._first is not None and self._latest is not None:
            if moment < self._latest - STEP_BACK_TOLERANCE:
                self._refuse(
                    f"server time {_show(moment)} is {_days(self._latest - moment)} before "
                    f"an earlier response of this run ({_show(self._latest)})"
                )
            if moment > self._first + MAX_RUN_SPAN:
                self._refuse(
                    f"server time {_show(moment)} is {_days(moment - self._first)} after "
                    f"this run's first response ({_show(self._first)})"
                )
        self._first = self._first or moment
        self._latest = max(self._latest or moment, moment)
        if self._workspace is None:
            self._pending.append(moment)
        else:
            self._against_last_sync(moment)

    def _against_last_sync(self, moment: datetime) -> None:
        last, filed = self._last_synced, self._latest_filed
        if filed is not None and moment < filed:
            self._refuse(
                f"server time {_show(moment)} is {_days(filed - moment)} before the latest "
                f"time already filed for this workspace ({_show(filed)}); nothing is filed "
                "until the server's clock has passed it"
            )
        if last is None:
            return
        if moment > last + self._max_jump:
            self._refuse(
                f"server time {_show(moment)} is {_days(moment - last)} after this "
                f"workspace's last successful sync ({_show(last)}), more than "
                f"max_clock_jump_days = {self._max_jump.total_seconds() / 86400:g}; if the "
                "gap is real, rerun with KEYLEDGER_MAX_CLOCK_JUMP_DAYS raised"
            )

    def _refuse(self, reason: str) -> None:
        raise ServerClockError(f"refused, the server's clock jumped: {reason}")


class WatchedClient:
    """The part of ``OpenRouterClient`` a workspace's load uses, every response's
    server time checked by a ``ClockWatch`` before the caller files anything."""

    def __init__(
        self, client: OpenRouterClient, watch: ClockWatch, connection: Connection, requested_as: str
    ) -> None:
        self._client = client
        self._watch = watch
        self._connection = connection
        if requested_as != DEFAULT_WORKSPACE:
            watch.know_workspace(requested_as)

    def iter_key_pages(
        self, workspace_id: str = DEFAULT_WORKSPACE, *, expected_keys: int | None = None
    ) -> Iterator[KeyPage]:
        """``OpenRouterClient.iter_key_pages``, each page checked before it is yielded."""
        for page in self._client.iter_key_pages(workspace_id, expected_keys=expected_keys):
            if page.records:
                self._watch.know_workspace(page.records[0].workspace_id)
            self._watch.check(page.server_time)
            yield page
        # An empty default workspace names no UUID, yet its run is filed under the one
        # it resolved to before (workspace_days, last_synced_at): check against that.
        if not self._watch.knows_workspace:
            known = runs.last_resolved(self._connection, workspace_id)
            if known is not None:
                self._watch.know_workspace(known)

    def get_key(self, key_hash: str) -> KeyLookup | None:
        """``OpenRouterClient.get_key``, the answer's server time checked."""
        found = self._client.get_key(key_hash)
        if found is not None:
            self._watch.check(found.server_time)
        return found

    def get_keys(self, hashes: list[str]) -> Iterator[tuple[str, KeyLookup | None]]:
        """``OpenRouterClient.get_keys``, each answer's server time checked."""
        for key_hash, found in self._client.get_keys(hashes):
            if found is not None:
                self._watch.check(found.server_time)
            yield key_hash, found


def watch(
    client: OpenRouterClient, connection: Connection, requested_as: str, *, max_jump_days: float
) -> WatchedClient:
    """``client`` with every server time checked against the workspace's history, read
    through ``connection`` (the workspace's own transaction)."""
    clock = ClockWatch(connection, max_jump_days=max_jump_days)
    return WatchedClient(client, clock, connection, requested_as)


def _show(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    if days >= 1:
        return f"{days:.1f} days"
    return f"{span.total_seconds() / 60:.0f} minutes"
