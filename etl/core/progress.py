"""What a sync tells whoever watches it, as it goes: a workspace started, a page of
its keys came, it ended. The library never prints; the command line turns these calls
into a live display on a terminal (etl/cli/progress.py).

Workspaces load several at once (etl/workspace_pool.py), so the methods are called
from several threads at once: an observer must be thread-safe. They must also be
quick, and must not raise: they run inside a workspace's transaction.
"""

from __future__ import annotations


class SyncObserver:
    """Hears how a run goes; every method does nothing here, so a subclass overrides
    only what it needs. A workspace is named by its account and the id it was
    requested as (``default`` or a UUID)."""

    def workspace_started(self, account: str, workspace: str) -> None:
        """The workspace's listing starts; called again, from zero, when a transaction
        the database rolled back to break a deadlock is run again."""

    def page_fetched(self, account: str, workspace: str, keys: int) -> None:
        """A page of ``keys`` keys was fetched and loaded (not committed yet)."""

    def workspace_finished(self, account: str, workspace: str, status: str) -> None:
        """The workspace ended: ok, failed, skipped or delisted (also when it never
        started: another run held it)."""


# The observer of a run nobody watches.
NO_OBSERVER = SyncObserver()
