"""Parsing benchmark: ``GET /keys`` pages to ``KeyRecord``s, by each candidate decoder.

The pages are the simulator world's (10 workspaces x 10,000 keys, 100 keys a page),
as bytes exactly as the simulator sends them. Each candidate reads every page; the
ones marked "to KeyRecords" build the records the client hands on (checks, raw
payload, digest included), the others only decode, for comparison. Prints the best
and the median CPU time of ``--repeat`` passes, per pass and per key.

- ``json`` + Decimal: the careful parser (``parse_json``, then ``parse_key_list``,
  digest of ``dump_json``'s text).
- orjson: decodes fastest but has no hook for numbers: every amount becomes a float,
  its digits already lost. Keeping money exact would take rewriting the body first
  (numbers into strings), which costs more than it saves; measured for reference.
- msgspec, untyped with ``float_hook=Decimal``: the same values as ``parse_json``.
- msgspec, the fast path (etl/openrouter/fast_keys.py): plain values, checked by a
  typed Struct in C, digest of the server's bytes. What the client uses.

    python benchmarks/bench_parse.py              # 100,000 keys, 5 passes each, ~1 min
    python benchmarks/bench_parse.py --keys 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from etl.core.exact_json import parse_json
from etl.openrouter.fast_keys import parse_key_page
from etl.openrouter.records import parse_key_list
from etl.simulator.service import encode_json
from etl.simulator.world import World


def simulator_pages(keys: int) -> list[bytes]:
    """The world's GET /keys pages, as the simulator writes them."""
    world = World(seed=7, workspaces=10, keys_per_workspace=max(1, keys // 10))
    return [
        encode_json(
            {
                "data": [
                    world.key_payload(key)
                    for key in world.page(
                        workspace, offset, include_disabled=True, include_expired=True
                    )
                ]
            }
        )
        for workspace in world.workspace_ids
        for offset in range(0, world.live_key_count(workspace), world.page_size)
    ]


def candidates() -> dict[str, Callable[[bytes], Any]]:
    """Each candidate: a name and what it does with one page body."""
    import msgspec

    untyped = msgspec.json.Decoder(float_hook=Decimal)
    found: dict[str, Callable[[bytes], Any]] = {
        "json.loads, floats (digits lost)": json.loads,
        "json + Decimal (parse_json)": parse_json,
    }
    try:  # not a keyledger dependency: `pip install orjson` to compare
        import orjson

        found["orjson.loads (floats: digits lost)"] = orjson.loads
    except ImportError:
        print("orjson is not installed: skipped")
    return {
        **found,
        "msgspec, float_hook=Decimal": untyped.decode,
        "json + Decimal, to KeyRecords (careful parser)": lambda b: parse_key_list(parse_json(b)),
        "msgspec + Decimal, then parse_key_list": lambda b: parse_key_list(untyped.decode(b)),
        "msgspec, to KeyRecords (fast path: fast_keys)": parse_key_page,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    pages = simulator_pages(options.keys)
    keys = sum(len(parse_json(page)["data"]) for page in pages)
    megabytes = sum(map(len, pages)) / 1e6
    assert all(parse_key_page(page) is not None for page in pages), "a page left the fast path"
    print(f"{len(pages):,} pages, {keys:,} keys, {megabytes:.1f} MB; CPU time per pass\n")
    print("| candidate | best ms | median ms | us per key |")
    print("|---|---:|---:|---:|")
    for name, parse in candidates().items():
        passes = []
        for _ in range(options.repeat):
            gc.collect()
            started = time.process_time()
            for page in pages:
                parse(page)
            passes.append(time.process_time() - started)
        best, median = min(passes), statistics.median(passes)
        print(f"| {name} | {best * 1e3:,.0f} | {median * 1e3:,.0f} | {best / keys * 1e6:.2f} |")


if __name__ == "__main__":
    main()
