"""Several first runs at once: `db upgrade` and `sync --migrate` processes started together
on an empty (or old) database take turns migrating it, then run as usual."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select, text

import models
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.migrations import alembic_config, current_revision, head_revision
from models import ApiKey, SyncRunWorkspace
from tests.conftest import wipe

TOKEN = "sk-or-v1-first-runs-test-key"
COMMANDS = [
    ["db", "upgrade"],
    ["sync", "--migrate"],
    ["db", "upgrade"],
    ["sync", "--migrate"],
]
# What each backend says when two migrations race (the errors this guards against).
RACE_TEXT = ("Traceback", "already exists", "duplicate key", "database is locked", "error:")


def run_at_once(env: dict[str, str], tmp_path: Path) -> list[tuple[list[str], int, str]]:
    """Start every command of COMMANDS, let them all go at the same instant, and wait.

    Each process imports keyledger first and then waits for a gate file, so the
    second or so of interpreter start-up does not spread them apart: they reach the
    database together, as cron jobs on several hosts do.
    """
    gate = tmp_path / "go"
    code = (
        "import os, time\n"
        "from etl.cli.main import main\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.002)\n"
        "main()\n"
    )
    runs = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-c", code, *args],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
        )
        for args in COMMANDS
    ]
    gate.touch()
    results = []
    for args, process in runs:
        _, stderr = process.communicate(timeout=180)
        results.append((args, process.returncode, stderr.decode()))
    gate.unlink()
    return results


def sim_env(server: SimulatorServer, database_url: str, world: World) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
        "KEYLEDGER_WORKSPACES": ",".join(world.workspace_ids),
    }


def assert_every_run_went_normally(results: list[tuple[list[str], int, str]]) -> None:
    for args, code, stderr in results:
        # A sync may find every workspace held by the other sync: exit 4, as documented.
        allowed = (0,) if args[0] == "db" else (0, 4)
        assert code in allowed, (args, code, stderr)
        for race in RACE_TEXT:
            assert race not in stderr, (args, stderr)


def assert_at_head_once(engine: Engine) -> None:
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, models.Base.metadata) == []


def assert_each_sync_ran_normally(engine: Engine, world: World, syncs: int) -> None:
    """Every sync recorded every workspace as synced or skipped (held by the other, or
    synced by it meanwhile), and every workspace was synced."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(SyncRunWorkspace.requested_as, SyncRunWorkspace.status)
        ).all()
    assert len(rows) == syncs * len(world.workspace_ids)
    assert {status for _, status in rows} <= {"ok", "skipped"}
    assert {workspace for workspace, status in rows if status == "ok"} == set(world.workspace_ids)


def test_first_runs_at_once_on_an_empty_database_take_turns_migrating(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    wipe(engine)  # the fixture migrated it: a first run starts from nothing
    world = World(seed=41, workspaces=2, keys_per_workspace=60)
    with SimulatorServer(Simulator(world, token=TOKEN)) as server:
        results = run_at_once(sim_env(server, database_url, world), tmp_path)
    assert_every_run_went_normally(results)
    assert_at_head_once(engine)
    assert_each_sync_ran_normally(engine, world, syncs=2)
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(ApiKey))
    assert stored == sum(world.live_key_count(w) for w in world.workspace_ids)


def test_first_runs_at_once_on_an_old_database_take_turns_migrating(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    world = World(seed=42, workspaces=2, keys_per_workspace=60)
    with SimulatorServer(Simulator(world, token=TOKEN)) as server:
        env = sim_env(server, database_url, world)
        first = subprocess.run(
            [sys.executable, "-c", "from etl.cli.main import main; main()", "sync"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            check=False,
        )
        assert first.returncode == 0, first.stderr.decode()
        # A ledger written by the first release: data in it, schema at 0001.
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
        with engine.connect() as connection:
            assert current_revision(connection) == "0001"
            before = set(connection.scalars(select(ApiKey.hash)))
        assert before
        world.advance(timedelta(days=1))
        results = run_at_once(env, tmp_path)
    assert_every_run_went_normally(results)
    assert_at_head_once(engine)
    with engine.connect() as connection:
        assert before <= set(connection.scalars(select(ApiKey.hash)))  # nothing lost
    assert_each_sync_ran_normally(engine, world, syncs=3)  # the first, then the two
