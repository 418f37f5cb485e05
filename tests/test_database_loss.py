"""The database going away mid-run: nothing partial; one line and exit 1 when nothing
committed yet, else exit 3 with the summary of what did."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.errors import LoadError
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store import runs
from etl.store.database import make_engine
from etl.sync import run_sync
from models import ApiKey, SyncRun, SyncRunWorkspace

TOKEN = "sk-or-v1-db-loss-test"


class Proxy:
    """A TCP relay to the database that can be cut: the database 'goes away'."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                if self.closed:  # cut while this one was being set up: drop it too
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                _hang_up(end)

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        with self.lock:
            self.closed = True
        self.listener.close()
        self.drop()

    def drop(self) -> None:
        """Drop every open connection; new ones still get through (a lost connection
        that comes back)."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            _hang_up(sock)


def _hang_up(sock: socket.socket) -> None:
    # shutdown() before close(): a bare close() of a socket another pipe thread is
    # blocked reading frees the descriptor but sends no FIN, so the database kept the
    # session (and the dead run's lock) open, and a later shutdown() met EBADF.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@pytest.mark.parametrize("cut_after", [0.8, 1.6])
def test_database_going_away_ends_the_run_cleanly(
    engine: Engine, database_url: str, tmp_path: Path, cut_after: float
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite is a file in the process: it cannot go away over a network")
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    world = World(seed=12, workspaces=3, keys_per_workspace=350)
    with SimulatorServer(Simulator(world, token=TOKEN, latency_ms=5)) as server:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))
            },
            "OPENROUTER_MANAGEMENT_KEY": TOKEN,
            "OPENROUTER_BASE_URL": server.base_url,
            "KEYLEDGER_DATABASE_URL": through_proxy,
        }
        # Paced as the old default was (10 requests a second), so the run is still going
        # at both cuts; unpaced, it is over before the later one.
        (tmp_path / "keyledger.toml").write_text("[openrouter]\nrequests_per_second = 10\n")
        process = subprocess.Popen(
            [sys.executable, "-c", "from etl.cli.main import main; main()", "sync"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(cut_after)
        proxy.cut()
        try:
            _stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("keyledger sync did not end within 60 s of the database going away")
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    if process.returncode == 1:  # the cut came before any workspace committed
        assert len(lines) == 1 and lines[0].startswith("keyledger: error: "), stderr
    else:  # after: what committed is reported, as partial
        assert process.returncode == 3, stderr
        assert lines[-1].startswith("sync: ") and " 0 workspaces ok" not in lines[-1]
    # Nothing partial: every workspace the database kept is complete and recorded ok.
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(ApiKey.workspace_id, func.count()).group_by(ApiKey.workspace_id)
            ).all()
        )
        ok = set(
            connection.scalars(
                select(SyncRunWorkspace.workspace_id).where(SyncRunWorkspace.status == "ok")
            )
        )
    for workspace, count in stored.items():
        assert count == world.live_key_count(workspace) and workspace in ok
    if process.returncode == 3:
        assert f"sync: {len(ok)} workspaces ok, " in lines[-1]


def test_database_gone_before_the_run_takes_its_lock_is_a_load_error(
    engine: Engine, database_url: str
) -> None:
    """The first thing a run does in the database is take its run lock; a database
    already gone there is the same one-line LoadError as anywhere later (it was a
    traceback when the cut fell that early)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite is a file in the process: it cannot go away over a network")
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    gone = make_engine(through_proxy.render_as_string(hide_password=False))
    proxy.cut()
    settings = Settings(
        database_url=str(through_proxy),
        accounts=(
            Account(
                name="test", management_key=Secret(TOKEN), workspaces=None, client=ClientSettings()
            ),
        ),
    )
    try:
        with pytest.raises(LoadError):
            run_sync(gone, settings)
    finally:
        gone.dispose()


