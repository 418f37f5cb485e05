"""Which workspaces a run syncs first: the ones synced least recently.

Never-synced workspaces come first (in the order they were listed), then the others by
their last successful sync, oldest first. So a run stopped part way (a signal, a
timeout of the scheduler) leaves the workspaces it did not reach at the front of the
next run, and repeated interrupts still get through every workspace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from etl.core.config import WorkspaceSpec
from etl.core.statuses import WorkspaceStatus
from models import SyncRunWorkspace


def last_synced(connection: Connection, account: str) -> dict[str, datetime]:
    """When each workspace of ``account`` (by its ``requested_as``) last synced ok."""
    rows = connection.execute(
        select(SyncRunWorkspace.requested_as, func.max(SyncRunWorkspace.finished_at))
        .where(
            SyncRunWorkspace.account == account[:255],
            SyncRunWorkspace.status == WorkspaceStatus.OK.value,
        )
        .group_by(SyncRunWorkspace.requested_as)
    ).all()
    return {requested_as: finished for requested_as, finished in rows if finished is not None}


def least_recently_synced(
    workspaces: Sequence[WorkspaceSpec], synced: Mapping[str, datetime]
) -> list[WorkspaceSpec]:
    """``workspaces`` never synced first (listing order), then oldest last sync first."""
    never = [w for w in workspaces if w.id not in synced]
    known = sorted((w for w in workspaces if w.id in synced), key=lambda w: synced[w.id])
    return never + known
