"""0009 (activity kept for good) upgrades a ledger holding data without touching it,
and its downgrade drops only the activity tables."""

from __future__ import annotations

from datetime import date

from alembic import command
from sqlalchemy import Engine, inspect

import models
from etl.store.migrations import alembic_config, current_revision
from tests.analytics_support import QUIET, at, make_world, sync_at
from tests.store.test_migration_0008 import every_row

ACTIVITY_TABLES = {
    "daily_activity",
    "activity_days",
    "daily_key_activity",
    "key_activity_days",
    "sync_run_activity",
}


def test_0009_upgrades_a_ledger_with_data_and_downgrades_to_it(engine: Engine) -> None:
    ledger = make_world(keys=8, workspaces=2, **QUIET)
    sync_at(engine, ledger, at(date(2026, 11, 3), 2))
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0008")  # as 0008 left it
    assert not ACTIVITY_TABLES & set(inspect(engine).get_table_names())
    before = every_row(engine)
    assert sum(map(len, before.values())) > 0

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0009")
    with engine.connect() as connection:
        assert current_revision(connection) == "0009"
    after = every_row(engine)
    assert set(after) == set(before) | ACTIVITY_TABLES
    assert {name: after[name] for name in before} == before  # nothing lost or changed
    assert all(after[name] == [] for name in ACTIVITY_TABLES)
    inspector = inspect(engine)
    for name in ACTIVITY_TABLES:
        model = models.Base.metadata.tables[name]
        assert [c["name"] for c in inspector.get_columns(name)] == list(model.columns.keys())
        if engine.dialect.supports_comments:
            assert inspector.get_table_comment(name)["text"] == model.comment

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0008")
    assert every_row(engine) == before
