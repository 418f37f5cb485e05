"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from etl.store.database import make_engine
from etl.store.migrations import upgrade


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's KEYLEDGER_* or OPENROUTER_* settings."""
    for name in list(os.environ):
        if name.startswith(("KEYLEDGER_", "OPENROUTER_")) and not name.startswith(
            "KEYLEDGER_TEST_"
        ):
            monkeypatch.delenv(name)


BACKEND_URLS = {
    "sqlite": None,  # a file in tmp_path
    "postgresql": "KEYLEDGER_TEST_POSTGRES_URL",
    "mysql": "KEYLEDGER_TEST_MYSQL_URL",
}


def backend_url(backend: str, tmp_path: Path) -> str:
    """The URL of a test database, or skip when that backend is not configured."""
    variable = BACKEND_URLS[backend]
    if variable is None:
        return f"sqlite:///{tmp_path / 'keyledger.db'}"
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{variable} is not set")
    return url


def end_stray_sessions(engine: Engine) -> None:
    """End other sessions on the test database: a subprocess a test killed, or a
    connection a test cut, may leave one holding locks that would block the DROPs."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        elif engine.dialect.name == "mysql":
            ids = connection.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            ).scalars()
            for session in list(ids):
                with contextlib.suppress(SQLAlchemyError):  # it ended meanwhile
                    connection.execute(text(f"KILL {int(session)}"))


def wipe(engine: Engine) -> None:
    """Drop every view and table in the test database (it is shared between tests)."""
    engine.dispose()  # our own pooled sessions are not strays
    end_stray_sessions(engine)
    inspector = inspect(engine)
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""  # views on views
    with engine.begin() as connection:
        for view in inspector.get_view_names():
            connection.execute(text(f"DROP VIEW IF EXISTS {view}{cascade}"))
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)


# What a server database migrated to head from nothing holds (schema_of), by URL: a
# database that still holds exactly that is emptied row by row for the next test instead
# of dropped and migrated again (on MariaDB, whose DDL is slow, 20 ms instead of ~1.7 s).
_FRESH_SCHEMA: dict[str, tuple[str, ...]] = {}

_SCHEMA_SQL = {
    "postgresql": """
        SELECT 'c:' || table_name || '.' || column_name || ':' || data_type || ':'
               || is_nullable || ':' || coalesce(column_default, '')
        FROM information_schema.columns WHERE table_schema = current_schema()
        UNION ALL SELECT 'v:' || table_name || ':' || md5(view_definition)
        FROM information_schema.views WHERE table_schema = current_schema()
        UNION ALL SELECT 'i:' || tablename || '.' || indexname || ':' || md5(indexdef)
        FROM pg_indexes WHERE schemaname = current_schema()
        UNION ALL SELECT 't:' || event_object_table || '.' || trigger_name || ':'
               || md5(action_statement)
        FROM information_schema.triggers WHERE trigger_schema = current_schema()
        UNION ALL SELECT 'f:' || p.proname || ':' || md5(p.prosrc)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = current_schema()
        UNION ALL SELECT 'a:' || version_num FROM alembic_version
    """,
    "mysql": """
        SELECT CONCAT('c:', table_name, '.', column_name, ':', column_type, ':',
                      is_nullable, ':', COALESCE(column_default, ''))
        FROM information_schema.columns WHERE table_schema = DATABASE()
        UNION ALL SELECT CONCAT('v:', table_name, ':', MD5(view_definition))
        FROM information_schema.views WHERE table_schema = DATABASE()
        UNION ALL SELECT CONCAT('i:', table_name, '.', index_name, '.', column_name, ':',
                                seq_in_index)
        FROM information_schema.statistics WHERE table_schema = DATABASE()
        UNION ALL SELECT CONCAT('t:', event_object_table, '.', trigger_name, ':',
                                MD5(action_statement))
        FROM information_schema.triggers WHERE trigger_schema = DATABASE()
        UNION ALL SELECT CONCAT('f:', routine_name) FROM information_schema.routines
        WHERE routine_schema = DATABASE()
        UNION ALL SELECT CONCAT('a:', version_num) FROM alembic_version
    """,
}


def schema_of(engine: Engine) -> tuple[str, ...] | None:
    """Every column, view, index, trigger and function, and the alembic revision, of a
    server database (what a test may have added or changed); None on SQLite (each
    test has its own file) or when it has no alembic_version."""
    sql = _SCHEMA_SQL.get(engine.dialect.name)
    if sql is None:
        return None
    try:
        with engine.connect() as connection:
            return tuple(sorted(connection.execute(text(sql)).scalars()))
    except SQLAlchemyError:
        return None


def empty_tables(engine: Engine) -> None:
    """Delete every row but alembic's, counters back at 1: as a fresh migration leaves it."""
    with engine.begin() as connection:
        tables = [
            name for name in inspect(connection).get_table_names() if name != "alembic_version"
        ]
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            return
        connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        for table in tables:
            connection.execute(text(f"DELETE FROM {table}"))
            connection.execute(text(f"ALTER TABLE {table} AUTO_INCREMENT = 1"))
        connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))


def migrated_and_empty(engine: Engine, url: str) -> None:
    """The database at head with no rows: emptied when it holds just what a fresh
    migration made, else wiped and migrated from nothing."""
    engine.dispose()
    end_stray_sessions(engine)
    fresh = _FRESH_SCHEMA.get(url)
    if fresh is not None and schema_of(engine) == fresh:
        empty_tables(engine)
        return
    wipe(engine)
    upgrade(engine)
    schema = schema_of(engine)
    if schema is not None:
        _FRESH_SCHEMA[url] = schema


@pytest.fixture(params=list(BACKEND_URLS))
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend, migrated to head through alembic."""
    url = backend_url(request.param, tmp_path)
    engine = make_engine(url)
    migrated_and_empty(engine, url)
    engine.dispose()
    yield url
    # Left at head with no rows (or, when the test changed its schema, with no tables):
    # tests that want a database with no tables at all wipe it themselves.
    engine = make_engine(url)
    if _FRESH_SCHEMA.get(url) is not None and schema_of(engine) == _FRESH_SCHEMA[url]:
        end_stray_sessions(engine)
        empty_tables(engine)
    else:
        wipe(engine)
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the migrated test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
