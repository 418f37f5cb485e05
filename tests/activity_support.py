"""Activity in the ledger for view and report tests, and sums of the simulator's truth.

``sync_over_loopback`` is a real sync (keys, then activity) against the simulator on
127.0.0.1, for end-to-end tests. ``store_served_activity`` replaces every workspace-day
of the window with what the simulator's GET /activity (group_by=workspace) serves now,
as the sync's load does, for tests about what is read back (the views, the report)
that need the whole window re-read at a given moment, faults included.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine, delete, func, insert, select

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.simulator.activity import CATALOGUE, ENDPOINT_IDS, WINDOW_DAYS
from etl.simulator.activity import Totals as ActivityTotals
from etl.simulator.server import SimulatorServer
from etl.sync import SyncResult, run_sync
from models import ActivityDay, DailyActivity, SyncRun
from tests.analytics_support import TOKEN, Ledgered

ENDPOINTS = dict(zip(ENDPOINT_IDS, CATALOGUE, strict=True))
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens")

# (usage, byok, requests, prompt, completion, reasoning)
Sums = tuple[Decimal, Decimal, int, int, int, int]


def window(today: date) -> list[date]:
    """The completed UTC days GET /activity serves on ``today``, oldest first."""
    return [today - timedelta(days=n) for n in range(WINDOW_DAYS, 0, -1)]


def served_items(ledger: Ledgered) -> list[dict[str, Any]]:
    """Every item of the window, split per workspace, money read as exact Decimals."""
    transport = ledger.simulator.mock_transport()
    with httpx.Client(transport=transport, base_url="http://sim.test/api/v1") as client:
        response = client.get(
            "/activity",
            params={"group_by": "workspace"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = json.loads(response.content, parse_float=Decimal)["data"]
    return items


def store_served_activity(engine: Engine, ledger: Ledgered) -> list[date]:
    """Replace every workspace-day of the current window with what the simulator serves
    (a day without activity is stored as fetched with no rows); the days replaced."""
    world = ledger.world
    days = window(world.now.date())
    items = served_items(ledger)
    with engine.begin() as connection:
        run_id = connection.scalar(select(func.max(SyncRun.id)))
        assert run_id is not None, "sync the keys first: rows name the run that fetched them"
        fetched_at = world.now
        rows = [
            {
                "workspace_id": item["workspace_id"],
                "day": date.fromisoformat(item["date"]),
                "endpoint_id": item["endpoint_id"],
                "model": item["model"],
                "model_permaslug": item["model_permaslug"],
                "provider_name": item["provider_name"],
                "usage_usd": item["usage"],
                "byok_usage_inference_usd": item["byok_usage_inference"],
                **{name: item[name] for name in COUNTS},
                "run_id": run_id,
                "fetched_at": fetched_at,
            }
            for item in items
        ]
        per_day: dict[tuple[str, date], int] = defaultdict(int)
        for row in rows:
            per_day[(row["workspace_id"], row["day"])] += 1
        for workspace_id in world.workspace_ids:
            in_window = (DailyActivity.workspace_id == workspace_id) & DailyActivity.day.between(
                days[0], days[-1]
            )
            connection.execute(delete(DailyActivity).where(in_window))
            connection.execute(
                delete(ActivityDay).where(
                    (ActivityDay.workspace_id == workspace_id)
                    & ActivityDay.day.between(days[0], days[-1])
                )
            )
            connection.execute(
                insert(ActivityDay),
                [
                    {
                        "workspace_id": workspace_id,
                        "day": day,
                        "status": "fetched",
                        "row_count": per_day[(workspace_id, day)],
                        "run_id": run_id,
                        "fetched_at": fetched_at,
                    }
                    for day in days
                ],
            )
        if rows:
            connection.execute(insert(DailyActivity), rows)
    return days


def mark_missing(engine: Engine, workspace_id: str, day: date) -> None:
    """Record a workspace-day as lost: it left the window before any fetch."""
    with engine.begin() as connection:
        connection.execute(
            insert(ActivityDay).values(
                workspace_id=workspace_id, day=day, status="missing", row_count=0
            )
        )


def sums_of(totals: Iterable[ActivityTotals]) -> Sums:
    usage, byok, counts = Decimal(0), Decimal(0), [0, 0, 0, 0]
    for t in totals:
        usage += t.usage
        byok += t.byok_usage_inference
        for i, name in enumerate(COUNTS):
            counts[i] += getattr(t, name)
    return (usage, byok, counts[0], counts[1], counts[2], counts[3])


def truth_by(
    ledger: Ledgered,
    group: Callable[[date, str, str], tuple[Any, ...]],
    days: Iterable[date],
) -> dict[tuple[Any, ...], Sums]:
    """The simulator's exact activity on ``days``, summed per ``group(day, workspace,
    endpoint_id)`` (e.g. per workspace, day and model)."""
    wanted = set(days)
    cells: dict[tuple[Any, ...], list[ActivityTotals]] = defaultdict(list)
    for (day, workspace_id, endpoint_id), totals in ledger.world.activity_truth().items():
        if day in wanted:
            cells[group(day, workspace_id, endpoint_id)].append(totals)
    return {key: sums_of(totals) for key, totals in cells.items()}


def model_of(endpoint_id: str) -> str:
    return ENDPOINTS[endpoint_id].model


def provider_of(endpoint_id: str) -> str:
    return ENDPOINTS[endpoint_id].provider_name


def day_of(value: Any) -> date:
    """Views give DATE values as strings on SQLite."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def sync_over_loopback(engine: Engine, ledger: Ledgered, moment: datetime) -> SyncResult:
    """Advance the world to ``moment``, then one real sync (keys and activity) against
    the simulator on 127.0.0.1: the way a nightly cron run meets the API."""
    world = ledger.world
    if moment > world.now:
        world.advance(moment - world.now)
    with SimulatorServer(ledger.simulator) as server:
        account = Account(
            name="loopback",
            management_key=Secret(TOKEN),
            workspaces=None,
            client=ClientSettings(base_url=server.base_url, requests_per_second=1e6),
        )
        settings = Settings(database_url=str(engine.url), accounts=(account,))
        result = run_sync(engine, settings)
    assert result.status == "ok", result.summary()
    ledger.sync_times.append(world.now)
    return result


def stored_days(engine: Engine) -> dict[tuple[str, date], str]:
    """activity_days as {(workspace, day): status}."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(ActivityDay.workspace_id, ActivityDay.day, ActivityDay.status)
        )
        return {(w, d): s for w, d, s in rows}
