"""The bundled simulator with a chosen share of keys spending each simulated day.

``keyledger simulate`` keeps the world's default activity (about 30% of keys spend each
day); the growth scenario of bench_all.py wants ~10%, as issue 12 asks, with the other
lifecycle events rarer (as bench_analytics.py sets them). Same first options as
``keyledger simulate``, so ``_common.SimulatorProcess(program=...)`` starts it; its
first line of output is the base URL; it stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspaces", type=int, default=2)
    parser.add_argument("--keys-per-workspace", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--active-fraction", type=float, default=0.1)
    args = parser.parse_args()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    world = World(
        seed=args.seed, workspaces=args.workspaces, keys_per_workspace=args.keys_per_workspace
    )
    world.rates.active_fraction = args.active_fraction
    world.rates.creates = world.rates.deletes = 0.001
    world.rates.renames = world.rates.relimits = world.rates.disables = 0.0005
    world.rates.enables = 0.0005
    simulator = Simulator(world, token=args.token, latency_ms=args.latency_ms, seed=args.seed)
    with SimulatorServer(simulator, port=args.port) as server:
        print(server.base_url, flush=True)
        while not stop.wait(0.2):
            pass


if __name__ == "__main__":
    main()
