"""Money on SQLite is REAL since migration 0005, which converts a database in place."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, inspect, text

from etl.store.database import make_engine
from etl.store.migrations import alembic_config, upgrade
from tests.analytics_support import Ledgered, at, make_world, sync_at

MONEY_TABLES = {
    "api_keys": ("hash",),
    "usage_snapshots": ("id",),
    "api_key_versions": ("id",),
    "daily_key_spend": ("key_hash", "day"),
}
# Values that break naive storage: float artefacts, tiny and huge amounts, and one
# SQLite's own text-to-REAL conversion gets wrong (3.40 reads ...6616).
HOSTILE = ("0.30000000000000004", "1e-9", "1e20", "5.292858516599662")
START = date(2026, 11, 3)


def build_hostile_history(engine: Engine) -> Ledgered:
    """Five nights in two workspaces; hostile limits and spend on the way."""
    ledger = make_world(keys=5, workspaces=2, seed=7, deletes=0.0)
    world = ledger.world
    hashes = world.live_hashes(world.workspace_ids[0])
    for n in range(5):
        sync_at(engine, ledger, at(START + timedelta(days=n), 2, 15))
        if n < len(HOSTILE):
            world.update_key(hashes[n], limit=Decimal(HOSTILE[n]), limit_reset=None)
            world.spend(hashes[(n + 1) % len(hashes)], Decimal(HOSTILE[n]), Decimal(HOSTILE[n]))
    return ledger


def money_columns(engine: Engine, table: str) -> list[str]:
    return [
        c["name"]
        for c in inspect(engine).get_columns(table)
        if str(c["type"]) in ("TEXT", "REAL") and c["name"] not in _TEXTS
    ]


_TEXTS = {"name", "label", "creator_user_id", "external_user", "raw_json"}


def raw_rows(engine: Engine, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every row as the driver gives it (no type processing), by primary key."""
    key = MONEY_TABLES[table]
    with engine.connect() as connection:
        result = connection.exec_driver_sql(f"SELECT * FROM {table}")
        names = list(result.keys())
        rows = [dict(zip(names, row, strict=True)) for row in result]
    for row in rows:
        # A cache of the payload, not data: a downgrade past 0007 drops it, and the
        # next sync computes it again (tests/store/test_payload_digest.py).
        row.pop("digest", None)
    return {tuple(r[k] for k in key): r for r in rows}


def migrate(engine: Engine, revision: str, *, up: bool = False) -> None:
    with engine.begin() as connection:
        if up or revision == "head":
            command.upgrade(alembic_config(connection), revision)
        else:
            command.downgrade(alembic_config(connection), revision)


