"""When a failed request is tried again, after how long, and when to give up.

Only a ``TransientFailure`` is retried: the request piece raises it for the failures
that another attempt may not repeat (etl.openrouter.status_errors says which statuses are).
Everything else goes through at once. Between attempts the policy waits what the
server asked (``Retry-After``, capped) or else an exponential backoff with "equal
jitter". It gives up after ``max_attempts`` tries, or sooner when the next wait would
end past the deadline: sleeping only to fail on waking helps nobody.

A page is retried, never the generator that pages (that would restart at offset 0).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from etl.core.errors import ApiError, ApiStatusError, ApiUnavailableError

T = TypeVar("T")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0


class TransientFailure(Exception):
    """One attempt failed in a way that another attempt may not.

    ``problem`` says what went wrong in a few words; ``status`` is the HTTP status
    (None for timeouts and dropped connections, whose exception is the ``__cause__``);
    ``retry_after`` is the wait the server asked for, if it asked; ``max_attempts``
    caps the tries for a failure that more of them would rarely mend (a host name that
    does not resolve, a port that refuses), below the policy's own cap.
    """

    def __init__(
        self,
        problem: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after
        self.max_attempts = max_attempts

    def give_up(self, message: str) -> ApiError:
        """The error to raise once the retries are spent, its text ``message``."""
        if self.status is None:
            return ApiUnavailableError(message)
        return ApiStatusError(message, status=self.status)


def _no_hook(name: str, failure: TransientFailure, delay: float, attempt: int) -> None:
    pass  # the default on_retry: nothing to count or log


@dataclass
class RetryPolicy:
    """Calls an attempt until it succeeds, fails for good, or the retries are spent."""

    max_attempts: int
    deadline_seconds: float
    max_retry_after_seconds: float
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    # Called before each wait, with what is retried, why, how long and which attempt failed.
    on_retry: Callable[[str, TransientFailure, float, int], None] = _no_hook

    def call(self, attempt: Callable[[], T], *, name: str) -> T:
        """``attempt()``, retried on TransientFailure; ``name`` ("GET /keys") heads messages."""
        started = self.monotonic()
        for number in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except TransientFailure as failure:
                delay = self.delay(number, failure)
                elapsed = self.monotonic() - started
                cap = min(self.max_attempts, failure.max_attempts or self.max_attempts)
                if number >= cap or elapsed + delay > self.deadline_seconds:
                    raise failure.give_up(
                        f"{name}: gave up after {number} attempt{'s' if number > 1 else ''} "
                        f"in {elapsed:.1f}s: "
                        f"{failure.problem}"
                    ) from failure.__cause__
                self.on_retry(name, failure, delay, number)
                self.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def delay(self, attempt: int, failure: TransientFailure) -> float:
        """The wait after failed ``attempt``: the server's Retry-After (capped), else backoff."""
        if failure.retry_after is not None:
            return min(failure.retry_after, self.max_retry_after_seconds)
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half the ceiling and all of it."""
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
