"""SIGINT and SIGTERM stop `keyledger sync` promptly and honestly (real process, real signals).

The run rolls back the workspaces in flight, keeps the finished ones, is recorded
`interrupted` with the signal, prints its summary and exits 130 / 143; the next run
starts with the workspaces synced least recently, so repeated interrupts still get
through every workspace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, Row, func, select

from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from models import ApiKey, SyncRun, SyncRunWorkspace

TOKEN = "sk-or-v1-signal-test-key"
WORKSPACES = 6
KEYS_PER_WORKSPACE = 900  # 10 pages: about a second a workspace at 10 requests a second


def start_sync(
    server: SimulatorServer, database_url: str, tmp_path: Path, *args: str
) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from etl.cli.main import main; main()", "sync", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def ledger(engine: Engine, run_id: int) -> list[tuple[str, str, str | None]]:
    """The run's workspace rows in the order they were opened: (workspace, status, error)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(SyncRunWorkspace.requested_as, SyncRunWorkspace.status, SyncRunWorkspace.error)
            .where(SyncRunWorkspace.sync_run_id == run_id)
            .order_by(SyncRunWorkspace.id)
        ).all()
    return [(row.requested_as, row.status, row.error) for row in rows]


def last_run(engine: Engine) -> Row[tuple[int, str, str | None, datetime | None]]:
    with engine.connect() as connection:
        run = connection.execute(
            select(SyncRun.id, SyncRun.status, SyncRun.error, SyncRun.finished_at)
            .order_by(SyncRun.id.desc())
            .limit(1)
        ).first()
    assert run is not None
    return run


def keys_by_workspace(engine: Engine) -> dict[str, set[str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(ApiKey.workspace_id, ApiKey.hash)).all()
    stored: dict[str, set[str]] = {}
    for workspace, key_hash in rows:
        stored.setdefault(workspace, set()).add(key_hash)
    return stored


def wait_until_one_committed_and_one_loading(engine: Engine, process: subprocess.Popen[str]) -> int:
    """Poll the ledger until this run has a workspace ok and another one loading; the
    run's id. (A poll, not a timing: the deadline only stops a broken run hanging.)"""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        with engine.connect() as connection:
            run_id = connection.scalar(select(func.max(SyncRun.id)))
            statuses = (
                set(
                    connection.scalars(
                        select(SyncRunWorkspace.status).where(
                            SyncRunWorkspace.sync_run_id == run_id
                        )
                    )
                )
                if run_id is not None
                else set()
            )
        if {"ok", "running"} <= statuses:
            assert run_id is not None
            return run_id
        time.sleep(0.02)
    raise AssertionError("the run never had a workspace committed and another loading")


def interrupt(
    engine: Engine, process: subprocess.Popen[str], signum: signal.Signals
) -> tuple[int, str]:
    """Signal the run once a workspace committed and another is loading; its id and stderr."""
    run_id = wait_until_one_committed_and_one_loading(engine, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum.value, stderr
    return run_id, stderr


def check_interrupted_run(
    engine: Engine, run_id: int, stderr: str, signum: signal.Signals, truth: dict[str, set[str]]
) -> set[str]:
    """What every interrupted run must show; returns the workspaces it committed."""
    name = signum.name
    summary = stderr.strip().splitlines()[-1]
    assert summary.startswith(f"sync interrupted by {name}: "), stderr
    assert "Aborted!" not in stderr and "Traceback" not in stderr, stderr
    run = last_run(engine)
    assert (run.id, run.status, run.error) == (run_id, "interrupted", f"interrupted by {name}")
    assert run.finished_at is not None
    rows = ledger(engine, run_id)
    committed = {workspace for workspace, status, _ in rows if status == "ok"}
    cut = {workspace for workspace, status, _ in rows if status == "interrupted"}
    assert committed and cut, rows
    for _, status, error in rows:
        assert status in {"ok", "interrupted", "skipped"}, rows
        if status == "interrupted":
            assert error == f"the run was interrupted by {name}; rolled back, nothing of it kept"
        if status == "skipped":
            assert error == f"not attempted: the run was interrupted by {name}"
    assert f"{len(committed)} workspaces ok" in summary
    assert f"{len(cut)} interrupted (rolled back)" in summary
    stored = keys_by_workspace(engine)
    for workspace in committed:
        assert stored[workspace] == truth[workspace]  # committed whole, as the server has it
    return committed


def simulated_world() -> tuple[World, dict[str, set[str]]]:
    world = World(seed=13, workspaces=WORKSPACES, keys_per_workspace=KEYS_PER_WORKSPACE)
    return world, {w: set(world.live_hashes(w)) for w in world.workspace_ids}


def slow_pace(tmp_path: Path) -> None:
    # 10 requests a second, so the signal lands mid-run; on PostgreSQL and MariaDB the
    # workspaces still load 4 at once, so the pool's threads are stopped too.
    (tmp_path / "keyledger.toml").write_text("[openrouter]\nrequests_per_second = 10\n")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_rolls_back_the_workspace_in_flight_and_keeps_the_finished_ones(
    engine: Engine, database_url: str, tmp_path: Path, signum: signal.Signals
) -> None:
    world, truth = simulated_world()
    slow_pace(tmp_path)
    with SimulatorServer(Simulator(world, token=TOKEN, latency_ms=5)) as server:
        process = start_sync(server, database_url, tmp_path)
        run_id, stderr = interrupt(engine, process, signum)
    committed = check_interrupted_run(engine, run_id, stderr, signum, truth)
    # Nothing of a workspace the run did not finish was kept (this is the first run).
    assert set(keys_by_workspace(engine)) == committed
    assert len(committed) < WORKSPACES


def test_repeated_interrupts_still_get_through_every_workspace_oldest_first(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    world, truth = simulated_world()
    slow_pace(tmp_path)
    with SimulatorServer(Simulator(world, token=TOKEN, latency_ms=5)) as server:
        first, stderr = interrupt(
            engine, start_sync(server, database_url, tmp_path), signal.SIGTERM
        )
        synced = check_interrupted_run(engine, first, stderr, signal.SIGTERM, truth)
        second, stderr = interrupt(
            engine, start_sync(server, database_url, tmp_path), signal.SIGINT
        )
        check_interrupted_run(engine, second, stderr, signal.SIGINT, truth)
        # The second run started with the workspaces the first did not get to.
        attempted = [w for w, status, _ in ledger(engine, second) if status != "skipped"]
        never = [w for w in attempted if w not in synced]
        assert attempted[: len(never)] == never, (attempted, synced)
        assert never, attempted
        finished = start_sync(server, database_url, tmp_path)
        _, stderr = finished.communicate(timeout=120)
        assert finished.returncode == 0, stderr
    assert keys_by_workspace(engine) == truth
    third = ledger(engine, last_run(engine).id)
    assert [status for _, status, _ in third] == ["ok"] * WORKSPACES


def test_under_json_logs_the_stop_notice_is_a_json_line_too(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    world, _ = simulated_world()
    slow_pace(tmp_path)
    with SimulatorServer(Simulator(world, token=TOKEN, latency_ms=5)) as server:
        process = start_sync(server, database_url, tmp_path, "--log-format=json")
        run_id, stderr = interrupt(engine, process, signal.SIGTERM)
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line, one object
    assert lines[0]["message"] == "keyledger: SIGTERM: stopping; the workspaces in flight roll back"
    assert lines[-1]["message"].startswith("sync interrupted by SIGTERM: ")
    assert lines[-1]["exit_code"] == 143
    assert last_run(engine).id == run_id
