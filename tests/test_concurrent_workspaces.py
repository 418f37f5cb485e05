"""Workspaces loading at once (PostgreSQL, MariaDB), or one by one (SQLite, dry runs):
each keeps its own lock, ledger row and transaction, and the outcomes stay as they are
one by one. Overlap is shown by what the simulator was asked and when, and by what the
database held at that moment: never by timing."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine, select

from etl.simulator.service import Simulator
from etl.store import locks
from etl.sync import KEY_REFUSED
from models import ApiKey, SyncRunWorkspace
from tests.test_sync import count, make_simulator, sync

# Long enough for any busy machine; a hold that runs out means the loads did not overlap.
HOLD_SECONDS = 30.0


def at_once(engine: Engine) -> bool:
    """Whether this backend loads workspaces at once (SQLite has one writer)."""
    return engine.dialect.name != "sqlite"


def ledger_status(engine: Engine, workspace: str) -> str | None:
    """The committed status of the workspace's ledger row, read on a connection of its own."""
    with engine.connect() as connection:
        return connection.scalar(
            select(SyncRunWorkspace.status).where(SyncRunWorkspace.requested_as == workspace)
        )


class Listings:
    """Records every key-listing request (workspace, offset) in the order the simulator
    got it, and can hold the ``held`` workspace's pages after its first until the
    ``until`` workspace has been asked for its first: a run that loaded them one after
    the other would wait out the hold, and the log would show it."""

    def __init__(
        self, simulator: Simulator, engine: Engine, *, held: str = "", until: str = ""
    ) -> None:
        self.asked: list[tuple[str, int]] = []
        self.held_status_when_asked: str | None = None  # the held one's, as ``until`` came
        self._engine = engine
        self._held, self._until = held, until
        self._until_asked = threading.Event()
        self._lock = threading.Lock()
        self._original = simulator.handle
        simulator.handle = self.handle  # type: ignore[method-assign]

    def handle(self, method: str, path: str, query: str, *rest: Any) -> Any:
        if path.endswith("/keys"):
            params = parse_qs(query)
            workspace = params.get("workspace_id", [""])[0]
            offset = int(params["offset"][0])
            with self._lock:
                self.asked.append((workspace, offset))
                first = [w for w, _ in self.asked].count(workspace) == 1
            if workspace == self._until and first:
                self.held_status_when_asked = ledger_status(self._engine, self._held)
                self._until_asked.set()
            if workspace == self._held and offset > 0 and at_once(self._engine):
                self._until_asked.wait(HOLD_SECONDS)
        return self._original(method, path, query, *rest)

    def workspaces(self) -> list[str]:
        """Each workspace asked, in the order of its first request."""
        return list(dict.fromkeys(w for w, _ in self.asked))

    def overlapped(self, one: str, other: str) -> bool:
        """Whether ``other`` was asked for a page before ``one`` was asked for its last."""
        positions = [w for w, _ in self.asked]
        last_of_one = len(positions) - 1 - positions[::-1].index(one)
        return positions.index(other) < last_of_one


def ledger(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(SyncRunWorkspace).order_by(SyncRunWorkspace.id)))


def test_workspaces_load_at_once_each_in_its_own_transaction(engine: Engine) -> None:
    simulator = make_simulator(workspaces=3, keys=250)
    ids = simulator.world.workspace_ids
    listings = Listings(simulator, engine, held=ids[0], until=ids[1])
    result = sync(engine, simulator)
    assert result.status == "ok"
    assert [w.workspace_id for w in result.workspaces] == ids  # the workspaces' order
    rows = ledger(engine)
    assert [(r.requested_as, r.status) for r in rows] == [(w, "ok") for w in ids]
    for workspace in ids:
        assert count(engine, ApiKey, ApiKey.workspace_id == workspace) == 250
    assert listings.workspaces() == ids  # each started once the one before it had a page
    if at_once(engine):
        # The second was asked while the first had listed a page and not committed:
        # two workspace transactions open at once, each its own.
        assert listings.held_status_when_asked == "running"
        assert listings.overlapped(ids[0], ids[1])
        assert rows[1].started_at < rows[0].finished_at
    else:
        # SQLite: the first had committed before the second was asked for anything.
        assert listings.held_status_when_asked == "ok"
        assert not listings.overlapped(ids[0], ids[1])


def test_a_failing_workspace_does_not_affect_those_in_flight(engine: Engine) -> None:
    simulator = make_simulator(workspaces=3, keys=250)
    ids = simulator.world.workspace_ids
    listings = Listings(simulator, engine, held=ids[0], until=ids[1])
    broken = listings.handle

    def spoil_second(method: str, path: str, query: str, *rest: Any) -> Any:
        response = broken(method, path, query, *rest)
        if f"workspace_id={ids[1]}" in query:
            return type(response)(200, response.headers, b'{"data": [{"hash": "x"')
        return response

    simulator.handle = spoil_second  # type: ignore[method-assign]
    result = sync(engine, simulator)
    assert result.status == "partial"
    assert [w.status for w in result.workspaces] == ["ok", "failed", "ok"]
    assert count(engine, ApiKey, ApiKey.workspace_id == ids[1]) == 0
    for workspace in (ids[0], ids[2]):
        assert count(engine, ApiKey, ApiKey.workspace_id == workspace) == 250
    assert [(r.requested_as, r.status) for r in ledger(engine)] == [
        (ids[0], "ok"),
        (ids[1], "failed"),
        (ids[2], "ok"),
    ]
    assert listings.overlapped(ids[0], ids[1]) == at_once(engine)


