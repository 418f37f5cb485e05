"""``keyledger config check``'s test of a management key: one request, no retries.

The request is the cheapest the API offers that needs the management key and proves
it can list keys: ``GET /keys`` at offset 0, for the first configured workspace (the
default one when every workspace is configured). A check that retried for minutes
would hide the very problem it looks for, so the one attempt has a short timeout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from etl.core.config import DEFAULT_WORKSPACE, Account
from etl.core.errors import ApiError, AuthError
from etl.openrouter.client import OpenRouterClient
from etl.openrouter.connect_errors import endpoint

PROBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class KeyProbe:
    """What the one request said: ``problem`` is None when the key was accepted."""

    account: str
    endpoint: str  # scheme://host:port, nothing secret
    workspace: str
    keys_on_first_page: int = 0
    problem: str | None = None
    refused: bool = False  # the server refused the key itself (401/403)


def probe_key(account: Account) -> KeyProbe:
    """Send ``GET /keys?offset=0`` once with ``account``'s key and say how it went."""
    workspace = account.workspaces[0].id if account.workspaces else DEFAULT_WORKSPACE
    settings = dataclasses.replace(
        account.client,
        max_attempts=1,
        timeout_seconds=min(account.client.timeout_seconds, PROBE_TIMEOUT_SECONDS),
        concurrency=1,
    )
    where = endpoint(account.client.base_url)
    try:
        with OpenRouterClient(settings, account.management_key) as client:
            page = client.fetch_key_page(workspace, 0)
    except AuthError as exc:
        return KeyProbe(account.name, where, workspace, problem=str(exc), refused=True)
    except ApiError as exc:
        return KeyProbe(account.name, where, workspace, problem=str(exc))
    return KeyProbe(account.name, where, workspace, keys_on_first_page=len(page.records))
