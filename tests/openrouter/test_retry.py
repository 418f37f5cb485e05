"""The retry policy on its own: what it retries, how long it waits, when it gives up."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest

from etl.core.errors import ApiStatusError, ApiUnavailableError, AuthError
from etl.openrouter.retry import RetryPolicy, TransientFailure


class Clock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: Clock, **overrides: object) -> RetryPolicy:
    values: dict[str, object] = {
        "max_attempts": 5,
        "deadline_seconds": 120.0,
        "max_retry_after_seconds": 60.0,
        "sleep": clock.sleep,
        "monotonic": lambda: clock.now,
        "rng": random.Random(1),
    }
    values.update(overrides)
    return RetryPolicy(**values)  # type: ignore[arg-type]


def failing(*failures: Exception, then: str = "done") -> tuple[Callable[[], str], list[int]]:
    """An attempt that raises ``failures`` in turn, then returns ``then``."""
    queue = list(failures)
    calls: list[int] = []

    def attempt() -> str:
        calls.append(len(calls) + 1)
        if queue:
            raise queue.pop(0)
        return then

    return attempt, calls


def test_success_at_first_attempt_sleeps_never() -> None:
    clock = Clock()
    attempt, calls = failing()
    assert policy(clock).call(attempt, name="GET /keys") == "done"
    assert calls == [1] and clock.sleeps == []


def test_transient_failures_are_retried_until_success() -> None:
    clock = Clock()
    attempt, calls = failing(TransientFailure("HTTP 503", status=503), TransientFailure("x"))
    assert policy(clock).call(attempt, name="GET /keys") == "done"
    assert calls == [1, 2, 3] and len(clock.sleeps) == 2


def test_other_errors_pass_through_at_once() -> None:
    clock = Clock()
    attempt, calls = failing(AuthError("refused"))
    with pytest.raises(AuthError):
        policy(clock).call(attempt, name="GET /keys")
    assert calls == [1] and clock.sleeps == []


def test_backoff_has_equal_jitter_and_a_cap() -> None:
    retry = policy(Clock())
    for attempt in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        waits = {retry.backoff(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1  # jittered, so clients that failed together spread out


def test_retry_after_replaces_backoff_and_is_capped() -> None:
    clock = Clock()
    attempt, _ = failing(
        TransientFailure("HTTP 429", status=429, retry_after=7.0),
        TransientFailure("HTTP 429", status=429, retry_after=3600.0),
    )
    policy(clock, max_retry_after_seconds=60.0).call(attempt, name="GET /keys")
    assert clock.sleeps == [7.0, 60.0]


def test_attempts_are_bounded_and_the_last_status_is_kept() -> None:
    clock = Clock()
    attempt, calls = failing(*[TransientFailure("HTTP 503: busy", status=503)] * 9)
    with pytest.raises(ApiStatusError) as caught:
        policy(clock, max_attempts=3).call(attempt, name="GET /keys")
    assert calls == [1, 2, 3] and len(clock.sleeps) == 2
    assert caught.value.status == 503
    assert str(caught.value).startswith("GET /keys: gave up after 3 attempts in ")
    assert str(caught.value).endswith("s: HTTP 503: busy")


def test_connection_failures_give_up_as_unavailable_with_their_cause() -> None:
    def attempt() -> str:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as exc:
            raise TransientFailure("connection failed (ConnectError)") from exc

    with pytest.raises(ApiUnavailableError, match="gave up after 2 attempts") as caught:
        policy(Clock(), max_attempts=2).call(attempt, name="GET /keys")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_no_sleep_would_end_past_the_deadline() -> None:
    clock = Clock()
    attempt, calls = failing(*[TransientFailure("HTTP 429", status=429, retry_after=3.0)] * 99)
    with pytest.raises(ApiStatusError, match=r"gave up after 4 attempts in 9\.0s"):
        policy(clock, max_attempts=99, deadline_seconds=10.0).call(attempt, name="GET /keys")
    # 3 + 3 + 3 seconds waited; a fourth wait would have ended at 12s, past the 10s.
    assert clock.sleeps == [3.0, 3.0, 3.0] and len(calls) == 4


def test_retry_after_past_the_deadline_gives_up_without_waiting() -> None:
    clock = Clock()
    attempt, calls = failing(TransientFailure("HTTP 429", status=429, retry_after=100.0))
    with pytest.raises(ApiStatusError, match="gave up after 1 attempt in"):
        policy(clock, deadline_seconds=10.0, max_retry_after_seconds=600.0).call(
            attempt, name="GET /keys"
        )
    assert calls == [1] and clock.sleeps == []


def test_each_retry_is_reported_before_its_wait() -> None:
    clock = Clock()
    seen: list[tuple[str, str, float, int, int]] = []
    attempt, _ = failing(TransientFailure("HTTP 502", status=502, retry_after=2.0))

    def on_retry(name: str, failure: TransientFailure, delay: float, number: int) -> None:
        seen.append((name, failure.problem, delay, number, len(clock.sleeps)))

    policy(clock, on_retry=on_retry).call(attempt, name="GET /workspaces")
    assert seen == [("GET /workspaces", "HTTP 502", 2.0, 1, 0)]


def test_a_failure_may_cap_its_own_attempts_below_the_policy() -> None:
    # A host name that does not resolve gets one quick retry, whatever max_attempts says.
    clock = Clock()
    attempt, calls = failing(*[TransientFailure("does not resolve", max_attempts=2)] * 9)
    with pytest.raises(ApiUnavailableError, match="gave up after 2 attempts"):
        policy(clock, max_attempts=6).call(attempt, name="GET /keys")
    assert calls == [1, 2] and len(clock.sleeps) == 1 and clock.sleeps[0] <= 0.5
