"""Offset pagination that survives a list moving under it, in constant memory.

``GET /keys`` lists keys newest first, some number at a time (100 today; any number,
and it may change from page to page), and ends with an empty page. While we page, keys
get created (the list shifts down: a key is served twice) or deleted (the list shifts
up: a key would be skipped). A cursor (the ``created_at`` of the oldest key emitted so
far, plus the hashes that share that instant) tells what was already emitted.

What one answer proves, and the rules built on it:
- *Contiguous*: a page whose first key was already emitted (or is newer) continues
  where the listing got to, at the instant it was served, so the keys it adds are the
  next ones, none skipped. Each request therefore overlaps the previous page by one key.
  A page at offset 0 is contiguous by definition.
- *Behind*: a page whose first key was never emitted and is not newer may follow a gap
  (keys deleted before the offset made some slip past it). Its keys are not used; the
  client steps back (1, 2, 4, ... keys) until a page overlaps again.
- *End*: only an empty page ends a listing, and only one served right past a
  contiguous page that brought nothing new and whose last key sat just before it: the
  listing's oldest key was already emitted, nothing followed it. A short page is never
  an end (the server may shorten any page), and an empty page anywhere else is a gap
  (the list may have shrunk below the offset while unseen keys remained before it).
  Such an empty page is asked for twice, with the page before it re-read in between:
  a key deleted between the two requests before it moves the keys that follow up by
  one, so that a key never emitted may sit just before an empty page (hypothesis found
  it: pages of one key, a key created, then one deleted). Re-read, that page shows it.
- A key listed twice inside one page is one key (and one position).
- Failures, never guesses: a listing that stops advancing (a server that ignores
  ``offset``, keys that change between every two requests so that no empty page ever
  follows the oldest key, one-key pages that cannot show what they skipped) and a
  listing past ``max_requests`` are errors. Telling those apart from keys created
  while we page would take a guess, so there is one rule: ``NO_PROGRESS_REQUESTS``.

Once the page size has held for two pages, the next pages are fetched ahead
(``lookahead`` in flight: a number, or a function asked after each page, so the depth
follows the client's current concurrency limit) at their predicted offsets; a
prediction that turns out wrong is simply discarded. When the caller knows about how many
keys the listing held last time (``expected_keys``), no page past that length is fetched
ahead: a fetch-ahead past the end is a request that brings nothing (about 15 per
workspace at a limit of 16). Once the listing outgrows the estimate, fetching ahead goes
on unbounded. The estimate only saves requests: the rules above decide the end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from etl.core.errors import ApiError, PaginationError
from etl.core.key_fields import Listing

OVERLAP = 1
# Requests in a row that bring no new key. Stepping back over a burst of deletions
# needs about log2(deleted) requests and re-reading a page or two; far past that, the
# listing cannot make progress (a server of one-key pages offers no overlap to prove
# that nothing was skipped).
NO_PROGRESS_REQUESTS = 60


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One ``GET /keys`` answer: its records and the server's clock (``Date``)."""

    offset: int
    records: Sequence[Listing]
    server_time: datetime


@dataclass(frozen=True, slots=True)
class KeyPage:
    """Keys first seen in this listing, as delivered by one page of it."""

    workspace: str
    offset: int
    records: list[Listing]
    server_time: datetime
    listed: int  # keys the server returned on this page, repeats included


class _Cursor:
    """Where the listing has got to: the oldest instant emitted and its keys."""

    def __init__(self) -> None:
        self.created_at: datetime | None = None
        self.tied: set[str] = set()

    def covers(self, record: Listing) -> bool:
        """True when ``record`` was emitted, or is newer than everything emitted."""
        if self.created_at is None:
            return False
        if record.created_at != self.created_at:
            return record.created_at > self.created_at
        return record.hash in self.tied

    def admit(self, record: Listing) -> bool:
        """Record ``record`` as emitted; False when it already was (or is newer)."""
        if self.covers(record):
            return False
        if record.created_at == self.created_at:
            self.tied.add(record.hash)
        else:
            self.created_at = record.created_at
            self.tied = {record.hash}
        return True


