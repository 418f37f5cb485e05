"""How many requests the client keeps in flight, and when every request must hold back.

One ``Pacer`` serves every thread of one client (fetch threads, and workspaces synced
at once). The rules a request meets, in order:

- **Pauses.** A 429's ``Retry-After`` pauses every request of the client, not only the
  one that will retry: the server spoke about the account, not about one page. When an
  answer's ``X-RateLimit-Remaining`` leaves nothing for the requests still in flight,
  new requests wait until its ``X-RateLimit-Reset``. Both waits are capped
  (``max_pause_seconds``: the client's ``max_retry_after_seconds``).
- **An adaptive concurrency limit** (AIMD, as in TCP's congestion avoidance). It starts
  at ``START_LIMIT`` (or the ceiling, when lower). A good answer while the limit is in
  use (half its places taken) raises it by ``1/limit``: about one more request per
  round of answers, up to the ceiling (``concurrency``). A 429 or 503 halves it, at most
  once per round: answers to requests sent before the last cut report the same
  congestion. An answer that reports the quota spent raises nothing.
- **A learned rate**, only for a server that answers 429 without ``X-RateLimit-*``
  headers: on a fast link even one request at a time can outrun a quota, so a limit on
  concurrency alone cannot stop the 429s. See ``_learn_rate``.
- The operator's ``requests_per_second`` (a ``RateLimiter``; none by default) is waited
  for by the client before it asks the pacer.

Latency is not a signal here: on loopback it rises with this process's own parsing
(two cores, the GIL), so cutting on it would slow the client for no server's sake.

``PacingStats`` keeps the figures a benchmark reports; ``settled_concurrency`` is the
median of the limit each request started under, over the last half of the requests.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

START_LIMIT = 4
DECREASE_FACTOR = 0.5
THROTTLE_STATUSES = frozenset({429, 503})
# The learned rate (a server that sends 429s without X-RateLimit-* headers): the first
# 429 of an episode sets it to what was accepted over the last RATE_WINDOW_SECONDS (the
# client was going too fast, so at least the server's rate); a 429 once the episode is
# RATE_WINDOW_SECONDS old sets it just under what the server accepted since the episode
# began (its allowance was used up all along: that is its rate). Each good answer adds
# RATE_STEP requests/s (about 10% a second at any rate). An episode ends after
# EPISODE_GAP_SECONDS without a 429. With fewer than RATE_EVIDENCE good answers to
# measure, nothing is learned (Retry-After and backoff still apply).
RATE_STEP = 0.1
RATE_MARGIN = 0.95
RATE_WINDOW_SECONDS = 0.1
RATE_EVIDENCE = 4  # good answers a measured rate needs; with fewer, no rate is learned
EPISODE_GAP_SECONDS = 2.0


class RateLimiter:
    """Spaces requests evenly: at most ``per_second`` starts per second, all threads."""

    def __init__(
        self,
        per_second: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller may start a request."""
        with self._lock:
            now = self._monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)


class Quota(NamedTuple):
    """What an answer's ``X-RateLimit-*`` headers said: requests left, seconds to reset."""

    remaining: int
    reset_seconds: float | None


class Ticket(NamedTuple):
    """One request let through: its sequence number (orders it against limit cuts)."""

    number: int


