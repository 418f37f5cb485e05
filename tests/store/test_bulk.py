"""etl.store.bulk writes exactly what SQLAlchemy's own executemany writes, on every backend."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, Engine, Float, Integer, Numeric, insert, inspect, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from etl.store import bulk
from models import ApiKey, DailyKeySpend, WorkspaceDay
from tests.helpers import as_stored

UTC = timezone.utc
AMOUNTS = [
    Decimal("0.30000000000000004"),
    Decimal("1E-9"),
    Decimal("12345678901234567890.0123456789012345"),
    Decimal("0"),
    Decimal("-2.50"),
    Decimal("1E-30"),
]
MOMENTS = [
    datetime(2026, 11, 28, 0, 0, tzinfo=UTC),  # no microseconds: still written with six
    datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 28, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=-5))),  # not UTC
    datetime(1999, 1, 1, 12, 0, 0, 123000, tzinfo=UTC),
]


def key_rows(prefix: str) -> list[dict[str, Any]]:
    rows = []
    for n, (amount, moment) in enumerate(zip(AMOUNTS, MOMENTS * 2, strict=False)):
        rows.append(
            {
                "hash": f"{prefix}{n}",
                "workspace_id": "ws-1",
                "name": 'it\'s a "quoted" 100% 🚀 name',
                # Each character a MariaDB literal must escape, then none of them.
                "label": "back\\slash, 'quote', \n\r\x1a" if n % 2 else "sk-or-v1-0e6...1c96",
                "disabled": n % 2 == 0,
                "credit_limit": None if n == 3 else amount,
                "limit_remaining": amount,
                "limit_reset": None if n % 2 else "daily",
                "include_byok_in_limit": n % 3 == 0,
                "usage": amount,
                "usage_daily": amount,
                "usage_weekly": amount,
                "usage_monthly": amount,
                "byok_usage": amount,
                "byok_usage_daily": amount,
                "byok_usage_weekly": amount,
                "byok_usage_monthly": amount,
                "created_at": moment,
                "updated_at": None if n == 1 else moment,
                "creator_user_id": None,
                "expires_at": moment,
                "last_used_at": None,
                "external_user": "user-\\x",
                "raw_json": '{"a":1}',
                "first_seen_at": moment,
                # The same instant as row 2's, written in UTC: one text for both.
                "changed_at": MOMENTS[2].astimezone(UTC) if n == 5 else moment,
                "deleted_at": None if n else moment,
            }
        )
    return rows


def spend_rows(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "key_hash": f"{prefix}{n}",
            "day": date(2026, 11, 27) - timedelta(days=n),
            "workspace_id": "ws-1",
            "spend_usd": None if n == 2 else amount,
            "byok_spend_usd": amount,
        }
        for n, amount in enumerate(AMOUNTS)
    ]


def day_rows(workspace: str) -> list[dict[str, Any]]:
    return [
        {
            "workspace_id": workspace,
            "day": date(2026, 11, 20) + timedelta(days=n),
            "observed": n % 2 == 0,
            "first_observed_at": moment if n % 2 == 0 else None,
            "next_day_observed": n == 1,
            "gap_since": None if n % 2 == 0 else date(2026, 11, 19),
        }
        for n, moment in enumerate(MOMENTS)
    ]


def stored(engine: Engine, table: str, order: str) -> list[tuple[Any, ...]]:
    """Rows as the driver returns them: no SQLAlchemy type processing."""
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")
        ]


@pytest.fixture(params=["executemany", "copy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both of bulk's paths: executemany, or from COPY_MIN_ROWS rows its own (COPY on
    PostgreSQL, literal VALUES on MariaDB; SQLite has one path)."""
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 1 if request.param == "copy" else 10**9)
    return str(request.param)


