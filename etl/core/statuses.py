"""The outcomes a run and its workspaces record, as stored in sync_runs and
sync_run_workspaces (the ``status`` columns hold these very strings).

Members are strings in every way that matters to callers: they compare, hash, format
and bind to the database as their value, so ``status == "ok"``, ``f"{status}"`` and a
row written with one all mean the plain string, and no stored data changes.
"""

from __future__ import annotations

from enum import Enum


class _StoredStatus(str, Enum):
    """A str enum that behaves as its value (``str, Enum`` alone formats as
    ``Class.MEMBER`` on Python 3.11 and hashes by name)."""

    def __str__(self) -> str:
        return str(self.value)

    __hash__ = str.__hash__


class RunStatus(_StoredStatus):
    """How a whole run stands (sync_runs.status)."""

    RUNNING = "running"
    OK = "ok"  # nothing failed (workspaces another run had are skipped)
    PARTIAL = "partial"  # some failed, or the database failed after some committed
    FAILED = "failed"  # none synced
    LOCKED = "locked"  # every workspace held by another run; recorded as failed
    ABANDONED = "abandoned"  # the process died mid-run; a later run marked it
    INTERRUPTED = "interrupted"  # stopped by a signal (named in sync_runs.error)


class WorkspaceStatus(_StoredStatus):
    """How one workspace of a run stands (sync_run_workspaces.status)."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # held by another run, or not attempted
    DELISTED = "delisted"  # no longer listed by discovery; its keys confirmed one by one
    ABANDONED = "abandoned"  # its run's process died
    INTERRUPTED = "interrupted"  # its run was stopped by a signal while it loaded: rolled back


class ActivityStatus(_StoredStatus):
    """How one account's GET /activity part of a run stands (sync_run_activity.status)."""

    OK = "ok"
    FAILED = "failed"  # rolled back, nothing of it stored; the key sync is unaffected
    SKIPPED = "skipped"  # no workspace of the account synced, so none was fetched
    INTERRUPTED = "interrupted"  # its run was stopped by a signal: rolled back
