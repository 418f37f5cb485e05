"""The management key never shows: not in output, logs, errors or the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from etl.sim_server import SimulatorServer
from etl.sim_world import World
from etl.simulator import Faults, Simulator

CANARY = "sk-or-v1-CANARY-7f3a9c0d1e2b"


def run_sync(
    tmp_path: Path, base_url: str, database_url: str, key: str = CANARY, **settings: Any
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "keyledger.toml"
    lines = ["[openrouter]", *(f"{name} = {value}" for name, value in settings.items())]
    config.write_text("\n".join(lines) + "\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        "OPENROUTER_MANAGEMENT_KEY": key,
        "OPENROUTER_BASE_URL": base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from etl.cli import main; main()",
            "-vv",
            "sync",
            "--config",
            str(config),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def database_text(engine: Engine) -> str:
    """Every value of every row of every table, as text."""
    metadata = MetaData()
    metadata.reflect(engine)
    parts = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


SCENARIOS = {
    "401 refused": ({}, {"token": "another-key"}, {}),
    "429 exhausted": (
        {"rate_limit_rate": 1.0, "retry_after_seconds": 0.01},
        {},
        {"max_attempts": 2},
    ),
    "500 exhausted": ({"error_rate": 1.0, "error_burst": 50}, {}, {"max_attempts": 2}),
    "timeouts": (
        {"slow_rate": 1.0, "slow_seconds": 1.0},
        {},
        {"max_attempts": 2, "timeout_seconds": 0.2},
    ),
    "dropped connections": ({"drop_rate": 1.0}, {}, {"max_attempts": 2}),
    "malformed page": ({"malformed_json_rate": 1.0}, {}, {}),
    "success": ({"schema_drift": True}, {}, {}),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_key_appears_nowhere(
    engine: Engine, database_url: str, tmp_path: Path, scenario: str
) -> None:
    faults, simulator_options, settings = SCENARIOS[scenario]
    world = World(seed=2, workspaces=1, keys_per_workspace=20)
    token = simulator_options.get("token", CANARY)
    simulator = Simulator(world, token=token, faults=Faults(**faults))
    with SimulatorServer(simulator) as server:
        done = run_sync(tmp_path, server.base_url, database_url, **settings)
    output = done.stdout + done.stderr
    assert done.returncode == (0 if scenario == "success" else 1), output
    assert CANARY not in output
    assert CANARY not in database_text(engine)
    if scenario == "401 refused":
        assert "refused the management key" in done.stderr


def test_key_never_in_a_database_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ledger:db-password-9@127.0.0.1:9/ledger"
    done = run_sync(tmp_path, "http://127.0.0.1:9/api/v1", url)
    assert done.returncode == 1
    assert CANARY not in done.stdout + done.stderr
    assert "db-password-9" not in done.stdout + done.stderr
