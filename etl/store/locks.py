"""Per-workspace locks that die with the process holding them.

PostgreSQL session advisory locks and MariaDB/MySQL ``GET_LOCK`` are released by the
server when the holder's connection ends; on SQLite an exclusive ``flock`` on a file
in a folder beside the database (``<db>.locks/``) is released by the OS when the process
dies. So a killed run
never blocks the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]


class WorkspaceLock(Protocol):
    """A held lock; ``release()`` gives it back."""

    def release(self) -> None:
        """Give the lock back."""


def lock_name(subject: str) -> str:
    """The lock's name (short enough for GET_LOCK's 64 characters)."""
    return f"keyledger:{subject}"[:64]


class _ServerLock:
    def __init__(self, connection: Connection, release_sql: str, params: dict[str, Any]):
        self._connection = connection
        self._release_sql = release_sql
        self._params = params

    def release(self) -> None:
        try:
            self._connection.execute(text(self._release_sql), self._params)
            self._connection.commit()
        except SQLAlchemyError:
            pass  # the session is gone, and the server released its locks with it
        finally:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()  # closing the session releases them anyway


class _FileLock:
    def __init__(self, handle: IO[bytes], path: Path, *, ephemeral: bool) -> None:
        self._handle = handle
        self._path = path
        self._ephemeral = ephemeral

    def release(self) -> None:
        if self._ephemeral:
            # Safe to remove while locked: whoever opens it next takes a lock on a fresh
            # file, which only ever answers "not held", and a run lock is only asked
            # about a run the ledger still shows running.
            self._path.unlink(missing_ok=True)
        self._handle.close()  # closing the descriptor drops the flock


def try_lock(engine: Engine, subject: str, *, ephemeral: bool = False) -> WorkspaceLock | None:
    """Take the lock on ``subject`` (a workspace id, or a run's) without waiting; None
    when another process holds it. ``ephemeral`` locks remove their file on release."""
    name = lock_name(subject)
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return _try_file_lock(engine, name, ephemeral=ephemeral)
    connection = engine.connect()
    params: dict[str, Any]
    try:
        if dialect == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            got = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            release, params = "SELECT pg_advisory_unlock(:key)", {"key": key}
        elif dialect == "mysql":
            # GET_LOCK names are server-wide, where advisory locks and lock files are
            # per database: without the database in the name, two ledgers on one
            # server (staging and production, say) would skip each other's workspaces.
            name = _server_wide_name(engine.url.database, name)
            got = connection.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": name}) == 1
            release, params = "SELECT RELEASE_LOCK(:name)", {"name": name}
        else:
            raise NotImplementedError(f"no workspace lock for the {dialect} dialect")
        connection.commit()  # the lock is the session's, not the transaction's
    except BaseException:
        connection.close()
        raise
    if not got:
        connection.close()
        return None
    return _ServerLock(connection, release, params)


def _server_wide_name(database: str | None, name: str) -> str:
    # A digest, since a database name and a workspace UUID can exceed 64 characters.
    digest = hashlib.sha256(f"{database or ''}\0{name}".encode()).hexdigest()
    return f"keyledger:{digest[:48]}"


def _try_file_lock(engine: Engine, name: str, *, ephemeral: bool) -> WorkspaceLock | None:
    database = engine.url.database
    if not database or database == ":memory:" or fcntl is None:
        return _NoLock()  # a private in-memory database has no other writer
    folder = Path(f"{database}.locks")  # one folder beside the database, a file a workspace
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / hashlib.sha256(name.encode()).hexdigest()[:16]
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    os.chmod(path, 0o600)
    return _FileLock(handle, path, ephemeral=ephemeral)


class _NoLock:
    def release(self) -> None:
        pass


def acquire(
    engine: Engine,
    workspace_id: str,
    *,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> WorkspaceLock | None:
    """Take the lock, polling up to ``wait_seconds``; None if still held elsewhere."""
    deadline = monotonic() + wait_seconds
    while True:
        lock = try_lock(engine, workspace_id)
        if lock is not None or monotonic() >= deadline:
            return lock
        sleep(min(0.5, max(0.0, deadline - monotonic())))
