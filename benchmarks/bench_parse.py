"""Parsing benchmark: ``parse_key`` over 100,000 keys in the usual shape.

The keys are the simulator world's (10 workspaces x 10,000 keys), written as the API
writes them and read back with ``parse_json``, so each payload is what the client
hands to the parser: Decimal money, ISO 8601 text timestamps. Prints the best and the
median of ``--repeat`` passes, in ms per pass and microseconds per key.

    python benchmarks/bench_parse.py              # 100,000 keys, 7 passes, ~15 s
    python benchmarks/bench_parse.py --keys 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from etl.core.exact_json import dump_json, parse_json
from etl.openrouter.records import parse_key
from etl.simulator.world import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    world = World(seed=7, workspaces=10, keys_per_workspace=max(1, options.keys // 10))
    keys = [
        world.key_payload(key)
        for workspace in world.workspace_ids
        for offset in range(0, world.live_key_count(workspace), world.page_size)
        for key in world.page(workspace, offset, include_disabled=True, include_expired=True)
    ]
    body = "[" + ",".join(dump_json(key) for key in keys) + "]"
    payloads = parse_json(body)
    passes = []
    for _ in range(options.repeat):
        gc.collect()
        started = time.perf_counter()
        for payload in payloads:
            parse_key(payload)
        passes.append(time.perf_counter() - started)
    best, median = min(passes), statistics.median(passes)
    print(
        f"parse_key over {len(payloads):,} keys: best {best * 1e3:.0f} ms "
        f"({best / len(payloads) * 1e6:.2f} us/key), median {median * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
