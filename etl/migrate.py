"""Schema migrations: where they live, what head is, and applying them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from etl.errors import LoadError


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


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction."""
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    except SQLAlchemyError as exc:
        raise LoadError(f"migration failed: {_first_line(exc)}") from exc


def check_current(engine: Engine) -> None:
    """Raise ``SchemaOutdatedError`` unless the database is at head."""
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    except SQLAlchemyError as exc:
        raise LoadError(f"cannot read the schema version: {_first_line(exc)}") from exc
    head = head_revision()
    if current != head:
        raise SchemaOutdatedError(
            f"the database schema is at {current or 'nothing (empty database)'}, this "
            f"keyledger needs {head}: run `keyledger db upgrade` or sync with --migrate"
        )


def _first_line(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SchemaOutdatedError(LoadError):
    """The database schema is not the one this version of keyledger writes."""
