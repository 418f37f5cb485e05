"""Statuses are enums that stay the plain strings the ledger stores and users read."""

from __future__ import annotations

import pytest

from etl.core.statuses import RunStatus, WorkspaceStatus
from models import SyncRun, SyncRunWorkspace

# What sync_runs.status and sync_run_workspaces.status hold (their column comments).
STORED_RUN = {"running", "ok", "partial", "failed", "abandoned", "interrupted"}
STORED_WORKSPACE = {"running", "ok", "failed", "skipped", "abandoned", "delisted", "interrupted"}


def test_values_are_the_stored_strings() -> None:
    assert {s.value for s in RunStatus} == STORED_RUN | {"locked"}  # locked: never stored
    assert {s.value for s in WorkspaceStatus} == STORED_WORKSPACE


@pytest.mark.parametrize(
    "status", [*RunStatus, *WorkspaceStatus], ids=lambda s: f"{type(s).__name__}.{s.name}"
)
def test_a_status_formats_compares_and_hashes_as_its_value(
    status: RunStatus | WorkspaceStatus,
) -> None:
    assert f"{status}" == str(status) == format(status) == status.value
    assert status == status.value
    assert status.value in {status} and status in {status.value}
    assert {status.value: 1}[status] == 1


def test_every_stored_value_is_named_in_its_column_comment() -> None:
    for values, column in [
        (STORED_RUN, SyncRun.status),
        (STORED_WORKSPACE, SyncRunWorkspace.status),
    ]:
        comment = column.property.columns[0].comment or ""
        assert [v for v in values if v not in comment] == [], column


def test_a_stored_string_reads_back_as_its_member() -> None:
    assert RunStatus("partial") is RunStatus.PARTIAL
    assert WorkspaceStatus("delisted") is WorkspaceStatus.DELISTED


def test_activity_statuses_are_named_in_their_column_comment() -> None:
    from etl.core.statuses import ActivityStatus
    from models import SyncRunActivity

    comment = SyncRunActivity.__table__.c.status.comment or ""
    assert {s.value for s in ActivityStatus} == {"ok", "failed", "skipped", "interrupted"}
    assert [s.value for s in ActivityStatus if s.value not in comment] == []
    assert "running" not in comment  # the line is written once, at the end
