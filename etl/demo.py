"""`keyledger demo`: the simulator, several simulated nights of syncs, and a look at the data."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, inspect, select, text

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.core.errors import LoadError
from etl.reports.cells import rounded
from etl.reports.text_width import display_width, pad, truncate
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import masked, open_engine
from etl.store.examples import EXAMPLE_QUERIES
from etl.store.migrations import upgrade
from etl.sync import run_sync
from models import ApiKey, DailyActivity, SyncRun, UsageSnapshot, Workspace

DEMO_TOKEN = "sk-or-v1-demo-management-key"  # accepted by the demo's own simulator only
CRON_HOUR = 2  # the nightly job runs at 02:00 UTC

# Five of the data dictionary's example queries: they run unchanged on every backend.
DEMO_QUERIES = (
    "Workspaces by spend this month",
    "Top 10 keys by spend this month",
    "Keys that will hit their limit within 7 days",
    "Top providers this month",
    "Does it add up: activity against the key ledger, month by month",
)


DEFAULT_DEMO_DATABASE = "keyledger-demo.db"
CELL_WIDTH = 40  # terminal columns
# Result columns holding USD amounts, shown rounded like `keyledger report` does; SQLite
# sums money as REAL, so they may come back as 7.010828073100001 for 7.0108280731.
MONEY_COLUMNS = frozenset({"credit_limit", "limit_remaining", "usage", "byok_usage"})


def reset_demo_database(path: Path) -> None:
    """Remove an earlier demo's SQLite file (and its WAL, SHM and lock files)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    locks = Path(f"{path}.locks")
    if locks.is_dir():
        for lock in locks.iterdir():
            lock.unlink()
        locks.rmdir()


def holds_keys(engine: Engine) -> bool:
    """True when the database already has an api_keys table with rows."""
    if not inspect(engine).has_table(ApiKey.__tablename__):
        return False
    with engine.connect() as connection:
        return bool(connection.scalar(select(func.count()).select_from(ApiKey)))


def next_cron(now: datetime) -> timedelta:
    """Time from ``now`` to the next 02:00 UTC."""
    target = now.replace(hour=CRON_HOUR, minute=0, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    return target - now


def run_demo(
    database_url: str,
    *,
    nights: int = 7,
    workspaces: int = 3,
    keys_per_workspace: int = 40,
    seed: int = 42,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve a simulated account, sync it each simulated night, then show the results."""
    world = World(seed=seed, workspaces=workspaces, keys_per_workspace=keys_per_workspace)
    simulator = Simulator(world, token=DEMO_TOKEN, seed=seed)
    with open_engine(database_url) as engine:
        if holds_keys(engine):
            raise LoadError(
                f"{masked(database_url)} already holds keys; the demo loads only into a "
                "new database (run it without --database-url to use ./keyledger-demo.db)"
            )
        upgrade(engine)
        with SimulatorServer(simulator) as server:
            echo(f"simulated OpenRouter API at {server.base_url}")
            echo(f"database: {masked(database_url)}")
            account = Account(
                name="demo",
                management_key=Secret(DEMO_TOKEN),
                workspaces=None,
                client=ClientSettings(base_url=server.base_url, requests_per_second=500),
            )
            settings = Settings(database_url=database_url, accounts=(account,))
            for night in range(1, nights + 1):
                world.advance(next_cron(world.now))
                result = run_sync(engine, settings)
                echo(f"night {night} ({world.now:%a %Y-%m-%d %H:%M} UTC) {result.summary()}")
        show_results(engine, echo)


def show_results(engine: Engine, echo: Callable[[str], None]) -> None:
    """Print row counts and the example queries with their answers."""
    with engine.connect() as connection:
        counts = {
            model.__tablename__: connection.scalar(select(func.count()).select_from(model))
            for model in (Workspace, ApiKey, UsageSnapshot, DailyActivity, SyncRun)
        }
        echo("\nloaded: " + ", ".join(f"{n} rows in {t}" for t, n in counts.items()))
        echo("more: keyledger report --database-url <this database>; docs/schema.md for queries")
        echo("(money below is rounded to 1/100 of a cent; the database holds every digit)")
        for title in DEMO_QUERIES:
            sql = EXAMPLE_QUERIES[title]
            query = " ".join(line.strip() for line in sql.strip().splitlines())
            echo(f"\n-- {title}\n{query};")
            result = connection.execute(text(sql))
            echo(format_table(list(result.keys()), [tuple(row) for row in result]))


def is_money(column: str) -> bool:
    """True for a result column that holds USD amounts (by the schema's naming)."""
    return column in MONEY_COLUMNS or column.endswith("_usd") or column.startswith("spend_")


def format_table(headers: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A plain-text table: money rounded for people, numbers right-aligned, and columns
    aligned by display width (CJK and emoji take two columns)."""
    cells = [
        [_cell(v, money=is_money(h)) for h, v in zip(headers, row, strict=True)] for row in rows
    ]
    numeric = [
        is_money(h) or any(isinstance(row[i], (int, float, Decimal)) for row in rows)
        for i, h in enumerate(headers)
    ]
    widths = [max([len(h)] + [display_width(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        parts = [
            pad(v, w, right=right) for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    lines += [line(row) for row in cells]
    return "\n".join(lines)


def _cell(value: Any, *, money: bool) -> str:
    if value is None:
        return ""
    if money and not isinstance(value, bool):
        # str() of a float is its shortest round-trip form, so rounding it is exact;
        # a string is money stored as decimal text (SQLite before REAL money).
        with suppress(InvalidOperation):
            return rounded(Decimal(str(value)))
    return truncate(str(value), CELL_WIDTH)