def test_a_refused_key_stops_the_workspaces_not_yet_started(engine: Engine) -> None:
    """The key is refused on the second of four workspaces while the first is still
    loading: the first finishes on its own, the last two are never asked."""
    simulator = make_simulator(workspaces=4, keys=250)
    ids = simulator.world.workspace_ids
    listings = Listings(simulator, engine, held=ids[0], until=ids[1])
    asking = listings.handle

    def refuse_second(method: str, path: str, query: str, *rest: Any) -> Any:
        response = asking(method, path, query, *rest)
        if f"workspace_id={ids[1]}" in query:
            body = b'{"error": {"code": 401, "message": "No auth credentials found"}}'
            return type(response)(401, {}, body)
        return response

    simulator.handle = refuse_second  # type: ignore[method-assign]
    result = sync(engine, simulator, workspaces=tuple(ids))
    assert [w.status for w in result.workspaces] == ["ok", "failed", "skipped", "skipped"]
    assert {w.error for w in result.workspaces[2:]} == {KEY_REFUSED}
    assert listings.workspaces() == ids[:2]
    assert count(engine, ApiKey, ApiKey.workspace_id == ids[0]) == 250
    assert [(r.requested_as, r.status) for r in ledger(engine)] == [
        (ids[0], "ok"),
        (ids[1], "failed"),
        (ids[2], "skipped"),
        (ids[3], "skipped"),
    ]
    assert listings.overlapped(ids[0], ids[1]) == at_once(engine)


def test_a_workspace_another_run_holds_is_skipped_and_the_others_load(engine: Engine) -> None:
    simulator = make_simulator(workspaces=3, keys=250)
    ids = simulator.world.workspace_ids
    listings = Listings(simulator, engine, held=ids[0], until=ids[2])
    lock = locks.try_lock(engine, ids[1])
    assert lock is not None
    try:
        result = sync(engine, simulator)
    finally:
        lock.release()
    assert result.status == "ok"
    assert [w.status for w in result.workspaces] == ["ok", "skipped", "ok"]
    assert "held by another run" in (result.workspaces[1].error or "")
    assert [(r.requested_as, r.status) for r in ledger(engine)] == [
        (ids[0], "ok"),
        (ids[1], "skipped"),
        (ids[2], "ok"),
    ]
    assert listings.workspaces() == [ids[0], ids[2]]
    assert count(engine, ApiKey, ApiKey.workspace_id == ids[1]) == 0
    assert listings.overlapped(ids[0], ids[2]) == at_once(engine)


def test_a_dry_run_loads_one_workspace_at_a_time(engine: Engine) -> None:
    """A dry run's workspaces are savepoints of one connection: never two at once."""
    simulator = make_simulator(workspaces=3, keys=250)
    ids = simulator.world.workspace_ids
    listings = Listings(simulator, engine)
    result = sync(engine, simulator, dry_run=True)
    assert result.status == "ok"
    assert [w.workspace_id for w in result.workspaces] == ids
    firsts = [listings.asked.index((w, 0)) for w in ids]
    lasts = [max(i for i, (w, _) in enumerate(listings.asked) if w == ws) for ws in ids]
    assert all(lasts[n] < firsts[n + 1] for n in range(len(ids) - 1))
    assert count(engine, SyncRunWorkspace) == 0


def test_one_workspace_at_a_time_when_so_configured(engine: Engine) -> None:
    simulator = make_simulator(workspaces=2, keys=250)
    ids = simulator.world.workspace_ids
    listings = Listings(simulator, engine)
    result = sync(engine, simulator, client={"workspace_concurrency": 1})
    assert result.status == "ok"
    assert not listings.overlapped(ids[0], ids[1])


def test_a_transaction_run_again_after_a_deadlock_waits_for_the_others_to_end() -> None:
    from etl.sync import _Turns

    turns = _Turns()
    events: list[str] = []
    opened, go_on = threading.Event(), threading.Event()

    def other() -> None:
        with turns.take(alone=False):
            events.append("other open")
            opened.set()
            go_on.wait(HOLD_SECONDS)
            events.append("other ends")

    def again() -> None:
        with turns.take(alone=True):
            events.append("again, alone")

    threads = [threading.Thread(target=other), threading.Thread(target=again)]
    threads[0].start()
    assert opened.wait(HOLD_SECONDS)
    threads[1].start()
    deadline = time.monotonic() + HOLD_SECONDS
    while not turns._alone and time.monotonic() < deadline:  # it asked, and waits
        time.sleep(0.01)
    go_on.set()
    for thread in threads:
        thread.join(HOLD_SECONDS)
    assert events == ["other open", "other ends", "again, alone"]
    with turns.take(alone=False):  # and others open again after it
        pass