@dataclass
class PacingStats:
    """Throttled answers, the most requests seen in flight, and the limit each started under."""

    throttled: int = 0
    peak_concurrency: int = 0
    limits: list[int] = field(default_factory=list, repr=False)

    @property
    def settled_concurrency(self) -> int:
        """The median limit over the last half of the requests (0 before any request)."""
        if not self.limits:
            return 0
        return int(statistics.median_low(self.limits[len(self.limits) // 2 :]))


class Pacer:
    """The adaptive concurrency limit and the pauses of one client; thread-safe."""

    def __init__(
        self,
        *,
        ceiling: int,
        max_pause_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stats = PacingStats()
        self._ceiling = ceiling
        self._max_pause = max_pause_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        self._limit = float(min(START_LIMIT, ceiling))
        self._in_flight = 0
        self._issued = 0
        self._cut_at = 0  # tickets numbered up to this one were sent before the last cut
        self._paused_until = float("-inf")
        self._rate: float | None = None  # request starts per second; None: no cap
        self._next_start = float("-inf")
        self._started_at: float | None = None
        self._good = 0  # good answers, counted for the accepted rate
        self._episode: tuple[float, int] | None = None  # first 429's time, good answers then
        self._last_429 = float("-inf")
        self._rate_cut_at = 0
        self._recent_good: deque[float] = deque(maxlen=4096)
        self._cond = threading.Condition()
        # The pause each thread has already waited out (or will, retrying after a 429).
        self._local = threading.local()

    @property
    def limit(self) -> int:
        """Requests allowed in flight now (what paging fetches ahead)."""
        return int(self._limit)

    def acquire(self) -> Ticket:
        """Block until a request may start: no pause in force, and a free place in the limit."""
        with self._cond:
            while True:
                wait = self._pause_left()
                if wait > 0:
                    target = self._paused_until
                    self._cond.release()
                    try:
                        self._sleep(wait)
                    finally:
                        self._cond.acquire()
                    # Waited out, whatever a fake or coarse clock says now.
                    self._local.excused = target
                    continue
                if self._in_flight >= int(self._limit):
                    self._cond.wait()
                    continue
                self._in_flight += 1
                self._issued += 1
                stats = self.stats
                stats.peak_concurrency = max(stats.peak_concurrency, self._in_flight)
                stats.limits.append(int(self._limit))
                ticket = Ticket(self._issued)
                spacing = self._space_start()
                break
        if spacing > 0:
            self._sleep(spacing)  # its place is taken: the next request starts after it
        return ticket

    def _space_start(self) -> float:
        """Reserve this request's start under the learned rate: the seconds to wait."""
        now = self._monotonic()
        if self._started_at is None:
            self._started_at = now
        if self._rate is None:
            return 0.0
        start = max(now, self._next_start)
        self._next_start = start + 1.0 / self._rate
        return start - now

    def release(
        self,
        ticket: Ticket,
        *,
        status: int | None,
        retry_after: float | None = None,
        quota: Quota | None = None,
    ) -> None:
        """Learn from the answer to ``ticket``'s request (status None: no answer at all)."""
        with self._cond:
            # "In use": at least half the places taken. One request at a time (a listing
            # read page by page) must not talk the limit up to its ceiling.
            in_use = self._in_flight * 2 >= self._limit
            self._in_flight -= 1
            now = self._monotonic()
            if status in THROTTLE_STATUSES:
                self.stats.throttled += 1
                if ticket.number > self._cut_at:
                    self._limit = max(1.0, self._limit * DECREASE_FACTOR)
                    self._cut_at = self._issued
            if status == 429 and quota is None and ticket.number > self._rate_cut_at:
                self._learn_rate(now)
                self._rate_cut_at = self._issued
            if status == 429 and retry_after is not None:
                until = now + min(retry_after, self._max_pause)
                self._pause(until)
                # This thread sleeps the same wait in its retry policy before trying again.
                self._local.excused = max(self._excused(), until)
            spent = False
            if quota is not None and quota.remaining <= self._in_flight:
                # The requests still in flight may take what is left: hold new ones back.
                spent = True
                if quota.reset_seconds is not None:
                    self._pause(now + min(max(0.0, quota.reset_seconds), self._max_pause))
            if status == 200:
                self._good += 1
                self._recent_good.append(now)
                if self._rate is not None:
                    self._rate += RATE_STEP
            if status == 200 and in_use and not spent:
                self._limit = min(float(self._ceiling), self._limit + 1.0 / self._limit)
            self._cond.notify_all()

    def _learn_rate(self, now: float) -> None:
        """A 429 with no quota headers: cap the rate just under what the server accepts."""
        recent = self._recent_good
        while recent and recent[0] < now - RATE_WINDOW_SECONDS:
            recent.popleft()
        if self._episode is None or now - self._last_429 > EPISODE_GAP_SECONDS:
            self._episode = (now, self._good)
            # What was just accepted: at least the server's rate, or no 429 would come.
            if len(recent) >= RATE_EVIDENCE:
                self._rate = len(recent) / RATE_WINDOW_SECONDS
        else:
            began, good_then = self._episode
            accepted = self._good - good_then
            if now - began >= RATE_WINDOW_SECONDS and accepted >= RATE_EVIDENCE:
                # Throughout the episode the server's allowance was used up: what it
                # accepted in that time is its rate.
                self._rate = accepted / (now - began) * RATE_MARGIN
        self._last_429 = now

    def _pause(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)

    def _excused(self) -> float:
        excused: float = getattr(self._local, "excused", float("-inf"))
        return excused

    def _pause_left(self) -> float:
        if self._paused_until <= self._excused():
            return 0.0
        return self._paused_until - self._monotonic()
