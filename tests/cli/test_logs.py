"""What `keyledger` writes on stderr: text or JSON lines, --quiet, -v, wherever they stand."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from etl.cli.logs import LOG_REDACTION, StderrHandler, configure_logging
from etl.cli.main import cli
from etl.core.exit_codes import EXIT_CODES
from etl.core.log_context import log_fields
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from etl.store import locks
from etl.store.database import make_engine
from models import SyncRun

TOKEN = "sk-or-v1-logs-test-key-0123456789"
SUMMARY = re.compile(r"sync: \d+ workspaces ok, \d+ failed, \d+ skipped; .* (\d+) retries; ")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each command configures the root logger; leave it as the next test expects."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)


def serve(**faults: Any) -> SimulatorServer:
    world = World(seed=7, workspaces=2, keys_per_workspace=150)
    return SimulatorServer(Simulator(world, token=TOKEN, faults=Faults(**faults), seed=7))


def invoke(server: SimulatorServer, database_url: str, *args: str, **env: str) -> Result:
    environment = {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
        **env,
    }
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def test_retried_faults_that_end_well_write_only_the_summary(database_url: str) -> None:
    # One in ten requests starts a 5xx (the "10% server errors"): each is retried.
    with serve(error_rate=0.1) as server:
        result = invoke(server, database_url, "sync")
        injected = server.simulator.stats.faults["server_errors"]
    assert result.exit_code == 0, result.stderr
    assert injected > 0  # the seed makes some; the run retried them all
    (line,) = result.stderr.splitlines()
    summary = SUMMARY.match(line)
    assert summary is not None, line
    assert int(summary.group(1)) == injected


@pytest.mark.parametrize("order", ["before", "after"])
def test_json_lines_carry_time_level_message_and_what_they_are_about(
    database_url: str, order: str
) -> None:
    options = ["--log-format", "json", "-v"]
    args = [*options, "sync"] if order == "before" else ["sync", *options]
    with serve(rate_limit_rate=0.3, retry_after_seconds=0.01) as server:
        result = invoke(server, database_url, *args)
        injected = server.simulator.stats.faults["rate_limited"]
        workspaces = set(server.simulator.world.workspace_ids)
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stderr)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    engine = make_engine(database_url)
    with engine.connect() as connection:
        run_id = connection.scalar(select(SyncRun.id))
    engine.dispose()

    retries = [line for line in lines if "retrying in" in line["message"]]
    assert injected > 0 and len(retries) == injected
    assert all(line["level"] == "info" for line in retries)  # not warnings
    assert all(line["run_id"] == run_id and line["account"] == "default" for line in retries)
    # A listing's retries name their workspace, also from the threads fetching ahead.
    assert {line["workspace"] for line in retries if "GET /keys" in line["message"]} <= workspaces
    ended = [line for line in lines if line["message"].startswith("workspace ok:")]
    assert {line["workspace"] for line in ended} == workspaces

    summary = lines[-1]
    assert summary["logger"] == "keyledger" and summary["message"].startswith("sync: ")
    assert (summary["run_id"], summary["status"], summary["exit_code"]) == (run_id, "ok", 0)
    assert (summary["workspaces_ok"], summary["keys_seen"], summary["keys_new"]) == (2, 300, 300)
    assert summary["retries"] == injected
    assert summary["requests"] == server.simulator.stats.requests


def test_quiet_prints_only_the_summary_of_a_good_run(database_url: str) -> None:
    # A workspace held by another run is skipped with a warning: not for --quiet.
    with serve() as server:
        held_id = server.simulator.world.workspace_ids[0]
        engine = make_engine(database_url)
        held = locks.try_lock(engine, held_id)
        try:
            loud = invoke(server, database_url, "sync", "--dry-run")
            quiet = invoke(server, database_url, "sync", "--quiet")
        finally:
            assert held is not None
            held.release()
            engine.dispose()
    assert loud.exit_code == quiet.exit_code == 0
    assert f"account default, workspace {held_id}: skipped: held by another run" in loud.stderr
    (line,) = quiet.stderr.splitlines()
    assert line.startswith("sync: 1 workspaces ok, 0 failed, 1 skipped; ")


def test_quiet_still_prints_the_errors_of_a_bad_run(database_url: str) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"  # not in the simulator: 404
    with serve() as server:
        result = invoke(server, database_url, "-q", "sync", "--workspace", unknown)
    assert result.exit_code == 1
    failure, summary = result.stderr.splitlines()
    assert failure.startswith(f"keyledger: account default, workspace {unknown}: failed: ")
    assert "HTTP 404" in failure
    assert summary.startswith("sync: 0 workspaces ok, 1 failed, 0 skipped; ")


def test_unlisted_workspaces_name_the_account_and_all_its_workspaces(
    database_url: str, tmp_path: Path
) -> None:
    # GET /workspaces keeps failing: the line is about every workspace of the account,
    # and says so; JSON gives the account and no workspace.
    config = tmp_path / "keyledger.toml"
    config.write_text("[openrouter]\nmax_attempts = 1\n", encoding="utf-8")
    with serve(error_rate=1.0, error_burst=1000) as server:
        result = invoke(server, database_url, "sync", "--config", str(config), "--log-format=json")
    assert result.exit_code == 1
    failure = json_lines(result.stderr)[0]
    assert failure["message"].startswith("keyledger: account default, all workspaces: failed: ")
    assert (failure["level"], failure["account"], failure["status"]) == (
        "error",
        "default",
        "failed",
    )
    assert "workspace" not in failure


def test_verbosity_adds_up_before_and_after_the_command(database_url: str) -> None:
    with serve() as server:
        once = invoke(server, database_url, "sync", "-v")
        twice = invoke(server, database_url, "-v", "sync", "-v")
    assert once.exit_code == twice.exit_code == 0
    # -v: each workspace's end (with its run, account and workspace), not HTTP lines.
    assert re.search(r" INFO etl\.workspace_sync \[run 1, account default, workspace ", once.stderr)
    assert "HTTP Request" not in once.stderr
    assert "HTTP Request: GET" in twice.stderr  # -vv: httpx's debug lines too


def test_quiet_and_verbose_together_is_a_usage_error(database_url: str) -> None:
    with serve() as server:
        result = invoke(server, database_url, "-q", "sync", "-v")
    assert result.exit_code == 2
    assert "--quiet and --verbose" in result.stderr


def test_log_format_from_the_environment_and_the_option_over_it(database_url: str) -> None:
    with serve() as server:
        from_env = invoke(server, database_url, "sync", KEYLEDGER_LOG_FORMAT="json")
        overridden = invoke(
            server, database_url, "--log-format", "text", "sync", KEYLEDGER_LOG_FORMAT="json"
        )
        bad = invoke(server, database_url, "sync", KEYLEDGER_LOG_FORMAT="xml")
    assert json_lines(from_env.stderr)[-1]["status"] == "ok"
    assert overridden.stderr.startswith("sync: 2 workspaces ok")
    assert bad.exit_code == 1
    assert (
        bad.stderr
        == "keyledger: error: environment: KEYLEDGER_LOG_FORMAT is 'xml'; use text or json\n"
    )


def test_json_lines_are_scrubbed_of_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    secret = 'sk-or-v1-"quoted\\secret-0123456789'  # JSON would escape its " and \
    LOG_REDACTION.protect(secret)
    configure_logging(log_format="json", verbosity=1)
    log = logging.getLogger("tests.library")
    with log_fields(run_id=9, account="prod", workspace="default"):
        log.warning("echoed %s back", secret)
        try:
            raise RuntimeError(f"header Authorization: Bearer {secret}")
        except RuntimeError:
            log.exception("failed")
    lines = json_lines(capsys.readouterr().err)
    assert [line["message"] for line in lines] == ["echoed *** back", "failed"]
    assert "Bearer ***" in lines[1]["traceback"]
    assert all(
        (line["run_id"], line["account"], line["workspace"]) == (9, "prod", "default")
        for line in lines
    )
    text = json.dumps(lines)
    assert "quoted" not in text and "secret-0123456789" not in text


# -- help ---------------------------------------------------------------------------------


def every_command(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from every_command(sub, (*path, name))


@pytest.mark.parametrize(
    ("path", "command"),
    list(every_command(cli)),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert command.help and command.help.strip(), f"keyledger {' '.join(path)} has no help"
    context = click.Context(command, info_name="keyledger")
    for param in command.get_params(context):
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"{' '.join(path)} {param.opts} has no help"
    names = {param.name for param in command.params}
    assert {"log_format", "quiet", "verbose"} <= names  # the global options, everywhere


def test_sync_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(cli, ["sync", "--help"])
    assert result.exit_code == 0
    for code, meaning in EXIT_CODES.items():
        assert f"{code}  {meaning}" in result.output
