"""Engines: one place that knows each backend's connection quirks."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from etl.core.errors import DatabaseUnavailableError, first_line

# libpq and PyMySQL also take a password as a query parameter.
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)[^&]*", re.IGNORECASE)


def masked(url: str) -> str:
    """The URL with its password replaced by ***, whatever characters it holds.

    Worked on the text, not on SQLAlchemy's parse: that parse ends the password at
    its first '@', so an unencoded '@' in it left the rest of the password in the
    host, and in the "masked" URL. Here everything from the user name's ':' to the
    last '@' is masked (a host never holds '@'; over-masking beats showing any of it).
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "***"  # not a URL: no part of it is known to be safe to show
    if not rest.startswith("/") and "@" in rest:  # "sqlite:///x@y.db" has no user part
        user_part, _, host_part = rest.rpartition("@")
        user, colon, _password = user_part.partition(":")
        if colon:
            rest = f"{user}:***@{host_part}"
    return f"{scheme}://{_QUERY_PASSWORD.sub(lambda found: found.group(1) + '***', rest)}"


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Waiting on a busy database beats failing: BI readers may hold it briefly.
        options.setdefault("connect_args", {"timeout": 30})
    else:
        options.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "mysql":
        # As PostgreSQL does by default: InnoDB's REPEATABLE READ takes gap locks on
        # every row an UPDATE scans, which made concurrent runs wait on (or deadlock
        # with) each other over the ledger. Workspace atomicity needs only commits.
        options.setdefault("isolation_level", "READ COMMITTED")
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


@contextmanager
def open_engine(url: str, **options: Any) -> Iterator[Engine]:
    """An engine for ``url`` that has connected once (else LoadError, as check_connection
    raises it), disposed on the way out whatever happened inside.

    The one way a command opens its database: disposing after a failure too leaves no
    pooled connection (and no server session) for the garbage collector to find.
    """
    engine = make_engine(url, **options)
    try:
        check_connection(engine)
        yield engine
    finally:
        engine.dispose()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 module starts and ends transactions on its own and breaks
    # SAVEPOINTs and transactional DDL; take that job back, as SQLAlchemy's pysqlite
    # documentation recommends ("Serializable isolation / Savepoints / Transactional DDL").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the nightly writer
    cursor.close()


WRITE = {"keyledger_write": True}  # execution options of a connection that will write


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads, then writes, fails at once (SQLITE_BUSY) when
    # another process wrote in between; IMMEDIATE takes the write lock up front and
    # waits for it (busy timeout) instead. Read-only connections stay deferred.
    immediate = connection.get_execution_options().get("keyledger_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def check_connection(engine: Engine) -> None:
    """Connect once, or raise a LoadError naming the (masked) database."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        where = sqlite_location_problem(engine)
        if where is not None:
            raise DatabaseUnavailableError(f"cannot open the SQLite database: {where}") from exc
        first = first_line(exc)
        password = engine.url.password
        if isinstance(password, str) and len(password) >= 4:
            # Drivers do not usually repeat the password, but nothing promises it. Shorter
            # ones are left: replacing every "ab" would garble the one line we print.
            first = first.replace(password, "***")
        raise DatabaseUnavailableError(
            f"cannot connect to {masked(engine.url.render_as_string(hide_password=False))}: {first}"
        ) from exc


def sqlite_location_problem(engine: Engine) -> str | None:
    """Why SQLite cannot create or write its file where the URL puts it, naming the
    directory; None when the location looks fine (or the database is not SQLite).

    SQLite's own word for all of these is "unable to open database file". It writes
    the -wal and -shm files beside the database, so its directory must be writable
    even when the file itself exists.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database).expanduser().absolute()
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        return f"{directory} is a file, not a directory"
    if not directory.is_dir():
        missing = directory
        while not missing.parent.exists() and missing.parent != missing:
            missing = missing.parent
        first = f" ({missing} is missing)" if missing != directory else ""
        return f"directory {directory} does not exist{first}; create it first"
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"directory {directory} is not writable by this user (SQLite creates {path.name} "
            "and its -wal/-shm files there); choose another directory or fix its permissions"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user"
    return None


# Long enough for any driver's message; short enough for a terminal and the ledger.
ONE_LINE_LIMIT = 500


def one_line(error: BaseException) -> str:
    """Any error as one short line for the run ledger and the terminal; a database
    error says so and names the driver's error type."""
    line = first_line(error)
    if isinstance(error, SQLAlchemyError):
        driver_error = getattr(error, "orig", None) or error
        line = f"database error: {type(driver_error).__name__}: {line}"
    return line[:ONE_LINE_LIMIT]
