"""What ``keyledger sync`` says at its end: a line per workspace that did not sync, the
run's error, the summary, and the exit code they amount to."""

from __future__ import annotations

import logging

from etl.cli.logs import say, say_summary
from etl.core.exit_codes import exit_code_of
from etl.core.statuses import ActivityStatus, RunStatus, WorkspaceStatus
from etl.sync import ALL_WORKSPACES, SyncResult

_SUMMARY_LEVELS = {RunStatus.OK: logging.INFO, RunStatus.FAILED: logging.ERROR}
_WORKSPACE_LEVELS = {WorkspaceStatus.FAILED: logging.ERROR}


def where(account: str, workspace_id: str) -> str:
    """``account A, workspace W`` (or ``all workspaces``): never one read as the other."""
    workspaces = "all workspaces" if workspace_id == ALL_WORKSPACES else f"workspace {workspace_id}"
    return f"account {account}, {workspaces}"


def report_sync(result: SyncResult) -> int:
    """Log how the run ended, on stderr; the exit code it amounts to."""
    code = exit_code_of(result.status, result.interrupted)
    for workspace in result.workspaces:
        if workspace.status == WorkspaceStatus.OK:
            continue
        why = f": {workspace.error}" if workspace.error else ""
        which = where(workspace.account, workspace.workspace_id)
        say(
            f"keyledger: {which}: {workspace.status}{why}",
            level=_WORKSPACE_LEVELS.get(workspace.status, logging.WARNING),
            run_id=result.run_id,
            account=workspace.account,
            # JSON gives no workspace (not "*") for a line about all of the account's.
            workspace=None if workspace.workspace_id == ALL_WORKSPACES else workspace.workspace_id,
            status=str(workspace.status),
            error=workspace.error,
        )
    for activity in result.activity:
        # Skipped (no workspace synced) and interrupted say nothing the lines above don't.
        if activity.status is not ActivityStatus.FAILED:
            continue
        why = f": {activity.error}" if activity.error else ""
        say(
            f"keyledger: account {activity.account}, activity: {activity.status}{why}",
            level=logging.ERROR,
            run_id=result.run_id,
            account=activity.account,
            part="activity",
            status=str(activity.status),
            error=activity.error,
        )
    if result.error is not None:
        say(f"keyledger: error: {result.error}", run_id=result.run_id)
    say_summary(
        result.summary(),
        level=_SUMMARY_LEVELS.get(result.status, logging.WARNING),
        run_id=result.run_id,
        status=str(result.status),
        exit_code=code,
        dry_run=result.dry_run,
        **result.figures(),
    )
    return code
