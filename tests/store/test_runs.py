"""The run ledger stores statuses as the very strings they always were, on every backend."""

from __future__ import annotations

from sqlalchemy import Engine, text, update

from etl.core.statuses import RunStatus, WorkspaceStatus
from etl.store import runs
from etl.store.counts import PageCounts
from models import SyncRunWorkspace


def test_statuses_are_stored_as_their_strings(engine: Engine) -> None:
    with engine.begin() as connection:
        run_id = runs.start_run(connection, dry_run=False, lock_token="0" * 36)
        running = runs.open_workspace(connection, run_id, account="a", requested_as="default")
        runs.open_workspace(
            connection,
            run_id,
            account="a",
            requested_as="other",
            status=WorkspaceStatus.SKIPPED,
            error="held by another run",
        )
        runs.close_workspace(
            connection,
            running,
            status=WorkspaceStatus.DELISTED,
            pages=0,
            counts=PageCounts(),
            deleted=0,
            error=None,
        )
        runs.finish_run(connection, run_id, RunStatus.PARTIAL)

    with engine.connect() as connection:
        run = connection.execute(text("SELECT status FROM sync_runs")).scalar_one()
        workspaces = connection.execute(
            text("SELECT status FROM sync_run_workspaces ORDER BY id")
        ).scalars()
        assert (run, list(workspaces)) == ("partial", ["delisted", "skipped"])
        assert type(run) is str


def test_a_member_bound_as_is_stores_its_value(engine: Engine) -> None:
    """A statement given the member itself (not ``.value``) writes the same string."""
    with engine.begin() as connection:
        run_id = runs.start_run(connection, dry_run=False, lock_token="0" * 36)
        ledger_id = runs.open_workspace(connection, run_id, account="a", requested_as="default")
        connection.execute(
            update(SyncRunWorkspace)
            .where(SyncRunWorkspace.id == ledger_id)
            .values(status=WorkspaceStatus.FAILED)
        )
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT status FROM sync_run_workspaces")).scalar_one()
    assert stored == "failed"
