"""The peer of bench_all.py: dlt's ``rest_api`` source loading the simulator's keys.

Runs in ``benchmarks/.peer-venv`` (dlt is never a keyledger dependency), started by
bench_all.py through the same ``python -S`` launcher as keyledger's workers, so its peak
RSS is its own. One run of the pipeline: every workspace a resource of the one source,
all into one table ``keys``, merged on the primary key ``hash``; dlt's own defaults
otherwise (its merge strategy, file format, workers and normalizer).

    peer_dlt.py --worker '{"base_url": ..., "workspaces": [...], "destination": "postgres",
                           "credentials": ..., "dataset": ..., "pipelines_dir": ...}'

The management key comes from $KEYLEDGER_BENCH_TOKEN, never the command line. The result
is one ``BENCH-RESULT {json}`` line on stdout, as ``_common.run_worker`` reads it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "  # as _common.RESULT_PREFIX (this venv lacks keyledger)
TOKEN_ENV = "KEYLEDGER_BENCH_TOKEN"


def source_config(base_url: str, token: str, workspaces: list[str]) -> dict[str, Any]:
    """The rest_api config: what a dlt user would write for GET /keys of each workspace."""
    paginator = {
        "type": "offset",
        "limit": 100,  # the API's page size; it has no page-size parameter and ignores it
        "offset_param": "offset",
        "limit_param": "limit",
        "total_path": None,  # GET /keys has no total: stop on the empty page
        "stop_after_empty_page": True,
    }
    resources = [
        {
            "name": f"keys_{index}",
            "table_name": "keys",
            "endpoint": {
                "path": "keys",
                "params": {
                    # as keyledger asks: disabled and expired keys are keys too
                    "include_disabled": "true",
                    "include_expired": "true",
                    "workspace_id": workspace_id,
                },
            },
        }
        for index, workspace_id in enumerate(workspaces)
    ]
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": token},
        },
        "resource_defaults": {
            "primary_key": "hash",
            # A bounded text: MariaDB cannot key a TEXT column (dlt's default for strings).
            "columns": {"hash": {"data_type": "text", "precision": 255}},
            "write_disposition": "merge",
            "endpoint": {"data_selector": "data", "paginator": paginator},
        },
        "resources": resources,
    }


def vm_hwm_mib() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run(params: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # loopback only
    import dlt
    from dlt.sources.rest_api import rest_api_source

    token = os.environ[TOKEN_ENV]
    destination: Any
    if params["destination"] == "postgres":
        destination = dlt.destinations.postgres(credentials=params["credentials"])
    else:
        # The one setting not left at dlt's default: a primary key on ``hash``, as dlt's
        # postgres destination makes by default (create_indexes=True). Without it merging
        # into SQLite or MariaDB (delete-insert on ``hash``) scans the table per row:
        # 10,000 keys re-synced into MariaDB took 29 s, 100,000 into SQLite over 4 min.
        destination = dlt.destinations.sqlalchemy(
            credentials=params["credentials"], create_primary_keys=True
        )
    pipeline = dlt.pipeline(
        pipeline_name="keyledger_peer",
        pipelines_dir=params["pipelines_dir"],
        destination=destination,
        dataset_name=params["dataset"],
    )
    source = rest_api_source(source_config(params["base_url"], token, params["workspaces"]))
    started = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - started
    normalized = pipeline.last_trace.last_normalize_info
    rows_written = sum(
        n
        for table, n in (normalized.row_counts if normalized else {}).items()
        if not table.startswith("_dlt")
    )
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("keys")
        rows = client.execute_sql(f"SELECT COUNT(*), COUNT(DISTINCT hash) FROM {table}")
    count, distinct = rows[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "table_rows": int(count),
        "distinct_hashes": int(distinct),
        "rows_written": rows_written,
        "dlt_version": dlt.__version__,
        "peak_rss_mib": peak,
        "vm_hwm_mib": vm_hwm_mib(),
    }


def main() -> None:
    if "--worker" not in sys.argv:
        raise SystemExit(__doc__)
    params = json.loads(sys.argv[sys.argv.index("--worker") + 1])
    print(RESULT_PREFIX + json.dumps(run(params)), flush=True)


if __name__ == "__main__":
    main()
