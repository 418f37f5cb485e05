"""Workspaces one by one against workspaces at once: wall time of a sync against the
latency floor ``ceil(requests / concurrency) x latency``.

For each latency (``keyledger simulate --latency-ms``) and each backend it migrates an
empty database, then for each ``workspace_concurrency`` runs a first sync and an
unchanged sync, each in a fresh worker process, and counts the requests the simulator
served for it. Tables are dropped between settings.

    python benchmarks/bench_workspaces.py --postgresql-url postgresql+psycopg://postgres@127.0.0.1:5432/mine
    python benchmarks/bench_workspaces.py --quick --backends sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # the benchmarks folder is not a package: found through sys.path
    SimulatorProcess,
    Stopwatch,
    code_version,
    emit_result,
    load_average,
    machine_summary,
    markdown_table,
    run_worker,
    worker_token,
)
from bench_sync import LABELS, scratch_schema


def worker(params: dict[str, Any]) -> None:
    """Run one sync with the given settings and emit its wall time and outcome."""
    from etl.cli.memory import limit_heap_growth
    from etl.core.config import Account, ClientSettings, Secret, Settings
    from etl.store.database import make_engine
    from etl.sync import run_sync

    limit_heap_growth()  # as the keyledger command does at start
    client = ClientSettings(
        base_url=params["base_url"],
        requests_per_second=params["rps"],
        concurrency=params["concurrency"],
        workspace_concurrency=params["workspace_concurrency"],
    )
    account = Account(
        name="bench", management_key=Secret(worker_token()), workspaces=None, client=client
    )
    engine = make_engine(params["database_url"])
    with Stopwatch() as watch:
        result = run_sync(engine, Settings(params["database_url"], (account,)))
    engine.dispose()
    if result.status != "ok":
        raise SystemExit(f"sync {result.status}: {result.summary()}")
    emit_result(
        {
            "seconds": watch.seconds,
            "seen": sum(w.counts.seen for w in result.workspaces),
            "new": sum(w.counts.new for w in result.workspaces),
        }
    )


def measure(
    sim: SimulatorProcess, url: str, at_once: int, args: argparse.Namespace, live: int
) -> list[list[object]]:
    rows: list[list[object]] = []
    with scratch_schema(url):
        for name in ("first sync", "unchanged sync"):
            params = {
                "database_url": url,
                "base_url": sim.base_url,
                "rps": args.rps,
                "concurrency": args.concurrency,
                "workspace_concurrency": at_once,
            }
            served = sim.requests_served()
            result = run_worker(Path(__file__), params, sim.token)
            requests = sim.requests_served() - served - 1  # the stats call itself
            expected_new = live if name == "first sync" else 0
            if result["seen"] != live or result["new"] != expected_new:
                raise SystemExit(f"wrong result: {result} (live keys {live})")
            floor = math.ceil(requests / args.concurrency) * sim.latency_ms / 1000
            ratio = f"{result['seconds'] / floor:.2f}x" if floor else "-"
            rows.append(
                [
                    f"{sim.latency_ms:g}",
                    name,
                    at_once,
                    requests,
                    f"{result['seconds']:.2f}",
                    f"{floor:.2f}" if floor else "-",
                    ratio,
                ]
            )
            print("  " + " | ".join(map(str, rows[-1])), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 x 1,000 keys: a smoke run")
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--keys-per-workspace", type=int, help="default 10,000 (quick: 1,000)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgresql-url", default="postgresql+psycopg://postgres@127.0.0.1/test")
    parser.add_argument("--mysql-url", default="mysql+pymysql://root@127.0.0.1:3306/test")
    parser.add_argument("--latencies", default="0,50", help="comma-separated ms per request")
    parser.add_argument("--at-once", default="1,4", help="workspace_concurrency values")
    parser.add_argument("--concurrency", type=int, default=4, help="client concurrency")
    parser.add_argument("--rps", type=float, default=1000.0, help="client requests_per_second")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    keys = args.keys_per_workspace or (1_000 if args.quick else 10_000)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    load_before = load_average()
    tables: dict[str, list[list[object]]] = {b: [] for b in backends}
    for latency in (float(x) for x in args.latencies.split(",")):
        with SimulatorProcess(
            workspaces=args.workspaces, keys_per_workspace=keys, latency_ms=latency
        ) as sim:
            live = sim.live_key_count()
            print(f"simulator: {sim.label}: {live:,} live keys", file=sys.stderr)
            sim.warm_up()
            for backend in backends:
                for at_once in (int(x) for x in args.at_once.split(",")):
                    with contextlib.ExitStack() as stack:
                        if backend == "sqlite":
                            folder = stack.enter_context(tempfile.TemporaryDirectory())
                            url = f"sqlite:///{Path(folder) / 'bench.db'}"
                        else:
                            url = getattr(args, f"{backend}_url")
                        tables[backend] += measure(sim, url, at_once, args, live)
    print(f"## Workspaces at once: {args.workspaces} workspaces x {keys:,} keys\n")
    print(f"Machine: {machine_summary()}; keyledger at {code_version()}.")
    print(f"Load average (1 min): {load_before} before, {load_average()} after.")
    print(f"Client: concurrency {args.concurrency}, requests_per_second {args.rps:g}.\n")
    headers = ["latency ms", "sync", "workspace_concurrency", "requests", "wall s"]
    headers += [f"floor s = ceil(requests/{args.concurrency}) x latency", "wall/floor"]
    for backend, rows in tables.items():
        print(f"### {LABELS[backend]}\n\n{markdown_table(headers, rows)}\n")


if __name__ == "__main__":
    main()
