"""SIGKILL at many points of a run: never a partial workspace, and the next run heals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from models import ApiKey, SyncRun, SyncRunWorkspace

TOKEN = "sk-or-v1-crash-test-key"


def start_sync(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from etl.cli.main import main; main()", "sync"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def keys_by_workspace(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ApiKey.workspace_id, func.count()).group_by(ApiKey.workspace_id)
        ).all()
    return {workspace: count for workspace, count in rows}


@pytest.mark.parametrize("kill_after", [0.5, 1.0, 1.7, 2.4])
def test_sigkill_leaves_no_partial_workspace(
    engine: Engine, database_url: str, tmp_path: Path, kill_after: float
) -> None:
    world = World(seed=8, workspaces=3, keys_per_workspace=350)
    live = {w: world.live_key_count(w) for w in world.workspace_ids}
    # 5 ms a request and an operator's cap of 10 requests a second (no cap is the
    # default now): the run lasts a couple of seconds, so kills land all over it.
    (tmp_path / "keyledger.toml").write_text("[openrouter]\nrequests_per_second = 10\n")
    with SimulatorServer(Simulator(world, token=TOKEN, latency_ms=5)) as server:
        process = start_sync(server, database_url, tmp_path)
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        stored = keys_by_workspace(engine)
        with engine.connect() as connection:
            committed = set(
                connection.scalars(
                    select(SyncRunWorkspace.workspace_id).where(SyncRunWorkspace.status == "ok")
                )
            )
        # Every workspace is all there (and its ledger row says ok) or not there at all.
        for workspace, count in stored.items():
            assert count == live[workspace], (workspace, count)
            assert workspace in committed
        # The next run completes, with the ground truth, and names the killed run.
        finished = start_sync(server, database_url, tmp_path)
        assert finished.wait(timeout=120) == 0
    assert keys_by_workspace(engine) == live
    with engine.connect() as connection:
        statuses = list(connection.scalars(select(SyncRun.status).order_by(SyncRun.id)))
    # The killed run, if it got as far as recording itself, is marked abandoned.
    assert statuses in (["ok"], ["abandoned", "ok"]), statuses
