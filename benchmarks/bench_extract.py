"""Extraction benchmark: every key of every workspace, from the simulator, counted only.

Runs ``keyledger simulate`` in its own process, then measures each scenario in a fresh
worker process (its peak RSS is its own): ``OpenRouterClient.iter_key_pages`` over the
workspaces from ``list_workspaces``, either one workspace after another (what
``keyledger extract`` does) or all at once (one thread per workspace sharing the one
client, so its concurrency bound is shared). Records are counted, never stored.

    python benchmarks/bench_extract.py            # 10 x 10,000 keys at 0 and 50 ms
    python benchmarks/bench_extract.py --quick    # 10 x 1,000 keys: a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import dataclass
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
    peak_rss_mib,
    run_worker,
    vm_hwm_mib,
    worker_token,
)

MODES = ("sequential", "concurrent")


# -- the measured process ----------------------------------------------------------------
@dataclass
class _Tally:
    pages: int = 0
    keys: int = 0
    listed: int = 0
    error: BaseException | None = None


def _drain(client: Any, workspace_id: str, tally: _Tally) -> None:
    try:
        for page in client.iter_key_pages(workspace_id):
            tally.pages += 1
            tally.keys += len([record.full() for record in page.records])  # read in full
            tally.listed += page.listed
    except BaseException as exc:  # handed to the main thread, which fails the run
        tally.error = exc


def worker(params: dict[str, Any]) -> None:
    """Extract once and emit wall time, counts and peak RSS."""
    from etl.cli.memory import limit_heap_growth
    from etl.core.config import ClientSettings, Secret
    from etl.openrouter.client import OpenRouterClient

    if params.get("tuned", True):
        limit_heap_growth()  # as the keyledger command does at start
    token = worker_token()
    rss_after_imports = peak_rss_mib()
    # The user's defaults unless the command line set a value.
    overrides = {
        name: params[key]
        for name, key in (("requests_per_second", "rps"), ("concurrency", "concurrency"))
        if params[key] is not None
    }
    settings = ClientSettings(base_url=params["base_url"], **overrides)
    cpu_started = time.process_time()
    with Stopwatch() as watch, OpenRouterClient(settings, Secret(token)) as client:
        workspaces = client.list_workspaces()
        tallies = [_Tally() for _ in workspaces]
        if params["mode"] == "concurrent":
            threads = [
                threading.Thread(target=_drain, args=(client, w.id, t), name=f"ws-{i}")
                for i, (w, t) in enumerate(zip(workspaces, tallies, strict=True))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            for workspace, tally in zip(workspaces, tallies, strict=True):
                _drain(client, workspace.id, tally)
    for tally in tallies:
        if tally.error is not None:
            raise tally.error
    emit_result(
        {
            "seconds": watch.seconds,
            "cpu_seconds": time.process_time() - cpu_started,  # every thread's
            "workspaces": len(workspaces),
            "keys": sum(t.keys for t in tallies),
            "listed": sum(t.listed for t in tallies),
            "pages": sum(t.pages for t in tallies),
            "requests": client.stats.requests,
            "retries": client.stats.retries,
            "throttled": client.stats.throttled,
            "settled_concurrency": client.stats.settled_concurrency,
            "peak_concurrency": client.stats.peak_concurrency,
            "rss_after_imports_mib": rss_after_imports,
            "peak_rss_mib": peak_rss_mib(),
            "vm_hwm_mib": vm_hwm_mib(),
        }
    )


# -- the orchestrating process -----------------------------------------------------------
# glibc's malloc raises its mmap/trim thresholds as a program frees large blocks; fixing
# the trim threshold shows how much of a peak is free memory kept by the allocator.
TUNED = "as keyledger runs: trim at 128 KiB"
UNTUNED = "glibc untuned"


@dataclass
class Measured:
    """One scenario, repeated: the median wall time, the highest peak RSS."""

    latency_ms: float
    keys_per_workspace: int
    mode: str
    malloc: str
    runs: list[dict[str, Any]]

    @property
    def seconds(self) -> float:
        return statistics.median(float(r["seconds"]) for r in self.runs)

    @property
    def spread(self) -> str:
        times = [r["seconds"] for r in self.runs]
        return f"{min(times):.2f}-{max(times):.2f}"

    def median(self, name: str) -> float:
        """The median of ``name`` over the repeats."""
        return statistics.median(float(r[name]) for r in self.runs)

    def value(self, name: str) -> Any:
        """The highest value of ``name`` over the repeats."""
        return max(r[name] for r in self.runs)


def measure(
    sim: SimulatorProcess,
    mode: str,
    args: argparse.Namespace,
    live: int,
    repeat: int,
    *,
    fixed_trim: bool = False,
) -> Measured:
    """Run one scenario ``repeat`` times, each in a fresh process; check the key count."""
    # keyledger sets glibc's trim threshold at start (etl/cli/memory.py); fixed_trim=False
    # measures that, fixed_trim=True an untuned glibc, for comparison.
    params = {
        "base_url": sim.base_url,
        "mode": mode,
        "rps": args.rps,
        "concurrency": args.concurrency,
        "tuned": not fixed_trim,
    }
    malloc = UNTUNED if fixed_trim else TUNED
    runs = []
    for _ in range(repeat):
        sim_cpu_started = sim.cpu_seconds()
        result = run_worker(Path(__file__), params, sim.token, None)
        result["sim_cpu_seconds"] = sim.cpu_seconds() - sim_cpu_started
        if result["keys"] != live:
            raise SystemExit(
                f"FAILED: {mode} extraction from {sim.label} counted {result['keys']:,} keys, "
                f"the simulator has {live:,} live keys"
            )
        runs.append(result)
        print(
            f"  {sim.label}, {mode}, malloc {malloc}: {result['seconds']:.2f}s "
            f"(CPU: client {result['cpu_seconds']:.2f}s, simulator "
            f"{result['sim_cpu_seconds']:.2f}s), "
            f"{result['keys']:,} keys, {result['requests']:,} requests, "
            f"peak RSS {result['peak_rss_mib']:.1f} MiB",
            file=sys.stderr,
        )
    return Measured(sim.latency_ms, sim.keys_per_workspace, mode, malloc, runs)


def run_simulator(
    args: argparse.Namespace, keys_per_workspace: int, latency_ms: float, *, timed: bool
) -> list[Measured]:
    """The scenarios of one simulator: both modes; with ``timed``, repeated for timing,
    else once each with the default and the fixed-trim allocator (for the RSS table)."""
    with SimulatorProcess(
        workspaces=args.workspaces,
        keys_per_workspace=keys_per_workspace,
        latency_ms=latency_ms,
        seed=args.seed,
    ) as sim:
        live = sim.live_key_count()
        print(f"simulator: {sim.label}: {live:,} live keys", file=sys.stderr)
        sim.warm_up()
        results = [measure(sim, mode, args, live, args.repeat if timed else 1) for mode in MODES]
        if latency_ms == 0:
            results += [measure(sim, mode, args, live, 1, fixed_trim=True) for mode in MODES]
        return results


def extraction_table(results: list[Measured]) -> str:
    rows = []
    for m in results:
        pages = m.value("pages")
        settled = min(r["settled_concurrency"] for r in m.runs)
        floor = ratio = ""
        if m.latency_ms > 0:
            # The concurrency the client settled at (the lowest of the repeats: the floor
            # it implies is the highest, so the ratio is not flattered).
            floor_seconds = math.ceil(pages / settled) * m.latency_ms / 1000
            floor = f"{floor_seconds:.2f}"
            ratio = f"{m.seconds / floor_seconds:.2f}"
        rows.append(
            [
                f"{m.latency_ms:g}",
                m.mode,
                f"{m.value('keys'):,}",
                f"{m.seconds:.2f}",
                m.spread,
                f"{m.value('keys') / m.seconds:,.0f}",
                f"{m.value('requests'):,}",
                f"{pages:,}",
                f"{settled} / {m.value('peak_concurrency')}",
                f"{m.value('throttled'):,}",
                f"{m.value('peak_rss_mib'):.1f}",
                f"{m.median('cpu_seconds'):.2f}",
                f"{m.median('sim_cpu_seconds'):.2f}",
                floor,
                ratio,
            ]
        )
    headers = [
        "latency ms",
        "workspaces",
        "keys",
        "wall s (median)",
        "range s",
        "keys/s",
        "requests",
        "pages",
        "settled / peak concurrency",
        "429+503",
        "peak RSS MiB",
        "client CPU s (median)",
        "simulator CPU s (median)",
        "floor s = ceil(pages/settled) x latency",
        "wall/floor",
    ]
    return markdown_table(headers, rows)


def rss_table(results: list[Measured], workspaces: int) -> str:
    rows = [
        [
            f"{m.keys_per_workspace:,}",
            f"{m.value('keys'):,}",
            m.mode,
            m.malloc,
            f"{m.value('rss_after_imports_mib'):.1f}",
            f"{m.value('peak_rss_mib'):.1f}",
            f"{m.value('peak_rss_mib') - m.value('rss_after_imports_mib'):.1f}",
        ]
        for m in sorted(results, key=lambda m: (m.malloc, m.mode, m.keys_per_workspace))
    ]
    headers = [
        f"keys per workspace (x {workspaces})",
        "keys",
        "workspaces",
        "glibc malloc",
        "RSS after imports MiB",
        "peak RSS MiB",
        "growth MiB",
    ]
    return markdown_table(headers, rows)


def _or_default(value: float | None) -> str:
    return "the default" if value is None else f"{value:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--keys-per-workspace", type=int, help="default 10,000 (quick: 1,000)")
    parser.add_argument(
        "--small-keys-per-workspace",
        type=int,
        help="the smaller size of the RSS comparison (default 1,000; quick: 100)",
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the slow run's latency")
    parser.add_argument(
        "--concurrency", type=int, help="client concurrency ceiling (default: the user's, 16)"
    )
    parser.add_argument(
        "--rps", type=float, help="client requests_per_second (default: the user's, no cap)"
    )
    parser.add_argument("--repeat", type=int, help="runs per timed scenario (default 3; quick: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    large = args.keys_per_workspace or (1_000 if args.quick else 10_000)
    small = args.small_keys_per_workspace or (100 if args.quick else 1_000)
    args.repeat = args.repeat or (1 if args.quick else 3)

    load_before = load_average()
    fast = run_simulator(args, large, 0.0, timed=True)
    slow = run_simulator(args, large, args.latency_ms, timed=True)
    smaller = run_simulator(args, small, 0.0, timed=False)

    print(f"## Extraction: {args.workspaces} workspaces x {large:,} keys\n")
    print(f"Machine: {machine_summary()}; keyledger at {code_version()}.")
    print(f"Load average (1 min): {load_before} before, {load_average()} after.")
    print(
        f"Client: concurrency {_or_default(args.concurrency)}, requests_per_second "
        f"{_or_default(args.rps)}; "
        f"{args.repeat} fresh process(es) per scenario (median wall time, highest peak RSS); "
        "simulator in its own process.\n"
    )
    timed = [m for m in fast + slow if m.malloc == TUNED]
    print(extraction_table(timed))
    print(f"\n## Peak RSS against the number of keys (0 ms, {args.workspaces} workspaces)\n")
    print(rss_table(smaller + [m for m in fast], args.workspaces))


if __name__ == "__main__":
    main()