class _Prefetcher:
    """Page fetches submitted ahead of need, handed out by offset."""

    def __init__(
        self,
        fetch: Callable[[int], FetchedPage],
        executor: Executor,
        result: Callable[[Future[FetchedPage]], FetchedPage],
    ) -> None:
        self._fetch = fetch
        self._executor = executor
        self._result = result
        self._pending: deque[tuple[int, Future[FetchedPage]]] = deque()

    def get(self, offset: int) -> FetchedPage:
        while self._pending and self._pending[0][0] != offset:
            self._pending.popleft()[1].cancel()  # a prediction that did not come true
        future = self._pending.popleft()[1] if self._pending else None
        if future is None:
            future = self._executor.submit(self._fetch, offset)
        return self._result(future)

    def ahead(self, offsets: range) -> None:
        queued = {offset for offset, _ in self._pending}
        for offset in offsets:
            if offset not in queued:
                self._pending.append((offset, self._executor.submit(self._fetch, offset)))

    def cancel(self) -> None:
        while self._pending:
            self._pending.popleft()[1].cancel()


def _distinct(records: Sequence[Listing]) -> Sequence[Listing]:
    """The page without keys listed twice in a row (a server glitch, one key)."""
    if all(a.hash != b.hash for a, b in pairwise(records)):
        return records
    return [r for i, r in enumerate(records) if i == 0 or records[i - 1].hash != r.hash]


def _check_newest_first(items: Sequence[Listing], *, workspace: str, offset: int) -> None:
    """The cursor is only sound on a newest-first listing: refuse any other order
    (it would make keys look already listed and drop them silently)."""
    for earlier, later in pairwise(items):
        if later.created_at > earlier.created_at:
            raise PaginationError(
                f"the listing is not newest first: key {later.hash} (created "
                f"{later.created_at:%Y-%m-%dT%H:%M:%S}Z) follows a key created before it",
                workspace=workspace,
                offset=offset,
            )


def iter_key_pages(
    fetch: Callable[[int], FetchedPage],
    *,
    workspace: str,
    executor: Executor,
    lookahead: int | Callable[[], int],
    max_requests: int,
    expected_keys: int | None = None,
    result: Callable[[Future[FetchedPage]], FetchedPage] = Future.result,
) -> Iterator[KeyPage]:
    """Yield every key of one listing exactly once, page by page; ``result`` waits
    for a fetch (one that gives up when the run is stopped, say)."""
    depth = lookahead if callable(lookahead) else lambda: lookahead
    prefetch = _Prefetcher(fetch, executor, result)
    cursor = _Cursor()
    offset = requests = step_back = idle = previous_size = 0
    # Right past the last contiguous page that brought nothing new: an empty page there
    # is the end (that page's last key was the oldest in the list, nothing followed it).
    settled_end: int | None = None
    ends_seen = 0  # empty pages at settled_end since a page last brought a new key

    def fail(message: str) -> PaginationError:
        return PaginationError(message, workspace=workspace, offset=offset)

    try:
        while True:
            requests += 1
            if requests > max_requests:
                raise fail(
                    f"gave up after {max_requests} page requests (max_pages): "
                    "the listing does not end"
                )
            if idle > NO_PROGRESS_REQUESTS:
                raise fail(
                    f"{idle} page requests in a row brought no new key and no end: the "
                    "server ignores offset, keys change between every two requests, or "
                    "pages of one key cannot show what they skip"
                )
            try:
                page = prefetch.get(offset)
            except ApiError as exc:
                raise exc.locate(workspace=workspace, offset=offset) from exc.__cause__
            items = _distinct(page.records)
            _check_newest_first(items, workspace=workspace, offset=offset)
            if not items and offset == 0:
                return
            if not items and offset == settled_end:
                ends_seen += 1
                if ends_seen == 2:
                    return
                # Re-read the page before: any key that slipped up since shows there.
                offset, settled_end = offset - 1, None
                prefetch.cancel()
                continue
            idle += 1
            if offset > 0 and (not items or not cursor.covers(items[0])):
                # A gap (keys deleted before this offset made others slip past it), or an
                # empty page that is not the end (the list shrank below the offset).
                step_back = step_back * 2 if step_back else 1
                offset, settled_end = max(0, offset - step_back), None
                prefetch.cancel()
                continue
            step_back = 0
            fresh = [record for record in items if cursor.admit(record)]
            if not fresh:
                # Only keys already listed (or created since): look right past them.
                offset = settled_end = offset + len(items)
                continue
            idle, settled_end, ends_seen = 0, None, 0
            yield KeyPage(workspace, offset, fresh, page.server_time, len(page.records))
            offset += max(len(items) - OVERLAP, 1)
            if len(items) == previous_size > OVERLAP:
                step = len(items) - OVERLAP
                stop = offset + step * depth()
                if expected_keys is not None and offset < expected_keys:
                    stop = min(stop, expected_keys)
                prefetch.ahead(range(offset, stop, step))
            previous_size = len(items)
    finally:
        prefetch.cancel()
