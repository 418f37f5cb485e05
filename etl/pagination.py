"""Offset pagination that survives a list moving under it, in constant memory.

``GET /keys`` lists keys newest first, 100 (or some other number) at a time, and ends
with an empty page. While we page, keys get created (the list shifts down: a key is
served twice) or deleted (the list shifts up: a key would be skipped). Each request
therefore overlaps the previous page by one key, and a cursor — the ``created_at`` of
the oldest key emitted so far, plus the hashes that share that instant — tells what
was already emitted:
- a key newer than the cursor (or tied with it and already emitted) is a repeat;
- a page whose first key is older than the cursor means keys slipped past: step back
  until the pages overlap again.
The cursor is all the state, so memory does not grow with the workspace.

The listing ends on a page that is not full and holds no key older than the cursor:
such keys are a set that only shrinks while we page (new keys are always the newest),
so a short page without them is the end in all but name. An empty page ends it at
offset 0; further on it may mean the list shrank below the offset while keys we have
not seen remain before it, so the client steps back as for a gap, and ends only when
that step back brought nothing new and the page is empty again. A
*full* page of repeats, and a listing past ``max_requests``, are errors: the server
is not honouring ``offset``.

Once the page size is known, full pages are fetched ahead (``lookahead`` in flight)
at their predicted offsets; a prediction that turns out wrong is simply discarded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from etl.errors import ApiError, PaginationError
from etl.records import KeyRecord

OVERLAP = 1


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One ``GET /keys`` answer: its records and the server's clock (``Date``)."""

    offset: int
    records: list[KeyRecord]
    server_time: datetime


@dataclass(frozen=True, slots=True)
class KeyPage:
    """Keys first seen in this listing, as delivered by one page of it."""

    workspace: str
    offset: int
    records: list[KeyRecord]
    server_time: datetime
    listed: int  # keys the server returned on this page, repeats included


class _Cursor:
    """Where the listing has got to: the oldest instant emitted and its keys."""

    def __init__(self) -> None:
        self.created_at: datetime | None = None
        self.tied: set[str] = set()

    def is_behind(self, record: KeyRecord) -> bool:
        """True when ``record`` is older than anything emitted (keys may have slipped)."""
        return self.created_at is not None and record.created_at < self.created_at

    def admit(self, record: KeyRecord) -> bool:
        """Record ``record`` as emitted; False when it already was (or is newer)."""
        if self.created_at is not None:
            if record.created_at > self.created_at:
                return False
            if record.created_at == self.created_at:
                if record.hash in self.tied:
                    return False
                self.tied.add(record.hash)
                return True
        self.created_at = record.created_at
        self.tied = {record.hash}
        return True


class _Prefetcher:
    """Page fetches submitted ahead of need, handed out by offset."""

    def __init__(self, fetch: Callable[[int], FetchedPage], executor: Executor) -> None:
        self._fetch = fetch
        self._executor = executor
        self._pending: deque[tuple[int, Future[FetchedPage]]] = deque()

    def get(self, offset: int) -> FetchedPage:
        while self._pending and self._pending[0][0] != offset:
            self._pending.popleft()[1].cancel()  # a prediction that did not come true
        future = self._pending.popleft()[1] if self._pending else None
        if future is None:
            future = self._executor.submit(self._fetch, offset)
        return future.result()

    def ahead(self, offsets: range) -> None:
        queued = {offset for offset, _ in self._pending}
        for offset in offsets:
            if offset not in queued:
                self._pending.append((offset, self._executor.submit(self._fetch, offset)))

    def cancel(self) -> None:
        while self._pending:
            self._pending.popleft()[1].cancel()


def _check_newest_first(items: list[KeyRecord], *, workspace: str, offset: int) -> None:
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
    lookahead: int,
    max_requests: int,
) -> Iterator[KeyPage]:
    """Yield every key of one listing exactly once, page by page."""
    prefetch = _Prefetcher(fetch, executor)
    cursor = _Cursor()
    offset = page_size = requests = step_back = 0
    progressed = True  # whether the last page read in full brought keys not seen before
    try:
        while True:
            requests += 1
            if requests > max_requests:
                raise PaginationError(
                    f"gave up after {max_requests} page requests (max_pages): "
                    "the listing does not end",
                    workspace=workspace,
                    offset=offset,
                )
            try:
                page = prefetch.get(offset)
            except ApiError as exc:
                raise exc.locate(workspace=workspace, offset=offset) from exc.__cause__
            items = page.records
            if not items and (offset == 0 or not progressed):
                return  # empty at the start, or again after a step back that found nothing
            _check_newest_first(items, workspace=workspace, offset=offset)
            page_size = max(page_size, len(items))
            if offset > 0 and (not items or cursor.is_behind(items[0])):
                # Keys were deleted before this offset; some may have slipped past it
                # (past the end, even: a list that shrank below the offset is empty there).
                step_back = step_back * 2 if step_back else max(page_size - OVERLAP, 1)
                offset = max(0, offset - step_back)
                prefetch.cancel()
                continue
            recovering, step_back = step_back > 0, 0
            fresh = [record for record in items if cursor.admit(record)]
            progressed = bool(fresh)
            if fresh:
                yield KeyPage(workspace, offset, fresh, page.server_time, len(items))
            elif len(items) < page_size or page_size <= OVERLAP:
                # Keys older than the cursor never appear later (new keys are newest),
                # so a page that is not full and holds none of them ends the listing.
                return
            elif not recovering:
                raise PaginationError(
                    f"a full page ({len(items)} keys) holds only keys already listed: "
                    "the server ignores offset or repeats pages",
                    workspace=workspace,
                    offset=offset,
                )
            offset += max(len(items) - OVERLAP, 1)
            if len(items) == page_size > OVERLAP:
                step = page_size - OVERLAP
                prefetch.ahead(range(offset, offset + step * lookahead, step))
    finally:
        prefetch.cancel()
