"""One workspace's load: everything its transaction writes, through a Connection the
caller opened (and commits or rolls back).

The caller hands over the listing page by page (``add_page``), then asks which keys the
listing did not show (``missing_keys``), has the API confirm them, and hands the answer
back (``settle``: found keys are stored as they are now, gone keys marked deleted with
their history kept). ``finish`` then records the complete listing: the day it observed
(unless it ran across midnight), the workspace row, and the workspace's UUID and server
time on its ledger row. A workspace discovery no longer lists adds no page: every live
key is missing, and ``retire`` marks the workspace delisted instead of ``finish``.

Pages are loaded a batch at a time (``BATCH_KEYS`` keys, several pages): a few
statements per batch instead of several per page, and never a whole workspace in
Python. The keys the listing showed go to a temporary table of the connection
(etl.store.seen_keys), which the anti-join for the missing keys reads.

Nothing here talks to the API or commits; ``etl.workspace_sync`` does both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, func, insert, select, update

from etl.core.clock import utcnow
from etl.core.config import DEFAULT_WORKSPACE
from etl.core.key_fields import KeyRecord, Listing
from etl.store import daily_spend, derived, loading, runs, seen_keys
from etl.store.counts import PageCounts
from models import ApiKey, Workspace

# Keys held before they are written: enough that per-statement costs stay small (a
# few round trips per 1,000 keys), few enough that memory stays flat whatever the
# workspace's size (2,000 added 15 MiB to a first sync's peak RSS; 500 saved no time).
BATCH_KEYS = 1000


class FoundKey(Protocol):
    """A missing key the API still has, with the server time of that answer."""

    @property
    def record(self) -> KeyRecord: ...

    @property
    def server_time(self) -> datetime: ...


@dataclass(frozen=True)
class _Listed:
    """What the end of the listing settled for the rest of the load."""

    workspace_id: str  # the UUID (learnt from its keys for the default workspace)
    listed_at: datetime  # the first page's server time: the listing's moment
    observed: frozenset[date]  # days just before it that earlier runs observed


class WorkspaceLoad:
    """The load of one workspace in one run, inside the caller's transaction."""

    def __init__(
        self, connection: Connection, *, sync_run_id: int, ledger_id: int, requested_as: str
    ) -> None:
        self._connection = connection
        self._sync_run_id = sync_run_id
        self._ledger_id = ledger_id
        self._requested_as = requested_as
        self._resolved = None if requested_as == DEFAULT_WORKSPACE else requested_as
        self._first_page_at: datetime | None = None
        self._last_page_at: datetime | None = None
        self._observed: frozenset[date] | None = None
        self._listed: _Listed | None = None
        self._pending: list[loading.Listed] = []
        self._pending_hashes: set[str] = set()
        self._started = False
        self.pages = 0
        self._counts = PageCounts()
        self.deleted = 0

    def live_keys_before(self) -> int | None:
        """How many live keys the workspace had when this load began (None: never
        listed): a hint of the listing's length."""
        workspace_id = self._resolved or runs.last_resolved(self._connection, self._requested_as)
        if workspace_id is None:
            return None
        live = select(func.count()).where(
            ApiKey.workspace_id == workspace_id, ApiKey.deleted_at.is_(None)
        )
        return self._connection.scalar(live) or None

    @property
    def counts(self) -> PageCounts:
        """What the pages handed over so far changed (pending ones are loaded first)."""
        self._flush()
        return self._counts

    def add_page(self, records: Sequence[Listing], server_time: datetime) -> None:
        """Load one page of the listing, captured at the server time of its response."""
        if self._listed is not None:
            raise RuntimeError("the listing has ended: no page can be added after missing_keys()")
        self.pages += 1
        self._first_page_at = self._first_page_at or server_time
        self._last_page_at = server_time
        if self._resolved is None and records:
            self._resolved = records[0].workspace_id
        if self._observed is None and self._resolved is not None:
            # Read once, as soon as the workspace is known: every page files against it.
            self._observed = daily_spend.recent_observations(
                self._connection, self._resolved, self._first_page_at
            )
        for record in records:
            if record.hash in self._pending_hashes:
                # Listed again (offset paging): load it after its first sighting.
                self._flush()
            self._pending.append(loading.Listed(record, server_time))
            self._pending_hashes.add(record.hash)
        if len(self._pending) >= BATCH_KEYS:
            self._flush()

    def _flush(self) -> None:
        """Load the pending keys, and record them as seen by the listing."""
        if not self._pending:
            return
        self._start()  # load_batch records them as seen
        self._counts.add(
            loading.load_batch(
                self._connection,
                self._pending,
                sync_run_id=self._sync_run_id,
                observed_days=self._observed or frozenset(),
            )
        )
        self._pending = []
        self._pending_hashes = set()

    def _start(self) -> None:
        if not self._started:
            seen_keys.start(self._connection)
            self._started = True

    def missing_keys(self) -> list[str]:
        """End the listing; the live keys of the workspace that it did not show."""
        self._flush()
        self._start()
        if self._listed is None:
            # With no page (a workspace no longer listed) the local clock dates the
            # listing, and so the deletions: a 404 carries no Date worth filing under.
            listed_at = self._first_page_at or utcnow()
            # An empty default workspace names no UUID: file it under the one learnt before.
            workspace_id = (
                self._resolved
                or runs.last_resolved(self._connection, self._requested_as)
                or self._requested_as
            )
            observed = self._observed
            if observed is None:
                observed = daily_spend.recent_observations(
                    self._connection, workspace_id, listed_at
                )
            self._listed = _Listed(workspace_id, listed_at, observed)
        return seen_keys.missing_keys(self._connection, self._listed.workspace_id)

    @property
    def workspace_id(self) -> str:
        """The workspace's UUID, known once the listing ended."""
        return self._ended().workspace_id

    @property
    def known_keys_listed(self) -> int:
        """Keys the listing showed that were known before it (the missing are the rest)."""
        return self.counts.seen - self.counts.new

    def settle(self, found: Iterable[FoundKey], gone: Sequence[str]) -> None:
        """Store the missing keys the API still has as they are now; mark the ones it no
        longer has (404) deleted, their history kept."""
        listed = self._ended()
        for key in found:
            self._counts.add(
                loading.load_keys(
                    self._connection,
                    [key.record],
                    captured_at=key.server_time,
                    sync_run_id=self._sync_run_id,
                    observed_days=listed.observed,
                )
            )
        self.deleted = loading.mark_deleted(
            self._connection,
            gone,
            listed.listed_at,
            workspace_id=listed.workspace_id,
            observed_days=listed.observed,
        )

    def finish(self, *, name: str | None, slug: str | None) -> None:
        """Record the complete listing: its day observed, the workspace row (named
        ``name``/``slug`` when known), its ledger row resolved; drop the seen-key table."""
        listed = self._ended()
        daily_spend.record_listing(
            self._connection, listed.workspace_id, listed.listed_at, self._last_page_at
        )
        seen_keys.drop(self._connection)
        derived.drop(self._connection)
        _upsert_workspace(
            self._connection,
            listed.workspace_id,
            name=name,
            slug=slug,
            synced_at=listed.listed_at,
            now=utcnow(),
        )
        runs.resolve_workspace(
            self._connection, self._ledger_id, listed.workspace_id, listed.listed_at
        )

    def retire(self) -> None:
        """Record that discovery no longer lists the workspace (instead of ``finish``)."""
        listed = self._ended()
        seen_keys.drop(self._connection)
        derived.drop(self._connection)
        _mark_delisted(self._connection, listed.workspace_id, listed.listed_at)

    def _ended(self) -> _Listed:
        if self._listed is None:
            raise RuntimeError("the listing has not ended: call missing_keys() first")
        return self._listed


def _mark_delisted(connection: Connection, workspace_id: str, at: datetime) -> None:
    """Record that discovery no longer lists the workspace (a later listing clears it)."""
    connection.execute(update(Workspace).where(Workspace.id == workspace_id).values(delisted_at=at))


def _upsert_workspace(
    connection: Connection,
    workspace_id: str,
    *,
    name: str | None,
    slug: str | None,
    synced_at: datetime | None,
    now: datetime,
) -> None:
    """Insert the workspace, or refresh its name and last successful sync time."""
    existing = connection.execute(select(Workspace.id).where(Workspace.id == workspace_id)).first()
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if slug is not None:
        values["slug"] = slug
    if synced_at is not None:
        values["last_synced_at"] = synced_at
        values["delisted_at"] = None  # listed again
    if existing is None:
        connection.execute(
            insert(Workspace),
            [
                {
                    "id": workspace_id,
                    "first_seen_at": now,
                    "name": name,
                    "slug": slug,
                    "last_synced_at": synced_at,
                }
            ],
        )
    elif values:
        connection.execute(update(Workspace).where(Workspace.id == workspace_id).values(**values))
