"""A run told to stop (SIGINT, SIGTERM): one flag every thread of the run looks at.

The signal handler (main thread) only sets the flag; the run stops itself at safe
points: the page loop before each page, the workspace pool before it starts another,
each request before it is sent. Waits (rate limit, backoff, pauses) end the moment the
flag is set, and a thread waiting for a page fetched by another gives up on it within
``POLL_SECONDS``, so an in-flight request does not hold the run back.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from typing import TypeVar

from etl.core.errors import Interrupted

T = TypeVar("T")

POLL_SECONDS = 0.1


class Stop:
    """Set once, by whoever is told to stop the run; read by all its threads."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def request(self, signal_name: str) -> None:
        """Ask the run to stop (the first reason given is the one kept)."""
        if self.signal_name is None:
            self.signal_name = signal_name
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Interrupted once a stop was requested."""
        if self._event.is_set():
            raise Interrupted(self.signal_name or "a stop request")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when a stop is requested (the caller then checks)."""
        self._event.wait(max(0.0, seconds))

    def pause(self, seconds: float) -> None:
        """Sleep, then raise Interrupted if a stop was requested meanwhile."""
        self.sleep(seconds)
        self.check()

    def result(self, future: Future[T]) -> T:
        """``future.result()``, unless a stop is requested first: then Interrupted."""
        while not wait_for_futures([future], timeout=POLL_SECONDS).done:
            self.check()
        return future.result()
