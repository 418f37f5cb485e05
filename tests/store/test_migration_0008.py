"""0008 (interrupted runs) upgrades a ledger holding data without losing any, and the
ledger then records interrupted runs."""

from __future__ import annotations

from datetime import date

from alembic import command
from sqlalchemy import Engine, MetaData, inspect, select

import models
from etl.core.stop import Stop
from etl.store.migrations import alembic_config, current_revision
from models import SyncRun
from tests.analytics_support import QUIET, at, make_world, sync_at
from tests.test_stop import sync
from tests.test_sync import make_simulator


def every_row(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted((tuple(r) for r in connection.execute(table.select())), key=repr)
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }


def status_comments(engine: Engine) -> dict[tuple[str, str], str | None]:
    inspector = inspect(engine)
    return {
        (table, column["name"]): column.get("comment")
        for table in ("sync_runs", "sync_run_workspaces")
        for column in inspector.get_columns(table)
        if column["name"] in {"status", "error"}
    }


def test_0008_upgrades_a_ledger_with_data_and_then_records_interrupted_runs(
    engine: Engine,
) -> None:
    ledger = make_world(keys=8, workspaces=2, **QUIET)
    sync_at(engine, ledger, at(date(2026, 11, 3), 2))
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0007")  # as 0007 left it
    before = every_row(engine)
    assert sum(map(len, before.values())) > 0
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0008")  # later revisions add tables
    with engine.connect() as connection:
        assert current_revision(connection) == "0008"
    assert every_row(engine) == before  # nothing lost or changed
    if engine.dialect.supports_comments:
        tables = models.Base.metadata.tables
        assert status_comments(engine) == {
            (table, column): tables[table].c[column].comment
            for table, column in status_comments(engine)
        }
        assert "interrupted" in str(status_comments(engine)[("sync_runs", "status")])

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    stop = Stop()
    stop.request("SIGTERM")  # before the run lists anything
    result = sync(engine, make_simulator(workspaces=1, keys=5), stop)
    assert (result.status, result.workspaces) == ("interrupted", [])
    with engine.connect() as connection:
        run = connection.execute(
            select(SyncRun.status, SyncRun.error).where(SyncRun.id == result.run_id)
        ).one()
    assert tuple(run) == ("interrupted", "interrupted by SIGTERM")
