"""The database going away mid-run: one line, exit 1, nothing partial."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from etl.config import Account, ClientSettings, Secret, Settings
from etl.database import make_engine
from etl.errors import LoadError
from etl.sim_server import SimulatorServer
from etl.sim_world import World
from etl.simulator import Simulator
from etl.sync import run_sync
from models import ApiKey, SyncRunWorkspace

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
        process = subprocess.Popen(
            [sys.executable, "-c", "from etl.cli import main; main()", "sync"],
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
    assert process.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keyledger: error: "), stderr
    assert "Traceback" not in stderr
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
