"""The pacer on its own: an injected clock and sleep, no network, no threads unless named."""

from __future__ import annotations

import threading

import pytest

from etl.openrouter.pacing import START_LIMIT, Pacer, Quota


class Clock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_pacer(clock: Clock, *, ceiling: int = 16, max_pause: float = 60.0) -> Pacer:
    return Pacer(
        ceiling=ceiling, max_pause_seconds=max_pause, monotonic=clock.monotonic, sleep=clock.sleep
    )


def fill(pacer: Pacer) -> list:
    """Acquire every place the current limit allows."""
    return [pacer.acquire() for _ in range(pacer.limit)]


def test_starts_at_four_or_the_ceiling_when_lower() -> None:
    assert make_pacer(Clock()).limit == START_LIMIT == 4
    assert make_pacer(Clock(), ceiling=2).limit == 2


def test_good_answers_while_the_limit_is_used_raise_it_by_about_one_per_round() -> None:
    pacer = make_pacer(Clock())
    for _ in range(4):  # rounds of answers, +1/limit for each while half the places are taken
        for ticket in fill(pacer):
            pacer.release(ticket, status=200)
    assert 5 <= pacer.limit <= 6


def test_the_limit_does_not_grow_while_it_is_not_used() -> None:
    pacer = make_pacer(Clock())
    for _ in range(100):
        pacer.release(pacer.acquire(), status=200)  # one request at a time
    assert pacer.limit == 4


def test_the_limit_never_passes_the_ceiling() -> None:
    pacer = make_pacer(Clock(), ceiling=6)
    for _ in range(200):
        for ticket in fill(pacer):
            pacer.release(ticket, status=200)
    assert pacer.limit == 6
    assert pacer.stats.peak_concurrency == 6


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_halves_the_limit_once_per_round(status: int) -> None:
    pacer = make_pacer(Clock())
    for _ in range(60):
        for ticket in fill(pacer):
            pacer.release(ticket, status=200)
    assert pacer.limit == 16
    tickets = fill(pacer)
    for ticket in tickets:  # sixteen throttled answers from one round: one cut
        pacer.release(ticket, status=status)
    assert pacer.limit == 8
    assert pacer.stats.throttled == 16
    pacer.release(pacer.acquire(), status=status)  # sent after the cut: cuts again
    assert pacer.limit == 4


def test_the_limit_never_drops_below_one() -> None:
    pacer = make_pacer(Clock())
    for _ in range(10):
        pacer.release(pacer.acquire(), status=429)
    assert pacer.limit == 1


def test_other_errors_and_lost_answers_leave_the_limit_alone() -> None:
    pacer = make_pacer(Clock())
    for status in (500, 502, 504, 404, None):
        pacer.release(pacer.acquire(), status=status)
    assert pacer.limit == 4 and pacer.stats.throttled == 0


def test_retry_after_pauses_every_other_request() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    pacer.release(pacer.acquire(), status=429, retry_after=2.5)
    assert clock.sleeps == []
    ticket = [None]
    other = threading.Thread(target=lambda: ticket.__setitem__(0, pacer.acquire()))
    other.start()
    other.join()
    assert clock.sleeps == [2.5]  # the other thread waited out the pause
    assert ticket[0] is not None


def test_the_thread_that_retries_is_not_paused_twice() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    pacer.release(pacer.acquire(), status=429, retry_after=2.5)
    # Its retry policy sleeps the Retry-After itself before it asks again.
    pacer.acquire()
    assert clock.sleeps == []


def test_a_pause_is_capped() -> None:
    clock = Clock()
    pacer = make_pacer(clock, max_pause=5.0)
    pacer.release(pacer.acquire(), status=429, retry_after=3600)
    waiter = threading.Thread(target=pacer.acquire)
    waiter.start()
    waiter.join()
    assert clock.sleeps == [5.0]


def test_a_spent_quota_holds_new_requests_until_its_reset() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    pacer.release(pacer.acquire(), status=200, quota=Quota(remaining=0, reset_seconds=0.75))
    pacer.acquire()
    assert clock.sleeps == [0.75]
    pacer.acquire()  # the reset has passed: no second wait
    assert clock.sleeps == [0.75]


def test_a_quota_left_only_for_the_requests_in_flight_counts_as_spent() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    first, *others = fill(pacer)  # three more in flight after the first answers
    pacer.release(first, status=200, quota=Quota(remaining=3, reset_seconds=0.5))
    pacer.acquire()
    assert clock.sleeps == [0.5]
    for ticket in others:
        pacer.release(ticket, status=200, quota=Quota(remaining=50, reset_seconds=0.1))
    pacer.acquire()
    assert clock.sleeps == [0.5]  # plenty left: no wait


def test_a_spent_quota_stops_the_limit_growing() -> None:
    pacer = make_pacer(Clock())
    for _ in range(40):
        for ticket in fill(pacer):
            pacer.release(ticket, status=200, quota=Quota(remaining=0, reset_seconds=None))
    assert pacer.limit == 4


def test_requests_wait_for_a_free_place_under_the_limit() -> None:
    pacer = make_pacer(Clock(), ceiling=2)
    held = fill(pacer)
    started = threading.Event()

    def third() -> None:
        pacer.acquire()
        started.set()

    waiter = threading.Thread(target=third)
    waiter.start()
    assert not started.wait(0.05)  # both places taken
    pacer.release(held[0], status=200)
    assert started.wait(5)
    waiter.join()
    assert pacer.stats.peak_concurrency == 2


def test_settled_concurrency_is_the_median_limit_of_the_last_half() -> None:
    pacer = make_pacer(Clock(), ceiling=8)
    assert pacer.stats.settled_concurrency == 0
    for _ in range(30):
        for ticket in fill(pacer):
            pacer.release(ticket, status=200)
    assert pacer.stats.settled_concurrency == 8
    limits = pacer.stats.limits
    assert limits[0] == 4 and max(limits) == 8


def test_429s_without_quota_headers_teach_a_rate_that_spaces_requests() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    for _ in range(20):  # twenty good answers within the last 0.1 s: 200 a second
        pacer.release(pacer.acquire(), status=200)
    pacer.release(pacer.acquire(), status=429)
    assert clock.sleeps == []
    pacer.acquire()
    pacer.acquire()
    assert clock.sleeps == [pytest.approx(1 / 200)]  # the second start waits its turn


def test_no_rate_is_learned_without_good_answers_to_measure() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    for _ in range(5):
        pacer.release(pacer.acquire(), status=429)
    for _ in range(5):
        pacer.release(pacer.acquire(), status=200)
    assert clock.sleeps == []


def test_429s_with_quota_headers_teach_no_rate() -> None:
    clock = Clock()
    pacer = make_pacer(clock)
    for _ in range(20):
        pacer.release(pacer.acquire(), status=200, quota=Quota(50, 1.0))
    pacer.release(pacer.acquire(), status=429, quota=Quota(5, None))
    for _ in range(3):
        pacer.release(pacer.acquire(), status=200)
    assert clock.sleeps == []
