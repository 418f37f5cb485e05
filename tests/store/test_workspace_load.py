"""etl.store.workspace_load drives one workspace's load against a real database, with no
API in sight: records come from the parser, confirmations are handed in as plain data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from etl.core.config import DEFAULT_WORKSPACE
from etl.core.key_fields import KeyRecord
from etl.openrouter.records import parse_key
from etl.store import runs
from etl.store.workspace_load import WorkspaceLoad
from models import (
    ApiKey,
    ApiKeyVersion,
    DailyKeySpend,
    SyncRun,
    SyncRunWorkspace,
    SyncSeenKey,
    UsageSnapshot,
    Workspace,
    WorkspaceDay,
)
from tests.helpers import T0, as_stored, key_payload

WORKSPACE = key_payload()["workspace_id"]
CREATED = "2026-10-01T00:00:00.000Z"  # weeks before T0: every day of the tests is in its life
ALL_TABLES = (
    ApiKey,
    ApiKeyVersion,
    DailyKeySpend,
    SyncRun,
    SyncRunWorkspace,
    SyncSeenKey,
    UsageSnapshot,
    Workspace,
    WorkspaceDay,
)


def record(n: int, **overrides: Any) -> KeyRecord:
    """Key ``n`` as the parser makes it from the API's JSON."""
    return parse_key(key_payload(n, created_at=CREATED, **overrides))


@dataclass(frozen=True)
class Found:
    """A missing key the API still has (what confirmation hands the store)."""

    record: KeyRecord
    server_time: datetime


@contextmanager
def workspace_load(
    connection: Connection, requested_as: str = WORKSPACE
) -> Iterator[WorkspaceLoad]:
    """A load of ``requested_as`` in a new run, inside ``connection``'s transaction."""
    run_id = runs.start_run(connection, dry_run=False, lock_token=str(uuid.uuid4()))
    ledger_id = runs.open_workspace(connection, run_id, account="test", requested_as=requested_as)
    yield WorkspaceLoad(
        connection, sync_run_id=run_id, ledger_id=ledger_id, requested_as=requested_as
    )


def load_listing(
    engine: Engine,
    pages: Sequence[tuple[Sequence[KeyRecord], datetime]],
    *,
    requested_as: str = WORKSPACE,
) -> WorkspaceLoad:
    """One complete listing, committed; the API confirms every missing key gone."""
    with engine.begin() as connection, workspace_load(connection, requested_as) as load:
        for records, server_time in pages:
            load.add_page(records, server_time)
        load.settle([], load.missing_keys())
        load.finish(name="prod", slug="prod")
    return load


def count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model)) or 0


def counts(engine: Engine) -> dict[str, int]:
    return {m.__tablename__: count(engine, m) for m in ALL_TABLES}


def test_new_keys_write_rows_snapshots_and_versions(engine: Engine) -> None:
    load = load_listing(engine, [([record(0), record(1), record(2)], T0)])

    assert (load.pages, load.counts.seen, load.counts.new, load.counts.changed) == (1, 3, 3, 0)
    assert load.counts.snapshots == 3
    assert (count(engine, ApiKey), count(engine, UsageSnapshot)) == (3, 3)
    assert count(engine, ApiKeyVersion) == 3
    with engine.connect() as connection:
        first_seen = set(connection.scalars(select(ApiKey.first_seen_at)))
        captured = set(connection.scalars(select(UsageSnapshot.captured_at)))
    assert first_seen == captured == {T0}


def test_unchanged_page_writes_nothing_new(engine: Engine) -> None:
    keys = [record(0), record(1), record(2)]
    load_listing(engine, [(keys, T0)])
    before = counts(engine)

    again = load_listing(engine, [(keys, T0 + timedelta(hours=1))])

    assert (again.counts.seen, again.counts.new, again.counts.changed) == (3, 0, 0)
    assert again.counts.snapshots == 0
    after = counts(engine)
    # Only the ledger grows (a run, its workspace row); the data tables stay as they were.
    assert after.pop("sync_runs") == before.pop("sync_runs") + 1
    assert after.pop("sync_run_workspaces") == before.pop("sync_run_workspaces") + 1
    assert after == before
    with engine.connect() as connection:
        assert set(connection.scalars(select(ApiKey.changed_at))) == {T0}


