"""The API client through httpx.MockTransport: paging, retries, limits, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from etl.core.config import ClientSettings, Secret
from etl.core.errors import (
    ApiStatusError,
    ApiUnavailableError,
    AuthError,
    PaginationError,
    PayloadError,
)
from etl.openrouter.client import OpenRouterClient, RateLimiter
from etl.simulator.server import SimulatorServer, run_simulator
from etl.simulator.service import Faults
from etl.simulator.world import World
from tests.helpers import SECRET, error_body, json_response, key_payload, secret, settings

WORKSPACE = "0df9e665-d932-5740-b2c7-b52af166bc11"
SIM_TOKEN = "sk-or-v1-simulator-token"
SERVER_DATE = datetime(2026, 11, 2, 23, 59, 58, tzinfo=timezone.utc)


class FakeKeysApi:
    """An in-memory ``GET /keys``: newest first, ``page_size`` a page, mutable between calls."""

    def __init__(self, count: int, *, page_size: int = 100) -> None:
        self.keys = [key_payload(n) for n in range(count)]  # n=0 is the newest
        self.page_size = page_size
        self.requests: list[httpx.Request] = []
        self.after_page: Callable[[FakeKeysApi, int], None] = lambda api, offset: None
        self._lock = threading.Lock()
        self._next = count

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            offset = int(request.url.params.get("offset", "0"))
            page = self.keys[offset : offset + self.page_size]
            self.after_page(self, offset)
        return json_response(200, {"data": page}, date=format_datetime(SERVER_DATE, usegmt=True))

    def create(self) -> None:
        """A key created now: newest of all, so it goes first."""
        self._next += 1
        self.keys.insert(0, key_payload(-self._next))

    def offsets(self) -> list[int]:
        return [int(r.url.params["offset"]) for r in self.requests]


def make_client(
    handler: Callable[[httpx.Request], httpx.Response], **overrides: Any
) -> tuple[OpenRouterClient, list[float]]:
    """A client on a MockTransport whose sleeps are recorded, not slept."""
    sleeps: list[float] = []
    client = OpenRouterClient(
        settings(**overrides),
        secret(),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )
    return client, sleeps


def hashes(client: OpenRouterClient, workspace: str = WORKSPACE) -> list[str]:
    return [r.hash for page in client.iter_key_pages(workspace) for r in page.records]


# -- paging ------------------------------------------------------------------------


def test_pages_end_on_an_empty_page_right_past_the_last_key() -> None:
    api = FakeKeysApi(95, page_size=40)  # a server whose pages are not 100
    client, _ = make_client(api.handler, concurrency=1)
    with client:
        got = hashes(client)
    assert got == [k["hash"] for k in api.keys]
    # 40 keys, then 40 (overlapping one), then the last 17, then only the last key again,
    # then the empty page right past it, and those two once more (a key deleted in
    # between would have moved one up to 94): only an empty page ends a listing.
    assert api.offsets() == [0, 39, 78, 94, 95, 94, 95]


def test_short_page_mid_list_does_not_end_the_listing() -> None:
    api = FakeKeysApi(120)
    full_handler = api.handler

    def short_first_page(request: httpx.Request) -> httpx.Response:
        response = full_handler(request)
        if request.url.params["offset"] == "0":  # a server that returns fewer mid-list
            return json_response(200, {"data": api.keys[:10]})
        return response

    client, _ = make_client(short_first_page, concurrency=1)
    with client:
        assert hashes(client) == [k["hash"] for k in api.keys]


def test_every_key_is_requested_with_disabled_and_expired() -> None:
    api = FakeKeysApi(3)
    client, _ = make_client(api.handler)
    with client:
        hashes(client)
    for request in api.requests:
        assert request.url.params["include_disabled"] == "true"
        assert request.url.params["include_expired"] == "true"
        assert request.url.params["workspace_id"] == WORKSPACE
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert request.url.path == "/api/v1/keys"


def test_default_workspace_sends_no_workspace_id() -> None:
    api = FakeKeysApi(3)
    client, _ = make_client(api.handler)
    with client:
        hashes(client, "default")
    assert all("workspace_id" not in r.url.params for r in api.requests)


def test_pages_carry_server_date_and_key_count() -> None:
    api = FakeKeysApi(150)
    client, _ = make_client(api.handler)
    with client:
        pages = list(client.iter_key_pages(WORKSPACE))
    assert [p.server_time for p in pages] == [SERVER_DATE] * len(pages)
    assert sum(len(p.records) for p in pages) == 150
    assert pages[0].listed == 100


def test_missing_date_header_falls_back_to_local_clock() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return json_response(200, {"data": [key_payload()] if offset == 0 else []})

    local = datetime(2030, 1, 1, tzinfo=timezone.utc)
    client = OpenRouterClient(
        settings(), secret(), transport=httpx.MockTransport(handler), now=lambda: local
    )
    with client:
        assert next(client.iter_key_pages("default")).server_time == local


def test_key_created_while_paging_is_not_yielded_twice() -> None:
    api = FakeKeysApi(250)

    def create_during_first_pages(a: FakeKeysApi, offset: int) -> None:
        if len(a.requests) <= 3:
            a.create()  # a new key after each of the first three requests

    api.after_page = create_during_first_pages
    client, _ = make_client(api.handler, concurrency=1)
    with client:
        got = hashes(client)
    assert len(got) == len(set(got)) == 250  # the 250 that existed; each exactly once
    # 0, 99, 198 bring keys (each page starts a key earlier: one was created); then a
    # page of keys already listed, the empty page right past it, the page before that
    # re-read, and the empty page again: the end.
    offsets = api.offsets()
    assert offsets[:3] == [0, 99, 198] and len(offsets) == 7
    assert offsets[4] == offsets[6] == offsets[5] + 1


def test_keys_created_between_every_two_requests_fail_rather_than_guess_the_end() -> None:
    api = FakeKeysApi(250)
    api.after_page = lambda a, offset: a.create()
    client, _ = make_client(api.handler, concurrency=1)
    with client, pytest.raises(PaginationError, match="keys change between every two"):
        hashes(client)


def test_key_deleted_while_paging_does_not_hide_others() -> None:
    api = FakeKeysApi(350)
    original = [k["hash"] for k in api.keys]
    deleted: list[str] = []

    def delete_first(a: FakeKeysApi, offset: int) -> None:
        # Three keys go after each page: more than the one-key overlap can absorb.
        for _ in range(3):
            if len(a.keys) > 320:
                deleted.append(a.keys.pop(0)["hash"])

    api.after_page = delete_first
    client, _ = make_client(api.handler, concurrency=1)
    with client:
        got = hashes(client)
    assert len(got) == len(set(got))
    survivors = [h for h in original if h not in deleted]
    assert set(survivors) <= set(got)  # nothing that still exists was skipped


def test_list_shrinking_below_the_next_offset_does_not_end_the_listing_early() -> None:
    # 101 keys: page 0 serves 100, then two keys before offset 99 go. The page at 99 is
    # now empty, though the 101st key was never listed: an empty page there is a gap,
    # not the end. (Found by the socket drift test under load: the tail was lost.)
    api = FakeKeysApi(101)
    last = api.keys[-1]["hash"]

    def delete_two_once(a: FakeKeysApi, offset: int) -> None:
        if offset == 0 and len(a.keys) == 101:
            del a.keys[:2]

    api.after_page = delete_two_once
    client, _ = make_client(api.handler, concurrency=1)
    with client:
        got = hashes(client)
    assert last in got
    assert len(got) == len(set(got))


def test_listing_with_prefetch_matches_sequential_listing() -> None:
    api = FakeKeysApi(1234)
    client, _ = make_client(api.handler, concurrency=4)
    with client:
        got = hashes(client)
    assert got == [k["hash"] for k in api.keys]


def test_server_ignoring_offset_is_an_error_naming_workspace_and_offset() -> None:
    api = FakeKeysApi(250)

    def ignore_offset(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"data": api.keys[:100]})

    client, _ = make_client(ignore_offset)
    with client, pytest.raises(PaginationError) as caught:
        hashes(client)
    message = str(caught.value)
    assert f"workspace {WORKSPACE}, offset " in message
    assert "ignores offset" in message


def test_small_listing_served_at_every_offset_is_an_error() -> None:
    api = FakeKeysApi(30)

    def repeat(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"data": api.keys})

    client, _ = make_client(repeat)
    with client, pytest.raises(PaginationError, match=r"offset \d+: .*ignores offset"):
        hashes(client)


def test_max_pages_bounds_a_listing() -> None:
    api = FakeKeysApi(500, page_size=10)
    client, _ = make_client(api.handler, max_pages=5)
    with client, pytest.raises(PaginationError, match="max_pages"):
        hashes(client)
    assert len(api.offsets()) <= 5 + 4  # consumed pages plus at most one lookahead


def test_bad_key_names_field_hash_workspace_and_offset() -> None:
    api = FakeKeysApi(150)
    api.keys[120]["usage"] = "12.5"
    client, _ = make_client(api.handler, concurrency=1)
    # A listed key is read in full when the store finds it new or changed: so here.
    with client, pytest.raises(PayloadError) as caught:
        [r.full() for page in client.iter_key_pages(WORKSPACE) for r in page.records]
    message = str(caught.value)
    assert "'usage'" in message
    assert api.keys[120]["hash"] in message
    assert f"workspace {WORKSPACE}, offset 99" in message


def test_malformed_json_page_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=b'{"data": [{"hash": "ab', headers={})

    client, _ = make_client(handler)
    with client, pytest.raises(PayloadError, match="not valid JSON") as caught:
        hashes(client)
    assert "offset 0" in str(caught.value)
    assert len(calls) == 1


# -- other endpoints ---------------------------------------------------------------


def test_workspaces_are_listed_in_pages_of_100() -> None:
    workspaces = [
        {"id": f"00000000-0000-4000-8000-{n:012x}", "name": f"w{n}", "slug": f"w{n}"}
        for n in range(230)
    ]
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), request.url.params["limit"]
        seen.append((str(offset), limit))
        return json_response(200, {"data": workspaces[offset : offset + 100], "total_count": 230})

    client, _ = make_client(handler)
    with client:
        listed = client.list_workspaces()
    assert [w.id for w in listed] == [w["id"] for w in workspaces]
    assert seen == [("0", "100"), ("100", "100"), ("200", "100"), ("230", "100")]


def test_get_key_404_means_gone() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/gone"):
            return json_response(404, error_body(404, "Resource not found"))
        return json_response(200, {"data": key_payload(1)}, date="Mon, 02 Nov 2026 10:00:00 GMT")

    client, _ = make_client(handler)
    with client:
        assert client.get_key("gone") is None
        found = client.get_key("abc")
    assert found is not None and found.record.hash == f"{1:064x}"
    assert found.server_time == datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
    assert calls == ["/api/v1/keys/gone", "/api/v1/keys/abc"]  # 404 not retried


# -- retries -----------------------------------------------------------------------


def scripted(
    *responses: httpx.Response | Exception,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    """A handler that plays ``responses`` in order, then answers an empty page."""
    queue = list(responses)
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        item = queue.pop(0) if queue else json_response(200, {"data": []})
        if isinstance(item, Exception):
            raise item
        return item

    return handler, calls


def test_429_waits_for_retry_after_seconds() -> None:
    handler, calls = scripted(
        json_response(429, error_body(429, "Rate limit exceeded"), **{"retry-after": "7"})
    )
    client, sleeps = make_client(handler)
    with client:
        assert hashes(client) == []
    assert sleeps == [7.0]
    assert len(calls) == 2


def test_429_retry_after_http_date_is_read_against_server_clock() -> None:
    date = format_datetime(SERVER_DATE, usegmt=True)
    later = format_datetime(SERVER_DATE.replace(second=0, minute=0, hour=0, day=3), usegmt=True)
    handler, _ = scripted(
        json_response(429, error_body(429, "slow down"), date=date, **{"retry-after": later})
    )
    client, sleeps = make_client(handler)
    with client:
        hashes(client)
    assert sleeps == [2.0]  # 23:59:58 -> 00:00:00, whatever the local clock says


def test_retry_after_is_capped() -> None:
    handler, _ = scripted(json_response(429, error_body(429, "x"), **{"retry-after": "86400"}))
    client, sleeps = make_client(handler, max_retry_after_seconds=30)
    with client:
        hashes(client)
    assert sleeps == [30.0]


def test_429_without_retry_after_backs_off_exponentially_with_jitter() -> None:
    handler, _ = scripted(*[json_response(429, error_body(429, "x")) for _ in range(4)])
    client, sleeps = make_client(handler, max_attempts=5)
    with client:
        hashes(client)
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= slept <= ceiling
    assert len(set(sleeps)) == 4


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried(status: int) -> None:
    handler, calls = scripted(json_response(status, error_body(status, "oops")))
    client, sleeps = make_client(handler)
    with client:
        assert hashes(client) == []
    assert len(calls) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("body", [b"<html>Bad Gateway</html>", b'{"error": {"code": 50', b""])
def test_5xx_with_garbled_body_is_retried(body: bytes) -> None:
    handler, calls = scripted(httpx.Response(502, content=body))
    client, _ = make_client(handler)
    with client:
        hashes(client)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadError("reset"),
    ],
)
def test_timeouts_and_connection_errors_are_retried(failure: Exception) -> None:
    handler, calls = scripted(failure, failure)
    client, sleeps = make_client(handler)
    with client:
        hashes(client)
    assert len(calls) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 404, 405, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    handler, calls = scripted(
        json_response(status, error_body(status, "Invalid request parameters"))
    )
    client, sleeps = make_client(handler)
    with client, pytest.raises(ApiStatusError) as caught:
        hashes(client)
    assert len(calls) == 1 and sleeps == []
    assert caught.value.status == status
    assert "Invalid request parameters" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_one_line_without_the_key(status: int) -> None:
    body = error_body(status, f"Invalid credentials for {SECRET}")  # a server echoing the key
    handler, calls = scripted(json_response(status, body))
    client, _ = make_client(handler)
    with client, pytest.raises(AuthError) as caught:
        hashes(client)
    message = str(caught.value)
    assert "refused the management key" in message
    assert SECRET not in message and "\n" not in message
    assert len(calls) == 1


def test_server_message_is_redacted_of_the_key() -> None:
    handler, _ = scripted(json_response(400, error_body(400, f"bad token {SECRET}")))
    client, _ = make_client(handler)
    with client, pytest.raises(ApiStatusError) as caught:
        hashes(client)
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


def test_attempts_are_bounded() -> None:
    handler, calls = scripted(*[json_response(503, error_body(503, "busy")) for _ in range(10)])
    client, sleeps = make_client(handler, max_attempts=3)
    with client, pytest.raises(ApiStatusError, match="gave up after 3 attempts") as caught:
        hashes(client)
    assert len(calls) == 3 and len(sleeps) == 2
    assert "HTTP 503: busy" in str(caught.value)
    assert "offset 0" in str(caught.value)


def test_overall_deadline_stops_retrying() -> None:
    failure = httpx.ConnectError("refused")
    handler, calls = scripted(*[failure] * 10)
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    client = OpenRouterClient(
        settings(max_attempts=100, retry_deadline_seconds=5),
        secret(),
        transport=httpx.MockTransport(handler),
        sleep=sleep,
        monotonic=lambda: clock[0],
    )
    with client, pytest.raises(ApiUnavailableError, match="gave up") as caught:
        hashes(client)
    assert clock[0] <= 5
    assert len(calls) < 10
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_retry_after_beyond_deadline_gives_up_at_once() -> None:
    handler, calls = scripted(json_response(429, error_body(429, "x"), **{"retry-after": "100"}))
    client, sleeps = make_client(handler, retry_deadline_seconds=10, max_retry_after_seconds=600)
    with client, pytest.raises(ApiStatusError, match="HTTP 429"):
        hashes(client)
    assert sleeps == [] and len(calls) == 1


# -- rate limit and concurrency --------------------------------------------------------


def test_rate_limiter_spaces_requests() -> None:
    clock = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    limiter = RateLimiter(4, monotonic=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert sleeps == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_client_requests_wait_for_the_rate_limit() -> None:
    api = FakeKeysApi(450)
    sleeps: list[float] = []
    client = OpenRouterClient(
        settings(requests_per_second=2, concurrency=1),
        secret(),
        transport=httpx.MockTransport(api.handler),
        sleep=sleeps.append,
        monotonic=lambda: 1000.0,  # a frozen clock: every wait is the limiter's
    )
    with client:
        hashes(client)
    # 0, 99, 198, 297, 396 (short), 449 (nothing new), 450 (empty), 449 and 450 again
    assert len(api.requests) == 9
    assert sleeps == pytest.approx([0.5 * n for n in range(1, 9)])


def test_one_concurrency_bound_covers_every_workspace() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    api = FakeKeysApi(800)

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.005)
        try:
            return api.handler(request)
        finally:
            with lock:
                in_flight -= 1

    client, _ = make_client(handler, concurrency=3)
    with client:
        workers = [
            threading.Thread(
                target=hashes, args=(client, f"00000000-0000-4000-8000-00000000000{n}")
            )
            for n in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert peak == 3  # reached, never exceeded, with four workspaces paging at once


# -- pacing: the adaptive limit and the pauses every request honours ------------------


def test_no_rate_cap_by_default() -> None:
    api = FakeKeysApi(450)
    sleeps: list[float] = []
    client = OpenRouterClient(
        ClientSettings(base_url="https://openrouter.test/api/v1"),
        secret(),
        transport=httpx.MockTransport(api.handler),
        sleep=sleeps.append,
        monotonic=lambda: 1000.0,  # a frozen clock: any wait would show as a sleep
    )
    with client:
        assert len(hashes(client)) == 450
    assert sleeps == []


def test_429_pauses_the_requests_of_every_other_thread() -> None:
    handler, _ = scripted(
        json_response(429, error_body(429, "Rate limit exceeded"), **{"retry-after": "2"})
    )
    client, sleeps = make_client(handler, max_attempts=1)
    with client:
        with pytest.raises(ApiStatusError, match="HTTP 429"):
            client.get_key("a" * 64)
        other = threading.Thread(target=client.list_workspaces)
        other.start()
        other.join()
    assert sleeps == [pytest.approx(2.0, abs=0.1)]  # the other thread waited out the pause
    assert client.stats.throttled == 1


def test_a_spent_quota_holds_the_next_request_until_its_reset() -> None:
    api = FakeKeysApi(0)

    def handler(request: httpx.Request) -> httpx.Response:
        response = api.handler(request)
        response.headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0.5"})
        return response

    client, sleeps = make_client(handler)
    with client:
        assert hashes(client) == []
        assert hashes(client) == []
    assert sleeps == [pytest.approx(0.5, abs=0.1)]


def test_openrouter_reset_in_unix_milliseconds_is_honoured() -> None:
    api = FakeKeysApi(0)

    def handler(request: httpx.Request) -> httpx.Response:
        response = api.handler(request)
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000001500"}
        response.headers.update(headers)
        return response

    sleeps: list[float] = []
    client = OpenRouterClient(
        settings(),
        secret(),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        epoch=lambda: 1_800_000_000.0,
    )
    with client:
        hashes(client)
        hashes(client)
    assert sleeps == [pytest.approx(1.5, abs=0.1)]


def test_lookahead_follows_the_current_limit_not_the_ceiling() -> None:
    api = FakeKeysApi(500, page_size=10)
    client, _ = make_client(api.handler, concurrency=16, max_pages=5)
    with client, pytest.raises(PaginationError, match="max_pages"):
        hashes(client)
    assert len(api.offsets()) <= 5 + 4  # the limit starts at 4 of the ceiling's 16


def test_stats_count_throttled_answers_and_the_settled_concurrency() -> None:
    api = FakeKeysApi(3000)
    throttled = iter([True, False, True])

    def handler(request: httpx.Request) -> httpx.Response:
        if next(throttled, False):
            return json_response(503, error_body(503, "busy"))
        return api.handler(request)

    client, _ = make_client(handler, concurrency=8)
    with client:
        assert len(hashes(client)) == 3000
    stats = client.stats
    assert stats.throttled == 2 and stats.retries == 2
    assert stats.requests == len(api.requests) + 2
    assert 1 <= stats.settled_concurrency <= 8
    assert 1 <= stats.peak_concurrency <= 8


# -- end to end: the simulator over a real loopback socket ---------------------------


def socket_client(server: SimulatorServer, **overrides: Any) -> OpenRouterClient:
    values: dict[str, Any] = {"base_url": server.base_url, "max_attempts": 12, "timeout_seconds": 5}
    values.update(overrides)
    # Backoff sleeps are skipped: the simulator does not punish impatience.
    return OpenRouterClient(settings(**values), Secret(SIM_TOKEN), sleep=lambda seconds: None)


def live_hashes_by_workspace(world: World) -> dict[str, set[str]]:
    live: dict[str, set[str]] = {}
    for key in world.truth_keys():
        if key["deleted_at"] is None:
            live.setdefault(key["workspace_id"], set()).add(key["hash"])
    return live


def test_socket_listing_matches_ground_truth() -> None:
    with run_simulator(workspaces=3, keys_per_workspace=350, token=SIM_TOKEN) as server:
        with socket_client(server) as client:
            workspaces = client.list_workspaces()
            listed = {w.id: hashes(client, w.id) for w in workspaces}
            default = hashes(client, "default")
        truth = live_hashes_by_workspace(server.simulator.world)
    assert {w: set(h) for w, h in listed.items()} == truth  # disabled and expired included
    assert all(len(h) == len(set(h)) for h in listed.values())
    assert set(default) == truth[server.simulator.world.default_workspace_id]


def test_socket_listing_survives_faults() -> None:
    faults = Faults(
        rate_limit_rate=0.2,
        retry_after_seconds=0.01,
        error_rate=0.15,
        error_burst=2,
        garbled_error_rate=0.5,
        drop_rate=0.1,
    )
    with run_simulator(
        workspaces=2, keys_per_workspace=1500, token=SIM_TOKEN, faults=faults, seed=4
    ) as server:
        # One request at a time, so the seeded faults fall the same way on every run.
        with socket_client(server, concurrency=1) as client:
            listed = {w: set(hashes(client, w)) for w in server.simulator.world.workspace_ids}
            retries = client.stats.retries
        injected = server.simulator.stats.faults
        truth = live_hashes_by_workspace(server.simulator.world)
    assert listed == truth
    assert injected["rate_limited"] and injected["server_errors"] and injected["dropped"]
    assert retries >= injected["rate_limited"] + injected["server_errors"] + injected["dropped"]


@pytest.mark.parametrize(("deletes", "creates"), [(1, 0), (0, 2), (3, 3)])
def test_socket_drift_while_paging_loses_and_repeats_nothing(deletes: int, creates: int) -> None:
    # Keys change after each of the first pages; then the list settles, as lists do.
    faults = Faults(drift_schedule=[[deletes, creates]] * 6)
    with run_simulator(
        workspaces=1, keys_per_workspace=600, token=SIM_TOKEN, faults=faults
    ) as server:
        world = server.simulator.world
        workspace = world.workspace_ids[0]
        before = set(world.live_hashes(workspace))
        with socket_client(server, concurrency=2) as client:
            got = hashes(client, workspace)
        after = set(world.live_hashes(workspace))
    assert len(got) == len(set(got))  # nothing twice
    assert before & after <= set(got)  # every key that lived throughout was listed
    assert set(got) <= before | after


def test_socket_server_ignoring_offset_is_reported() -> None:
    faults = Faults(ignore_offset=True)
    with run_simulator(
        workspaces=1, keys_per_workspace=250, token=SIM_TOKEN, faults=faults
    ) as server:
        workspace = server.simulator.world.workspace_ids[0]
        with socket_client(server) as client, pytest.raises(PaginationError) as caught:
            hashes(client, workspace)
    assert f"workspace {workspace}, offset " in str(caught.value)
    assert "ignores offset" in str(caught.value)


def test_socket_slow_response_times_out_and_is_retried() -> None:
    faults = Faults(slow_rate=0.3, slow_seconds=1.0)
    with run_simulator(
        workspaces=1, keys_per_workspace=300, token=SIM_TOKEN, faults=faults
    ) as server:
        workspace = server.simulator.world.workspace_ids[0]
        with socket_client(server, timeout_seconds=0.2) as client:
            got = set(hashes(client, workspace))
        truth = live_hashes_by_workspace(server.simulator.world)[workspace]
        slow = server.simulator.stats.faults["slow"]
    assert got == truth
    assert slow > 0


def test_listing_not_newest_first_is_an_error_not_a_silent_loss() -> None:
    api = FakeKeysApi(5)
    api.keys[1], api.keys[2] = api.keys[2], api.keys[1]  # one key out of order

    client, _ = make_client(api.handler)
    with client, pytest.raises(PaginationError, match="not newest first") as caught:
        hashes(client)
    assert api.keys[2]["hash"] in str(caught.value)
    assert "offset 0" in str(caught.value)
