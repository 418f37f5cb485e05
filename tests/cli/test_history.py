"""`keyledger runs`, `runs show` and `status`: real syncs against the simulator on a
loopback socket, then the ledger read back through the commands, on every backend."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest
from alembic import command as alembic_command
from click.testing import CliRunner
from sqlalchemy import Engine, insert, select, update

from etl.cli.history import EXIT_STALE, parse_age
from etl.cli.main import cli
from etl.core.clock import utcnow
from etl.core.errors import LoadError
from etl.reports.history import limit, span
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from etl.store.history import reading
from etl.store.migrations import alembic_config
from models import SyncRun, SyncRunWorkspace, Workspace

TOKEN = "sk-or-v1-history-test-key-0123456789"
UNKNOWN_WORKSPACE = "00000000-0000-4000-8000-000000000000"  # the simulator answers 404
SUMMARY = re.compile(
    r"(\d+) workspaces ok, (\d+) failed, (\d+) skipped; "
    r"keys seen (\d+), new (\d+), changed (\d+), deleted (\d+)"
)


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    world = World(seed=11, workspaces=2, keys_per_workspace=30)
    with SimulatorServer(Simulator(world, token=TOKEN)) as running:
        yield running


def invoke(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def sim_env(server: SimulatorServer, database_url: str, *workspaces: str) -> dict[str, str]:
    env = {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }
    if workspaces:
        env["KEYLEDGER_WORKSPACES"] = ",".join(workspaces)
    return env


def summary_figures(stderr: str) -> list[int]:
    found = SUMMARY.search(stderr)
    assert found is not None, stderr
    return [int(n) for n in found.groups()]


def as_json(result: click.testing.Result) -> Any:
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


def history(server: SimulatorServer, database_url: str, tmp_path: Path) -> list[list[int]]:
    """Four real syncs: all ok; one workspace unknown (partial) after new, changed and
    deleted keys; every request failing (failed); a dry run. Returns each recorded
    run's summary figures (ok, failed, skipped, seen, new, changed, deleted)."""
    world = server.simulator.world
    first, second = world.workspace_ids
    figures = []
    ok = invoke("sync", env=sim_env(server, database_url))
    assert ok.exit_code == 0, ok.stderr
    figures.append(summary_figures(ok.stderr))

    world.advance(timedelta(hours=6), activity=False)
    existing = world.live_hashes(first)
    for key_hash in existing[:3]:
        world.spend(key_hash, Decimal("0.25"))
    world.delete_key(existing[-1])
    for _ in range(2):
        world.create_key(first)
    partial = invoke("sync", env=sim_env(server, database_url, first, UNKNOWN_WORKSPACE))
    assert partial.exit_code == 3, partial.stderr
    figures.append(summary_figures(partial.stderr))

    config = tmp_path / "keyledger.toml"
    config.write_text("[openrouter]\nmax_attempts = 1\n")
    server.simulator.faults.update({"error_rate": 1.0})
    try:
        failed = invoke(
            "sync", "--config", str(config), env=sim_env(server, database_url, first, second)
        )
    finally:
        server.simulator.faults.update({"error_rate": 0.0})
    assert failed.exit_code == 1, failed.stderr
    figures.append(summary_figures(failed.stderr))

    dry = invoke("sync", "--dry-run", env=sim_env(server, database_url))
    assert dry.exit_code == 0, dry.stderr
    return figures


def test_runs_list_real_syncs_newest_first_with_their_figures(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    figures = history(server, database_url, tmp_path)
    assert figures[1][4:] == [2, 3, 1]  # new, changed, deleted: what the world did

    listed = as_json(invoke("runs", "--format", "json", "--database-url", database_url))
    runs = listed["runs"]
    assert [r["status"] for r in runs] == ["failed", "partial", "ok"]  # the dry run: none
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
    for run, (ok, failed, skipped, seen, new, changed, deleted) in zip(
        runs, reversed(figures), strict=True
    ):
        workspaces = run["workspaces"]
        assert (workspaces["ok"], workspaces["failed"], workspaces["skipped"]) == (
            ok,
            failed,
            skipped,
        )
        assert run["keys"] == {"seen": seen, "new": new, "changed": changed, "deleted": deleted}
        started = datetime.fromisoformat(run["started_at"])
        finished = datetime.fromisoformat(run["finished_at"])
        assert started.utcoffset() == timedelta(0) and run["started_at"].endswith("+00:00")
        assert run["duration_seconds"] == pytest.approx((finished - started).total_seconds())
        assert run["duration_seconds"] >= 0
    assert runs[2]["keys"]["new"] == 60 and runs[2]["snapshots_written"] == 60

    table = invoke("runs", "--database-url", database_url)
    assert table.exit_code == 0 and table.stderr == ""
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "run", "started", "(UTC)", "duration", "status", "ok", "failed", "skipped",
        "seen", "new", "changed", "deleted",
    ]  # fmt: skip
    for line, run in zip(lines[2:], runs, strict=True):
        cells = line.split()
        assert cells[0] == str(run["id"]) and cells[4] == run["status"]
        counts = run["workspaces"]
        keys = run["keys"]
        expected = [counts["ok"], counts["failed"], counts["skipped"], *keys.values()]
        assert cells[5:] == [str(n) for n in expected]

    newest = as_json(
        invoke("runs", "--limit", "1", "--format", "json", "--database-url", database_url)
    )
    assert [r["id"] for r in newest["runs"]] == [runs[0]["id"]]