def test_changed_key_writes_one_snapshot(engine: Engine) -> None:
    load_listing(engine, [([record(0), record(1), record(2)], T0)])
    later = T0 + timedelta(hours=1)

    changed = record(1, usage=Decimal("26.5"), usage_daily=Decimal("2.25"))
    again = load_listing(engine, [([record(0), changed, record(2)], later)])

    assert (again.counts.changed, again.counts.snapshots) == (1, 1)
    with engine.connect() as connection:
        latest = connection.execute(
            select(UsageSnapshot.key_hash, UsageSnapshot.usage).where(
                UsageSnapshot.captured_at == later
            )
        ).all()
    assert latest == [(changed.hash, as_stored(Decimal("26.5"), engine))]
    assert count(engine, ApiKeyVersion) == 3  # usage is not a versioned attribute


def test_keys_missing_from_listing_are_named(engine: Engine) -> None:
    load_listing(engine, [([record(0), record(1), record(2)], T0)])

    with engine.begin() as connection, workspace_load(connection) as load:
        load.add_page([record(0), record(2)], T0 + timedelta(hours=1))
        assert load.missing_keys() == [record(1).hash]
        assert load.known_keys_listed == 2


def test_settling_a_gone_key_marks_it_deleted_and_keeps_its_history(engine: Engine) -> None:
    load_listing(engine, [([record(0), record(1), record(2)], T0)])
    listed_at = T0 + timedelta(hours=1)

    again = load_listing(engine, [([record(0), record(2)], listed_at)])

    assert again.deleted == 1
    gone = record(1).hash
    with engine.connect() as connection:
        deleted = dict(connection.execute(select(ApiKey.hash, ApiKey.deleted_at)).all())
        snapshots = connection.scalar(select(func.count()).where(UsageSnapshot.key_hash == gone))
        valid_to = connection.scalar(
            select(ApiKeyVersion.valid_to).where(ApiKeyVersion.key_hash == gone)
        )
    assert deleted == {record(0).hash: None, gone: listed_at, record(2).hash: None}
    assert snapshots == 1
    assert valid_to == listed_at


def test_settling_a_found_key_stores_it_as_it_is_now(engine: Engine) -> None:
    load_listing(engine, [([record(0), record(1)], T0)])
    asked_at = T0 + timedelta(hours=1, seconds=5)
    now = record(1, usage=Decimal("30"), usage_daily=Decimal("5.75"))

    with engine.begin() as connection, workspace_load(connection) as load:
        load.add_page([record(0)], T0 + timedelta(hours=1))
        assert load.missing_keys() == [now.hash]
        load.settle([Found(now, asked_at)], [])
        load.finish(name=None, slug=None)

    assert (load.counts.seen, load.counts.changed, load.counts.snapshots, load.deleted) == (
        2,
        1,
        1,
        0,
    )
    with engine.connect() as connection:
        stored = connection.execute(
            select(ApiKey.usage, ApiKey.deleted_at).where(ApiKey.hash == now.hash)
        ).one()
        captured = connection.scalar(
            select(func.max(UsageSnapshot.captured_at)).where(UsageSnapshot.key_hash == now.hash)
        )
    assert tuple(stored) == (as_stored(Decimal("30"), engine), None)
    assert captured == asked_at


def test_rollback_leaves_nothing(engine: Engine) -> None:
    with engine.connect() as connection:
        transaction = connection.begin()
        with workspace_load(connection) as load:
            load.add_page([record(0), record(1)], T0)
            load.settle([], load.missing_keys())
            load.finish(name="prod", slug="prod")
        assert connection.scalar(select(func.count()).select_from(ApiKey)) == 2
        transaction.rollback()

    assert set(counts(engine).values()) == {0}


