"""Driving the simulator through timed syncs and checking spend against its truth."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select, text

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.sync import SyncResult, run_sync
from models import DailyKeySpend

TOKEN = "sk-or-v1-analytics-test-key"


@dataclass
class Ledgered:
    """A simulated account plus the sync times a test ran (all successful)."""

    simulator: Simulator
    sync_times: list[datetime] = field(default_factory=list)

    @property
    def world(self) -> World:
        return self.simulator.world


def normalize(value: Any) -> Any:
    """One form for what the backends return differently (str/date, bool/int, float/Decimal,
    numbers as text), so rows from any backend and the ground truth compare."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        try:
            return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, str):
        try:
            return Decimal(value)  # numbers a driver returns as text
        except ArithmeticError:
            return value
    return value


# A world that changes only as a test says: no spend, creations, renames or deletions.
QUIET = {
    "active_fraction": 0.0,
    "creates": 0.0,
    "renames": 0.0,
    "disables": 0.0,
    "enables": 0.0,
    "relimits": 0.0,
    "deletes": 0.0,
}


def make_world(*, keys: int = 6, workspaces: int = 1, seed: int = 11, **rates: float) -> Ledgered:
    world = World(seed=seed, workspaces=workspaces, keys_per_workspace=keys)
    for name, value in rates.items():
        setattr(world.rates, name, value)
    return Ledgered(Simulator(world, token=TOKEN))


def sync_at(engine: Engine, ledger: Ledgered, moment: datetime) -> SyncResult:
    """Advance the simulated world to ``moment`` (spending on the way), then sync."""
    world = ledger.world
    if moment > world.now:
        world.advance(moment - world.now)
    account = Account(
        name="analytics",
        management_key=Secret(TOKEN),
        workspaces=None,
        client=ClientSettings(base_url="http://sim.test/api/v1", requests_per_second=1e6),
    )
    settings = Settings(database_url=str(engine.url), accounts=(account,))

    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client,
            account.management_key,
            transport=ledger.simulator.mock_transport(),
            sleep=lambda seconds: None,
        )

    result = run_sync(engine, settings, client_factory=client_factory)
    assert result.status == "ok", result.summary()
    ledger.sync_times.append(world.now)
    return result


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=timezone.utc)


def stored_spend(engine: Engine) -> dict[tuple[str, date], tuple[Any, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                DailyKeySpend.key_hash,
                DailyKeySpend.day,
                DailyKeySpend.spend_usd,
                DailyKeySpend.byok_spend_usd,
            )
        )
        return {(r.key_hash, r.day): (r.spend_usd, r.byok_spend_usd) for r in rows}


def spend_with_gaps(engine: Engine) -> dict[tuple[str, date], tuple[Any, Any]]:
    """``stored_spend`` plus the key-days inside gaps (view daily_key_spend_gaps): what a
    reader of daily spend per key sees, NULL spend for both kinds of unknown day."""
    spend = stored_spend(engine)
    with engine.connect() as connection:
        for key_hash, day in connection.execute(
            text("SELECT key_hash, day FROM daily_key_spend_gaps")
        ):
            day = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
            assert (key_hash, day) not in spend, "a gap key-day that also has a row"
            spend[(key_hash, day)] = (None, None)
    return spend


def _parse(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def day_start_known(key: dict[str, Any], day: date, sync_times: Iterable[datetime]) -> bool:
    """True when keyledger can know the key's cumulative usage at 00:00 of ``day``:
    a sync saw the key that day (alive then), or the day began before the key existed."""
    created = _parse(key["created_at"])
    deleted = _parse(key["deleted_at"])
    assert created is not None
    if datetime.combine(day, time(0), tzinfo=timezone.utc) <= created:
        return True
    return any(
        t.date() == day and created <= t and (deleted is None or t < deleted) for t in sync_times
    )


def check_daily_spend(engine: Engine, ledger: Ledgered) -> int:
    """daily_key_spend equals the simulator's truth wherever both day-starts are known,
    and is NULL (or, outside the key's observed life, absent) elsewhere. Returns the
    number of key-days compared with a known value."""
    stored = spend_with_gaps(engine)
    truth = ledger.world.daily_spend()
    times = ledger.sync_times
    first_day, last_day = times[0].date() - timedelta(days=1), times[-1].date()
    compared = 0
    for key in ledger.world.truth_keys():
        day = first_day
        while day < last_day:
            expected = truth.get((key["hash"], day), (Decimal(0), Decimal(0)))
            got = stored.get((key["hash"], day))
            known = day_start_known(key, day, times) and day_start_known(
                key, day + timedelta(days=1), times
            )
            if known:
                assert got != (None, None), ("known spend read as unknown", key["hash"], day)
                value = got if got is not None else (Decimal(0), Decimal(0))
                assert value == expected, (key["hash"], day, value, expected)
                compared += 1
            else:
                assert got is None or got == (None, None), (key["hash"], day, got, expected)
            day += timedelta(days=1)
    return compared
