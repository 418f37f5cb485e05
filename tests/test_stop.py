"""A run given a Stop (what SIGINT and SIGTERM request) ends at once, in-process: the
workspace in flight rolls back and is recorded interrupted, the finished ones stay, no
further workspace starts, and neither a request in flight nor a backoff holds it back.
(tests/test_signals.py sends real signals to a real `keyledger sync`.)"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import Engine, select

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.errors import Interrupted
from etl.core.stop import Stop
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Simulator
from etl.sync import SyncResult, run_sync
from models import ApiKey, SyncRun, SyncRunWorkspace
from tests.helpers import error_body, secret, settings
from tests.test_sync import TOKEN, count, make_simulator

# Long enough for any busy machine: a stalled request is released after the run ended,
# or after this, when the run waited for it (and the test fails).
STALL_SECONDS = 30.0


def sync(engine: Engine, simulator: Simulator, stop: Stop) -> SyncResult:
    """One run against ``simulator`` whose client stops with ``stop``, as the CLI's does."""
    account = Account(
        name="test",
        management_key=Secret(TOKEN),
        workspaces=None,
        client=ClientSettings(base_url="http://simulator.test/api/v1", requests_per_second=1e6),
    )

    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client, account.management_key, transport=simulator.mock_transport(), stop=stop
        )

    settings = Settings(database_url=str(engine.url), accounts=(account,))
    return run_sync(engine, settings, client_factory=client_factory, stop=stop)


def ledger(engine: Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(SyncRunWorkspace.requested_as, SyncRunWorkspace.status, SyncRunWorkspace.error)
        ).all()
    return {row.requested_as: (row.status, row.error) for row in rows}


def ledger_status(engine: Engine, workspace: str) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(
            select(SyncRunWorkspace.status).where(SyncRunWorkspace.requested_as == workspace)
        )


class StopOnSecondPage:
    """Requests ``stop`` when the ``target`` workspace is asked for a page past its first,
    once ``committed`` shows ok in the ledger (on PostgreSQL and MariaDB the two load at
    once); then, if ``stall``, holds that request until ``release`` is set."""

    def __init__(
        self,
        simulator: Simulator,
        engine: Engine,
        stop: Stop,
        *,
        target: str,
        committed: str,
        stall: bool = False,
    ) -> None:
        self.release = threading.Event()
        self.stalled = threading.Event()
        self._engine, self._stop, self._stall = engine, stop, stall
        self._target, self._committed = target, committed
        self._original = simulator.handle
        simulator.handle = self.handle  # type: ignore[method-assign]

    def handle(self, method: str, path: str, query: str, *rest: Any) -> Any:
        params = parse_qs(query)
        workspace = params.get("workspace_id", [""])[0]
        if path.endswith("/keys") and workspace == self._target and int(params["offset"][0]):
            deadline = time.monotonic() + STALL_SECONDS
            while ledger_status(self._engine, self._committed) != "ok":
                assert time.monotonic() < deadline, "the first workspace never committed"
                time.sleep(0.01)
            self._stop.request("SIGTERM")
            if self._stall:
                self.stalled.set()
                self.release.wait(STALL_SECONDS)
        return self._original(method, path, query, *rest)


@pytest.mark.parametrize("stall", [False, True], ids=["between pages", "request in flight"])
def test_a_stop_rolls_back_the_workspace_in_flight_and_starts_no_other(
    engine: Engine, stall: bool
) -> None:
    simulator = make_simulator(workspaces=4, keys=250)
    first, second, *later = simulator.world.workspace_ids
    stop = Stop()
    hook = StopOnSecondPage(simulator, engine, stop, target=second, committed=first, stall=stall)
    try:
        result = sync(engine, simulator, stop)
        # The run ended while the stalled request was still held: nobody waited for it.
        assert not hook.release.is_set()
        assert hook.stalled.is_set() == stall
    finally:
        hook.release.set()
    assert result.status == "interrupted" and result.interrupted == "SIGTERM"
    ok = sum(w.status == "ok" for w in result.workspaces)
    cut = sum(w.status == "interrupted" for w in result.workspaces)
    assert result.summary().startswith(
        f"sync interrupted by SIGTERM: {ok} workspaces ok, 0 failed, {4 - ok - cut} skipped, "
        f"{cut} interrupted (rolled back); "
    )
    rows = ledger(engine)
    assert rows[first] == ("ok", None)
    assert rows[second] == (
        "interrupted",
        "the run was interrupted by SIGTERM; rolled back, nothing of it kept",
    )
    assert count(engine, ApiKey, ApiKey.workspace_id == first) == 250
    assert count(engine, ApiKey, ApiKey.workspace_id == second) == 0  # rolled back
    for workspace in later:
        # One by one (SQLite) they are not started; at once, one may be in flight too.
        status, error = rows[workspace]
        if engine.dialect.name == "sqlite":
            assert (status, error) == (
                "skipped",
                "not attempted: the run was interrupted by SIGTERM",
            )
        stored = count(engine, ApiKey, ApiKey.workspace_id == workspace)
        assert stored == (250 if status == "ok" else 0)
    with engine.connect() as connection:
        run = connection.execute(select(SyncRun.status, SyncRun.error)).one()
    assert tuple(run) == ("interrupted", "interrupted by SIGTERM")
    # The stopped workspace's lock was released and its connection returned: the next
    # run takes every workspace and ends ok.
    assert sync(engine, simulator, Stop()).status == "ok"
    assert count(engine, ApiKey) == 4 * 250


def test_a_stop_ends_a_backoff_at_once_and_sends_no_retry() -> None:
    stop = Stop()
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        stop.request("SIGINT")
        # A wait of two minutes the client would sleep before trying again.
        return httpx.Response(
            429, text=error_body(429, "slow down"), headers={"Retry-After": "120"}
        )

    client = OpenRouterClient(
        settings(max_retry_after_seconds=120.0),
        secret(),
        transport=httpx.MockTransport(handler),
        stop=stop,
    )
    with client, pytest.raises(Interrupted, match="interrupted by SIGINT"):
        list(client.iter_key_pages())
    assert len(asked) == 1


def test_a_stop_before_a_request_sends_nothing() -> None:
    stop = Stop()
    stop.request("SIGTERM")
    asked: list[httpx.Request] = []
    client = OpenRouterClient(
        settings(),
        secret(),
        transport=httpx.MockTransport(lambda r: asked.append(r) or httpx.Response(500)),
        stop=stop,
    )
    with client, pytest.raises(Interrupted):
        client.list_workspaces()
    assert asked == []
