"""The `keyledger` command: invoke it, then read the rows back from a real database."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import click
import pytest
from alembic import command as alembic_command
from click.testing import CliRunner
from sqlalchemy import func, select

from etl.cli.main import cli
from etl.core.exact_json import parse_json
from etl.demo import DEMO_QUERIES, is_money
from etl.reports.text_width import display_width
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from models import ApiKey, SyncRun, SyncRunWorkspace
from tests.helpers import refuse_keys

TOKEN = "sk-or-v1-cli-test-key-0123456789"


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    """The simulator on a real loopback socket."""
    world = World(seed=3, workspaces=2, keys_per_workspace=120)
    with SimulatorServer(Simulator(world, token=TOKEN)) as running:
        yield running


def invoke(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def sim_env(server: SimulatorServer, database_url: str) -> dict[str, str]:
    return {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(all_commands(cli)), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and command.help.strip()
    first_words = " ".join(command.help.split()[:4])
    assert first_words in " ".join(result.output.split())


def test_sync_loads_the_simulator_and_reports(server: SimulatorServer, database_url: str) -> None:
    result = invoke("sync", env=sim_env(server, database_url))
    assert result.exit_code == 0, result.output
    assert "2 workspaces ok, 0 failed" in result.stderr
    assert "keys seen 240, new 240" in result.stderr
    engine = make_engine(database_url)
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(ApiKey))
        ok = connection.scalar(
            select(func.count())
            .select_from(SyncRunWorkspace)
            .where(SyncRunWorkspace.status == "ok")
        )
    engine.dispose()
    assert stored == 240 and ok == 2
    again = invoke("sync", env=sim_env(server, database_url))
    assert "new 0, changed 0, deleted 0; 0 snapshot rows" in again.stderr


def test_sync_limits_to_named_workspaces(server: SimulatorServer, database_url: str) -> None:
    second = server.simulator.world.workspace_ids[1]
    result = invoke("sync", "--workspace", second, env=sim_env(server, database_url))
    assert result.exit_code == 0, result.output
    engine = make_engine(database_url)
    with engine.connect() as connection:
        workspaces = set(connection.scalars(select(ApiKey.workspace_id).distinct()))
    engine.dispose()
    assert workspaces == {second}


def test_upgrade_waiting_too_long_for_another_migration_exits_4(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl.store import locks, migrations

    monkeypatch.setattr(migrations, "MIGRATION_WAIT_SECONDS", 0.3)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        alembic_command.downgrade(migrations.alembic_config(connection), "0001")  # work to do
    held = locks.try_lock(engine, migrations.migration_lock_subject(engine))
    try:
        result = invoke("db", "upgrade", "--database-url", database_url)
    finally:
        assert held is not None
        held.release()
        engine.dispose()
    assert result.exit_code == 4
    assert result.stderr.startswith("keyledger: error: another keyledger process")
    assert len(result.stderr.strip().splitlines()) == 1


def test_partial_failure_exits_3(server: SimulatorServer, database_url: str) -> None:
    bad = "00000000-0000-4000-8000-000000000000"  # unknown to the simulator: 404
    good = server.simulator.world.workspace_ids[0]
    result = invoke(
        "sync", "--workspace", good, "--workspace", bad, env=sim_env(server, database_url)
    )
    assert result.exit_code == 3
    assert f"workspace {bad}" in result.stderr


def test_refused_key_exits_1_without_showing_it(server: SimulatorServer, database_url: str) -> None:
    env = sim_env(server, database_url) | {"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-wrong-key-42"}
    env["KEYLEDGER_WORKSPACES"] = ",".join(server.simulator.world.workspace_ids)
    result = invoke("sync", env=env)
    assert result.exit_code == 1
    assert "refused the management key" in result.stderr
    assert "sk-or-v1-wrong-key-42" not in result.output + result.stderr


def test_locked_workspaces_exit_4(server: SimulatorServer, database_url: str) -> None:
    from etl.store import locks

    engine = make_engine(database_url)
    held = [locks.try_lock(engine, w) for w in server.simulator.world.workspace_ids]
    try:
        env = sim_env(server, database_url)
        env["KEYLEDGER_WORKSPACES"] = ",".join(server.simulator.world.workspace_ids)
        result = invoke("sync", env=env)
    finally:
        for lock in held:
            assert lock is not None
            lock.release()
        engine.dispose()
    assert result.exit_code == 4
    assert "held by another run" in result.stderr


# A value for each field that one backend or another cannot hold, and how the parser
# names it: the same words whatever the database.
TOO_LONG = {
    "hash": ("h" * 10_000, "is 10,000 characters long; api_keys.hash holds at most 128"),
    "name": (
        "n" * 65_536,
        "is 65,536 bytes long in UTF-8; api_keys.name holds at most 65,535 bytes",
    ),
    "label": (  # 21,846 characters, 3 bytes each: MariaDB's TEXT counts bytes
        "€" * 21_846,
        "is 65,538 bytes long in UTF-8; api_keys.label holds at most 65,535 bytes",
    ),
}
AT_THE_LIMITS = {
    "hash": "k" * 128,
    "name": "😀" * 16_383 + "abc",  # exactly 65,535 bytes
    "label": ('O\'Reilly "quoted" 🚀 back\\slash ' * 40)[:1_000],
}


@pytest.mark.parametrize("field", list(TOO_LONG))
def test_value_the_schema_cannot_hold_fails_its_workspace_by_name(
    field: str, database_url: str
) -> None:
    world = World(seed=5, workspaces=2, keys_per_workspace=30)
    bad, good = world.workspace_ids
    value, problem = TOO_LONG[field]
    if field == "hash":
        world.create_key(bad, key_hash=value)
        named = "key " + "h" * 40 + "..."
    else:
        key_hash = world.live_hashes(bad)[0]
        world.update_key(key_hash, **{field: value})
        named = f"key {key_hash}"
    at_limits = world.create_key(good, key_hash=AT_THE_LIMITS["hash"])
    world.update_key(at_limits, name=AT_THE_LIMITS["name"], label=AT_THE_LIMITS["label"])
    with SimulatorServer(Simulator(world, token=TOKEN)) as server:
        env = sim_env(server, database_url) | {"KEYLEDGER_WORKSPACES": f"{bad},{good}"}
        result = invoke("sync", env=env)
    assert result.exit_code == 3, result.stderr
    # One line names the workspace, the key, the field and the limit, identically on
    # every backend (the expected text does not depend on the database).
    failed = [line for line in result.stderr.splitlines() if "failed:" in line]
    assert failed == [
        f"keyledger: account default, workspace {bad}: failed: workspace {bad}, offset 0: "
        f"{named}: field '{field}' {problem}"
    ]
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            stored = {
                row.hash: row
                for row in connection.execute(select(ApiKey.hash, ApiKey.name, ApiKey.label))
            }
            workspaces = set(connection.scalars(select(ApiKey.workspace_id).distinct()))
    finally:
        engine.dispose()
    assert workspaces == {good}  # the failed workspace wrote nothing; the other committed
    assert len(stored) == world.live_key_count(good)
    # Right at each limit, and quotes, emoji and backslashes, are stored verbatim.
    kept = stored[AT_THE_LIMITS["hash"]]
    assert (kept.name, kept.label) == (AT_THE_LIMITS["name"], AT_THE_LIMITS["label"])


def test_missing_key_variable_is_one_line_exit_1(tmp_path: Path) -> None:
    result = invoke("sync", env={"KEYLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "keyledger: error: environment: [openrouter] management key: environment variable "
        "OPENROUTER_MANAGEMENT_KEY is not set (set it, or point management_key_file at a "
        "file holding the key)"
    )
    assert not (tmp_path / "x.db").exists()  # touched no database


def test_config_file_typo_names_file_and_setting(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text('[openrouter]\nbase_ulr = "http://x"\n')
    result = invoke("sync", "--config", str(config), env={"OPENROUTER_MANAGEMENT_KEY": "k"})
    assert result.exit_code == 1
    assert f"{config}: [openrouter] unknown setting 'base_ulr'" in result.stderr


def test_bad_usage_exits_2() -> None:
    assert invoke("sync", "--no-such-option").exit_code == 2


def test_extract_prints_exact_jsonl(server: SimulatorServer) -> None:
    env = {"OPENROUTER_MANAGEMENT_KEY": TOKEN, "OPENROUTER_BASE_URL": server.base_url}
    result = invoke("extract", "--format", "jsonl", env=env)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 240
    truth = {k["hash"]: k for k in server.simulator.world.truth_keys()}
    for line in lines:
        key = parse_json(line.encode())
        assert key["usage"] == truth[key["hash"]]["usage"]
        assert isinstance(key["usage"], (Decimal, int))
    json.loads(lines[0])  # plain JSON too


def extract_env(server: SimulatorServer, *workspaces: str) -> dict[str, str]:
    env = {"OPENROUTER_MANAGEMENT_KEY": TOKEN, "OPENROUTER_BASE_URL": server.base_url}
    if workspaces:
        env["KEYLEDGER_WORKSPACES"] = ",".join(workspaces)
    return env


def test_extract_summary_counts_keys_and_pages_on_stderr_only(server: SimulatorServer) -> None:
    result = invoke("extract", env=extract_env(server))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert re.fullmatch(
        r"extract: 2 workspaces ok, 0 failed; 240 keys in \d+ pages; \d+\.\ds\n", result.stderr
    )


def test_extract_partial_failure_exits_3_naming_the_workspace(server: SimulatorServer) -> None:
    bad = "00000000-0000-4000-8000-000000000000"  # unknown to the simulator: 404
    good = server.simulator.world.workspace_ids[0]
    result = invoke("extract", "--format", "jsonl", env=extract_env(server, bad, good))
    assert result.exit_code == 3
    assert len(result.stdout.splitlines()) == 120  # the good workspace's keys
    failure, summary = result.stderr.splitlines()
    assert failure.startswith(f"keyledger: workspace {bad} failed: ")
    assert "HTTP 404" in failure
    assert summary.startswith("extract: 1 workspaces ok, 1 failed; 120 keys in ")


def test_extract_with_every_workspace_failing_exits_1(server: SimulatorServer) -> None:
    bad = "00000000-0000-4000-8000-000000000000"
    result = invoke("extract", env=extract_env(server, bad))
    assert result.exit_code == 1
    assert "extract: 0 workspaces ok, 1 failed; 0 keys in 0 pages" in result.stderr


def test_extract_with_a_refused_key_is_one_line_exit_1(server: SimulatorServer) -> None:
    env = extract_env(server) | {"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-wrong-key-42"}
    result = invoke("extract", env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("keyledger: error: ")
    assert "refused the management key" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "sk-or-v1-wrong-key-42" not in result.output + result.stderr


def test_demo_loads_nights_and_prints_queries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = invoke("demo", "--database-url", url, "--nights", "2")
    assert result.exit_code == 0, result.output
    assert result.output.count("workspaces ok") == 2
    # The example queries with their results
    assert result.output.count("\n-- ") == len(DEMO_QUERIES) == 5
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ApiKey))
    engine.dispose()


def demo_tables(output: str) -> list[list[str]]:
    """Each result table the demo prints: header, dashes, rows."""
    tables, lines = [], output.splitlines()
    for i, line in enumerate(lines):
        if i and re.fullmatch(r"-+(  -+)*", line):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].strip()), len(lines))
            tables.append(lines[i - 1 : end])
    return tables


def cells(line: str, dashes: str) -> list[str]:
    """``line`` cut at the display columns of the dashes line's columns; a space must
    stand in every gap between them, or the table is misaligned."""
    columns: list[str] = []  # one entry per display column ("" after a wide character)
    for char in line:
        if display_width(char) == 0 and columns:
            columns[-1] += char
        else:
            columns += [char] + [""] * (display_width(char) - 1)
    columns += [" "] * (len(dashes) - len(columns))
    assert len(columns) == len(dashes), line
    assert all(columns[i] == " " for i, c in enumerate(dashes) if c == " "), line
    spans = [m.span() for m in re.finditer(r"-+", dashes)]
    return ["".join(columns[a:b]).strip() for a, b in spans]


def test_demo_rounds_money_and_keeps_tables_aligned(database_url: str) -> None:
    result = invoke("demo", "--database-url", database_url, "--nights", "3")
    assert result.exit_code == 0, result.output
    assert "money below is rounded to 1/100 of a cent" in result.output
    tables = demo_tables(result.output)
    assert len(tables) == len(DEMO_QUERIES)
    money_cells = 0
    wide_rows = 0
    for header, dashes, *rows in tables:
        names = cells(header, dashes)
        money = [i for i, n in enumerate(names) if is_money(n)]
        assert money, names
        for row in rows:
            values = cells(row, dashes)
            wide_rows += display_width(row) != len(row)
            for i in money:
                # SQLite sums money as REAL (7.010828073100001): shown rounded.
                assert values[i] == "" or re.fullmatch(r"\d+\.\d{4}", values[i]), values
                money_cells += bool(values[i])
    assert money_cells >= 10
    assert wide_rows  # the simulator names keys in CJK and with emoji


def test_installed_command_upgrades_from_any_directory(tmp_path: Path) -> None:
    command = shutil.which("keyledger", path=str(Path(sys.executable).parent))
    assert command, "keyledger is not installed in this environment"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [command, "db", "upgrade", "--database-url", "sqlite:///ledger.db"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    engine = make_engine(f"sqlite:///{elsewhere / 'ledger.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()


def test_demo_refuses_a_database_that_holds_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mine.db'}"
    assert invoke("demo", "--database-url", url, "--nights", "1").exit_code == 0
    again = invoke("demo", "--database-url", url, "--nights", "1")
    assert again.exit_code == 1
    assert "already holds keys" in again.stderr


def test_demo_replaces_its_own_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the demo's default file lives in the working directory
    for _ in range(2):
        result = invoke("demo", "--nights", "1")
        assert result.exit_code == 0, result.output
    engine = make_engine("sqlite:///keyledger-demo.db")
    with engine.connect() as connection:
        runs = connection.exec_driver_sql("SELECT COUNT(*) FROM sync_runs").scalar()
    engine.dispose()
    assert runs == 1


def test_unreachable_database_is_one_line_with_password_masked(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ledger:hunter2-secret@127.0.0.1:9/ledger"
    result = invoke("sync", env={"OPENROUTER_MANAGEMENT_KEY": TOKEN, "KEYLEDGER_DATABASE_URL": url})
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot connect to postgresql+psycopg://ledger:***@127.0.0.1:9/ledger" in result.stderr
    assert "hunter2-secret" not in result.output + result.stderr


@pytest.mark.parametrize("command", [("demo",), ("report",), ("db", "upgrade")])
def test_every_command_reports_an_unreachable_database_in_one_line(
    command: tuple[str, ...],
) -> None:
    url = "postgresql+psycopg://ledger:hunter2-secret@127.0.0.1:9/ledger"
    result = invoke(*command, "--database-url", url)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert "cannot connect to postgresql+psycopg://ledger:***@127.0.0.1:9/ledger" in result.stderr
    assert "hunter2-secret" not in result.output + result.stderr


def test_wait_takes_a_workspace_once_its_holder_lets_go(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    import os
    import time

    from etl.store import locks

    workspace = server.simulator.world.workspace_ids[0]
    engine = make_engine(database_url)
    held = locks.try_lock(engine, workspace)
    assert held is not None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        **sim_env(server, database_url),
    }
    started = time.monotonic()
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from etl.cli.main import main; main()",
            "sync",
            "--workspace",
            workspace,
            "--wait",
            "60",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert waiting.poll() is None  # still waiting for the lock
    held.release()
    _, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, stderr
    assert time.monotonic() - started < 30
    with engine.connect() as connection:
        stored = connection.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.workspace_id == workspace)
        )
    engine.dispose()
    assert stored == server.simulator.world.live_key_count(workspace)


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ('[openrouter]\nworkspace = "all"', {}, "[openrouter] unknown setting 'workspace'"),
        (
            '[openrouter]\nconcurrency = "many"',
            {},
            "'[openrouter] concurrency' should be a positive",
        ),
        (
            '[openrouter]\nworkspaces = ["prod-1"]',
            {},
            "'prod-1' is not \"default\" or a workspace UUID",
        ),
        ('[openrouter]\nmanagement_key_env = "NO_SUCH_VAR"', {}, "NO_SUCH_VAR is not set"),
        ('[openrouter]\nmanagement_key_file = "/nonexistent/key"', {}, "cannot be read"),
        ('database_url = "nonsense"', {}, "'database_url' is not a database URL"),
    ],
)
def test_bad_configuration_is_one_line_exit_1_and_touches_no_database(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(toml + "\n")
    database = tmp_path / "never.db"
    environment = {"OPENROUTER_MANAGEMENT_KEY": TOKEN, **env}
    if "database_url" not in toml:
        environment["KEYLEDGER_DATABASE_URL"] = f"sqlite:///{database}"
    result = invoke("sync", "--config", str(config), env=environment)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and expected in lines[0]
    assert not database.exists()


@pytest.mark.parametrize(
    ("args", "shown"), [(["sync"], False), (["-v", "sync"], True), (["sync", "-v"], True)]
)
def test_psycopg_warnings_are_kept_out_of_the_one_error_line(args: list[str], shown: bool) -> None:
    # After a cut connection psycopg warns "error ignored terminating <Pipeline>" on
    # top of the error keyledger reports (seen in test_database_loss).
    psycopg_log = logging.getLogger("psycopg")
    psycopg_log.setLevel(logging.NOTSET)  # setLevel, not assignment: it clears the cache
    try:
        # Logging is configured as the command starts (here it stops at once: no key).
        assert invoke(*args).exit_code == 1
        assert psycopg_log.isEnabledFor(logging.WARNING) is shown
    finally:
        psycopg_log.setLevel(logging.NOTSET)


def test_database_failure_after_two_workspaces_exits_3_with_summary(database_url: str) -> None:
    """The database refuses the third workspace's keys (a real error, raised by a
    trigger) after two workspaces committed: exit 3, the summary counts only what was
    committed, and the run is closed as partial in sync_runs."""
    world = World(seed=5, workspaces=3, keys_per_workspace=120)
    third = world.workspace_ids[2]
    engine = make_engine(database_url)
    refuse_keys(engine, "workspace_id", third)
    try:
        with SimulatorServer(Simulator(world, token=TOKEN)) as running:
            result = invoke("sync", env=sim_env(running, database_url))
        assert result.exit_code == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith(f"keyledger: account default, workspace {third}: failed: ")
        assert "refused by the test" in lines[0]
        assert lines[-1].startswith("sync: 2 workspaces ok, 1 failed, 0 skipped; ")
        assert "keys seen 240, new 240, changed 0, deleted 0; 240 snapshot rows" in lines[-1]
        with engine.connect() as connection:
            run = connection.execute(select(SyncRun)).one()
            rows = {w.workspace_id: w for w in connection.execute(select(SyncRunWorkspace))}
            stored = connection.scalar(select(func.count()).select_from(ApiKey))
    finally:
        engine.dispose()
    assert (run.status, stored) == ("partial", 240)
    assert run.finished_at is not None
    assert rows[third].status == "failed"
    assert (rows[third].keys_seen, rows[third].snapshots_written) == (0, 0)
