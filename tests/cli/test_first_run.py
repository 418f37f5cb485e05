"""The first run just works: `sync` on an empty database creates the schema, an old one
is still refused unless --migrate, and `db upgrade` says what it did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from etl.cli.main import cli
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from etl.store.migrations import current_revision, head_revision, upgrade
from models import ApiKey
from tests.conftest import wipe

TOKEN = "sk-or-v1-first-run-test-key-0123456789"
OLD = "0005"  # an earlier revision, built with alembic


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    """The simulator on a real loopback socket."""
    with SimulatorServer(
        Simulator(World(seed=5, workspaces=2, keys_per_workspace=30), token=TOKEN)
    ) as running:
        yield running


def invoke(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def sim_env(server: SimulatorServer, url: str) -> dict[str, str]:
    return {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": url,
    }


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        engine.dispose()


def keys_in(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(ApiKey)) or 0)
    finally:
        engine.dispose()


def make_old(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, OLD)
    finally:
        engine.dispose()


def test_first_sync_on_an_empty_database_creates_the_schema_and_syncs(
    server: SimulatorServer, empty_url: str
) -> None:
    result = invoke("sync", env=sim_env(server, empty_url))
    assert result.exit_code == 0, result.output
    assert f"keyledger: created schema at rev {head_revision()}\n" in result.stderr
    assert "2 workspaces ok, 0 failed" in result.stderr
    assert revision(empty_url) == head_revision()
    assert keys_in(empty_url) == 60


def test_first_sync_with_no_configuration_at_all_creates_keyledger_db(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's promise: no file, no database URL, just the key (and here the simulator).
    monkeypatch.chdir(tmp_path)
    env = {"OPENROUTER_MANAGEMENT_KEY": TOKEN, "OPENROUTER_BASE_URL": server.base_url}
    result = invoke("sync", env=env)
    assert result.exit_code == 0, result.output
    assert keys_in(f"sqlite:///{tmp_path / 'keyledger.db'}") == 60


def test_an_old_schema_is_refused_without_migrate(server: SimulatorServer, empty_url: str) -> None:
    make_old(empty_url)
    refused = invoke("sync", env=sim_env(server, empty_url))
    assert refused.exit_code == 1
    (line,) = refused.stderr.strip().splitlines()
    assert f"the database schema is at {OLD}" in line and "keyledger db upgrade" in line
    assert revision(empty_url) == OLD  # left as it was

    migrated = invoke("sync", "--migrate", env=sim_env(server, empty_url))
    assert migrated.exit_code == 0, migrated.output
    assert f"keyledger: upgraded {OLD} -> {head_revision()}\n" in migrated.stderr
    assert keys_in(empty_url) == 60


def test_a_dry_run_leaves_an_empty_database_empty(server: SimulatorServer, empty_url: str) -> None:
    result = invoke("sync", "--dry-run", env=sim_env(server, empty_url))
    assert result.exit_code == 1
    assert "keyledger db upgrade" in result.stderr
    engine = make_engine(empty_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_db_upgrade_says_what_it_did(empty_url: str) -> None:
    head = head_revision()
    created = invoke("db", "upgrade", "--database-url", empty_url)
    assert (created.exit_code, created.stderr) == (0, f"keyledger: created schema at rev {head}\n")
    again = invoke("db", "upgrade", "--database-url", empty_url)
    assert (again.exit_code, again.stderr) == (0, f"keyledger: already at {head}\n")

    engine = make_engine(empty_url)
    wipe(engine)
    engine.dispose()
    make_old(empty_url)
    upgraded = invoke("db", "upgrade", "--database-url", empty_url)
    assert (upgraded.exit_code, upgraded.stderr) == (0, f"keyledger: upgraded {OLD} -> {head}\n")
    assert revision(empty_url) == head
