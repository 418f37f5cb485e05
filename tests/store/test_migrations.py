"""The four migration tests every alembic project should have, on every backend."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect

import models
from etl.store import locks
from etl.store.migrations import (
    MigrationLockedError,
    alembic_config,
    current_revision,
    head_revision,
    migration_lock_subject,
    upgrade,
)


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1


def test_upgrade_reaches_head(engine: Engine) -> None:
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(models.Base.metadata.tables) <= tables


def test_models_match_the_migrated_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, models.Base.metadata) == []


def test_downgrade_then_upgrade_again(engine: Engine) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, models.Base.metadata) == []


def test_every_column_has_a_comment() -> None:
    for table in models.Base.metadata.tables.values():
        assert table.comment, table.name
        for column in table.columns:
            assert column.comment, f"{table.name}.{column.name}"


def test_gap_days_survive_0003_down_and_up_with_data(engine: Engine) -> None:
    # Imported here: the four tests above need no simulator.
    from datetime import date, timedelta

    from sqlalchemy import text

    from tests.analytics_support import at, make_world, sync_at

    ledger = make_world(keys=6, deletes=0.0)
    day = date(2026, 11, 3)
    for n in (0, 4, 5):  # three nights missed: a gap
        sync_at(engine, ledger, at(day + timedelta(days=n), 2))
    # The columns 0002 had: later revisions add columns (0006: complete), not meaning.
    views = {
        "daily_workspace_spend": "workspace_id, day, spend_usd, byok_spend_usd, active_keys, "
        "unknown_keys",
        "weekly_workspace_spend": "workspace_id, week_start, spend_usd, byok_spend_usd, "
        "unknown_days",
        "monthly_key_spend": "*",
    }

    def read() -> dict[str, list[tuple[object, ...]]]:
        with engine.connect() as connection:
            # Numbers as Decimals: below 0005 SQLite sums TEXT money to 0, at head REAL to 0.0.
            return {
                v: sorted(
                    (
                        tuple(_number(x) for x in r)
                        for r in connection.execute(text(f"SELECT {columns} FROM {v}"))
                    ),
                    key=str,
                )
                for v, columns in views.items()
            }

    def spend_rows() -> int:
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT COUNT(*) FROM daily_key_spend")) or 0)

    def gap_key_days() -> int:
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT COUNT(*) FROM daily_key_spend_gaps")) or 0)

    at_head, rows, gaps = read(), spend_rows(), gap_key_days()
    assert gaps > 0
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0002")
    assert read() == at_head  # 0002 reads the gap from rows, written back by the downgrade
    assert spend_rows() == rows + gaps
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    assert read() == at_head  # the rows written the old way mean the same at head
    assert spend_rows() == rows + gaps and gap_key_days() == 0
    with engine.connect() as connection:
        unfilled = connection.scalar(
            text("SELECT COUNT(*) FROM workspace_days WHERE NOT observed AND gap_since IS NULL")
        )
    assert unfilled == 0  # the upgrade worked out where each stored gap began


def test_0007_upgrades_a_ledger_with_data_and_the_next_sync_fills_the_digests(
    engine: Engine,
) -> None:
    from datetime import date

    from sqlalchemy import MetaData, select, text

    from models import ApiKey, SyncRunWorkspace
    from tests.analytics_support import QUIET, at, make_world, sync_at

    ledger = make_world(keys=8, workspaces=2, **QUIET)
    sync_at(engine, ledger, at(date(2026, 11, 3), 2))
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0006")  # as 0006 left it
    assert "digest" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}

    def every_row() -> dict[str, list[tuple[object, ...]]]:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted((tuple(r) for r in connection.execute(table.select())), key=repr)
                for name, table in metadata.tables.items()
                if name != "alembic_version"
            }

    def without_digests(rows: dict[str, list[tuple[object, ...]]]) -> dict[str, object]:
        return {
            name: table_rows if name != "api_keys" else [r[:-1] for r in table_rows]
            for name, table_rows in rows.items()
        }

    before = every_row()
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0007")  # later revisions add tables
    after = every_row()
    tables = set(after)
    assert tables == set(before) - {"sync_seen_keys"}  # the scratch table is gone
    columns = [c["name"] for c in inspect(engine).get_columns("api_keys")]
    assert columns[-1] == "digest"  # added last: the rest of each row is as it was
    before.pop("sync_seen_keys")
    assert without_digests(after) == before  # nothing lost or changed
    with engine.connect() as connection:
        assert set(connection.scalars(select(ApiKey.digest))) == {None}
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")

    result = sync_at(engine, ledger, at(date(2026, 11, 3), 3))  # nothing changed since

    assert sum(w.counts.changed + w.counts.new for w in result.workspaces) == 0
    assert sum(w.counts.snapshots for w in result.workspaces) == 0
    with engine.connect() as connection:
        assert None not in set(connection.scalars(select(ApiKey.digest)))
        snapshots = connection.scalar(text("SELECT COUNT(*) FROM usage_snapshots"))
        keys_changed = connection.scalar(select(func.sum(SyncRunWorkspace.keys_changed)))
    assert snapshots == 16
    assert keys_changed == 0


def test_upgrade_gives_up_as_locked_when_another_migration_outlasts_the_wait(
    engine: Engine,
) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001")  # work to do
    held = locks.try_lock(engine, migration_lock_subject(engine))
    assert held is not None
    try:
        with pytest.raises(MigrationLockedError, match="another keyledger process"):
            upgrade(engine, wait_seconds=0.3)
    finally:
        held.release()
    upgrade(engine, wait_seconds=0.3)  # free again
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()


def test_upgrade_at_head_does_not_wait_for_the_migration_lock(engine: Engine) -> None:
    # A nightly `sync --migrate` must not queue behind (or fail for) another migration
    # when there is nothing to migrate.
    held = locks.try_lock(engine, migration_lock_subject(engine))
    assert held is not None
    try:
        upgrade(engine, wait_seconds=0)
    finally:
        held.release()


def _number(value: object) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(repr(value))
    return str(value) if value is not None else None