def proxy_to(database_url: str) -> tuple[Proxy, str]:
    """A proxy to the test database and the URL that goes through it (skips SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite is a file in the process: it cannot go away over a network")
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    return proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def on_nth_workspace(simulator: Simulator, n: int, action: Callable[[], None]) -> None:
    """Run ``action`` (in the server's thread) when the run first asks for the keys of
    the ``n``-th workspace it lists: whatever order the run takes them in, ``n - 1``
    of them are done by then."""
    original = simulator.handle
    asked: list[str] = []

    def handle(method: str, path: str, query: str, *rest: Any) -> Any:
        workspace = parse_qs(query).get("workspace_id", [""])[0]
        if path.endswith("/keys") and workspace not in asked:
            asked.append(workspace)
            if len(asked) == n:
                action()
        return original(method, path, query, *rest)

    simulator.handle = handle  # type: ignore[method-assign]


def run_keyledger_sync(
    server: SimulatorServer, database_url: str, cwd: Path, *, workspace_concurrency: int
) -> tuple[int, str]:
    """``keyledger sync`` in its own process, loading ``workspace_concurrency``
    workspaces at once; its exit code and stderr."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
        "KEYLEDGER_WORKSPACE_CONCURRENCY": str(workspace_concurrency),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from etl.cli.main import main; main()", "sync"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr


def ledger_rows(engine: Engine) -> tuple[str, dict[str, Any]]:
    """The one run's status and its workspace rows by workspace id."""
    with engine.connect() as connection:
        run = connection.execute(select(SyncRun.status)).scalar_one()
        rows = {w.workspace_id: w for w in connection.execute(select(SyncRunWorkspace))}
    return run, rows


def test_database_gone_after_two_workspaces_exits_3_with_summary(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """The database goes away for good while the third workspace loads: the two that
    committed are still reported (exit 3, summary line); the run cannot record its
    end, and the next run marks it abandoned."""
    proxy, url = proxy_to(database_url)
    world = World(seed=12, workspaces=3, keys_per_workspace=150)
    simulator = Simulator(world, token=TOKEN)
    on_nth_workspace(simulator, 3, proxy.cut)
    with SimulatorServer(simulator) as server:
        # One by one, so two have committed when the third is asked for its keys (at
        # once: test_database_gone_while_workspaces_load_at_once_reports_what_committed).
        code, stderr = run_keyledger_sync(server, url, tmp_path, workspace_concurrency=1)
    assert code == 3, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("sync: 2 workspaces ok, 1 failed, 0 skipped; ")
    assert "keys seen 300, new 300, changed 0, deleted 0; 300 snapshot rows" in lines[-1]
    assert lines[-2].startswith("keyledger: error: the database failed, so the run stopped: ")
    assert lines[-2].endswith("until a later run marks it abandoned")
    status, rows = ledger_rows(engine)
    assert status == "running"  # the database was gone: nothing could close it
    done = {w for w, row in rows.items() if row.status == "ok"}
    assert len(done) == 2
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(ApiKey.workspace_id, func.count()).group_by(ApiKey.workspace_id)
            ).all()
        )
    assert stored == dict.fromkeys(done, 150)
    # What the next run does first. The server ends the dead process's sessions (and
    # with them its run lock) when it reads their end of the cut connections: soon,
    # not necessarily before this line.
    deadline = time.monotonic() + 10
    while not runs.abandon_dead_runs(engine) and time.monotonic() < deadline:
        time.sleep(0.1)
    status, rows = ledger_rows(engine)
    assert status == "abandoned"
    assert {row.status for row in rows.values()} == {"ok", "abandoned"}


