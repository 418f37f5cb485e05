"""When each workspace last synced successfully, as the run ledger tells (for the
metrics file, etl/metrics.py)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, func, select

from etl.core.statuses import WorkspaceStatus
from models import SyncRunWorkspace


def last_successes(
    connection: Connection, accounts: Collection[str]
) -> dict[tuple[str, str], datetime]:
    """The end of each workspace's latest ``ok`` ledger row, by (account, workspace as
    configured: "default" or its UUID), for the given accounts."""
    row = SyncRunWorkspace
    query = (
        select(row.account, row.requested_as, func.max(row.finished_at))
        .where(
            row.status == WorkspaceStatus.OK.value,
            row.account.in_([account[:255] for account in accounts]),
            row.finished_at.is_not(None),
        )
        .group_by(row.account, row.requested_as)
    )
    return {
        (account, workspace): finished
        for account, workspace, finished in connection.execute(query)
        if finished is not None
    }
