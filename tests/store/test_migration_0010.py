"""0010 (spend by model views) goes down and up again on a ledger holding activity:
views only, so every row stays and the views read the same afterwards."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from etl.store.migrations import alembic_config, current_revision, head_revision
from tests.analytics_support import at, make_world, normalize, sync_at
from tests.store.test_migration_0008 import every_row

VIEWS = {
    "daily_model_spend": "workspace_id, day, model",
    "daily_provider_spend": "workspace_id, day, provider_name",
    "monthly_model_spend": "workspace_id, month, model",
    "activity_reconciliation": "workspace_id, day",
}


def read_views(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as connection:
        return {
            view: [
                tuple(normalize(v) for v in row)
                for row in connection.execute(text(f"SELECT * FROM {view} ORDER BY {order}"))
            ]
            for view, order in VIEWS.items()
        }


def test_0010_down_and_up_keeps_every_row_and_the_views_read_the_same(engine: Engine) -> None:
    from datetime import date, timedelta

    ledger = make_world(keys=5, workspaces=2, seed=3, deletes=0.0)
    for n in range(3):
        sync_at(engine, ledger, at(date(2026, 11, 10) + timedelta(days=n), 2))
    views, rows = read_views(engine), every_row(engine)
    assert all(views.values()) and rows["daily_activity"] and rows["activity_days"]
    agreeing = [r for r in views["activity_reconciliation"] if r[-1] == 1]
    assert len(agreeing) == 2 * 2  # two workspaces, two days known to both sources

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0009")
    with engine.connect() as connection:
        assert current_revision(connection) == "0009"
    assert not set(VIEWS) & set(inspect(engine).get_view_names())
    assert every_row(engine) == rows  # views only: nothing lost or changed

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert read_views(engine) == views
    assert every_row(engine) == rows
