"""``keyledger config check``'s look at the database: can it be reached, and is its
schema the one this keyledger writes? It reads only: a SQLite file that does not
exist yet is reported as such, not created.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from etl.core.errors import LoadError
from etl.store.database import (
    make_engine,
    masked,
    one_line,
    open_engine,
    sqlite_location_problem,
)
from etl.store.migrations import current_revision, head_revision, is_empty, known_revisions


class SchemaState(str, Enum):
    """Where the database's schema stands against this keyledger's migrations."""

    CURRENT = "current"
    NO_DATABASE = "no database yet"  # a SQLite file the first sync will create
    EMPTY = "empty"  # no tables: the first sync creates the schema
    BEHIND = "behind"  # an older revision: `db upgrade` or `sync --migrate`
    UNKNOWN = "unknown"  # a revision this keyledger does not know (a newer one?)
    FOREIGN = "foreign"  # tables, but no keyledger schema
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class DatabaseCheck:
    """What ``check_database`` found; ``problem`` is None when a sync can run."""

    url: str  # masked: no password
    state: SchemaState
    current: str | None
    head: str | None
    problem: str | None = None


def check_database(url: str) -> DatabaseCheck:
    """Connect to ``url`` (once, read-only) and compare its schema with the migrations."""
    shown = masked(url)
    head = head_revision()
    parsed = make_url(url)
    database = parsed.database
    sqlite_file = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if sqlite_file and not Path(str(database)).expanduser().exists():
        # Connecting would create the file: a check only says whether a sync could.
        engine = make_engine(url)
        try:
            problem = sqlite_location_problem(engine)
        finally:
            engine.dispose()
        if problem is not None:
            return DatabaseCheck(
                shown, SchemaState.UNREACHABLE, None, head, f"cannot create it: {problem}"
            )
        return DatabaseCheck(shown, SchemaState.NO_DATABASE, None, head)
    try:
        with open_engine(url) as engine:
            empty = is_empty(engine)
            with engine.connect() as connection:
                current = current_revision(connection)
    except LoadError as exc:
        # The check names the database already; its error need not repeat the URL.
        problem = str(exc).replace(f"cannot connect to {shown}: ", "cannot connect: ")
        return DatabaseCheck(shown, SchemaState.UNREACHABLE, None, head, problem)
    except SQLAlchemyError as exc:
        return DatabaseCheck(shown, SchemaState.UNREACHABLE, None, head, one_line(exc))
    if current == head:
        return DatabaseCheck(shown, SchemaState.CURRENT, current, head)
    if empty:
        return DatabaseCheck(shown, SchemaState.EMPTY, None, head)
    if current is None:
        return DatabaseCheck(
            shown,
            SchemaState.FOREIGN,
            None,
            head,
            "holds tables but no keyledger schema: point database_url at keyledger's own "
            "database (or an empty one)",
        )
    if current in known_revisions():
        return DatabaseCheck(
            shown,
            SchemaState.BEHIND,
            current,
            head,
            f"schema at {current}, this keyledger needs {head}: run `keyledger db upgrade` "
            "(or sync with --migrate)",
        )
    return DatabaseCheck(
        shown,
        SchemaState.UNKNOWN,
        current,
        head,
        f"schema at {current}, a revision this keyledger does not know (written by a newer "
        "one?): upgrade keyledger",
    )
