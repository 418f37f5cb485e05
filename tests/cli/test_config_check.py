"""`keyledger config check`: the resolved setup, one request per key, the database and
its schema, and a checklist that exits 0 only when all is well."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from etl.cli.main import cli
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from etl.store.migrations import head_revision, upgrade

TOKEN = "sk-or-v1-config-check-key-0123456789"
PASSWORD = "hunter2-config-check"


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    """The simulator on a real loopback socket."""
    world = World(seed=9, workspaces=2, keys_per_workspace=12)
    with SimulatorServer(Simulator(world, token=TOKEN)) as running:
        yield running


def check(env: dict[str, str], *args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, ["config", "check", *args], env=env, catch_exceptions=False)


def env_for(server: SimulatorServer, url: str, key: str = TOKEN) -> dict[str, str]:
    return {
        "OPENROUTER_MANAGEMENT_KEY": key,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": url,
    }


def checklist(result: click.testing.Result) -> list[str]:
    lines = result.stdout.splitlines()
    return [line.strip() for line in lines[lines.index("checklist:") + 1 :]]


def test_all_well_exits_0_and_shows_the_resolved_setup(
    server: SimulatorServer, database_url: str
) -> None:
    result = check(env_for(server, database_url))
    assert result.exit_code == 0, result.output
    assert (
        "management key: set, from environment variable OPENROUTER_MANAGEMENT_KEY" in result.stdout
    )
    assert "workspaces: all the key can see" in result.stdout
    assert "(from environment variable KEYLEDGER_DATABASE_URL)" in result.stdout
    items = checklist(result)
    assert len(items) == 3 and all(item.startswith("ok ") for item in items), items
    assert "12 keys on the first page" in items[1]
    assert f"schema at rev {head_revision()} (current)" in items[2]
    assert result.stderr == "keyledger: all is well\n"
    assert TOKEN not in result.output


def test_a_key_from_a_file_shows_where_it_is_read_from(
    server: SimulatorServer, database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(TOKEN + "\n")
    key_file.chmod(0o600)
    env = env_for(server, database_url)
    del env["OPENROUTER_MANAGEMENT_KEY"]
    env["OPENROUTER_MANAGEMENT_KEY_FILE"] = str(key_file)
    result = check(env)
    assert result.exit_code == 0, result.output
    assert f"management key: set, from file {key_file}" in result.stdout
    assert TOKEN not in result.output


def test_a_refused_key_is_an_item_to_fix(server: SimulatorServer, database_url: str) -> None:
    wrong = "sk-or-v1-not-the-key-the-simulator-knows"
    result = check(env_for(server, database_url, key=wrong))
    assert result.exit_code == 1
    (bad,) = [item for item in checklist(result) if item.startswith("FIX")]
    assert "account default: management key refused by http://127.0.0.1:" in bad
    assert "HTTP 401" in bad
    assert result.stderr == "keyledger: 1 item(s) to fix\n"
    assert wrong not in result.output


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_dead_database_is_an_item_to_fix(server: SimulatorServer) -> None:
    url = f"postgresql+psycopg://ledger:{PASSWORD}@127.0.0.1:{closed_port()}/ledger"
    result = check(env_for(server, url))
    assert result.exit_code == 1
    items = checklist(result)
    assert items[1].startswith("ok ")  # the key is still tested
    assert items[2].startswith("FIX  database postgresql+psycopg://ledger:***@127.0.0.1:")
    assert "cannot connect" in items[2]
    assert PASSWORD not in result.output


def test_a_schema_behind_is_an_item_to_fix(server: SimulatorServer, empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0005")
    engine.dispose()
    result = check(env_for(server, empty_url))
    assert result.exit_code == 1
    (bad,) = [item for item in checklist(result) if item.startswith("FIX")]
    assert f"schema at 0005, this keyledger needs {head_revision()}" in bad
    assert "keyledger db upgrade" in bad


def test_a_new_sqlite_file_is_fine_and_not_created(server: SimulatorServer, tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    result = check(env_for(server, f"sqlite:///{database}"))
    assert result.exit_code == 0, result.output
    assert "does not exist yet; the first sync creates it" in checklist(result)[2]
    assert not database.exists()


def test_an_empty_database_is_fine(server: SimulatorServer, empty_url: str) -> None:
    result = check(env_for(server, empty_url))
    assert result.exit_code == 0, result.output
    assert "empty; the first sync creates the schema" in checklist(result)[2]


def test_an_invalid_configuration_still_checks_the_database(
    database_url: str, tmp_path: Path
) -> None:
    result = check({"KEYLEDGER_DATABASE_URL": database_url})
    assert result.exit_code == 1
    items = checklist(result)
    assert items[0].startswith("FIX  configuration: ")
    assert "OPENROUTER_MANAGEMENT_KEY is not set" in items[0]
    assert items[1].startswith("ok   database ")


def test_every_problem_is_listed_at_once(empty_url: str, tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text('[openrouter]\nbase_url = "http://nonexistent.invalid/api/v1"\n')
    engine = make_engine(empty_url)
    upgrade(engine, "0005")
    engine.dispose()
    env = {"OPENROUTER_MANAGEMENT_KEY": TOKEN, "KEYLEDGER_DATABASE_URL": empty_url}
    result = check(env, "--config", str(config))
    assert result.exit_code == 1
    items = checklist(result)
    assert [item[:3] for item in items] == ["ok ", "FIX", "FIX"]
    assert "nonexistent.invalid does not resolve" in items[1]
    assert "schema at 0005" in items[2]
    assert result.stderr == "keyledger: 2 item(s) to fix\n"
