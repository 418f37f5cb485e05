"""Small builders shared by the tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine

from etl.core.config import ClientSettings, Secret
from etl.core.exact_json import dump_json
from models.types import money_as_stored

SECRET = "sk-or-v1-TEST-SECRET-0123456789abcdef"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def as_stored(amount: Decimal, engine: Engine) -> Decimal:
    """What a money column on ``engine`` gives back for ``amount``: the amount itself
    (NUMERIC), or on SQLite its nearest double, which equals it whenever a double holds
    it in shortest form (every value the API sends; not 123456789.0123456789)."""
    stored = money_as_stored(amount, engine.dialect)
    assert stored is not None
    return stored


def key_payload(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid key object as the API sends it; key ``n`` is created ``n`` minutes before T0."""
    created = T0 - timedelta(minutes=n)
    payload: dict[str, Any] = {
        "hash": f"{n:064x}",
        "name": f"key {n}",
        "label": f"sk-or-v1-{n:03x}...{n:04x}",
        "disabled": False,
        "limit": 100,
        "limit_remaining": Decimal("74.5"),
        "limit_reset": "monthly",
        "include_byok_in_limit": False,
        "usage": Decimal("25.5"),
        "usage_daily": Decimal("1.25"),
        "usage_weekly": 5,
        "usage_monthly": Decimal("25.5"),
        "byok_usage": 0,
        "byok_usage_daily": 0,
        "byok_usage_weekly": 0,
        "byok_usage_monthly": 0,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "updated_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "creator_user_id": "user_1",
        "workspace_id": "0df9e665-d932-5740-b2c7-b52af166bc11",
        "expires_at": None,
        "last_used_at": None,
        "external_user": None,
    }
    payload.update(overrides)
    return payload


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    """A response whose body is ``body`` as JSON (Decimals written exactly)."""
    text = dump_json(body) if not isinstance(body, (bytes, str)) else body
    return httpx.Response(
        status,
        content=text.encode() if isinstance(text, str) else text,
        headers={"content-type": "application/json", **headers},
    )


def error_body(code: int, message: str) -> str:
    """The API's ``{"error": {...}}`` body."""
    return json.dumps({"error": {"code": code, "message": message}})


def settings(**overrides: Any) -> ClientSettings:
    """Client settings for tests: no rate limit to speak of, quick retries."""
    values: dict[str, Any] = {
        "base_url": "https://openrouter.test/api/v1",
        "requests_per_second": 1e6,
        "concurrency": 4,
        "timeout_seconds": 5.0,
        "max_attempts": 5,
        "retry_deadline_seconds": 600.0,
    }
    values.update(overrides)
    return ClientSettings(**values)


def secret() -> Secret:
    """The fake management key every test uses (and checks never leaks)."""
    return Secret(SECRET)


def refuse_keys(engine: Engine, column: str, value: str) -> None:
    """Make the database itself refuse any api_keys row whose ``column`` is ``value``
    (``workspace_id``, or ``hash`` for one key): a trigger that raises, as a full disk
    or a value out of range would: a real database error inside that workspace's
    transaction, on every backend."""
    message = f"refused by the test: api_keys.{column} = {value}"
    if engine.dialect.name == "sqlite":
        statements = [
            f"CREATE TRIGGER refuse_keys BEFORE INSERT ON api_keys "
            f"WHEN NEW.{column} = '{value}' "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        ]
    elif engine.dialect.name == "postgresql":
        statements = [
            "CREATE OR REPLACE FUNCTION refuse_keys() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            "CREATE TRIGGER refuse_keys BEFORE INSERT ON api_keys FOR EACH ROW "
            f"WHEN (NEW.{column} = '{value}') EXECUTE FUNCTION refuse_keys()",
        ]
    else:
        statements = [
            "CREATE TRIGGER refuse_keys BEFORE INSERT ON api_keys FOR EACH ROW "
            f"BEGIN IF NEW.{column} = '{value}' THEN "
            f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'; END IF; END"
        ]
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def seen_keys_left(engine: Engine) -> int:
    """Rows of the listing's seen keys a new connection can find: none, since they live
    in a temporary table of the loading connection (and sync_seen_keys is gone)."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    from etl.store.seen_keys import TABLE_NAME

    assert "sync_seen_keys" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        try:
            with connection.begin_nested():
                return int(connection.scalar(text(f"SELECT COUNT(*) FROM {TABLE_NAME}")) or 0)
        except SQLAlchemyError:  # no such table on this connection: nothing left
            return 0