def test_runs_show_gives_each_workspace_and_its_error(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    history(server, database_url, tmp_path)
    first = server.simulator.world.workspace_ids[0]
    partial = as_json(invoke("runs", "--format", "json", "--database-url", database_url))["runs"][1]
    shown = invoke(
        "runs", "show", str(partial["id"]), "--format", "json", "--database-url", database_url
    )
    detail = as_json(shown)
    assert detail["run"] == partial
    by_id = {w["workspace_id"]: w for w in detail["workspaces"]}
    assert set(by_id) == {first, UNKNOWN_WORKSPACE}
    good, bad = by_id[first], by_id[UNKNOWN_WORKSPACE]
    assert (good["status"], good["error"], good["account"]) == ("ok", None, "default")
    assert good["keys"] == {"seen": 31, "new": 2, "changed": 3, "deleted": 1}
    assert good["name"] == "Default" and good["server_time"] is not None
    assert bad["status"] == "failed" and "404" in bad["error"]
    assert bad["keys"] == {"seen": 0, "new": 0, "changed": 0, "deleted": 0}

    table = invoke("runs", "show", str(partial["id"]), "--database-url", database_url)
    assert table.exit_code == 0
    assert table.stdout.startswith(f"run {partial['id']}: partial\n")
    assert "workspaces  1 ok, 1 failed" in table.stdout
    assert "keys        seen 31, new 2, changed 3, deleted 1" in table.stdout
    errors = table.stdout.split("\nerrors:\n")[1]
    assert errors.startswith(f"  {UNKNOWN_WORKSPACE} (default) failed: ")
    assert "Workspace not found" in errors

    # The group's options reach the subcommand too.
    same = invoke(
        "runs", "--format", "json", "--database-url", database_url, "show", str(partial["id"])
    )
    assert as_json(same) == detail
    failed = invoke("runs", "--database-url", database_url, "show", str(partial["id"] + 1))
    assert failed.exit_code == 0
    assert failed.stdout.startswith(f"run {partial['id'] + 1}: failed\n")
    assert failed.stdout.count("GET /keys: gave up after 1 attempt") == 2


def test_runs_show_of_an_unknown_run_is_one_line_exit_1(database_url: str) -> None:
    result = invoke("runs", "show", "4242", "--database-url", database_url)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "keyledger: error: no run with id 4242 in the run ledger (`keyledger runs` lists them)\n"
    )


def test_runs_on_an_empty_ledger_says_so(database_url: str) -> None:
    table = invoke("runs", "--database-url", database_url)
    assert (table.exit_code, table.stdout) == (0, "no runs recorded yet\n")
    assert as_json(invoke("runs", "--format", "json", "--database-url", database_url)) == {
        "runs": []
    }


def test_status_on_an_empty_ledger_is_not_ok(database_url: str) -> None:
    table = invoke("status", "--database-url", database_url)
    assert table.exit_code == 5
    assert table.stdout == (
        "no workspace has synced yet\n"
        "status: NOT OK: 0 fresh, 0 stale, 0 never synced (max age 26h)\n"
    )
    report = as_json(invoke("status", "--format", "json", "--database-url", database_url))
    assert (report["ok"], report["workspaces"]) == (False, [])


