"""A run syncs the workspaces synced least recently first: never-synced ones (in the
order listed), then by their last successful sync, oldest first."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, insert, select

from etl.core.config import WorkspaceSpec
from etl.store.recency import last_synced, least_recently_synced
from models import SyncRun, SyncRunWorkspace
from tests.helpers import T0
from tests.test_sync import make_simulator, sync


def specs(*ids: str) -> list[WorkspaceSpec]:
    return [WorkspaceSpec(workspace_id) for workspace_id in ids]


def test_never_synced_first_in_listed_order_then_oldest_sync_first() -> None:
    synced = {"b": T0, "d": T0 - timedelta(days=2), "e": T0 - timedelta(hours=1)}
    ordered = least_recently_synced(specs("a", "b", "c", "d", "e"), synced)
    assert [w.id for w in ordered] == ["a", "c", "d", "e", "b"]


def test_every_workspace_synced_keeps_them_all_once() -> None:
    synced = {"x": T0, "y": T0}
    assert [w.id for w in least_recently_synced(specs("y", "x"), synced)] == ["y", "x"]
    assert least_recently_synced([], synced) == []


def test_last_synced_is_the_latest_ok_row_of_the_account(engine: Engine) -> None:
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(SyncRun).values(
                started_at=T0,
                status="ok",
                keyledger_version="test",
                hostname="host",
                pid=1,
                dry_run=False,
                lock_token="token",
            )
        ).inserted_primary_key[0]
        rows = [
            ("main", "a", "ok", T0 - timedelta(days=3)),
            ("main", "a", "ok", T0 - timedelta(days=1)),  # the latest ok one counts
            ("main", "a", "interrupted", T0),  # not a sync
            ("main", "b", "failed", T0),
            ("main", "c", "skipped", T0),
            ("other", "b", "ok", T0),  # another account's "b" (its default, say)
        ]
        for account, workspace, status, finished in rows:
            connection.execute(
                insert(SyncRunWorkspace).values(
                    sync_run_id=run_id,
                    account=account,
                    requested_as=workspace,
                    workspace_id=workspace,
                    status=status,
                    started_at=finished - timedelta(minutes=1),
                    finished_at=finished,
                    pages=0,
                    keys_seen=0,
                    keys_new=0,
                    keys_changed=0,
                    keys_deleted=0,
                    snapshots_written=0,
                )
            )
    with engine.connect() as connection:
        assert last_synced(connection, "main") == {"a": T0 - timedelta(days=1)}
        assert last_synced(connection, "other") == {"b": T0}
        assert last_synced(connection, "nobody") == {}


def test_a_run_starts_with_the_workspaces_synced_least_recently(engine: Engine) -> None:
    simulator = make_simulator(workspaces=4, keys=30)
    ids = simulator.world.workspace_ids
    assert sync(engine, simulator, workspaces=(ids[3],)).status == "ok"
    assert sync(engine, simulator, workspaces=(ids[1],)).status == "ok"
    result = sync(engine, simulator, workspaces=tuple(ids))
    assert result.status == "ok"
    order = [ids[0], ids[2], ids[3], ids[1]]  # never synced, then the older sync first
    assert [w.workspace_id for w in result.workspaces] == order
    with engine.connect() as connection:
        opened = connection.scalars(
            select(SyncRunWorkspace.requested_as)
            .where(SyncRunWorkspace.sync_run_id == result.run_id)
            .order_by(SyncRunWorkspace.id)
        )
        assert list(opened) == order
