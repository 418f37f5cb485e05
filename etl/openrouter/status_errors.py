"""Which HTTP status becomes which error: the client's one table of answers.

    200                  the answer (the client reads it)
    404                  "gone" where the caller asked for that (GET /keys/{hash}), else below
    401, 403             AuthError: the management key was refused; never retried
    429                  TransientFailure, waiting Retry-After when the server sends it
    500, 502, 503, 504   TransientFailure, whatever their body
    anything else        ApiStatusError at once: repeating the request cannot change it

A TransientFailure is retried by etl.openrouter.retry and becomes an ApiStatusError
when the retries are spent.
"""

from __future__ import annotations

from etl.core.errors import ApiError, ApiStatusError, AuthError
from etl.openrouter.retry import TransientFailure

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
REFUSED_KEY_STATUSES = frozenset({401, 403})
RATE_LIMITED = 429


def status_failure(
    request: str, status: int, *, server_message: str | None, retry_after: float | None
) -> ApiError | TransientFailure:
    """What an error ``status`` to ``request`` (e.g. "GET /keys") becomes.

    ``server_message`` is the server's own ``error.message``, already scrubbed of the
    key and cut short, or None; ``retry_after`` its ``Retry-After`` in seconds, which
    only a 429 is waited for.
    """
    if status in REFUSED_KEY_STATUSES:
        return AuthError(
            f"the management API refused the management key (HTTP {status}); "
            "check that it is a valid, unexpired management key"
        )
    problem = f"HTTP {status}" if server_message is None else f"HTTP {status}: {server_message}"
    if status not in RETRYABLE_STATUSES:
        return ApiStatusError(f"{request}: {problem}", status=status)
    return TransientFailure(
        problem, status=status, retry_after=retry_after if status == RATE_LIMITED else None
    )
