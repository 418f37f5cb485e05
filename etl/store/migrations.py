"""Schema migrations: where they live, what head is, and applying them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from etl.core.errors import LoadError, first_line
from etl.store import locks
from etl.store.database import WRITE

# How long an upgrade waits for another process's migration to finish. The shipped
# migrations take seconds; a later one rewriting a large table may take minutes, and
# waiting beats failing a cron job that would find the work done anyway.
MIGRATION_WAIT_SECONDS = 600.0


def migrations_dir() -> Path:
    """The migrations folder: the installed ``keyledger_migrations``, else ./alembic."""
    spec = importlib.util.find_spec("keyledger_migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config that needs no alembic.ini and no working directory."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision this version of keyledger knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    """Every revision this version of keyledger can migrate from."""
    script = ScriptDirectory.from_config(alembic_config())
    return {revision.revision for revision in script.walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True)
class SchemaChange:
    """What ``upgrade`` did: the revision before (None: no schema) and after."""

    before: str | None
    after: str | None

    def describe(self) -> str:
        """``created schema at rev X``, ``upgraded A -> B`` or ``already at X``."""
        if self.before == self.after:
            return f"already at {self.after}"
        if self.before is None:
            return f"created schema at rev {self.after}"
        return f"upgraded {self.before} -> {self.after}"


def upgrade(
    engine: Engine, revision: str = "head", *, wait_seconds: float | None = None
) -> SchemaChange:
    """Apply migrations up to ``revision`` in one transaction, one process at a time.

    Several first runs started at once (cron on two hosts, a deploy and a sync) each
    read "empty database" and would all create the tables; the losers failed with the
    backend's raw race error. So the whole "read the revision, upgrade" step runs under
    a lock, and whoever waited for it finds the database already at ``revision`` and
    does nothing. Returns what changed. Raises ``MigrationLockedError`` when the lock
    stays held elsewhere for ``wait_seconds`` (default ``MIGRATION_WAIT_SECONDS``).
    """
    wait = MIGRATION_WAIT_SECONDS if wait_seconds is None else wait_seconds
    # Most calls have nothing to do (a nightly `sync --migrate`): a plain read says so
    # without waiting for the lock, or on SQLite for the write lock a long sync holds.
    # Seeing the target revision means the migration to it committed (PostgreSQL and
    # SQLite migrate in one transaction; MariaDB stamps the version after the DDL).
    try:
        with engine.connect() as connection:
            if _at(connection, revision):
                current = current_revision(connection)
                return SchemaChange(current, current)
    except SQLAlchemyError as exc:
        raise LoadError(f"cannot read the schema version: {first_line(exc)}") from exc
    try:
        lock = locks.acquire(engine, migration_lock_subject(engine), wait_seconds=wait)
    except (SQLAlchemyError, OSError) as exc:
        raise LoadError(f"cannot take the migration lock: {first_line(exc)}") from exc
    if lock is None:
        raise MigrationLockedError(
            f"another keyledger process has been migrating the database for over "
            f"{wait:g} seconds; try again when it has finished"
        )
    try:
        # The lock is the serialisation on every backend, SQLite included: there it is
        # the flock of etl.store.locks, which is held for as long as the migration takes and
        # dies with a killed process. SQLite's own write lock (BEGIN IMMEDIATE, taken
        # through WRITE) is not enough alone: a waiter gives up after the 30 s busy
        # timeout, and a long migration would fail it with "database is locked". It
        # is still taken, so the revision read and the DDL are one write transaction.
        with engine.connect().execution_options(**WRITE) as connection, connection.begin():
            # The revision is read again under the lock: a process that held it before
            # us may have done all of the work.
            before = current_revision(connection)
            if _at(connection, revision):
                return SchemaChange(before, before)
            command.upgrade(alembic_config(connection), revision)
            after = current_revision(connection)
    except SQLAlchemyError as exc:
        raise LoadError(f"migration failed: {first_line(exc)}") from exc
    finally:
        lock.release()
    return SchemaChange(before, after)


def migration_lock_subject(engine: Engine) -> str:
    """The name of the lock migrations of ``engine``'s database take (etl.store.locks scopes
    it to that database on every backend)."""
    return "schema-migration"


def _at(connection: Connection, revision: str) -> bool:
    current = current_revision(connection)
    if revision == "head":
        return current is not None and current == head_revision()
    return current == revision


def check_current(engine: Engine) -> None:
    """Raise ``SchemaOutdatedError`` unless the database is at head."""
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    except SQLAlchemyError as exc:
        raise LoadError(f"cannot read the schema version: {first_line(exc)}") from exc
    head = head_revision()
    if current != head:
        raise SchemaOutdatedError(
            f"the database schema is at {current or 'nothing (empty database)'}, this "
            f"keyledger needs {head}: run `keyledger db upgrade` or sync with --migrate"
        )


def is_empty(engine: Engine) -> bool:
    """True when the database holds no table at all (nothing there could be lost)."""
    try:
        return not inspect(engine).get_table_names()
    except SQLAlchemyError as exc:
        raise LoadError(f"cannot list the database's tables: {first_line(exc)}") from exc


def prepare_schema(engine: Engine, *, migrate: bool, create: bool = True) -> SchemaChange | None:
    """Make the schema ready for a sync: create it in an empty database (when
    ``create``), upgrade an old one only when ``migrate`` says so (else
    ``SchemaOutdatedError``); None when nothing was done.

    An empty database is the first run: creating the tables cannot lose anything. An
    old schema is another matter: its migration may take long or want a backup first,
    so the operator asks for it.
    """
    change = upgrade(engine) if migrate or (create and is_empty(engine)) else None
    check_current(engine)
    return change if change is not None and change.before != change.after else None


class SchemaOutdatedError(LoadError):
    """The database schema is not the one this version of keyledger writes."""


class MigrationLockedError(LoadError):
    """Another process held the migration lock for longer than we would wait."""
