"""What `run_sync` tells its observer, against the simulator on every backend (several
workspaces at once, from threads, on PostgreSQL and MariaDB)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from etl.core.progress import SyncObserver
from models import SyncRunWorkspace
from tests.test_sync import _bad_page, make_simulator, sync


class Recorder(SyncObserver):
    """Every call, in order, from whichever thread made it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, str, int | str | None]] = []
        self.threads: set[str] = set()

    def _record(self, call: tuple[str, str, str, int | str | None]) -> None:
        with self.lock:
            self.calls.append(call)
            self.threads.add(threading.current_thread().name)

    def workspace_started(self, account: str, workspace: str) -> None:
        self._record(("started", account, workspace, None))

    def page_fetched(self, account: str, workspace: str, keys: int) -> None:
        self._record(("page", account, workspace, keys))

    def workspace_finished(self, account: str, workspace: str, status: str) -> None:
        self._record(("finished", account, workspace, status))

    def of(self, workspace: str) -> list[tuple[str, int | str | None]]:
        return [(kind, value) for kind, _, ws, value in self.calls if ws == workspace]


def test_observer_counts_every_page_and_key_the_run_synced(engine: Engine) -> None:
    simulator = make_simulator(workspaces=3, keys=450)
    recorder = Recorder()
    result = sync(engine, simulator, observer=recorder)
    assert result.status == "ok"
    assert {account for _, account, _, _ in recorder.calls} == {"test"}
    with engine.connect() as connection:
        ledger = {
            row.workspace_id: row.pages
            for row in connection.execute(
                select(SyncRunWorkspace.workspace_id, SyncRunWorkspace.pages)
            )
        }
    for workspace in result.workspaces:
        calls = recorder.of(workspace.workspace_id)
        assert calls[0] == ("started", None)
        assert calls[-1] == ("finished", "ok")
        pages = [keys for kind, keys in calls if kind == "page"]
        assert len(pages) == workspace.pages == ledger[workspace.workspace_id] > 1
        assert sum(int(keys or 0) for keys in pages) == workspace.counts.seen == 450
    if engine.dialect.name != "sqlite":
        # Workspaces load at once there: the calls come from the pool's threads.
        assert all(name.startswith("keyledger-workspace") for name in recorder.threads)


def test_observer_hears_a_skipped_and_a_failed_workspace_end(engine: Engine) -> None:
    from etl.store import locks

    simulator = make_simulator(workspaces=3, keys=250)
    held, _, bad = simulator.world.workspace_ids
    original = simulator.handle

    def spoil(method: str, path: str, query: str, *rest: Any) -> Any:
        response = original(method, path, query, *rest)
        if bad in query and "offset=99" in query:  # its second page
            return type(response)(200, response.headers, _bad_page("malformed JSON", response.body))
        return response

    simulator.handle = spoil  # type: ignore[method-assign]
    recorder = Recorder()
    lock = locks.try_lock(engine, held)
    assert lock is not None
    try:
        result = sync(engine, simulator, observer=recorder)
    finally:
        lock.release()
    statuses = {w.workspace_id: w.status for w in result.workspaces}
    assert statuses[held] == "skipped" and statuses[bad] == "failed"
    assert recorder.of(held) == [("finished", "skipped")]  # another run had it: never started
    # Its first page was fetched (and then rolled back with the rest of it).
    assert recorder.of(bad) == [("started", None), ("page", 100), ("finished", "failed")]
    ends = Counter(value for kind, _, _, value in recorder.calls if kind == "finished")
    assert ends == Counter({"ok": 1, "skipped": 1, "failed": 1})
