"""HTTP client of the OpenRouter management API: one request retried, pages iterated.

A request is three pieces: ``_attempt`` here sends it once (rate limit, pacing,
counters, logging) and turns timeouts and dropped connections into a
``TransientFailure``; etl.openrouter.status_errors says what each error status becomes
(429 and 5xx are worth another try, the rest fail at once); etl.openrouter.retry
decides whether, and after how long, to try again; etl.openrouter.pacing decides how
many requests are in flight and when all of them hold back. One pacer (and the
operator's rate limit, if set) covers every request the client makes, whichever
workspace it is for.

A page is retried, never the generator that pages (that would restart at offset 0).

A client given a ``Stop`` (etl.core.stop) stops with the run: its waits end when the
stop is requested, no request is sent after it, and nobody waits for a page or key
fetched in another thread once it is (Interrupted instead).

Every error leaves the client with the key scrubbed from its text (``etl.core.redact``): the
server's own words, and payload values quoted in a PayloadError, may echo it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from etl import __version__
from etl.core.clock import utcnow
from etl.core.config import DEFAULT_WORKSPACE, Account, ClientSettings, Secret
from etl.core.errors import ApiError, PaginationError, PayloadError
from etl.core.exact_json import parse_json
from etl.core.key_fields import KeyRecord, Listing
from etl.core.log_context import ContextThreadPoolExecutor
from etl.core.redact import scrub
from etl.core.stop import Stop
from etl.openrouter import activity
from etl.openrouter.connect_errors import connect_failure
from etl.openrouter.fast_keys import list_key_page, read_key
from etl.openrouter.headers import rate_limit_quota, retry_after_seconds, server_time
from etl.openrouter.pacing import Pacer, PacingStats, RateLimiter
from etl.openrouter.paging import FetchedPage, KeyPage, iter_key_pages
from etl.openrouter.records import (
    WorkspaceRecord,
    parse_key,
    parse_key_list,
    parse_workspace_list,
)
from etl.openrouter.retry import RetryPolicy, TransientFailure
from etl.openrouter.status_errors import status_failure

log = logging.getLogger(__name__)

WORKSPACES_PAGE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """The answer of ``GET /keys/{hash}`` for a key that exists."""

    record: KeyRecord
    server_time: datetime


@dataclass
class ClientStats:
    """Counters of one client's traffic, and the concurrency its pacer settled at.

    ``throttled`` counts 429 and 503 answers; ``peak_concurrency`` is the most requests
    seen in flight at once; ``settled_concurrency`` is the median of the adaptive limit
    each request started under, over the last half of the requests (etl.openrouter.pacing).
    """

    requests: int = 0
    retries: int = 0
    pacing: PacingStats = field(default_factory=PacingStats, repr=False)

    @property
    def throttled(self) -> int:
        """Answers that were 429 or 503."""
        return self.pacing.throttled

    @property
    def peak_concurrency(self) -> int:
        """The most requests in flight at once."""
        return self.pacing.peak_concurrency

    @property
    def settled_concurrency(self) -> int:
        """The median concurrency limit over the last half of the requests."""
        return self.pacing.settled_concurrency


class OpenRouterClient:
    """Reads keys and workspaces from the management API of one account."""

    def __init__(
        self,
        settings: ClientSettings,
        management_key: Secret,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        epoch: Callable[[], float] = time.time,
        stop: Stop | None = None,
    ) -> None:
        self.settings = settings
        self._stop = stop or Stop()
        if stop is not None:
            sleep = stop.sleep  # every wait of the client ends when the run is stopped
        self.stats = ClientStats()
        self._key = management_key
        self._now = now
        self._lock = threading.Lock()
        self._pacer = Pacer(
            ceiling=settings.concurrency,
            max_pause_seconds=settings.max_retry_after_seconds,
            monotonic=monotonic,
            sleep=sleep,
        )
        self.stats.pacing = self._pacer.stats
        self._rate = (
            RateLimiter(settings.requests_per_second, monotonic=monotonic, sleep=sleep)
            if settings.requests_per_second is not None
            else None
        )
        self._epoch = epoch
        self._retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            deadline_seconds=settings.retry_deadline_seconds,
            max_retry_after_seconds=settings.max_retry_after_seconds,
            sleep=sleep,
            monotonic=monotonic,
            rng=rng or random.Random(),
            on_retry=self._count_retry,
        )
        # A fetch thread logs with the workspace (and run) of the page it fetches.
        self._executor = ContextThreadPoolExecutor(settings.concurrency, "keyledger-fetch")
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {management_key.reveal()}",
                "User-Agent": f"keyledger/{__version__}",
                "Accept": "application/json",
            },
            timeout=settings.timeout_seconds,
            limits=httpx.Limits(max_connections=settings.concurrency),
            transport=transport,
        )

    def __enter__(self) -> OpenRouterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the fetch threads and close the connections."""
        if self._stop.requested:
            # A request still in flight is not waited for (it ends at its timeout at
            # worst, and its thread raises Interrupted before sending another); its
            # connections close with the process.
            self._executor.shutdown(wait=False, cancel_futures=True)
            return
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    # -- the endpoints ---------------------------------------------------

    def iter_key_pages(
        self, workspace_id: str = DEFAULT_WORKSPACE, *, expected_keys: int | None = None
    ) -> Iterator[KeyPage]:
        """Every key of one workspace (disabled and expired ones too), once each;
        ``expected_keys``: about how many it held last time, if known (paging fetches no
        further ahead than that)."""
        with self._scrubbed_errors():
            yield from iter_key_pages(
                lambda offset: self.fetch_key_page(workspace_id, offset),
                workspace=workspace_id,
                executor=self._executor,
                lookahead=lambda: self._pacer.limit,
                max_requests=self.settings.max_pages,
                expected_keys=expected_keys,
                result=self._stop.result,
            )

    def fetch_key_page(self, workspace_id: str, offset: int) -> FetchedPage:
        """One page of ``GET /keys`` at ``offset``."""
        params: dict[str, Any] = {
            "offset": offset,
            "include_disabled": "true",
            "include_expired": "true",
        }
        if workspace_id != DEFAULT_WORKSPACE:
            params["workspace_id"] = workspace_id
        with self._scrubbed_errors():
            try:
                response = self._get("keys", params)
                assert response is not None
                # The usual page is read by msgspec; any other by the careful parser,
                # which words every refusal (etl.openrouter.fast_keys).
                records: Sequence[Listing] | None = list_key_page(
                    response.content, partial(self._read_listed, workspace_id, offset)
                )
                if records is None:
                    records = parse_key_list(self._json(response), offset=offset)
            except ApiError as exc:
                raise exc.locate(workspace=workspace_id, offset=offset) from exc.__cause__
        return FetchedPage(offset, records, server_time(response, self._now))

    def _read_listed(self, workspace_id: str, offset: int, item: Any) -> KeyRecord:
        """A listed key read in full (when the store finds it new or changed); its
        refusal named as the page's would be, the key scrubbed from it."""
        with self._scrubbed_errors():
            try:
                return read_key(item, offset=offset)
            except ApiError as exc:
                raise exc.locate(workspace=workspace_id, offset=offset) from exc.__cause__

    def get_key(self, key_hash: str) -> KeyLookup | None:
        """``GET /keys/{hash}``; None when the key no longer exists (404)."""
        with self._scrubbed_errors():
            response = self._get(f"keys/{quote(key_hash, safe='')}", {}, missing_ok=True)
            if response is None:
                return None
            body = self._json(response)
            if not isinstance(body, dict) or "data" not in body:
                raise PayloadError(f"key {key_hash}: the response has no 'data' field")
            return KeyLookup(parse_key(body["data"]), server_time(response, self._now))

    def get_keys(self, hashes: list[str]) -> Iterator[tuple[str, KeyLookup | None]]:
        """``get_key`` for each hash, as many at once as ``concurrency`` allows."""
        futures = [self._executor.submit(self.get_key, key_hash) for key_hash in hashes]
        return self._results(hashes, futures)

    def _results(
        self, hashes: list[str], futures: list[Future[KeyLookup | None]]
    ) -> Iterator[tuple[str, KeyLookup | None]]:
        try:
            for key_hash, future in zip(hashes, futures, strict=True):
                yield key_hash, self._stop.result(future)
        finally:
            for future in futures:
                future.cancel()  # the caller stopped early: the rest is not wanted

    def list_workspaces(self) -> list[WorkspaceRecord]:
        """Every workspace the management key can see, through offset pages of 100."""
        with self._scrubbed_errors():
            return self._list_workspaces()

    def _list_workspaces(self) -> list[WorkspaceRecord]:
        workspaces: list[WorkspaceRecord] = []
        seen: set[str] = set()  # workspaces are few; a set is cheap here
        offset = 0
        for _ in range(self.settings.max_pages):
            params = {"offset": offset, "limit": WORKSPACES_PAGE_LIMIT}
            response = self._get("workspaces", params)
            assert response is not None
            page = parse_workspace_list(self._json(response), offset=offset)
            if not page:
                return workspaces
            fresh = [w for w in page if w.id not in seen]
            if not fresh:
                raise PaginationError(
                    "GET /workspaces repeats workspaces already listed: the server ignores offset",
                    offset=offset,
                )
            seen.update(w.id for w in fresh)
            workspaces.extend(fresh)
            offset += len(page)
        raise PaginationError(
            f"GET /workspaces did not end within {self.settings.max_pages} pages", offset=offset
        )

    def get_activity(
        self, day: date, *, workspace_id: str | None = None, api_key_hash: str | None = None
    ) -> activity.ActivityReport:
        """``GET /activity`` for one completed UTC day, split per workspace; narrowed to
        one workspace or key when given (etl.openrouter.activity)."""
        params = activity.activity_params(day, workspace_id=workspace_id, api_key_hash=api_key_hash)
        with self._scrubbed_errors():
            response = self._get(activity.PATH, params)
            assert response is not None
            items = activity.parse_activity(
                self._json(response), day=day, workspace_id=workspace_id
            )
            return activity.ActivityReport(day, items, server_time(response, self._now))

    @contextmanager
    def _scrubbed_errors(self) -> Iterator[None]:
        """Let ApiErrors out only with every echo of the key scrubbed from their text."""
        try:
            yield
        except ApiError as exc:
            exc.message = scrub(exc.message, self._key.reveal())
            exc.args = (exc.message,)
            raise

    # -- one request, retried --------------------------------------------------

    def _get(
        self, path: str, params: dict[str, Any], *, missing_ok: bool = False
    ) -> httpx.Response | None:
        """GET with retries; None for a 404 when ``missing_ok``."""
        return self._retry.call(
            lambda: self._attempt(path, params, missing_ok=missing_ok), name=f"GET /{path}"
        )

    def _attempt(
        self, path: str, params: dict[str, Any], *, missing_ok: bool
    ) -> httpx.Response | None:
        """One GET: the response, None for a wanted 404, else the error it amounts to."""
        try:
            response = self._paced_get(path, params)
        except httpx.TimeoutException as exc:
            raise TransientFailure(f"no answer within {self.settings.timeout_seconds:g}s") from exc
        except httpx.ConnectError as exc:
            raise connect_failure(exc, self.settings.base_url) from exc
        except httpx.TransportError as exc:
            raise TransientFailure(f"connection failed ({type(exc).__name__})") from exc
        if response.status_code == 200:
            return response
        if response.status_code == 404 and missing_ok:
            return None
        raise status_failure(
            f"GET /{path}",
            response.status_code,
            server_message=self._server_message(response),
            retry_after=retry_after_seconds(response),
        )

    def _paced_get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        """One GET once the pacer lets it start; the pacer learns from its answer."""
        # The rate limit is waited for before the pacer, so a sleeper holds no place.
        if self._rate is not None:
            self._rate.wait()
        self._stop.check()
        ticket = self._pacer.acquire()
        response: httpx.Response | None = None
        try:
            self._stop.check()  # a pause may have ended early, for the stop
            with self._lock:
                self.stats.requests += 1
            response = self._http.get(path, params=params)
        finally:
            if response is None:
                self._pacer.release(ticket, status=None)
            else:
                self._pacer.release(
                    ticket,
                    status=response.status_code,
                    retry_after=retry_after_seconds(response),
                    quota=rate_limit_quota(response, epoch_now=self._epoch()),
                )
        return response

    def _count_retry(
        self, name: str, failure: TransientFailure, delay: float, attempt: int
    ) -> None:
        with self._lock:
            self.stats.retries += 1
        # Info, not a warning: a retry that ends well needs nobody (the summary counts
        # them); one that does not ends in the workspace's error.
        log.info("%s: %s; retrying in %.1fs (attempt %d)", name, failure.problem, delay, attempt)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return parse_json(response.content)
        except (ValueError, RecursionError) as exc:
            raise PayloadError(
                f"the response is not valid JSON ({len(response.content)} bytes): {exc}"[:300]
            ) from exc

    def _server_message(self, response: httpx.Response) -> str | None:
        """The server's ``error.message``, short, and scrubbed of the key in any form."""
        try:
            message = parse_json(response.content)["error"]["message"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        if not isinstance(message, str):
            return None
        # Scrubbed before it is cut short, so the cut cannot leave part of an echo behind.
        return scrub(message, self._key.reveal())[:200]


def client_for(account: Account, stop: Stop | None = None) -> OpenRouterClient:
    """The client of one configured account: its settings and its management key (and
    the run's ``stop``, if it can be stopped)."""
    return OpenRouterClient(account.client, account.management_key, stop=stop)