def test_lost_connection_that_comes_back_fails_one_workspace_and_closes_the_run(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """Every database connection drops while the second workspace loads, and new ones
    get through: that workspace fails with nothing counted, the third still syncs, and
    the run is closed as partial."""
    proxy, url = proxy_to(database_url)
    world = World(seed=12, workspaces=3, keys_per_workspace=150)
    simulator = Simulator(world, token=TOKEN)
    on_nth_workspace(simulator, 2, proxy.drop)
    with SimulatorServer(simulator) as server:
        # One by one, so the first has committed when the second is asked (at once:
        # test_lost_connection_fails_the_workspaces_in_flight_only).
        code, stderr = run_keyledger_sync(server, url, tmp_path, workspace_concurrency=1)
    assert code == 3, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("sync: 2 workspaces ok, 1 failed, 0 skipped; keys seen 300,")
    assert len(lines) == 2 and " failed: database error: " in lines[0]
    status, rows = ledger_rows(engine)
    assert status == "partial"
    (failed,) = [row for row in rows.values() if row.status == "failed"]
    assert (failed.keys_seen, failed.keys_new, failed.snapshots_written) == (0, 0, 0)
    assert failed.finished_at is not None and "database error" in failed.error


def hold_second_until_first_commits(
    simulator: Simulator, engine: Engine, action: Callable[[], None]
) -> list[str]:
    """Workspaces loading at once: the first workspace's later pages wait until the
    second has been asked for its first; that first request waits until the first
    workspace has committed (its ledger row, read directly, says ok), then runs
    ``action``. So both were in flight together, and ``action`` falls inside the
    second's transaction. Returns the workspaces in the order they were first asked."""
    original = simulator.handle
    asked: list[str] = []
    second_asked = threading.Event()
    lock = threading.Lock()

    def first_committed(workspace: str) -> bool:
        with engine.connect() as connection:
            status = connection.scalar(
                select(SyncRunWorkspace.status).where(SyncRunWorkspace.requested_as == workspace)
            )
        return status == "ok"

    def handle(method: str, path: str, query: str, *rest: Any) -> Any:
        params = parse_qs(query)
        workspace = params.get("workspace_id", [""])[0]
        if path.endswith("/keys") and workspace:
            with lock:
                new = workspace not in asked
                if new:
                    asked.append(workspace)
            if workspace == asked[0] and params["offset"] != ["0"]:
                second_asked.wait(30)
            elif new and len(asked) == 2:
                second_asked.set()
                deadline = time.monotonic() + 30
                while not first_committed(asked[0]) and time.monotonic() < deadline:
                    time.sleep(0.02)
                action()
        return original(method, path, query, *rest)

    simulator.handle = handle  # type: ignore[method-assign]
    return asked


def test_database_gone_while_workspaces_load_at_once_reports_what_committed(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """Two workspaces in flight; the first commits, then the database goes away for
    good inside the second's transaction: as one by one, the first is reported (exit
    3, summary line), nothing of the second is kept, and the next run marks the run
    abandoned."""
    proxy, url = proxy_to(database_url)
    world = World(seed=12, workspaces=2, keys_per_workspace=250)
    simulator = Simulator(world, token=TOKEN)
    asked = hold_second_until_first_commits(simulator, engine, proxy.cut)
    with SimulatorServer(simulator) as server:
        code, stderr = run_keyledger_sync(server, url, tmp_path, workspace_concurrency=2)
    assert code == 3, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("sync: 1 workspaces ok, 1 failed, 0 skipped; ")
    assert "keys seen 250, new 250, changed 0, deleted 0; 250 snapshot rows" in lines[-1]
    assert lines[-2].startswith("keyledger: error: the database failed, so the run stopped: ")
    assert lines[-2].endswith("until a later run marks it abandoned")
    status, rows = ledger_rows(engine)
    assert status == "running"  # the database was gone: nothing could close it
    assert rows[asked[0]].status == "ok" and rows[asked[1]].status == "running"
    assert rows[asked[1]].started_at < rows[asked[0]].finished_at  # they overlapped
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(ApiKey.workspace_id, func.count()).group_by(ApiKey.workspace_id)
            ).all()
        )
    assert stored == {asked[0]: 250}
    deadline = time.monotonic() + 10
    while not runs.abandon_dead_runs(engine) and time.monotonic() < deadline:
        time.sleep(0.1)
    status, rows = ledger_rows(engine)
    assert status == "abandoned"
    assert {row.status for row in rows.values()} == {"ok", "abandoned"}


def test_lost_connection_fails_the_workspaces_in_flight_only(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """Two workspaces in flight; once the first committed, every database connection
    drops inside the second's transaction, and new ones get through: the second fails
    with nothing counted, the third (started after it) still syncs, and the run is
    closed as partial."""
    proxy, url = proxy_to(database_url)
    world = World(seed=12, workspaces=3, keys_per_workspace=250)
    simulator = Simulator(world, token=TOKEN)
    asked = hold_second_until_first_commits(simulator, engine, proxy.drop)
    with SimulatorServer(simulator) as server:
        code, stderr = run_keyledger_sync(server, url, tmp_path, workspace_concurrency=2)
    assert code == 3, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("sync: 2 workspaces ok, 1 failed, 0 skipped; keys seen 500,")
    assert len(lines) == 2 and " failed: database error: " in lines[0]
    status, rows = ledger_rows(engine)
    assert status == "partial"
    assert [rows[w].status for w in asked] == ["ok", "failed", "ok"]
    failed = rows[asked[1]]
    assert (failed.keys_seen, failed.keys_new, failed.snapshots_written) == (0, 0, 0)
    assert failed.finished_at is not None and "database error" in failed.error
