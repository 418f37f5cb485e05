"""Extraction without a database: which workspaces to read, and reading them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from etl.core.config import WorkspaceSpec
from etl.core.errors import ApiError
from etl.openrouter.client import OpenRouterClient
from etl.openrouter.paging import KeyPage


def resolve_workspaces(
    client: OpenRouterClient, configured: tuple[WorkspaceSpec, ...] | None
) -> list[WorkspaceSpec]:
    """The configured workspaces, or every workspace the key can see when None."""
    if configured is not None:
        return list(configured)
    return [WorkspaceSpec(w.id, w.name, w.slug) for w in client.list_workspaces()]


@dataclass
class WorkspaceTally:
    """What one workspace's listing delivered."""

    workspace: WorkspaceSpec
    pages: int = 0
    keys: int = 0
    listed: int = 0
    error: ApiError | None = field(default=None, repr=False)


def iter_workspace(
    client: OpenRouterClient, workspace: WorkspaceSpec, tally: WorkspaceTally
) -> Iterator[KeyPage]:
    """Pages of one workspace, counted into ``tally``; a failure is kept, not raised."""
    try:
        for page in client.iter_key_pages(workspace.id):
            tally.pages += 1
            tally.listed += page.listed
            tally.keys += len(page.records)
            yield page
    except ApiError as exc:
        tally.error = exc
