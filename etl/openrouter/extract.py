"""Extraction without a database: which workspaces to read, and reading them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from etl.core.config import Account, Settings, WorkspaceSpec
from etl.core.errors import ApiError
from etl.core.exact_json import dump_json
from etl.openrouter.client import OpenRouterClient, client_for
from etl.openrouter.paging import KeyPage

ClientFactory = Callable[[Account], OpenRouterClient]


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


@dataclass(frozen=True)
class ExtractResult:
    """What one extraction read, workspace by workspace."""

    workspaces: list[WorkspaceTally]
    seconds: float

    @property
    def failed(self) -> list[WorkspaceTally]:
        """The workspaces whose listing failed (each keeps its error)."""
        return [t for t in self.workspaces if t.error is not None]

    def summary(self) -> str:
        """The one line an extraction prints on stderr."""
        failed = len(self.failed)
        return (
            f"extract: {len(self.workspaces) - failed} workspaces ok, {failed} failed; "
            f"{sum(t.keys for t in self.workspaces)} keys in "
            f"{sum(t.pages for t in self.workspaces)} pages; {self.seconds:.1f}s"
        )


def extract_keys(
    settings: Settings, *, out: TextIO | None = None, client_factory: ClientFactory | None = None
) -> ExtractResult:
    """Read every key of every configured workspace, writing each to ``out`` as one line
    of exact JSON (the payload as the API sent it).

    A workspace whose listing fails is kept in the result with its error; a failure
    before any listing (the key refused, the workspaces unlisted) raises ApiError.
    """
    started = time.monotonic()
    make_client = client_factory or client_for
    tallies: list[WorkspaceTally] = []
    for account in settings.accounts:
        with make_client(account) as client:
            for workspace in resolve_workspaces(client, account.workspaces):
                tally = WorkspaceTally(workspace)
                tallies.append(tally)
                for page in iter_workspace(client, workspace, tally):
                    if out is not None:
                        out.writelines(f"{dump_json(dict(r.full().raw))}\n" for r in page.records)
                        out.flush()  # a reader at the end of a pipe gets each page as it comes
    return ExtractResult(tallies, time.monotonic() - started)