def shift_ledger(engine: Engine, by: timedelta) -> None:
    """Move every recorded run and workspace time by ``by``: an age without sleeping."""
    with engine.begin() as connection:
        for table in (SyncRun, SyncRunWorkspace):
            for row in connection.execute(select(table.id, table.started_at, table.finished_at)):
                connection.execute(
                    update(table)
                    .where(table.id == row.id)
                    .values(started_at=row.started_at + by, finished_at=row.finished_at + by)
                )


def test_status_is_fresh_then_stale_by_the_recorded_times(
    server: SimulatorServer, database_url: str
) -> None:
    assert invoke("sync", env=sim_env(server, database_url)).exit_code == 0
    fresh = invoke("status", "--format", "json", "--database-url", database_url)
    assert fresh.exit_code == 0, fresh.stdout
    report = as_json(fresh)
    assert report["ok"] is True and report["max_age_seconds"] == 26 * 3600
    assert {w["workspace_id"] for w in report["workspaces"]} == set(
        server.simulator.world.workspace_ids
    )
    assert {w["state"] for w in report["workspaces"]} == {"fresh"}
    assert all(0 <= w["age_seconds"] < 600 for w in report["workspaces"])

    engine = make_engine(database_url)
    try:
        shift_ledger(engine, -timedelta(hours=3))
    finally:
        engine.dispose()
    stale = invoke("status", "--max-age", "2h", "--format", "json", "--database-url", database_url)
    assert stale.exit_code == EXIT_STALE == 5
    report = as_json(stale)
    assert report["ok"] is False and report["counts"]["stale"] == 2
    checked_at = datetime.fromisoformat(report["checked_at"])
    for workspace in report["workspaces"]:
        last = datetime.fromisoformat(workspace["last_success_at"])
        assert workspace["state"] == "stale"
        assert workspace["age_seconds"] == pytest.approx((checked_at - last).total_seconds())
        assert 3 * 3600 <= workspace["age_seconds"] < 3 * 3600 + 600

    assert invoke("status", "--max-age", "4h", "--database-url", database_url).exit_code == 0
    assert invoke("status", "--max-age", "1d", "--database-url", database_url).exit_code == 0
    table = invoke("status", "--max-age", "90m", "--database-url", database_url)
    assert table.exit_code == 5
    assert table.stdout.rstrip().splitlines()[-1] == (
        "status: NOT OK: 0 fresh, 2 stale, 0 never synced (max age 90m)"
    )
    assert all(" 3h0" in line for line in table.stdout.splitlines()[2:4])


