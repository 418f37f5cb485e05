"""The status-to-error table: which answer becomes which error, with which words."""

from __future__ import annotations

import pytest

from etl.core.errors import ApiStatusError, AuthError
from etl.openrouter.retry import TransientFailure
from etl.openrouter.status_errors import RETRYABLE_STATUSES, status_failure


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_an_auth_error_without_the_servers_words(status: int) -> None:
    error = status_failure("GET /keys", status, server_message="echo sk-or", retry_after=None)
    assert isinstance(error, AuthError)
    assert f"refused the management key (HTTP {status})" in str(error)
    assert "echo" not in str(error)


@pytest.mark.parametrize("status", [400, 404, 405, 409, 418, 422, 501, 505])
def test_other_error_statuses_fail_at_once_naming_the_request(status: int) -> None:
    error = status_failure("GET /keys", status, server_message="Invalid", retry_after=5.0)
    assert isinstance(error, ApiStatusError) and error.status == status
    assert str(error) == f"GET /keys: HTTP {status}: Invalid"


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUSES))
def test_rate_limits_and_server_errors_are_transient(status: int) -> None:
    failure = status_failure("GET /keys", status, server_message="busy", retry_after=None)
    assert isinstance(failure, TransientFailure)
    assert (failure.status, failure.problem) == (status, f"HTTP {status}: busy")


def test_retry_after_is_kept_for_a_429_only() -> None:
    limited = status_failure("GET /keys", 429, server_message=None, retry_after=7.0)
    busy = status_failure("GET /keys", 503, server_message=None, retry_after=7.0)
    assert isinstance(limited, TransientFailure) and limited.retry_after == 7.0
    assert isinstance(busy, TransientFailure) and busy.retry_after is None


def test_an_absent_server_message_leaves_the_status_alone() -> None:
    failure = status_failure("GET /keys", 502, server_message=None, retry_after=None)
    empty = status_failure("GET /keys", 400, server_message="", retry_after=None)
    assert isinstance(failure, TransientFailure) and failure.problem == "HTTP 502"
    assert str(empty) == "GET /keys: HTTP 400: "  # an empty message is still the server's


def test_a_spent_transient_status_becomes_an_api_status_error() -> None:
    failure = status_failure("GET /keys", 503, server_message="busy", retry_after=None)
    assert isinstance(failure, TransientFailure)
    error = failure.give_up("GET /keys: gave up after 3 attempts in 1.0s: HTTP 503: busy")
    assert isinstance(error, ApiStatusError) and error.status == 503