def test_bulk_and_sqlalchemy_store_identical_values(engine: Engine, path: str) -> None:
    with engine.begin() as connection:
        connection.execute(insert(ApiKey), key_rows("orm-"))
        bulk.upsert_rows(connection, ApiKey, ["hash"], key_rows("bulk-"), keep=["first_seen_at"])
        connection.execute(insert(DailyKeySpend), spend_rows("orm-"))
        bulk.upsert_rows(connection, DailyKeySpend, ["key_hash", "day"], spend_rows("bulk-"))
        connection.execute(insert(WorkspaceDay), day_rows("orm"))
        bulk.insert_rows(connection, WorkspaceDay, day_rows("bulk"))

    for table, order in [
        ("api_keys", "hash"),
        ("daily_key_spend", "key_hash"),
        ("workspace_days", "workspace_id, day"),
    ]:
        # The first column names the path ("orm-..." / "bulk-..."); the rest must match.
        by_path: dict[str, list[tuple[Any, ...]]] = {"bulk": [], "orm": []}
        for row in stored(engine, table, order):
            by_path[str(row[0]).split("-")[0]].append(row[1:])
        assert by_path["bulk"] == by_path["orm"], table
        assert len(by_path["bulk"]) >= 4

    # And the typed read gives back what was written: exactly, or on SQLite the
    # nearest double (the same amount but for the one with 37 significant digits).
    with engine.connect() as connection:
        keys = {k.hash: k for k in connection.execute(select(ApiKey))}
    for row in key_rows("bulk-"):
        for column, value in row.items():
            if isinstance(value, Decimal):
                value = as_stored(value, engine)
            assert getattr(keys[row["hash"]], column) == value, (row["hash"], column)


def test_bulk_upsert_updates_all_but_kept_columns(engine: Engine, path: str) -> None:
    first, second = key_rows("k-")[:2], key_rows("k-")[:2]
    for row in second:
        row.update(name="renamed", usage=Decimal("9.75"), first_seen_at=MOMENTS[3])
    with engine.begin() as connection:
        bulk.upsert_rows(connection, ApiKey, ["hash"], first, keep=["first_seen_at"])
        bulk.upsert_rows(connection, ApiKey, ["hash"], second, keep=["first_seen_at"])
    with engine.connect() as connection:
        rows = connection.execute(
            select(ApiKey.name, ApiKey.usage, ApiKey.first_seen_at).order_by(ApiKey.hash)
        ).all()
    assert rows == [("renamed", Decimal("9.75"), r["first_seen_at"]) for r in first]


def test_bulk_upsert_of_one_key_twice_keeps_the_last_row(engine: Engine, path: str) -> None:
    # As executemany did, one row after the other (ON CONFLICT may touch a row once).
    first, again = key_rows("k-")[:1], key_rows("k-")[:1]
    again[0].update(name="renamed", first_seen_at=MOMENTS[3])
    with engine.begin() as connection:
        bulk.upsert_rows(connection, ApiKey, ["hash"], first + again, keep=["first_seen_at"])
        bulk.upsert_rows(connection, ApiKey, ["hash"], again + first, keep=["first_seen_at"])
    with engine.connect() as connection:
        rows = connection.execute(select(ApiKey.name, ApiKey.first_seen_at)).all()
    assert rows == [(first[0]["name"], first[0]["first_seen_at"])]


def test_the_copy_path_stages_in_a_temporary_table(engine: Engine, path: str) -> None:
    with engine.begin() as connection:
        bulk.upsert_rows(connection, ApiKey, ["hash"], key_rows("t-"), keep=["first_seen_at"])
        bulk.upsert_rows(connection, ApiKey, ["hash"], key_rows("t-"), keep=["first_seen_at"])
        assert connection.scalar(text("SELECT COUNT(*) FROM api_keys")) == len(AMOUNTS)
    assert not [t for t in inspect(engine).get_table_names() if "stage" in t]


def test_naive_datetime_is_refused(engine: Engine, path: str) -> None:
    row = key_rows("n-")[0]
    row["created_at"] = datetime(2026, 11, 28)
    with engine.begin() as connection, pytest.raises(ValueError, match="naive datetime"):
        bulk.insert_rows(connection, ApiKey, [row])