def test_status_names_a_workspace_that_never_synced(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    first = server.simulator.world.workspace_ids[0]
    never = "00000000-0000-4000-8000-00000000beef"
    partial = invoke("sync", env=sim_env(server, database_url, first, UNKNOWN_WORKSPACE))
    assert partial.exit_code == 3

    result = invoke("status", "--format", "json", "--database-url", database_url)
    assert result.exit_code == 5
    states = {w["workspace_id"]: w for w in as_json(result)["workspaces"]}
    assert states[first]["state"] == "fresh"
    failing = states[UNKNOWN_WORKSPACE]
    assert failing["state"] == "never_synced" and failing["last_success_at"] is None
    assert failing["last_attempt"]["status"] == "failed"
    assert "404" in failing["last_attempt"]["error"]

    only_first = invoke("status", "--workspace", first, "--database-url", database_url)
    assert only_first.exit_code == 0, only_first.stdout

    # A configured workspace with no ledger row at all is never synced too.
    config = tmp_path / "keyledger.toml"
    config.write_text(f'[openrouter]\nworkspaces = ["{first}", "{never}"]\n')
    configured = invoke(
        "status", "--config", str(config), "--format", "json", "--database-url", database_url
    )
    assert configured.exit_code == 5
    states = {w["workspace_id"]: w["state"] for w in as_json(configured)["workspaces"]}
    # The one that failed is no longer configured: shown, not checked.
    assert states == {
        first: "fresh",
        never: "never_synced",
        UNKNOWN_WORKSPACE: "not_configured",
    }
    config.write_text(f'[openrouter]\nworkspaces = ["{first}"]\n')
    healed = invoke("status", "--config", str(config), "--database-url", database_url)
    assert healed.exit_code == 0, healed.stdout
    assert "not checked: 1 not configured" in healed.stdout


@pytest.mark.parametrize("bad", ["26", "h", "1.5h", "-2h", "0m", "26 hours", ""])
def test_a_bad_max_age_is_a_one_line_usage_error(bad: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-opened.db'}"
    result = invoke("status", "--max-age", bad, "--database-url", url)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("keyledger: error: --max-age ")
    assert not (tmp_path / "never-opened.db").exists()


def test_a_bad_workspace_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = invoke("status", "--workspace", "prod", "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert result.exit_code == 2
    assert result.stderr == (
        "keyledger: error: --workspace 'prod' is not \"default\" or a workspace UUID\n"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("26h", 93600), ("90m", 5400), ("2d", 172800), ("1d12h", 129600), ("45s", 45), ("1w", 604800)],
)
def test_max_age_units(text: str, seconds: int) -> None:
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.04, "0.0s"),
        (59.94, "59.9s"),
        (60, "1m00s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (11_100, "3h05m"),
        (86_399, "23h59m"),
        (86_400, "1d00h"),
        (93_600, "1d02h"),
    ],
)
def test_spans_for_people(seconds: float, shown: str) -> None:
    assert span(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(
    ("text", "shown"), [("26h", "26h"), ("2d", "2d"), ("90m", "90m"), ("1d1s", "86401s")]
)
def test_max_age_is_shown_as_given(text: str, shown: str) -> None:
    assert limit(parse_age(text)) == shown


COMMANDS = [("runs",), ("runs", "show", "1"), ("status",)]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_database_without_schema_is_one_line_exit_1(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = invoke(*command, "--database-url", url)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert "empty database" in result.stderr and "keyledger db upgrade" in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_old_schema_is_one_line_exit_1(command: tuple[str, ...], database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            alembic_command.downgrade(alembic_config(connection), "-1")
    finally:
        engine.dispose()
    result = invoke(*command, "--database-url", database_url)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert "keyledger db upgrade" in result.stderr


def test_an_unreachable_database_is_one_line_with_password_masked() -> None:
    url = "postgresql+psycopg://ledger:hunter2-secret@127.0.0.1:9/ledger"
    for command in COMMANDS:
        result = invoke(*command, "--database-url", url)
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1
        assert "ledger:***@127.0.0.1:9" in result.stderr
        assert "hunter2-secret" not in result.output + result.stderr


def ledger_contents(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return [
            sorted(tuple(row) for row in connection.execute(select(table)))
            for table in (SyncRun, SyncRunWorkspace, Workspace)
        ]


def test_the_commands_write_nothing(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    history(server, database_url, tmp_path)
    engine = make_engine(database_url)
    try:
        before = ledger_contents(engine)
        for command in [*COMMANDS, ("runs", "show", "2"), ("status", "--max-age", "1s")]:
            for output in ("table", "json"):
                invoke(*command, "--format", output, "--database-url", database_url)
        assert ledger_contents(engine) == before
    finally:
        engine.dispose()


def test_the_reading_connection_is_refused_writes(engine: Engine) -> None:
    with pytest.raises(LoadError, match="cannot read the run ledger"), reading(engine) as c:
        c.execute(insert(Workspace).values(id="w", first_seen_at=datetime.now(timezone.utc)))
    with engine.connect() as connection:
        assert connection.execute(select(Workspace.id)).all() == []
    # The pooled connection writes again for whoever takes it next.
    with engine.begin() as connection:
        connection.execute(insert(Workspace).values(id="w", first_seen_at=utcnow()))


def test_an_account_whose_listing_failed_is_shown_with_its_error(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text("[openrouter]\nmax_attempts = 1\n")
    server.simulator.faults.update({"error_rate": 1.0})
    try:
        failed = invoke("sync", "--config", str(config), env=sim_env(server, database_url))
    finally:
        server.simulator.faults.update({"error_rate": 0.0})
    assert failed.exit_code == 1
    assert summary_figures(failed.stderr)[:3] == [0, 1, 0]

    run = as_json(invoke("runs", "--format", "json", "--database-url", database_url))["runs"][0]
    assert (run["status"], run["workspaces"]["failed"], run["workspaces"]["total"]) == (
        "failed",
        1,
        1,
    )
    detail = as_json(
        invoke("runs", "show", str(run["id"]), "--format", "json", "--database-url", database_url)
    )
    [account] = detail["workspaces"]
    assert (account["workspace_id"], account["status"]) == ("*", "failed")
    assert account["error"].startswith("GET /workspaces: gave up after 1 attempt")
    # Not a workspace: status has nothing synced to show.
    status = as_json(invoke("status", "--format", "json", "--database-url", database_url))
    assert status["workspaces"] == [] and status["ok"] is False
