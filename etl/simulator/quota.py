"""A request quota for the whole simulated server: a token bucket, in real time.

``burst`` tokens at most, refilled at ``rate`` per second; each API request takes one,
and a request that finds none is answered 429. Every answer carries the headers
OpenRouter sends with its limits (its 429 bodies quote them as ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset``, the reset in Unix milliseconds): here Limit is the
bucket's size, Remaining the whole tokens left, Reset the moment the bucket is full
again. A 429's ``Retry-After`` is the wait for the next token, in seconds (fractional,
as the fault switches' Retry-After may be). Quota time is wall time, not the simulated
clock: the quota is about how fast a client asks, not about the world's days.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class QuotaAnswer:
    """Whether a request may be served, and the headers that say how much is left."""

    allowed: bool
    headers: dict[str, str]


class TokenBucket:
    """``burst`` requests at once, ``rate`` per second sustained; thread-safe."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._epoch = epoch
        self._tokens = float(burst)
        self._updated = monotonic()
        self._lock = threading.Lock()

    def take(self) -> QuotaAnswer:
        """Take one token if there is one; the answer's headers describe the bucket after."""
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            tokens = self._tokens
        full_in = (self.burst - tokens) / self.rate
        headers = {
            "X-RateLimit-Limit": str(self.burst),
            "X-RateLimit-Remaining": str(int(tokens)),
            "X-RateLimit-Reset": str(math.ceil((self._epoch() + full_in) * 1000)),
        }
        if not allowed:
            next_token = (1.0 - tokens) / self.rate
            headers["Retry-After"] = f"{math.ceil(next_token * 1000) / 1000:g}"
        return QuotaAnswer(allowed, headers)
