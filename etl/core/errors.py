"""The errors keyledger raises; the CLI maps each branch to an exit code.

    KeyledgerError
    ├── ConfigError            a setting is missing or invalid (exit 1)
    ├── ApiError               talking to the OpenRouter management API
    │   ├── AuthError          the management key was refused (401/403)
    │   ├── ApiStatusError     an error status that retrying did not (or cannot) fix
    │   ├── ApiUnavailableError  timeouts or dropped connections outlasted the retries
    │   ├── PayloadError       a response body or key object that does not parse
    │   ├── PaginationError    the listing does not advance (offset ignored, page repeated)
    │   └── ServerClockError   the server's Date jumped implausibly (etl.server_clock)
    ├── LoadError              writing to the database
    │   ├── DatabaseUnavailableError  it cannot be connected to at all
    │   ├── SchemaOutdatedError    its schema is behind (etl.store.migrations)
    │   └── MigrationLockedError   another process holds the migration lock (exit 4)
    └── SyncFailedError        a run that did not end ok, when the caller of
                               etl.api.sync asked for an error (check=True; etl.api)
    └── Interrupted            the run was told to stop (SIGINT, SIGTERM; exit 130, 143)

Lower-level exceptions (httpx, json, SQLAlchemy) are translated once, at the module
that sees them, with ``raise ... from exc``. No message ever contains the management
key: messages are built from our own words, statuses and the server's error text,
and the server's text is redacted of the key before it is kept. A lower-level error
is quoted by ``first_line`` only.
"""

from __future__ import annotations


class KeyledgerError(Exception):
    """Base of every error keyledger raises on purpose."""


class ConfigError(KeyledgerError):
    """A configuration value is missing or invalid."""


class LoadError(KeyledgerError):
    """The database could not be written or read as expected."""


class DatabaseUnavailableError(LoadError):
    """The database could not be connected to (down, unknown host, refused login)."""


class Interrupted(KeyledgerError):
    """The run was told to stop (a signal); ``signal_name`` says by what ("SIGTERM")."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class ApiError(KeyledgerError):
    """A failure talking to the OpenRouter management API.

    ``workspace`` and ``offset`` say where in a listing it happened; they are
    filled in by whoever knows them and shown in front of the message.
    """

    def __init__(
        self, message: str, *, workspace: str | None = None, offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.workspace = workspace
        self.offset = offset

    def locate(self, *, workspace: str | None = None, offset: int | None = None) -> ApiError:
        """Fill in where the error happened (keeps what is already known)."""
        if self.workspace is None:
            self.workspace = workspace
        if self.offset is None:
            self.offset = offset
        return self

    def __str__(self) -> str:
        where = []
        if self.workspace is not None:
            where.append(f"workspace {self.workspace}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class AuthError(ApiError):
    """The management key was refused (HTTP 401 or 403)."""


class ApiStatusError(ApiError):
    """The API answered with an error status that retrying did not fix."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        workspace: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, workspace=workspace, offset=offset)
        self.status = status


class ApiUnavailableError(ApiError):
    """Timeouts or connection failures lasted through every retry."""


class PayloadError(ApiError):
    """A response body, or a key object in it, is not what the API promises."""


class PaginationError(ApiError):
    """Paging does not advance: the server ignores offset or repeats pages."""


class ServerClockError(ApiError):
    """The server's clock (its ``Date``) jumped implausibly: the run is not filed."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none.

    An error that wraps a lower-level one in ``orig`` (SQLAlchemy's DBAPIError wraps the
    driver's) is told by the wrapped one: the wrapper's message adds the SQL statement
    and its parameters on further lines, and those may hold data.
    """
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
