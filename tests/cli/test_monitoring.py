"""`keyledger sync` for monitors: the metrics file and the dead-man's pings, end to end
(the simulator and a ping server on loopback, a real database read back)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from etl.cli.main import cli
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from tests.helpers import refuse_keys
from tests.ping_server import CHECK, ping_server, refused_url

TOKEN = "sk-or-v1-monitoring-test-key-0123456789"
FIGURES = ("keys_seen", "keys_new", "keys_changed", "keys_deleted", "snapshots_written")
SUMMARY = re.compile(
    r"keys seen (\d+), new (\d+), changed (\d+), deleted (\d+); (\d+) snapshot rows; "
    r"(?:activity [^;]*; )?\d+ requests, \d+ retries; ([\d.]+)s$"
)


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    world = World(seed=5, workspaces=2, keys_per_workspace=120)
    with SimulatorServer(Simulator(world, token=TOKEN)) as running:
        yield running


def invoke(*args: str, env: dict[str, str]) -> click.testing.Result:
    return CliRunner().invoke(cli, ["sync", *args], env=env, catch_exceptions=False)


def run_command(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own: its stderr holds every log line it prints."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))}
    return subprocess.run(
        [sys.executable, "-c", "from etl.cli.main import main; main()", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sim_env(server: SimulatorServer, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
        **extra,
    }


def metrics(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the file, as Prometheus' own parser reads it."""
    parsed: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        assert family.type == "gauge"
        parsed[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return parsed


def one(parsed: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    (value,) = parsed[f"keyledger_{name}"].values()
    return value


def by_workspace(values: dict[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    return {dict(labels)["workspace"]: value for labels, value in values.items()}


def summary_figures(stderr: str) -> tuple[list[int], float]:
    found = SUMMARY.search(stderr.strip().splitlines()[-1])
    assert found is not None, stderr
    *counts, seconds = found.groups()
    return [int(c) for c in counts], float(seconds)


def test_a_good_run_writes_metrics_matching_its_summary_and_pings_start_and_0(
    database_url: str, tmp_path: Path
) -> None:
    world = World(seed=5, workspaces=2, keys_per_workspace=120)
    faults = Faults(error_rate=0.2)  # some requests retried, the run still ok
    path = tmp_path / "keyledger.prom"
    with (
        SimulatorServer(Simulator(world, token=TOKEN, faults=faults, seed=1)) as server,
        ping_server() as pings,
    ):
        env = sim_env(server, database_url, KEYLEDGER_PING_URL=pings.url)
        result = invoke("--metrics-file", str(path), env=env)
        served = server.simulator.stats
    assert result.exit_code == 0, result.output
    (seen, new, changed, deleted, snapshots), seconds = summary_figures(result.stderr)
    parsed = metrics(path)
    figures = [one(parsed, f"run_{name}") for name in FIGURES]
    assert figures == [seen, new, changed, deleted, snapshots] == [240, 240, 0, 0, 240]
    assert abs(one(parsed, "run_duration_seconds") - seconds) <= 0.05
    assert one(parsed, "run_exit_code") == 0
    status = {dict(k)["status"]: v for k, v in parsed["keyledger_run_status"].items()}
    assert status["ok"] == 1 and status["partial"] == status["failed"] == 0
    assert one(parsed, "run_requests") == served.requests
    assert one(parsed, "run_retries") == served.faults["server_errors"] > 0
    workspaces = {dict(k)["status"]: v for k, v in parsed["keyledger_run_workspaces"].items()}
    assert workspaces == {"ok": 2, "failed": 0, "skipped": 0, "delisted": 0}
    last = parsed["keyledger_workspace_last_success_timestamp_seconds"]
    assert {dict(k)["workspace"] for k in last} == set(world.workspace_ids)
    assert {dict(k)["account"] for k in last} == {"default"}
    assert all(abs(v - one(parsed, "run_timestamp_seconds")) < 60 for v in last.values())
    assert set(by_workspace(parsed["keyledger_workspace_failed"]).values()) == {0}
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]

    start, end = pings.pings
    assert (start.method, start.path) == ("GET", f"/{CHECK}/start")
    assert (end.method, end.path) == ("POST", f"/{CHECK}/0")
    assert start.query["rid"] == end.query["rid"] and len(start.query["rid"][0]) == 36
    assert end.body.strip() == result.stderr.strip().splitlines()[-1]  # the summary
    assert CHECK not in result.output


def test_a_failing_workspace_shows_in_the_metrics_and_pings_its_exit_status(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    good, bad = server.simulator.world.workspace_ids
    path = tmp_path / "metrics" / "keyledger.prom"
    path.parent.mkdir()
    config = tmp_path / "keyledger.toml"
    config.write_text(f'metrics_file = "{path}"\n', encoding="utf-8")
    with ping_server() as pings:
        env = sim_env(server, database_url, KEYLEDGER_PING_URL=pings.url)
        first = invoke("--config", str(config), env=env)
        assert first.exit_code == 0, first.output
        before = metrics(path)["keyledger_workspace_last_success_timestamp_seconds"]
        engine = make_engine(database_url)
        try:
            refuse_keys(engine, "workspace_id", bad)
        finally:
            engine.dispose()
        server.simulator.world.create_key(bad)  # a new key the database refuses
        server.simulator.world.create_key(good)
        result = invoke("--config", str(config), env=env)
    assert result.exit_code == 3, result.output
    (seen, new, changed, deleted, snapshots), seconds = summary_figures(result.stderr)
    parsed = metrics(path)
    assert one(parsed, "run_exit_code") == 3
    status = {dict(k)["status"]: v for k, v in parsed["keyledger_run_status"].items()}
    assert status == {"ok": 0, "partial": 1, "failed": 0, "locked": 0}
    workspaces = {dict(k)["status"]: v for k, v in parsed["keyledger_run_workspaces"].items()}
    assert workspaces == {"ok": 1, "failed": 1, "skipped": 0, "delisted": 0}
    assert by_workspace(parsed["keyledger_workspace_failed"]) == {good: 0, bad: 1}
    figures = [one(parsed, f"run_{name}") for name in FIGURES]
    # Only the committed workspace counts: its 120 keys and the new one.
    assert figures == [seen, new, changed, deleted, snapshots] == [121, 1, 0, 0, 1]
    assert abs(one(parsed, "run_duration_seconds") - seconds) <= 0.05
    last = by_workspace(parsed["keyledger_workspace_last_success_timestamp_seconds"])
    # The failed workspace keeps its last success (from the first run): its age grows.
    assert last[bad] == by_workspace(before)[bad]
    assert last[good] > by_workspace(before)[good]
    assert os.listdir(path.parent) == ["keyledger.prom"]

    start, end = pings.pings[2:]
    assert (start.path, end.path) == (f"/{CHECK}/start", f"/{CHECK}/3")
    assert start.query["rid"] == end.query["rid"] != pings.pings[0].query["rid"]
    assert f"keyledger: account default, workspace {bad}: failed" in end.body
    assert end.body.strip().splitlines()[-1] == result.stderr.strip().splitlines()[-1]
    assert CHECK not in result.output


def test_a_refused_key_fails_the_run_and_still_writes_metrics_and_pings_1(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "keyledger.prom"
    with ping_server() as pings:
        env = sim_env(server, database_url, OPENROUTER_MANAGEMENT_KEY="sk-or-v1-wrong-key-000000")
        env["KEYLEDGER_METRICS_FILE"] = str(path)
        result = invoke("--ping-url", pings.url, env=env)
    assert result.exit_code == 1, result.output
    parsed = metrics(path)
    assert one(parsed, "run_exit_code") == 1
    status = {dict(k)["status"]: v for k, v in parsed["keyledger_run_status"].items()}
    assert status["failed"] == 1 and status["ok"] == 0
    assert [p.path for p in pings.pings] == [f"/{CHECK}/start", f"/{CHECK}/1"]
    assert "refused the management key" in pings.pings[1].body
    assert CHECK not in result.output


@pytest.mark.parametrize("answer", ["refused", "503"])
def test_a_failing_ping_is_a_warning_and_never_changes_the_exit_status(
    server: SimulatorServer, database_url: str, tmp_path: Path, answer: str
) -> None:
    def run(url: str) -> subprocess.CompletedProcess[str]:
        return run_command(
            "sync", "--ping-url", url, env=sim_env(server, database_url), cwd=tmp_path
        )

    if answer == "refused":
        url = refused_url()
        result = run(url)
    else:
        with ping_server(status=503) as pings:
            url = pings.url
            result = run(url)
    assert result.returncode == 0, result.stderr
    port = url.split(":")[2].split("/")[0]
    warnings = [line for line in result.stderr.splitlines() if "ping " in line]
    assert len(warnings) == 2, result.stderr  # the start and the end
    assert all(f"ping http://127.0.0.1:{port}/... (" in line for line in warnings)
    assert "2 workspaces ok, 0 failed" in result.stderr
    assert CHECK not in result.stderr + result.stdout


def test_the_ping_url_never_shows_even_in_debug_logs(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    with ping_server() as pings:
        env = sim_env(server, database_url, KEYLEDGER_PING_URL=pings.url)
        result = run_command("-vv", "sync", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(pings.pings) == 2
    assert "/start?rid=" in result.stderr  # httpx logged the pings: scrubbed, not silenced
    assert CHECK not in result.stderr + result.stdout


def test_a_dry_run_neither_pings_nor_writes_metrics(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "keyledger.prom"
    with ping_server() as pings:
        env = sim_env(server, database_url, KEYLEDGER_PING_URL=pings.url)
        result = invoke("--dry-run", "--metrics-file", str(path), env=env)
    assert result.exit_code == 0, result.output
    assert pings.pings == [] and not path.exists()


def test_a_metrics_file_in_a_missing_directory_is_one_line_before_the_run(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "nowhere" / "keyledger.prom"
    result = invoke("--metrics-file", str(path), env=sim_env(server, database_url))
    assert result.exit_code == 1
    assert result.stderr == (
        f"keyledger: error: --metrics-file: 'metrics_file' {path}: "
        f"directory {path.parent} does not exist\n"
    )
    assert server.simulator.stats.requests == 0
