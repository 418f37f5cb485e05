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
from sqlalchemy import Connection, Engine, func, select, update

from etl.core.config import DEFAULT_WORKSPACE
from etl.core.key_fields import KeyRecord
from etl.openrouter.records import parse_key
from etl.store import loading, runs, seen_keys
from etl.store import workspace_load as workspace_load_module
from etl.store.workspace_load import WorkspaceLoad
from models import (
    ApiKey,
    ApiKeyVersion,
    DailyKeySpend,
    SyncRun,
    SyncRunWorkspace,
    UsageSnapshot,
    Workspace,
    WorkspaceDay,
)
from tests.helpers import T0, as_stored, key_payload, seen_keys_left

WORKSPACE = key_payload()["workspace_id"]
CREATED = "2026-10-01T00:00:00.000Z"  # weeks before T0: every day of the tests is in its life
ALL_TABLES = (
    ApiKey,
    ApiKeyVersion,
    DailyKeySpend,
    SyncRun,
    SyncRunWorkspace,
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
    assert seen_keys_left(engine) == 0  # the listing's seen keys die with its transaction


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


# -- batches ---------------------------------------------------------------------------
@pytest.mark.parametrize("batch_keys", [2, 1000])
def test_batches_load_as_page_by_page_would(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, batch_keys: int
) -> None:
    monkeypatch.setattr(workspace_load_module, "BATCH_KEYS", batch_keys)
    later = T0 + timedelta(seconds=3)
    moved = record(2, usage=Decimal("26"), usage_daily=Decimal("1.75"))  # listed again, changed
    load = load_listing(
        engine, [([record(0), record(1), record(2)], T0), ([moved, record(3), record(4)], later)]
    )

    assert (load.counts.seen, load.counts.new, load.counts.changed) == (6, 5, 1)
    assert load.counts.snapshots == 6
    assert load.deleted == 0
    with engine.connect() as connection:
        snapshots = connection.execute(
            select(UsageSnapshot.captured_at, UsageSnapshot.usage).where(
                UsageSnapshot.key_hash == moved.hash
            )
        ).all()
        version_ends = connection.execute(
            select(ApiKeyVersion.valid_from, ApiKeyVersion.valid_to).where(
                ApiKeyVersion.key_hash == moved.hash
            )
        ).all()
    assert sorted(snapshots) == [(T0, as_stored(Decimal("25.5"), engine)), (later, 26)]
    assert version_ends == [(T0, None)]  # usage is not versioned: one version


def test_counts_include_pages_not_yet_written(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_load_module, "BATCH_KEYS", 1000)
    with engine.begin() as connection, workspace_load(connection) as load:
        load.add_page([record(0), record(1)], T0)
        assert (load.counts.seen, load.counts.new) == (2, 2)  # read: the batch is written
        assert connection.scalar(select(func.count()).select_from(ApiKey)) == 2


# -- change detection by digest --------------------------------------------------------
def stored_digests(engine: Engine) -> dict[str, bytes | None]:
    with engine.connect() as connection:
        return {h: d for h, d in connection.execute(select(ApiKey.hash, ApiKey.digest))}


def test_an_equal_digest_is_unchanged_without_parsing_the_stored_payload(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [record(0), record(1)]
    load_listing(engine, [(keys, T0)])
    assert stored_digests(engine) == {k.hash: k.digest for k in keys}

    def refuse(body: str | bytes) -> Any:
        raise AssertionError("a stored payload was parsed")

    monkeypatch.setattr(loading, "parse_json_quickly", refuse)
    again = load_listing(engine, [(keys, T0 + timedelta(hours=1))])

    assert (again.counts.new, again.counts.changed, again.counts.snapshots) == (0, 0, 0)


@pytest.mark.parametrize("stored", [None, b"\x00" * 16], ids=["before-0007", "other-text"])
def test_an_unequal_digest_compares_values_and_refreshes_the_digest(
    engine: Engine, stored: bytes | None
) -> None:
    keys = [record(0), record(1)]
    load_listing(engine, [(keys, T0)])
    with engine.begin() as connection:
        connection.execute(update(ApiKey).values(digest=stored))  # NULL: a row from 0006
    before = counts(engine)

    again = load_listing(engine, [(keys, T0 + timedelta(hours=1))])

    assert (again.counts.new, again.counts.changed, again.counts.snapshots) == (0, 0, 0)
    after = counts(engine)
    assert after.pop("sync_runs") == before.pop("sync_runs") + 1
    assert after.pop("sync_run_workspaces") == before.pop("sync_run_workspaces") + 1
    assert after == before
    assert stored_digests(engine) == {k.hash: k.digest for k in keys}
    with engine.connect() as connection:
        assert set(connection.scalars(select(ApiKey.changed_at))) == {T0}


def test_an_equal_digest_of_a_changed_value_is_still_a_change(engine: Engine) -> None:
    # A digest from the same payload text but a value that changed in the database
    # cannot happen; an unequal digest of an equal value can. The reverse guard: a key
    # whose digest is stored for another payload is compared by value, and changes.
    load_listing(engine, [([record(0)], T0)])
    changed = record(0, usage=Decimal("30"), usage_daily=Decimal("5.75"))
    again = load_listing(engine, [([changed], T0 + timedelta(hours=1))])
    assert (again.counts.changed, again.counts.snapshots) == (1, 1)
    assert stored_digests(engine) == {changed.hash: changed.digest}


def test_an_equal_digest_of_a_deleted_key_or_another_workspace_is_a_change(
    engine: Engine,
) -> None:
    keys = [record(0), record(1)]
    load_listing(engine, [(keys, T0)])
    with engine.begin() as connection:
        connection.execute(update(ApiKey).where(ApiKey.hash == keys[0].hash).values(deleted_at=T0))
        connection.execute(
            update(ApiKey).where(ApiKey.hash == keys[1].hash).values(workspace_id="elsewhere")
        )

    again = load_listing(engine, [(keys, T0 + timedelta(hours=1))])

    assert (again.counts.new, again.counts.changed) == (0, 2)
    with engine.connect() as connection:
        rows = set(connection.execute(select(ApiKey.workspace_id, ApiKey.deleted_at)))
    assert rows == {(WORKSPACE, None)}


# -- the seen keys: a temporary table per connection ----------------------------------
def test_two_connections_loading_at_once_each_see_their_own_listing(engine: Engine) -> None:
    other = "7f3d1c2e-0000-4000-8000-000000000002"
    mine = [record(0), record(1), record(2)]
    theirs = [record(10, workspace_id=other), record(11, workspace_id=other)]
    load_listing(engine, [(mine, T0)])
    load_listing(engine, [(theirs, T0)], requested_as=other)
    if engine.dialect.name == "sqlite":
        # One writer at a time: the seen-key tables alone, which live outside the file.
        with engine.connect() as first, engine.connect() as second:
            seen_keys.start(first)
            seen_keys.start(second)
            seen_keys.add(first, [mine[0].hash])
            seen_keys.add(second, [theirs[0].hash])
            assert seen_keys.missing_keys(first, WORKSPACE) == sorted(k.hash for k in mine[1:])
            assert seen_keys.missing_keys(second, other) == [theirs[1].hash]
            seen_keys.drop(first)
            seen_keys.drop(second)
        return

    later = T0 + timedelta(hours=1)
    with (
        engine.connect() as first,
        engine.connect() as second,
        first.begin(),
        second.begin(),
        workspace_load(first) as a,
        workspace_load(second, other) as b,
    ):
        a.add_page([mine[0]], later)
        b.add_page([theirs[0]], later)
        a.add_page([mine[2]], later)
        assert a.missing_keys() == [mine[1].hash]
        assert b.missing_keys() == [theirs[1].hash]
        a.settle([], a.missing_keys())
        b.settle([], b.missing_keys())
        a.finish(name=None, slug=None)
        b.finish(name=None, slug=None)
    with engine.connect() as connection:
        deleted = set(connection.scalars(select(ApiKey.hash).where(ApiKey.deleted_at.is_not(None))))
    assert deleted == {mine[1].hash, theirs[1].hash}
    assert seen_keys_left(engine) == 0


def test_a_rolled_back_load_leaves_its_connection_a_clean_listing(engine: Engine) -> None:
    keys = [record(0), record(1), record(2)]
    load_listing(engine, [(keys, T0)])
    with engine.connect() as connection:
        connection.begin()
        with workspace_load(connection) as load:
            load.add_page(keys, T0 + timedelta(hours=1))
            assert load.missing_keys() == []
        connection.rollback()  # MariaDB keeps a temporary table through this
        connection.begin()
        with workspace_load(connection) as load:
            load.add_page([keys[0]], T0 + timedelta(hours=2))
            assert load.missing_keys() == sorted(k.hash for k in keys[1:])
        connection.rollback()
    assert seen_keys_left(engine) == 0


def test_savepoints_of_one_transaction_each_list_afresh(engine: Engine) -> None:
    """A dry run: every workspace a savepoint of one outer transaction, rolled back."""
    keys = [record(0), record(1), record(2)]
    load_listing(engine, [(keys, T0)])
    with engine.connect() as connection:
        connection.begin()
        with connection.begin_nested(), workspace_load(connection) as load:
            load.add_page(keys, T0 + timedelta(hours=1))
            load.settle([], load.missing_keys())
            load.finish(name=None, slug=None)
        with connection.begin_nested() as failed, workspace_load(connection) as load:
            load.add_page(keys[:1], T0 + timedelta(hours=1))
            failed.rollback()  # a workspace that failed
        with connection.begin_nested(), workspace_load(connection) as load:
            load.add_page(keys[1:2], T0 + timedelta(hours=1))
            assert load.missing_keys() == sorted([keys[0].hash, keys[2].hash])
            load.settle([], load.missing_keys())
            load.finish(name=None, slug=None)
            assert load.deleted == 2
        connection.rollback()
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).where(ApiKey.deleted_at.is_not(None))) == 0
    assert seen_keys_left(engine) == 0