def test_0005_turns_text_money_into_real_keeping_every_row(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine)
    ledger = build_hostile_history(engine)
    migrate(engine, "0004")  # the TEXT money keyledger wrote before 0005
    truth = ledger.world.daily_spend()
    with engine.begin() as connection:
        # 0004 stored derived spend exactly, more digits than a double keeps: write the
        # simulator's exact amounts back, as it did.
        for (key_hash, day), (usage, byok) in truth.items():
            connection.execute(
                text(
                    "UPDATE daily_key_spend SET spend_usd = :u, byok_spend_usd = :b "
                    "WHERE key_hash = :h AND day = :d AND spend_usd IS NOT NULL"
                ),
                {"u": format(usage, "f"), "b": format(byok, "f"), "h": key_hash, "d": str(day)},
            )
        # An analyst's audit trigger: kept, and not fired by the rebuild's re-insert.
        connection.exec_driver_sql("CREATE TABLE bi_audit (hash TEXT)")
        connection.exec_driver_sql(
            "CREATE TRIGGER bi_new_key AFTER INSERT ON api_keys "
            "BEGIN INSERT INTO bi_audit VALUES (new.hash); END"
        )
    before = {table: raw_rows(engine, table) for table in MONEY_TABLES}
    money = {table: money_columns(engine, table) for table in MONEY_TABLES}
    assert len(money["api_keys"]) == 10 and len(money["usage_snapshots"]) == 10
    texts = [row[c] for t in before for row in before[t].values() for c in money[t]]
    assert {type(v) for v in texts} == {str, type(None)}  # really TEXT at 0004
    for value in HOSTILE:
        assert format(Decimal(value), "f") in texts, value
    assert any(len(Decimal(v).as_tuple().digits) > 17 for v in texts if v is not None)
    views = _view_rows(engine)

    migrate(engine, "0005", up=True)  # the revision under test (0006 adds view columns)

    for table, rows in before.items():
        after = raw_rows(engine, table)
        assert after.keys() == rows.keys(), table  # every row kept
        for key, row in rows.items():
            for column, value in row.items():
                got = after[key][column]
                if column in money[table] and value is not None:
                    # The nearest double, exactly as Python rounds (SQLite's CAST may not).
                    assert isinstance(got, float) and got == float(value), (table, column, value)
                else:
                    assert got == value, (table, column)
    # Every daily-spend row is the nearest double of the exact amount.
    spend = raw_rows(engine, "daily_key_spend")
    known = [r for r in spend.values() if r["spend_usd"] is not None]
    assert known
    for row in known:
        usage, byok = truth[(row["key_hash"], date.fromisoformat(row["day"]))]
        assert (row["spend_usd"], row["byok_spend_usd"]) == (float(usage), float(byok))
    assert _view_rows(engine).keys() == views.keys()  # the views are back
    for view, rows in views.items():
        assert _close(_view_rows(engine)[view], rows), view
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        kinds = connection.exec_driver_sql(
            "SELECT DISTINCT typeof(usage) FROM usage_snapshots"
        ).scalars()
        assert list(kinds) == ["real"]
        triggers = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).scalars()
        assert list(triggers) == ["bi_new_key"]
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM bi_audit").scalar() == 0
    indexes = {i["name"] for i in inspect(engine).get_indexes("daily_key_spend")}
    assert {"ix_daily_key_spend_day", "ix_daily_key_spend_workspace_id_day"} <= indexes
    engine.dispose()


BI_VIEW = "CREATE VIEW bi_big_spenders AS SELECT k.hash, k.usage FROM api_keys k WHERE k.usage > 1"


def test_0005_down_and_up_leaves_exact_money_alone(engine: Engine) -> None:
    build_hostile_history(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(BI_VIEW)  # an analyst's own object must survive
    tables = {table: raw_rows(engine, table) for table in MONEY_TABLES}
    big = sorted(raw_rows_of(engine, "SELECT * FROM bi_big_spenders"))
    assert big
    migrate(engine, "0004")
    after_down = {table: raw_rows(engine, table) for table in MONEY_TABLES}
    migrate(engine, "head")
    after_up = {table: raw_rows(engine, table) for table in MONEY_TABLES}
    assert after_up == tables  # SQLite: REAL to TEXT and back gives every double again
    assert sorted(raw_rows_of(engine, "SELECT * FROM bi_big_spenders")) == big
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP VIEW bi_big_spenders")  # wipe() drops views too
    if engine.dialect.name != "sqlite":
        assert after_down == tables  # nothing to convert on NUMERIC
    else:
        usages = [r["usage"] for r in after_down["api_keys"].values()]
        assert all(isinstance(u, str) for u in usages)


def raw_rows_of(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _view_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    names = inspect(engine).get_view_names()
    with engine.connect() as connection:
        return {
            view: sorted((tuple(connection.exec_driver_sql(f"SELECT * FROM {view}"))), key=repr)
            for view in names
        }


def _close(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> bool:
    """Equal, numbers within 1e-9 USD relative, whether TEXT (0004) or REAL (head)."""
    if len(left) != len(right):
        return False
    for a_row, b_row in zip(left, right, strict=True):
        for a, b in zip(map(_number, a_row), map(_number, b_row), strict=True):
            if isinstance(a, Decimal) and isinstance(b, Decimal):
                if abs(a - b) > Decimal("1e-9") * max(1, abs(b)):
                    return False
            elif a != b:
                return False
    return True


def _number(value: Any) -> Any:
    if isinstance(value, (int, float)):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value
