"""The Python API (etl.api): a sync from settings built in code, against the bundled
simulator on loopback, its figures checked against the simulator's truth and the
database; its typed errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, select

from etl import api
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from etl.store.migrations import alembic_config
from models import ApiKey, SyncRun, SyncRunWorkspace, UsageSnapshot

TOKEN = "sk-or-v1-api-test-management-key-0123456789"


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    # error_rate: some answers are 5xx, so the run retries (seed 3 injects a few).
    world = World(seed=11, workspaces=3, keys_per_workspace=120)
    simulator = Simulator(world, token=TOKEN, faults=Faults(error_rate=0.2), seed=3)
    with SimulatorServer(simulator) as running:
        yield running


def settings_for(server: SimulatorServer, database_url: str, **options: Any) -> api.Settings:
    """Settings built in code, none from the environment (env={})."""
    values: dict[str, Any] = {
        "management_key": TOKEN,
        "base_url": server.base_url,
        "database_url": database_url,
        "env": {},
    }
    return api.load_settings(**(values | options))


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(model)) or 0)


def live_keys(world: World) -> set[str]:
    return {k["hash"] for k in world.truth_keys() if k["deleted_at"] is None}


def test_report_figures_match_the_simulator_and_the_database(
    server: SimulatorServer, database_url: str, engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    world = server.simulator.world
    handlers = list(logging.getLogger().handlers)
    report = api.sync(settings_for(server, database_url))

    truth = live_keys(world)
    assert (report.status, report.exit_code, report.ok) == ("ok", 0, True)
    assert (report.workspaces_ok, report.workspaces_failed, report.workspaces_skipped) == (3, 0, 0)
    assert report.keys_seen == report.keys_new == len(truth) == 360
    assert (report.keys_changed, report.keys_deleted) == (0, 0)
    assert report.snapshots_written == len(truth)
    # Every request the simulator saw came from this run; each 5xx it sent was retried.
    assert report.requests == server.simulator.stats.requests
    assert report.retries == server.simulator.stats.faults["server_errors"] > 0
    assert report.seconds > 0
    assert count(engine, ApiKey) == len(truth)
    assert count(engine, UsageSnapshot) == report.snapshots_written
    with engine.connect() as connection:
        run = connection.execute(select(SyncRun)).one()
        rows = connection.execute(select(SyncRunWorkspace)).all()
    assert (run.id, run.status) == (report.run_id, "ok")
    assert sorted(w.workspace_id for w in report.workspaces) == sorted(world.workspace_ids)
    assert sum(r.keys_new for r in rows) == report.keys_new
    assert sum(r.pages for r in rows) == report.pages
    # Library code: nothing printed, no logging set up.
    assert capfd.readouterr() == ("", "")
    assert logging.getLogger().handlers == handlers
    assert json.loads(json.dumps(report.to_dict()))["keys_new"] == 360
    assert report.summary().startswith("sync: 3 workspaces ok, 0 failed, 0 skipped; keys seen 360")

    # A second night: four keys deleted, then a tenth of the rest spent on, one created.
    server.simulator.faults.error_rate = 0.0
    for key_hash in sorted(truth)[:4]:
        world.delete_key(key_hash)
    touched = world.touch(0.1)
    world.create_key()
    again = api.sync(settings_for(server, database_url))
    assert again.run_id is not None and report.run_id is not None
    assert again.run_id > report.run_id
    assert again.keys_seen == len(live_keys(world)) == 360 - 4 + 1
    assert (again.keys_new, again.keys_deleted) == (1, 4)
    assert again.keys_changed == touched  # a deletion counts as deleted, not changed
    assert again.retries == 0
    with engine.connect() as connection:
        second = connection.execute(
            select(SyncRunWorkspace).where(SyncRunWorkspace.sync_run_id == again.run_id)
        ).all()
        deleted = connection.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.deleted_at.is_not(None))
        )
    assert sum(r.keys_changed for r in second) == again.keys_changed
    assert sum(r.keys_deleted for r in second) == deleted == 4


def test_a_failed_workspace_is_in_the_report_unless_check_is_asked(
    server: SimulatorServer, database_url: str
) -> None:
    good = server.simulator.world.workspace_ids[0]
    bad = "00000000-0000-4000-8000-000000000000"  # unknown to the simulator: 404
    server.simulator.faults.error_rate = 0.0
    settings = settings_for(server, database_url, workspaces=(good, bad))
    report = api.sync(settings)
    assert (report.status, report.exit_code, report.ok) == ("partial", 3, False)
    assert (report.workspaces_ok, report.workspaces_failed) == (1, 1)
    failed = next(w for w in report.workspaces if w.status == "failed")
    assert failed.workspace_id == bad and failed.keys_seen == 0
    assert failed.error is not None and "HTTP 404" in failed.error
    with pytest.raises(api.SyncFailedError) as raised:
        api.sync(settings, check=True)
    assert raised.value.report.exit_code == api.exit_code_for(raised.value) == 3
    assert raised.value.report.workspaces_failed == 1
    assert str(raised.value).startswith("the run ended partial (exit 3): sync: 1 workspaces ok")


def test_a_refused_key_raises_auth_error_and_the_run_is_recorded_failed(
    server: SimulatorServer, database_url: str, engine: Engine
) -> None:
    wrong = "sk-or-v1-wrong-key-for-the-api-test-42"
    with pytest.raises(api.AuthError) as raised:
        api.sync(settings_for(server, database_url, management_key=wrong))
    assert "refused the management key" in str(raised.value)
    assert wrong not in str(raised.value)
    assert api.exit_code_for(raised.value) == 1
    with engine.connect() as connection:
        assert connection.scalars(select(SyncRun.status)).all() == ["failed"]


def test_an_unreachable_database_raises_database_unavailable(server: SimulatorServer) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    url = "postgresql+psycopg://keyledger:s3cret-pw@127.0.0.1:1/ledger"
    with pytest.raises(api.DatabaseUnavailableError) as raised:
        api.sync(settings_for(server, url))
    assert isinstance(raised.value, api.LoadError)
    assert "cannot connect to postgresql+psycopg://keyledger:***@127.0.0.1:1/ledger" in str(
        raised.value
    )
    assert "s3cret-pw" not in str(raised.value)
    assert server.simulator.stats.requests == 0  # no request before the database is there


def test_a_malformed_database_url_is_a_config_error(server: SimulatorServer) -> None:
    with pytest.raises(api.ConfigError, match="is not a database URL"):
        settings_for(server, "not a url at all")


def test_a_schema_behind_is_refused_unless_migrate(
    server: SimulatorServer, database_url: str, engine: Engine
) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0006")
    settings = settings_for(server, database_url)
    with pytest.raises(api.SchemaOutdatedError, match="schema is at 0006"):
        api.sync(settings)
    assert server.simulator.stats.requests == 0
    assert api.sync(settings, migrate=True).ok


def test_settings_in_code_win_over_the_environment(tmp_path: Path) -> None:
    env = {
        "OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-from-the-environment",
        "OPENROUTER_BASE_URL": "http://127.0.0.1:9/api/v1",
    }
    settings = api.load_settings(
        management_key=" sk-or-v1-from-code ", base_url="http://127.0.0.1:8/api/v1/", env=env
    )
    (account,) = settings.accounts
    assert account.management_key.reveal() == "sk-or-v1-from-code"
    assert account.client.base_url == "http://127.0.0.1:8/api/v1"
    assert "sk-or-v1-from-code" not in repr(settings)
    # Neither the environment's key nor a key file is needed then.
    assert api.load_settings(management_key="sk-or-v1-x", env={}).accounts[0].name == "default"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"management_key": ""}, "load_settings(): management_key is empty"),
        ({"management_key": "sk-or\nv1"}, "load_settings(): management_key holds a line break"),
        ({"base_url": "openrouter.ai"}, "load_settings(): base_url should start with http://"),
    ],
)
def test_bad_settings_in_code_are_config_errors(options: dict[str, str], message: str) -> None:
    values = {"management_key": "sk-or-v1-x", "env": {}} | options
    with pytest.raises(api.ConfigError) as raised:
        api.load_settings(**values)
    assert str(raised.value).startswith(message)


def test_a_key_in_code_is_refused_when_several_accounts_are_configured(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(
        '[[accounts]]\nname = "a"\n\n[[accounts]]\nname = "b"\nmanagement_key_env = "B_KEY"\n'
    )
    with pytest.raises(api.ConfigError, match="applies to one account, but 2 are configured"):
        api.load_settings(config, management_key="sk-or-v1-x", env={})
