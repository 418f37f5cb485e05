"""Dashboard queries on a long history: 100,000 keys after 90 simulated nights.

Builds the history through the real sync (the simulator in-process through httpx's
MockTransport, so only keyledger's own work is timed), one sync per simulated night at
02:00 UTC with about 10% of keys spending each day, then times what dashboards ask:

- a month of ``daily_workspace_spend`` for all workspaces (target: < 1 s),
- a month of ``daily_key_spend`` for one workspace (target: < 1 s),
- ``key_limit_status`` for all keys (target: < 2 s).

Usage (PostgreSQL is the target of the figures; any URL works):

    python benchmarks/bench_analytics.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/kl_bench
    python benchmarks/bench_analytics.py --quick        # 2,000 keys, 10 nights, SQLite

The database's keyledger tables are dropped and rebuilt first unless ``--reuse`` is
given (then an existing history is queried as it is).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, func, inspect, select, text

from etl.core.config import Account, ClientSettings, Secret, Settings
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine, masked
from etl.store.migrations import upgrade
from etl.sync import run_sync
from models import ApiKey, DailyKeySpend, UsageSnapshot, WorkspaceDay

TOKEN = "sk-or-v1-bench-analytics"
QUERIES = {
    "daily_workspace_spend, 30 days, all workspaces (< 1 s)": (
        "SELECT * FROM daily_workspace_spend WHERE day >= :start ORDER BY workspace_id, day"
    ),
    "daily_key_spend, 30 days, one workspace (< 1 s)": (
        "SELECT * FROM daily_key_spend WHERE workspace_id = :workspace AND day >= :start"
        " ORDER BY key_hash, day"
    ),
    "key_limit_status, all keys (< 2 s)": "SELECT * FROM key_limit_status",
}


def drop_everything(engine: Engine) -> None:
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as connection:
        for view in inspect(engine).get_view_names():
            connection.execute(text(f"DROP VIEW IF EXISTS {view}{cascade}"))
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)


def build_history(engine: Engine, *, workspaces: int, keys: int, nights: int) -> float:
    """Sync ``nights`` simulated nights; returns the seconds the syncs took."""
    world = World(seed=90, workspaces=workspaces, keys_per_workspace=keys)
    world.rates.active_fraction = 0.1
    world.rates.creates = world.rates.deletes = 0.001
    world.rates.renames = world.rates.relimits = world.rates.disables = 0.0005
    world.rates.enables = 0.0005
    simulator = Simulator(world, token=TOKEN)
    account = Account(
        name="bench",
        management_key=Secret(TOKEN),
        workspaces=None,
        client=ClientSettings(base_url="http://sim.bench/api/v1", requests_per_second=1e6),
    )
    settings = Settings(database_url=str(engine.url), accounts=(account,))

    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client, account.management_key, transport=simulator.mock_transport()
        )

    syncing = 0.0
    for night in range(1, nights + 1):
        target = (world.now + timedelta(days=1)).replace(hour=2, minute=0, second=0)
        world.advance(target - world.now)
        started = time.perf_counter()
        result = run_sync(engine, settings, client_factory=client_factory)
        syncing += time.perf_counter() - started
        if result.status != "ok":
            raise SystemExit(f"night {night}: {result.summary()}")
        if night % 10 == 0 or night == nights:
            print(f"  night {night}/{nights}: {result.summary()}", file=sys.stderr, flush=True)
    return syncing


def time_queries(engine: Engine, repeats: int = 3) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        last_day = connection.scalar(select(func.max(WorkspaceDay.day)))
        workspace = connection.scalar(select(ApiKey.workspace_id).limit(1))
    params = {"start": last_day - timedelta(days=30), "workspace": workspace}
    figures = []
    for title, sql in QUERIES.items():
        best, rows = float("inf"), 0
        for _ in range(repeats):
            with engine.connect() as connection:
                started = time.perf_counter()
                rows = len(connection.execute(text(sql), params).all())
                best = min(best, time.perf_counter() - started)
        figures.append({"query": title, "rows": rows, "seconds": best})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--keys-per-workspace", type=int, default=10_000)
    parser.add_argument("--nights", type=int, default=90)
    parser.add_argument("--reuse", action="store_true", help="query an existing history")
    parser.add_argument("--quick", action="store_true", help="2,000 keys, 10 nights, SQLite")
    args = parser.parse_args()
    if args.quick:
        args.workspaces, args.keys_per_workspace, args.nights = 2, 1_000, 10
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'analytics.db'}"
    engine = make_engine(url)
    print(f"database: {masked(url)}", file=sys.stderr)
    build_seconds = None
    if not args.reuse:
        drop_everything(engine)
        upgrade(engine)
        build_seconds = build_history(
            engine,
            workspaces=args.workspaces,
            keys=args.keys_per_workspace,
            nights=args.nights,
        )
    with engine.connect() as connection:
        sizes = {
            model.__tablename__: connection.scalar(select(func.count()).select_from(model))
            for model in (ApiKey, UsageSnapshot, DailyKeySpend, WorkspaceDay)
        }
    if engine.dialect.name == "postgresql":
        # As autovacuum would have by now: planners need statistics for the views.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    figures = time_queries(engine)
    engine.dispose()
    print(
        f"\n{datetime.now():%Y-%m-%d}, {engine.dialect.name}: "
        + ", ".join(f"{n:,} rows in {t}" for t, n in sizes.items())
    )
    if build_seconds is not None:
        print(
            f"history built by {args.nights} syncs in {build_seconds:.0f} s "
            f"({build_seconds / args.nights:.1f} s a night)"
        )
    print("\n| query | rows | best of 3 |\n|---|---:|---:|")
    for figure in figures:
        print(f"| {figure['query']} | {figure['rows']:,} | {figure['seconds']:.3f} s |")


if __name__ == "__main__":
    main()
