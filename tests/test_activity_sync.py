"""GET /activity kept for good: runs against the simulator on every backend, checked
against its ground truth (World.activity_truth) and the published contract."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from etl.core.activity_settings import ActivitySettings
from etl.core.config import Account, ClientSettings, Secret, Settings, WorkspaceSpec
from etl.core.exact_json import dump_json, parse_json
from etl.core.exit_codes import EXIT_OK, EXIT_PARTIAL, exit_code_of
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from etl.sync import SyncResult, run_sync
from models import (
    ActivityDay,
    ApiKey,
    DailyActivity,
    DailyKeyActivity,
    DailyKeySpend,
    KeyActivityDay,
    SyncRunActivity,
    SyncRunWorkspace,
)
from tests.activity_contract import check_request, check_response
from tests.helpers import as_stored

TOKEN = "sk-or-v1-activity-sync-test-key"
Cell = tuple[date, str, str]  # (day, workspace or key, endpoint)


class Recorded:
    """A simulator reached through MockTransport; every GET /activity request (and its
    200) is checked against the contract, and its parameters kept. ``tamper`` may
    replace an /activity answer."""

    def __init__(self, world: World, **faults: Any) -> None:
        self.simulator = Simulator(world, token=TOKEN, faults=Faults(**faults))
        self.activity: list[dict[str, str]] = []
        self.tamper: Callable[[httpx.Response], httpx.Response] | None = None
        self._inner = self.simulator.mock_transport()

    @property
    def world(self) -> World:
        return self.simulator.world

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            if not request.url.path.endswith("/activity"):
                return self._inner.handle_request(request)
            self.activity.append(check_request(request))
            response = self._inner.handle_request(request)
            response.read()
            check_response(response)
            return self.tamper(response) if self.tamper else response

        return httpx.MockTransport(handle)

    def sync(
        self,
        engine: Engine,
        *,
        workspaces: tuple[str, ...] | None = None,
        **activity: Any,
    ) -> SyncResult:
        account = Account(
            name="acme",
            management_key=Secret(TOKEN),
            workspaces=tuple(WorkspaceSpec(w) for w in workspaces) if workspaces else None,
            client=ClientSettings(
                base_url="http://simulator.test/api/v1", requests_per_second=1e6, max_attempts=3
            ),
            activity=dataclasses.replace(ActivitySettings(), **activity),
        )
        settings = Settings(database_url=str(engine.url), accounts=(account,))

        def client_factory(account: Account) -> OpenRouterClient:
            return OpenRouterClient(
                account.client,
                account.management_key,
                transport=self.transport(),
                sleep=lambda seconds: None,
            )

        self.activity.clear()
        return run_sync(engine, settings, client_factory=client_factory)

    def night(self, engine: Engine, days: int = 1, **activity: Any) -> SyncResult:
        """``days`` later (spending on the way), one run."""
        self.world.advance(timedelta(days=days))
        return self.sync(engine, **activity)


def make(workspaces: int = 2, keys: int = 12, *, days: int = 35, **faults: Any) -> Recorded:
    """A world ``days`` into its life, so the whole 30-day window has usage events."""
    world = World(seed=5, workspaces=workspaces, keys_per_workspace=keys)
    world.advance(timedelta(days=days, hours=3))
    return Recorded(world, **faults)


def window(today: date) -> list[date]:
    return [today - timedelta(days=n) for n in range(30, 0, -1)]


def stored_cells(engine: Engine, *, per_key: bool = False) -> dict[Cell, tuple[Any, ...]]:
    table: Any = DailyKeyActivity if per_key else DailyActivity
    owner = table.key_hash if per_key else table.workspace_id
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                table.day,
                owner,
                table.endpoint_id,
                table.usage_usd,
                table.byok_usage_inference_usd,
                table.requests,
                table.prompt_tokens,
                table.completion_tokens,
                table.reasoning_tokens,
            )
        )
        return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def truth_cells(
    recorded: Recorded,
    engine: Engine,
    days: set[date],
    *,
    key_hash: str | None = None,
    workspaces: set[str] | None = None,
) -> dict[Cell, tuple[Any, ...]]:
    cells = {}
    for (day, ws, endpoint), t in recorded.world.activity_truth(key_hash).items():
        if day not in days or (workspaces is not None and ws not in workspaces):
            continue
        owner = key_hash if key_hash is not None else ws
        cells[day, owner, endpoint] = (
            as_stored(t.usage, engine),
            as_stored(t.byok_usage_inference, engine),
            t.requests,
            t.prompt_tokens,
            t.completion_tokens,
            t.reasoning_tokens,
        )
    return cells


def day_rows(engine: Engine, *, per_key: bool = False) -> dict[tuple[str, date], str]:
    table: Any = KeyActivityDay if per_key else ActivityDay
    owner = table.key_hash if per_key else table.workspace_id
    with engine.connect() as connection:
        return {
            (r[0], r[1]): r[2] for r in connection.execute(select(owner, table.day, table.status))
        }


def ledger_lines(engine: Engine, run_id: int | None) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(select(SyncRunActivity).where(SyncRunActivity.sync_run_id == run_id))
        )


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(model)) or 0)


# -- backfill, nightly runs, re-fetches --------------------------------------------------


def test_first_run_backfills_exactly_the_30_completed_days(engine: Engine) -> None:
    recorded = make()
    result = recorded.sync(engine)
    assert result.status == "ok", result.summary()
    today = recorded.world.now.date()  # the server's clock, not this machine's
    days = set(window(today))
    workspaces = set(recorded.world.workspace_ids)
    assert day_rows(engine) == {(ws, d): "fetched" for ws in workspaces for d in days}
    truth = truth_cells(recorded, engine, days)
    assert len(truth) > 100  # every day has usage on several endpoints
    assert stored_cells(engine) == truth
    # One request per day for both workspaces, split per workspace as the contract says.
    assert sorted(p["date"] for p in recorded.activity) == sorted(d.isoformat() for d in days)
    assert all(p["group_by"] == "workspace" and "workspace_id" not in p for p in recorded.activity)
    (line,) = ledger_lines(engine, result.run_id)
    assert (line.status, line.workspaces, line.days_fetched, line.days_refetched) == (
        "ok",
        2,
        60,
        0,
    )
    assert (line.rows_written, line.requests, line.error) == (len(truth), 30, None)
    assert line.server_time.date() == today
    assert "activity days fetched 60" in result.summary()


def test_nightly_runs_keep_every_day_once_and_refetch_the_last_two(engine: Engine) -> None:
    recorded = make()
    first_day = window(recorded.world.now.date())[0]
    recorded.sync(engine)
    for _ in range(4):
        result = recorded.night(engine)
        assert result.status == "ok", result.summary()
        yesterday = recorded.world.now.date() - timedelta(days=1)
        # The new day and the one before it: the latest two completed days.
        assert sorted(p["date"] for p in recorded.activity) == [
            (yesterday - timedelta(days=1)).isoformat(),
            yesterday.isoformat(),
        ]
        (line,) = ledger_lines(engine, result.run_id)
        assert (line.days_fetched, line.days_refetched, line.days_missing) == (4, 2, 0)
    last_day = recorded.world.now.date() - timedelta(days=1)
    days = {first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)}
    assert len(days) == 34
    assert set(day_rows(engine).values()) == {"fetched"}
    assert {d for _, d in day_rows(engine)} == days
    assert stored_cells(engine) == truth_cells(recorded, engine, days)


def test_a_refetched_day_with_late_usage_is_replaced_not_added(engine: Engine) -> None:
    recorded = make(workspaces=1)
    recorded.sync(engine)
    yesterday = recorded.world.now.date() - timedelta(days=1)
    key = next(
        h
        for h in recorded.world.live_hashes(recorded.world.workspace_ids[0])
        if any(d == yesterday for (d, _, _) in recorded.world.activity_truth(h))
    )
    before = stored_cells(engine)
    rows_before = count(engine, DailyActivity)
    with httpx.Client(transport=recorded.transport(), base_url="http://simulator.test") as http:
        answer = http.post(
            "/_sim/late_usage",
            params={
                "date": yesterday.isoformat(),
                "usage": "1.2345",
                "byok": "0.5",
                "api_key_hash": key,
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert answer.status_code == 200, answer.text
    result = recorded.night(engine)  # yesterday is now the second latest completed day
    assert result.status == "ok", result.summary()
    assert yesterday.isoformat() in {p["date"] for p in recorded.activity}
    after = stored_cells(engine)
    days = set(window(recorded.world.now.date())) | {d for d, _, _ in before}
    assert after == truth_cells(recorded, engine, days)

    def day_total(cells: dict[Cell, tuple[Any, ...]]) -> Decimal:
        return sum((Decimal(v[0]) for c, v in cells.items() if c[0] == yesterday), Decimal(0))

    # Exactly the late amount more, not the day twice (on SQLite: to a double's precision).
    grown = day_total(after) - day_total(before)
    assert abs(grown - Decimal("1.2345")) < Decimal("1e-9")
    byok = sum((Decimal(v[1]) for c, v in after.items() if c[0] == yesterday), Decimal(0)) - sum(
        (Decimal(v[1]) for c, v in before.items() if c[0] == yesterday), Decimal(0)
    )
    assert abs(byok - Decimal("0.5")) < Decimal("1e-9")
    assert count(engine, DailyActivity) - rows_before == len(after) - len(before)


def test_a_second_run_the_same_day_double_counts_nothing(engine: Engine) -> None:
    recorded = make(workspaces=1)
    recorded.sync(engine)
    before = stored_cells(engine)
    recorded.world.advance(timedelta(minutes=30))
    result = recorded.sync(engine)
    assert len(recorded.activity) == 2  # the re-fetched days only
    assert stored_cells(engine) == before
    (line,) = ledger_lines(engine, result.run_id)
    assert (line.days_fetched, line.days_refetched) == (2, 2)


def test_a_skipped_week_still_has_every_day_the_window_held(engine: Engine) -> None:
    recorded = make()
    first_day = window(recorded.world.now.date())[0]
    recorded.sync(engine)
    result = recorded.night(engine, days=8)
    assert result.status == "ok", result.summary()
    assert len(recorded.activity) == 8  # the 8 new days (the latest two among them)
    last_day = recorded.world.now.date() - timedelta(days=1)
    days = {first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)}
    assert set(day_rows(engine).values()) == {"fetched"}
    assert {d for _, d in day_rows(engine)} == days
    assert stored_cells(engine) == truth_cells(recorded, engine, days)


def test_a_gap_longer_than_the_window_records_the_lost_days_as_missing(engine: Engine) -> None:
    recorded = make(workspaces=1)
    first = recorded.sync(engine)
    last_fetched = first.activity[0].server_time.date() - timedelta(days=1)  # type: ignore[union-attr]
    result = recorded.night(engine, days=33)  # a clock jump past 35 days is refused
    assert result.status == "ok", result.summary()
    new_window = window(recorded.world.now.date())
    lost = {last_fetched + timedelta(days=n) for n in range(1, (new_window[0] - last_fetched).days)}
    assert len(lost) == 3
    rows = day_rows(engine)
    assert {d for (_, d), s in rows.items() if s == "missing"} == lost
    assert {d for (_, d), s in rows.items() if s == "fetched"} >= set(new_window)
    assert not {d for d, _, _ in stored_cells(engine)} & lost  # never guessed
    (line,) = ledger_lines(engine, result.run_id)
    assert (line.days_fetched, line.days_missing) == (30, 3)
    assert "3 missing" in result.summary()


def test_one_workspace_is_asked_for_by_workspace_id(engine: Engine) -> None:
    recorded = make(workspaces=3)
    chosen = recorded.world.workspace_ids[1]
    result = recorded.sync(engine, workspaces=(chosen,))
    assert result.status == "ok", result.summary()
    assert len(recorded.activity) == 30
    assert all(
        p["workspace_id"] == chosen and p["group_by"] == "workspace" for p in recorded.activity
    )
    days = set(window(recorded.world.now.date()))
    assert stored_cells(engine) == truth_cells(recorded, engine, days, workspaces={chosen})
    assert {ws for ws, _ in day_rows(engine)} == {chosen}


def test_activity_can_be_switched_off(engine: Engine) -> None:
    recorded = make(workspaces=1)
    result = recorded.sync(engine, enabled=False)
    assert result.status == "ok"
    assert recorded.activity == []
    assert count(engine, SyncRunActivity) == 0 and count(engine, ActivityDay) == 0


def test_a_dry_run_stores_no_activity(engine: Engine) -> None:
    recorded = make(workspaces=1)
    result = _dry(recorded, engine)
    assert result.dry_run and len(recorded.activity) == 30
    assert count(engine, DailyActivity) == 0 and count(engine, SyncRunActivity) == 0


def _dry(recorded: Recorded, engine: Engine) -> SyncResult:
    account = Account(
        name="acme",
        management_key=Secret(TOKEN),
        workspaces=None,
        client=ClientSettings(base_url="http://simulator.test/api/v1", requests_per_second=1e6),
    )
    settings = Settings(database_url=str(engine.url), accounts=(account,))
    recorded.activity.clear()
    return run_sync(
        engine,
        settings,
        dry_run=True,
        client_factory=lambda a: OpenRouterClient(
            a.client, a.management_key, transport=recorded.transport(), sleep=lambda s: None
        ),
    )


# -- failures: only the activity part --------------------------------------------------


def assert_keys_stored_activity_failed(
    engine: Engine, recorded: Recorded, result: SyncResult, error: str
) -> None:
    assert result.status == "partial", result.summary()
    assert exit_code_of(result.status) == EXIT_PARTIAL
    assert {w.status for w in result.workspaces} == {"ok"}
    live = {h for ws in recorded.world.workspace_ids for h in recorded.world.live_hashes(ws)}
    with engine.connect() as connection:
        assert set(connection.scalars(select(ApiKey.hash))) == live
        statuses = set(connection.scalars(select(SyncRunWorkspace.status)))
    assert statuses == {"ok"}
    assert count(engine, DailyActivity) == 0 and count(engine, ActivityDay) == 0
    (line,) = ledger_lines(engine, result.run_id)
    assert line.status == "failed" and (line.days_fetched, line.rows_written) == (0, 0)
    assert error in line.error and "\n" not in line.error and TOKEN not in line.error
    assert "failed for 1 account" in result.summary()


@pytest.mark.parametrize("status", [400, 403, 500])
def test_an_error_status_from_activity_fails_only_the_activity_part(
    engine: Engine, status: int
) -> None:
    recorded = make(activity_status=status)
    result = recorded.sync(engine)
    assert_keys_stored_activity_failed(engine, recorded, result, f"HTTP {status}")
    (line,) = ledger_lines(engine, result.run_id)
    assert line.requests == (3 if status == 500 else 1)  # only 500 is retried


def test_a_bad_activity_payload_fails_only_the_activity_part(engine: Engine) -> None:
    recorded = make()

    def bad_usage(response: httpx.Response) -> httpx.Response:
        body = parse_json(response.content)
        if body["data"]:
            body["data"][0]["usage"] = "12.5"
        return httpx.Response(200, content=dump_json(body).encode(), headers=response.headers)

    recorded.tamper = bad_usage
    result = recorded.sync(engine)
    assert_keys_stored_activity_failed(
        engine, recorded, result, "item 0: 'usage' is the string '12.5', not a number"
    )


def test_an_activity_timeout_fails_only_the_activity_part(engine: Engine) -> None:
    recorded = make()

    def slow(response: httpx.Response) -> httpx.Response:
        raise httpx.ReadTimeout("simulated")

    recorded.tamper = slow
    result = recorded.sync(engine)
    assert_keys_stored_activity_failed(engine, recorded, result, "no answer within")


def test_a_failed_activity_part_is_caught_up_by_the_next_run(engine: Engine) -> None:
    recorded = make(workspaces=1, activity_status=500)
    recorded.sync(engine)
    recorded.simulator.faults.activity_status = 0
    result = recorded.night(engine)
    assert result.status == "ok" and exit_code_of(result.status) == EXIT_OK
    days = set(window(recorded.world.now.date()))
    assert stored_cells(engine) == truth_cells(recorded, engine, days)


# -- per key -----------------------------------------------------------------------------


def test_listed_keys_get_their_own_activity_through_api_key_hash(engine: Engine) -> None:
    recorded = make(workspaces=1)
    ws = recorded.world.workspace_ids[0]
    key = next(h for h in recorded.world.live_hashes(ws) if recorded.world.activity_truth(h))
    result = recorded.sync(engine, key_hashes=(key,), key_requests=100)
    assert result.status == "ok", result.summary()
    per_key = [p for p in recorded.activity if "api_key_hash" in p]
    assert len(per_key) == 30 and all(p["api_key_hash"] == key for p in per_key)
    days = set(window(recorded.world.now.date()))
    assert stored_cells(engine, per_key=True) == truth_cells(recorded, engine, days, key_hash=key)
    assert day_rows(engine, per_key=True) == {(key, d): "fetched" for d in days}
    with engine.connect() as connection:
        assert set(connection.scalars(select(DailyKeyActivity.workspace_id))) == {ws}


def test_per_key_requests_stay_within_the_budget_recent_and_oldest_first(
    engine: Engine,
) -> None:
    recorded = make(workspaces=1)
    ws = recorded.world.workspace_ids[0]
    key = recorded.world.live_hashes(ws)[0]
    result = recorded.sync(engine, key_hashes=(key,), key_requests=5)
    per_key = sorted(p["date"] for p in recorded.activity if "api_key_hash" in p)
    days = window(recorded.world.now.date())
    assert per_key == sorted(d.isoformat() for d in days[:3] + days[-2:])
    (line,) = ledger_lines(engine, result.run_id)
    assert line.key_days_fetched == 5
    recorded.night(engine, key_hashes=(key,), key_requests=5)
    assert len(day_rows(engine, per_key=True)) == 9  # 5, then 2 re-fetched and 3 more


def test_top_keys_are_the_previous_days_biggest_spenders(engine: Engine) -> None:
    recorded = make(workspaces=1, keys=15)
    recorded.sync(engine)
    result = recorded.night(engine, top_keys=2)
    yesterday = recorded.world.now.date() - timedelta(days=1)
    with engine.connect() as connection:
        top = list(
            connection.scalars(
                select(DailyKeySpend.key_hash)
                .where(DailyKeySpend.day == yesterday, DailyKeySpend.spend_usd > 0)
                .order_by(DailyKeySpend.spend_usd.desc(), DailyKeySpend.key_hash)
                .limit(2)
            )
        )
    assert len(top) == 2
    asked = {p["api_key_hash"] for p in recorded.activity if "api_key_hash" in p}
    assert asked == set(top)
    assert {k for k, _ in day_rows(engine, per_key=True)} == set(top)
    assert result.status == "ok"
