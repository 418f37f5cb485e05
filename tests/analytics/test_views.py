"""The analysis views and example queries: they run, and agree across backends."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from etl.store.database import make_engine
from etl.store.examples import EXAMPLE_QUERIES
from etl.store.migrations import upgrade
from tests.analytics_support import Ledgered, at, make_world, normalize, sync_at
from tests.conftest import BACKEND_URLS, wipe

START = date(2026, 11, 3)
VIEWS = (
    "daily_workspace_spend",
    "weekly_workspace_spend",
    "monthly_key_spend",
    "key_limit_status",
    "daily_model_spend",
    "daily_provider_spend",
    "monthly_model_spend",
    "activity_reconciliation",
)


def build_history(engine: Engine) -> Ledgered:
    """Eighteen nights across a month boundary, one night missed, some keys near limits,
    usage booked late on a day the ledger had closed, and the activity each sync stores."""
    ledger = make_world(keys=15, workspaces=2, seed=5, active_fraction=0.6)
    world = ledger.world
    for n, key_hash in enumerate(world.live_hashes(world.workspace_ids[0])[:4]):
        world.update_key(key_hash, limit=Decimal(3 + n), limit_reset=None, disabled=False)
    for n in range(18):
        if n == 9:
            continue  # a missed night
        sync_at(engine, ledger, at(START + timedelta(days=n), 2, 30))
        for key_hash in world.live_hashes(world.workspace_ids[0])[:4]:
            world.spend(key_hash, Decimal("0.25"))
        if n == 15:  # activity and the ledger disagree on the day before and this one
            late = world.live_hashes(world.workspace_ids[1])[0]
            world.late_usage(late, START + timedelta(days=n - 1), Decimal("0.5"))
    return ledger


def rows_of(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(normalize(v) for v in row) for row in connection.execute(text(sql))]


def same(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> bool:
    """Equal row for row, numbers within 1e-9 USD (SQLite sums doubles)."""
    if len(left) != len(right):
        return False
    for a_row, b_row in zip(left, right, strict=True):
        for a, b in zip(a_row, b_row, strict=True):
            if isinstance(a, Decimal) and isinstance(b, Decimal):
                if abs(a - b) > Decimal("1e-9"):
                    return False
            elif a != b:
                return False
    return True


def view_sql(view: str) -> str:
    keys = {
        "daily_workspace_spend": "workspace_id, day",
        "weekly_workspace_spend": "workspace_id, week_start",
        "monthly_key_spend": "key_hash, month",
        "key_limit_status": "key_hash",
        "daily_model_spend": "workspace_id, day, model",
        "daily_provider_spend": "workspace_id, day, provider_name",
        "monthly_model_spend": "workspace_id, month, model",
        "activity_reconciliation": "workspace_id, day",
    }[view]
    return f"SELECT * FROM {view} ORDER BY {keys}"


@pytest.mark.parametrize("title", list(EXAMPLE_QUERIES))
def test_example_query_runs(engine: Engine, title: str) -> None:
    build_history(engine)
    rows = rows_of(engine, EXAMPLE_QUERIES[title])
    if "idle" not in title and "growth" not in title:
        assert rows, f"{title!r} found nothing in a history built to answer it"


def test_limit_example_finds_the_keys_about_to_run_out(engine: Engine) -> None:
    build_history(engine)
    rows = rows_of(engine, EXAMPLE_QUERIES["Keys that will hit their limit within 7 days"])
    assert rows and all(row[5] <= 7 for row in rows)


def test_activity_examples_show_the_late_usage_and_that_the_month_adds_up(
    engine: Engine,
) -> None:
    ledger = build_history(engine)
    late = ledger.world.workspace_ids[1]
    rows = rows_of(engine, EXAMPLE_QUERIES["Days on which activity and the key ledger disagree"])
    assert [(r[0], r[1], r[4]) for r in rows] == [
        (late, START + timedelta(days=14), Decimal("0.5")),
        (late, START + timedelta(days=15), Decimal("-0.5")),
    ]
    months = rows_of(
        engine, EXAMPLE_QUERIES["Does it add up: activity against the key ledger, month by month"]
    )
    november = [r for r in months if r[1] == date(2026, 11, 1)]
    assert len(november) == 2
    # A day the ledger knows only in part (a key deleted between two syncs) agrees when
    # the keys it leaves out spent nothing that day, as they all did here.
    partial = dict(
        rows_of(
            engine,
            "SELECT workspace_id, COUNT(*) FROM daily_workspace_spend "
            "WHERE spend_usd IS NOT NULL AND NOT complete GROUP BY workspace_id",
        )
    )
    assert partial  # the history holds such days
    for workspace_id, _, activity, ledger_usd, difference, compared, agreeing in november:
        assert difference == 0 and abs(activity - ledger_usd) <= Decimal("1e-9")
        assert compared >= 10
        disagreeing = 2 if workspace_id == late else 0
        assert agreeing == compared - disagreeing
    models = rows_of(
        engine, EXAMPLE_QUERIES["Which models each workspace spent on, month by month"]
    )
    assert {r[1] for r in models} == {date(2026, 10, 1), date(2026, 11, 1)}
    assert len({r[2] for r in models}) >= 4


ANALYTICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def test_every_example_of_the_analytics_doc_is_a_checked_example() -> None:
    """docs/analytics.md quotes example queries: each must be one of EXAMPLE_QUERIES
    (run on every backend above), so none drifts out of what is tested."""
    blocks = re.findall(r"```sql\n(.*?)\n```", ANALYTICS_DOC.read_text(encoding="utf-8"), re.S)
    examples = {sql.strip() for sql in EXAMPLE_QUERIES.values()}
    quoted = [b.strip() for b in blocks if not re.search(r"(?<!:):[a-z_]+", b)]  # no :params
    assert len(quoted) >= 3
    assert [b for b in quoted if b not in examples] == []


def test_views_and_examples_agree_on_every_backend(tmp_path: Path) -> None:
    results: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for backend, variable in BACKEND_URLS.items():
        url = f"sqlite:///{tmp_path / 'same.db'}" if variable is None else None
        if variable is not None:
            import os

            url = os.environ.get(variable)
            if not url:
                continue
        assert url is not None
        engine = make_engine(url)
        try:
            wipe(engine)
            upgrade(engine)
            build_history(engine)
            queries = {view: view_sql(view) for view in VIEWS} | EXAMPLE_QUERIES
            results[backend] = {name: rows_of(engine, sql) for name, sql in queries.items()}
        finally:
            wipe(engine)
            engine.dispose()
    assert "sqlite" in results
    baseline = results["sqlite"]
    assert all(baseline[view] for view in VIEWS)
    for backend, answers in results.items():
        for name, rows in answers.items():
            assert same(rows, baseline[name]), f"{name} differs on {backend}"
