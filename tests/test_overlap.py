"""Several syncs at once on one database: each workspace synced exactly once a round."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from models import SyncRunWorkspace

TOKEN = "sk-or-v1-overlap-test-key"
# Each run, once imported, waits until every run of its round is ready, so a busy
# machine that starts one late cannot turn "at once" into "one after the other".
START_TOGETHER = """
import os, pathlib, sys, time
from etl.cli.main import main
ready = pathlib.Path(os.environ["OVERLAP_READY"])
(ready / str(os.getpid())).touch()
deadline = time.monotonic() + 60
while len(list(ready.iterdir())) < int(os.environ["OVERLAP_RUNS"]) and time.monotonic() < deadline:
    time.sleep(0.01)
main()
"""
RUNS_AT_ONCE = 3
ROUNDS = 3


def test_concurrent_syncs_share_the_workspaces(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    world = World(seed=21, workspaces=4, keys_per_workspace=150)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "KEYLEDGER_DATABASE_URL": database_url,
        "KEYLEDGER_WORKSPACES": ",".join(world.workspace_ids),
    }
    with SimulatorServer(Simulator(world, token=TOKEN, latency_ms=2)) as server:
        env["OPENROUTER_BASE_URL"] = server.base_url
        for round_number in range(ROUNDS):
            world.advance(timedelta(hours=6))
            ready = tmp_path / f"ready-{round_number}"
            ready.mkdir()
            round_env = {**env, "OVERLAP_READY": str(ready), "OVERLAP_RUNS": str(RUNS_AT_ONCE)}
            runs = [
                subprocess.Popen(
                    [sys.executable, "-c", START_TOGETHER, "sync"],
                    env=round_env,
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for _ in range(RUNS_AT_ONCE)
            ]
            try:
                for run in runs:
                    _, stderr = run.communicate(timeout=120)
                    assert run.returncode in (0, 4), stderr.decode()  # synced some, or all held
            finally:  # a failed round leaves no sync running into the next test
                for run in runs:
                    if run.poll() is None:
                        run.kill()
                        run.wait()
            with engine.connect() as connection:
                rows = connection.execute(
                    select(SyncRunWorkspace.requested_as, SyncRunWorkspace.status)
                ).all()
            ok = [workspace for workspace, status in rows if status == "ok"]
            # Every workspace exactly once per round so far, never twice.
            assert sorted(ok) == sorted(world.workspace_ids * (round_number + 1))
            assert {status for _, status in rows} <= {"ok", "skipped"}
            # Each run recorded every workspace: synced it, or skipped it (held elsewhere
            # or already synced during the run), so the others were really overlapping.
            assert len(rows) == RUNS_AT_ONCE * len(world.workspace_ids) * (round_number + 1)