def test_mariadb_literals_follow_the_servers_escaping_mode(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NO_BACKSLASH_ESCAPES makes a backslash an ordinary character: escaped strings must
    # then double their quotes instead (PyMySQL's escape knows the mode).
    if engine.dialect.name != "mysql":
        pytest.skip("a MariaDB/MySQL server mode")
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 1)  # the literal VALUES path
    rows = key_rows("nbe-")
    with engine.begin() as connection:
        mode = connection.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        connection.exec_driver_sql(
            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"
        )
        try:
            bulk.insert_rows(connection, ApiKey, rows)
        finally:
            connection.exec_driver_sql(f"SET SESSION sql_mode = '{mode}'")
    with engine.connect() as connection:
        stored_rows = {k.hash: k for k in connection.execute(select(ApiKey))}
    for row in rows:
        for column in ("label", "external_user", "name"):
            assert getattr(stored_rows[row["hash"]], column) == row[column]


class _OtherBase(DeclarativeBase):
    pass


class _OtherTypes(_OtherBase):
    """Column types the ledger's tables do not use (yet): no fast path of bulk's own."""

    __tablename__ = "bulk_other_types"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    doc: Mapped[Any] = mapped_column(JSON)
    ratio: Mapped[float] = mapped_column(Float)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 4))


def test_a_type_without_a_fast_path_is_written_as_sqlalchemy_writes_it(
    engine: Engine, path: str
) -> None:
    values = [
        {"doc": {"n": n, "tags": ["a", "é"]}, "ratio": n / 3, "amount": Decimal(n) / 8}
        for n in range(3)
    ]
    _OtherBase.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            # A dict reaches no driver as it is: this needs JSON's own processor.
            bulk.insert_rows(
                connection, _OtherTypes, [{"id": n, **v} for n, v in enumerate(values)]
            )
            connection.execute(  # SQLAlchemy's executemany, the reference
                insert(_OtherTypes), [{"id": 10 + n, **v} for n, v in enumerate(values)]
            )
        with engine.connect() as connection:
            stored = {
                row.id: (row.doc, row.ratio, row.amount)
                for row in connection.execute(select(_OtherTypes))
            }
        assert [stored[n] for n in range(3)] == [stored[10 + n] for n in range(3)]
        assert [stored[n][0] for n in range(3)] == [v["doc"] for v in values]
    finally:
        _OtherBase.metadata.drop_all(engine)


def test_nothing_to_write_runs_no_statement(engine: Engine) -> None:
    with engine.begin() as connection:
        bulk.insert_rows(connection, ApiKey, [])
        bulk.upsert_rows(connection, ApiKey, ["hash"], [])
        assert connection.scalar(text("SELECT COUNT(*) FROM api_keys")) == 0


def test_money_compares_as_numbers_in_plain_sql(engine: Engine) -> None:
    # TEXT money on SQLite once sorted 9.97 above 32.71 and found "9.97" > "10".
    # (k.usage, qualified: USAGE is a reserved word on MariaDB.)
    rows = key_rows("m-")[:3]
    for row, usage in zip(rows, ["9.97", "32.71", "0.30000000000000004"], strict=True):
        row["usage"] = Decimal(usage)
    with engine.begin() as connection:
        bulk.insert_rows(connection, ApiKey, rows)
        ordered = connection.execute(text("SELECT k.hash FROM api_keys k ORDER BY k.usage DESC"))
        over = connection.scalar(text("SELECT COUNT(*) FROM api_keys k WHERE k.usage > 10"))
        total = connection.scalar(text("SELECT SUM(k.usage) FROM api_keys k"))
        if engine.dialect.name == "sqlite":
            kinds = connection.scalars(text("SELECT DISTINCT typeof(k.usage) FROM api_keys k"))
            assert list(kinds) == ["real"]
    assert [h for (h,) in ordered] == ["m-1", "m-0", "m-2"]
    assert over == 1
    assert abs(Decimal(str(total)) - Decimal("42.98000000000000004")) < Decimal("1e-9")