def test_finish_resolves_the_default_workspace_and_records_the_listing(engine: Engine) -> None:
    second_page_at = T0 + timedelta(seconds=2)
    load = load_listing(
        engine, [([record(0)], T0), ([record(1)], second_page_at)], requested_as=DEFAULT_WORKSPACE
    )

    assert load.workspace_id == WORKSPACE
    with engine.connect() as connection:
        ledger = connection.execute(
            select(
                SyncRunWorkspace.requested_as,
                SyncRunWorkspace.workspace_id,
                SyncRunWorkspace.server_time,
            )
        ).one()
        workspace = connection.execute(
            select(Workspace.id, Workspace.name, Workspace.last_synced_at)
        ).one()
        days = connection.execute(select(WorkspaceDay.day, WorkspaceDay.observed)).all()
    assert tuple(ledger) == (DEFAULT_WORKSPACE, WORKSPACE, T0)  # the listing's first page
    assert tuple(workspace) == (WORKSPACE, "prod", T0)
    assert [(d, bool(o)) for d, o in days] == [(T0.date(), True)]
    assert count(engine, SyncSeenKey) == 0  # the scratch list is emptied


def test_listing_across_midnight_observes_no_day(engine: Engine) -> None:
    before_midnight = datetime.combine(T0.date(), datetime.max.time(), tzinfo=T0.tzinfo)
    load_listing(
        engine,
        [([record(0)], before_midnight), ([record(1)], before_midnight + timedelta(minutes=2))],
    )

    assert count(engine, WorkspaceDay) == 0
    assert count(engine, Workspace) == 1  # the listing itself still counts as a sync


def test_next_day_change_writes_the_days_spend(engine: Engine) -> None:
    load_listing(engine, [([record(0)], T0)])  # day-start total 25.5 - 1.25 = 24.25

    next_day = T0 + timedelta(days=1)
    spent = record(0, usage=Decimal("30"), usage_daily=Decimal("2"))  # day-start 28
    load_listing(engine, [([spent], next_day)])

    with engine.connect() as connection:
        spend = connection.execute(
            select(DailyKeySpend.key_hash, DailyKeySpend.day, DailyKeySpend.spend_usd)
        ).all()
    assert spend == [(spent.hash, T0.date(), as_stored(Decimal("3.75"), engine))]


def test_retire_confirms_every_live_key_and_marks_the_workspace_delisted(engine: Engine) -> None:
    load_listing(engine, [([record(0), record(1)], T0)])

    with engine.begin() as connection, workspace_load(connection) as load:
        missing = load.missing_keys()  # no listing: every live key is missing
        assert sorted(missing) == sorted([record(0).hash, record(1).hash])
        load.settle([], [record(1).hash])
        load.retire()

    assert (load.pages, load.deleted, load.workspace_id) == (0, 1, WORKSPACE)
    with engine.connect() as connection:
        delisted_at = connection.scalar(select(Workspace.delisted_at))
        deleted = dict(connection.execute(select(ApiKey.hash, ApiKey.deleted_at)).all())
    assert delisted_at is not None and delisted_at > T0
    assert deleted == {record(0).hash: None, record(1).hash: delisted_at}


def test_steps_out_of_order_are_refused(engine: Engine) -> None:
    with engine.connect() as connection, connection.begin(), workspace_load(connection) as load:
        with pytest.raises(RuntimeError, match="missing_keys"):
            load.settle([], [])
        with pytest.raises(RuntimeError, match="missing_keys"):
            load.finish(name=None, slug=None)
        load.missing_keys()
        with pytest.raises(RuntimeError, match="ended"):
            load.add_page([record(0)], T0)
        connection.rollback()


def test_days_observed_before_are_read_once_per_load(engine: Engine) -> None:
    """Every page files its spend against the days earlier runs observed: a key seen
    unchanged yesterday has a known day-start even though its snapshot is older."""
    load_listing(engine, [([record(0), record(1)], T0)])
    load_listing(engine, [([record(0), record(1)], T0 + timedelta(days=1))])  # unchanged

    two_days_on = T0 + timedelta(days=2)
    spent = record(1, usage=Decimal("27.5"), usage_daily=Decimal("1"))  # day-start 26.5
    load_listing(engine, [([record(0)], two_days_on), ([spent], two_days_on)])

    with engine.connect() as connection:
        spend = connection.execute(
            select(DailyKeySpend.day, DailyKeySpend.spend_usd).where(
                DailyKeySpend.key_hash == spent.hash
            )
        ).all()
    # Day-start 24.25 on both observed days before: all of it was spent on the second.
    assert spend == [(T0.date() + timedelta(days=1), as_stored(Decimal("2.25"), engine))]
