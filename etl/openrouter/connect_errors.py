"""A connection that could not be made, named by scheme, host and port.

httpx words a host name that does not resolve and a port that refuses alike
(``ConnectError``), and retrying either for minutes helps nobody: a misspelt host stays
misspelt. So a name that does not resolve gets one quick retry (a resolver may fail
once), a refused connection a short budget (a server restarting), and both errors
name where keyledger tried to connect, never with the key (which travels in a header,
not in the URL) nor any user or password in the URL.
"""

from __future__ import annotations

import socket

import httpx

from etl.openrouter.retry import TransientFailure

# Attempts in all: one quick retry for DNS, a second or two for a refusing port.
RESOLVE_ATTEMPTS = 2
REFUSED_ATTEMPTS = 3


def endpoint(base_url: str) -> str:
    """``scheme://host:port`` of ``base_url``: what an operator checks, nothing secret."""
    url = httpx.URL(base_url)
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return f"{url.scheme}://{url.host}:{port}"


def connect_failure(exc: httpx.ConnectError, base_url: str) -> TransientFailure:
    """The failure to retry (or not for long) for a connection that was not made."""
    where = endpoint(base_url)
    causes = list(_causes(exc))
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return TransientFailure(
            f"cannot connect to {where}: the host name {httpx.URL(base_url).host} does not "
            "resolve (check base_url or OPENROUTER_BASE_URL)",
            max_attempts=RESOLVE_ATTEMPTS,
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return TransientFailure(
            f"cannot connect to {where}: connection refused (is the server up, the port right?)",
            max_attempts=REFUSED_ATTEMPTS,
        )
    return TransientFailure(f"cannot connect to {where} (ConnectError)")


def _causes(exc: BaseException) -> list[BaseException]:
    """The chain of exceptions behind ``exc`` (httpx wraps httpcore's, which wraps the
    socket's), as far as it goes."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
