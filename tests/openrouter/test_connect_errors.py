"""A connection not made is named by scheme, host and port, and retried briefly."""

from __future__ import annotations

import socket

import httpx
import pytest

from etl.openrouter.connect_errors import (
    REFUSED_ATTEMPTS,
    RESOLVE_ATTEMPTS,
    connect_failure,
    endpoint,
)


@pytest.mark.parametrize(
    ("base_url", "shown"),
    [
        ("https://openrouter.ai/api/v1", "https://openrouter.ai:443"),
        ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080"),
        ("https://user:hunter2@proxy.example/api", "https://proxy.example:443"),
    ],
)
def test_endpoint_is_scheme_host_and_port_only(base_url: str, shown: str) -> None:
    assert endpoint(base_url) == shown


def connect_error(cause: OSError) -> httpx.ConnectError:
    try:
        try:
            raise cause
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as error:
        return error


def test_a_name_that_does_not_resolve_gets_one_quick_retry() -> None:
    error = connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    failure = connect_failure(error, "https://openrouter.invalid/api/v1")
    assert failure.max_attempts == RESOLVE_ATTEMPTS == 2
    assert failure.problem.startswith(
        "cannot connect to https://openrouter.invalid:443: the host name openrouter.invalid "
        "does not resolve"
    )


def test_a_refused_connection_gets_a_short_budget() -> None:
    error = connect_error(ConnectionRefusedError(111, "Connection refused"))
    failure = connect_failure(error, "http://127.0.0.1:9/api/v1")
    assert failure.max_attempts == REFUSED_ATTEMPTS
    assert failure.problem.startswith("cannot connect to http://127.0.0.1:9: connection refused")


def test_other_connect_errors_keep_the_policy_budget() -> None:
    failure = connect_failure(connect_error(OSError(113, "No route")), "http://10.0.0.1/api")
    assert failure.max_attempts is None
    assert failure.problem == "cannot connect to http://10.0.0.1:80 (ConnectError)"
