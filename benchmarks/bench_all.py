"""Every scenario of issue 12 in one command: one table, checked against the truth.

Scenarios (``--scenarios``, comma-separated; all by default):

- ``throughput``: 10 workspaces x 10,000 keys at 0 ms. keyledger's first sync, unchanged
  re-sync and re-sync after 10% changed into SQLite, PostgreSQL and MariaDB; dlt 1.31
  (``rest_api``, offset paginator, merge on ``hash``; from ``benchmarks/.peer-venv``)
  first and unchanged into the same databases.
- ``floor``: the same pages fetched and parsed alone (no database), same simulator.
- ``latency``: the same account at 50 ms per request, against
  ``ceil(requests / concurrency) x 50 ms`` for the concurrency the client settles at.
- ``quota``: the simulator enforcing a token bucket (``keyledger simulate --quota-rps``),
  against ``requests / R``; skipped while the simulator lacks the option.
- ``memory``: peak RSS of a first sync of 1 x 1,000,000 and 100 x 10,000 keys.
- ``growth``: 30 simulated nights on 100,000 keys, ~10% of keys spending each day:
  rows written and database size per night, per backend.

keyledger runs with the settings a user gets: a config file naming only the database
and the API's base URL, the management key in OPENROUTER_MANAGEMENT_KEY. Each measured
run is a fresh process; the simulator runs in its own. After every run its result is
checked against the simulator's truth (``GET /_sim/truth``) and the database; a wrong
answer fails the benchmark (exit 1) whatever its speed.

    python benchmarks/bench_all.py --quick            # a smoke run of a few minutes
    python benchmarks/bench_all.py                    # every scenario, medians of 3
    python benchmarks/bench_all.py --scenarios throughput,floor --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # the benchmarks folder is not a package: found through sys.path
    SimulatorProcess,
    Stopwatch,
    code_version,
    emit_result,
    keyledger_command,
    load_average,
    machine_summary,
    markdown_table,
    peak_rss_mib,
    run_worker,
    vm_hwm_mib,
    worker_token,
)

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_REQUIREMENTS = HERE / "peer-requirements.txt"
PEER_SCRIPT = HERE / "peer_dlt.py"
GROWTH_SIMULATOR = HERE / "_growth_simulator.py"

SCENARIOS = ("throughput", "floor", "latency", "quota", "memory", "growth")
BACKENDS = ("sqlite", "postgresql", "mysql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/keyledger_bench",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/keyledger_bench",
}
CHANGED_FRACTION = 0.1
LATENCY_MS = 50.0
MEMORY_LIMIT_MIB = 150e6 / 2**20  # the 150 MB
# The run ledger gets a few rows a run whatever the keys do: counted apart.
LEDGER_TABLES = ("sync_runs", "sync_run_workspaces")
FIRST, UNCHANGED, CHANGED = "first sync", "unchanged re-sync", "re-sync, 10% changed"


@dataclass(frozen=True)
class Sizes:
    workspaces: int
    keys: int
    memory: tuple[tuple[int, int], ...]  # (workspaces, keys per workspace) per memory run
    growth: tuple[int, int, int]  # workspaces, keys per workspace, nights
    quota_rps: float


FULL = Sizes(10, 10_000, ((1, 1_000_000), (100, 10_000)), (10, 10_000, 30), 100.0)
QUICK = Sizes(10, 1_000, ((1, 20_000), (20, 1_000)), (2, 1_000, 4), 20.0)


# -- the measured processes ---------------------------------------------------------------
def user_settings(config_path: str) -> Any:
    """Settings as ``keyledger sync --config PATH`` builds them, key from the environment."""
    from etl.core.config import load_settings

    # Only what a user sets: the key. Other KEYLEDGER_/OPENROUTER_ variables of the
    # benchmark's own shell would override the config file.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))}
    env["OPENROUTER_MANAGEMENT_KEY"] = worker_token()
    return load_settings(config_path, env=env)


def client_figures(clients: Sequence[Any]) -> dict[str, Any]:
    """Requests, throttled answers and the concurrency the clients settled at."""
    stats = [c.stats for c in clients]
    settled = [getattr(s, "settled_concurrency", None) for s in stats]
    throttled = [getattr(s, "throttled", None) for s in stats]
    fallback = any(s is None for s in settled)
    return {
        "client_requests": sum(s.requests for s in stats),
        "client_retries": sum(s.retries for s in stats),
        "throttled": None if any(t is None for t in throttled) else sum(throttled),
        "settled_concurrency": max(
            (c.settings.concurrency if s is None else s)
            for c, s in zip(clients, settled, strict=True)
        )
        if clients
        else None,
        "settled_from": "settings.concurrency" if fallback else "client.stats",
        "client_settings": {
            "requests_per_second": clients[0].settings.requests_per_second,
            "concurrency": clients[0].settings.concurrency,
        }
        if clients
        else {},
    }


def sync_worker(params: dict[str, Any]) -> None:
    """One ``run_sync`` with the user's settings; wall time, counts, client figures, RSS."""
    from etl.cli.memory import limit_heap_growth
    from etl.openrouter.client import client_for
    from etl.store.database import make_engine
    from etl.sync import run_sync

    limit_heap_growth()  # as the keyledger command does at start: RSS as a user sees it
    settings = user_settings(params["config_path"])
    clients: list[Any] = []

    def keep(account: Any) -> Any:  # the default client, kept to read its stats after
        client = client_for(account)
        clients.append(client)
        return client

    engine = make_engine(settings.database_url)
    with Stopwatch() as watch:
        result = run_sync(engine, settings, client_factory=keep)
    engine.dispose()
    if result.status != "ok":
        errors = "; ".join(f"{w.workspace_id}: {w.error}" for w in result.workspaces if w.error)
        raise SystemExit(f"sync {result.status}: {result.summary()} {errors}")
    emit_result(
        {
            "seconds": watch.seconds,
            "pages": sum(w.pages for w in result.workspaces),
            "seen": sum(w.counts.seen for w in result.workspaces),
            "new": sum(w.counts.new for w in result.workspaces),
            "changed": sum(w.counts.changed for w in result.workspaces),
            "deleted": sum(w.deleted for w in result.workspaces),
            "snapshots": sum(w.counts.snapshots for w in result.workspaces),
            **client_figures(clients),
            "peak_rss_mib": peak_rss_mib(),
            "vm_hwm_mib": vm_hwm_mib(),
        }
    )


def floor_worker(params: dict[str, Any]) -> None:
    """Fetch and parse every page with the user's client, all workspaces at once; count."""
    from etl.cli.memory import limit_heap_growth
    from etl.openrouter.client import client_for

    limit_heap_growth()
    settings = user_settings(params["config_path"])
    (account,) = settings.accounts
    counts: list[int] = []
    errors: list[BaseException] = []

    def drain(client: Any, workspace_id: str) -> None:
        keys = 0
        try:
            for page in client.iter_key_pages(workspace_id):
                # Every key read in full: the floor is fetching and parsing the pages
                # (a sync reads in full only the keys it finds new or changed).
                keys += len([record.full() for record in page.records])
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)
        counts.append(keys)

    with Stopwatch() as watch, client_for(account) as client:
        threads = [
            threading.Thread(target=drain, args=(client, w.id)) for w in client.list_workspaces()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    emit_result(
        {
            "seconds": watch.seconds,
            "seen": sum(counts),
            **client_figures([client]),
            "peak_rss_mib": peak_rss_mib(),
            "vm_hwm_mib": vm_hwm_mib(),
        }
    )


# -- databases ----------------------------------------------------------------------------
class Unavailable(Exception):
    """A backend or a peer that cannot be measured now (the reason is the message)."""


class CheckFailed(Exception):
    """A result that disagrees with the truth: the benchmark fails."""


def ensure_database(url: str) -> None:
    """Create the benchmark's own database on its server when it is missing."""
    from sqlalchemy import make_url, text

    from etl.store.database import make_engine

    parsed = make_url(url)
    name = parsed.database or ""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise Unavailable(f"database name {name!r}: letters, digits and _ only")
    if name == "test":
        raise Unavailable("the database `test` is CI's: give the benchmark its own")
    server_db = "postgres" if parsed.get_backend_name() == "postgresql" else None
    engine = make_engine(
        parsed._replace(database=server_db).render_as_string(hide_password=False),
        connect_args={"connect_timeout": 5},
    )
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if parsed.get_backend_name() == "postgresql":
                exists = connection.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                )
                if not exists:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    except Exception as exc:  # a refused connection, a missing driver, no rights
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise Unavailable(f"not reachable ({type(exc).__name__}: {reason[0][:150]})") from None
    finally:
        engine.dispose()


def drop_keyledger_objects(url: str) -> None:
    """Drop keyledger's views and tables (the database is the benchmark's own)."""
    from sqlalchemy import MetaData, inspect, text

    from etl.store.database import make_engine
    from models import Base

    ours = {"alembic_version", *Base.metadata.tables}
    engine = make_engine(url)
    try:
        cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
        views = set(inspect(engine).get_view_names())
        for _ in range(len(views) + 1):  # dependents first, found by retrying
            for view in sorted(views):
                with contextlib.suppress(Exception), engine.begin() as connection:
                    connection.execute(text(f"DROP VIEW IF EXISTS {view}{cascade}"))
            views = set(inspect(engine).get_view_names())
        metadata = MetaData()
        metadata.reflect(engine, only=sorted(set(inspect(engine).get_table_names()) & ours))
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def fresh_schema(url: str) -> None:
    """An empty database migrated to head."""
    from etl.store.database import make_engine
    from etl.store.migrations import upgrade

    drop_keyledger_objects(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """Rows of every keyledger table."""
    from sqlalchemy import func, select

    from etl.store.database import make_engine
    from models import Base

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in Base.metadata.tables.items()
            }
    finally:
        engine.dispose()


def database_bytes(url: str) -> int:
    """Bytes the keyledger tables take (data and indexes)."""
    from sqlalchemy import text

    from etl.store.database import make_engine
    from models import Base

    names = sorted(Base.metadata.tables)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            dialect = connection.dialect.name
            if dialect == "postgresql":
                return int(
                    connection.scalar(
                        text(
                            "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(n))), 0) "
                            "FROM unnest(CAST(:names AS text[])) AS n"
                        ),
                        {"names": names},
                    )
                    or 0
                )
            if dialect == "mysql":
                for name in names:  # InnoDB's sizes are statistics: bring them up to date
                    connection.execute(text(f"ANALYZE TABLE `{name}`")).all()
                return int(
                    connection.scalar(
                        text(
                            "SELECT COALESCE(SUM(data_length + index_length), 0) "
                            "FROM information_schema.tables WHERE table_schema = DATABASE()"
                        )
                    )
                    or 0
                )
            pages = connection.scalar(text("PRAGMA page_count")) or 0
            free = connection.scalar(text("PRAGMA freelist_count")) or 0
            size = connection.scalar(text("PRAGMA page_size")) or 0
            return int((pages - free) * size)
    finally:
        engine.dispose()


def check_truth(url: str, truth: dict[str, Any]) -> list[str]:
    """Where the database disagrees with the simulator: live keys and their usage."""
    from sqlalchemy import select

    from etl.store.database import make_engine
    from models import ApiKey

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            stored = {
                h: (usage, deleted)
                for h, usage, deleted in connection.execute(
                    select(ApiKey.hash, ApiKey.usage, ApiKey.deleted_at)
                )
            }
    finally:
        engine.dispose()
    live = {k["hash"]: Decimal(str(k["usage"])) for k in truth["keys"] if k["deleted_at"] is None}
    stored_live = {h for h, (_, deleted) in stored.items() if deleted is None}
    problems = []
    if stored_live != set(live):
        problems.append(
            f"live keys: {len(stored_live - set(live)):,} stored but not live, "
            f"{len(set(live) - stored_live):,} live but not stored"
        )
    # SQLite keeps money as REAL: equal as the nearest double (docs: DESIGN, SQLite).
    wrong = sum(
        1
        for h, usage in live.items()
        if h in stored
        and Decimal(str(stored[h][0])) != usage
        and float(stored[h][0]) != float(usage)
    )
    if wrong:
        problems.append(f"{wrong:,} keys' usage differs from the simulator's")
    return problems


# -- what a run measured -------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table: the median of ``runs`` measured runs."""

    scenario: str
    backend: str
    tool: str
    step: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = "ok"
    notes: list[str] = field(default_factory=list)
    stopped: bool = False  # a run overran its time limit: no further repeats

    def median(self, name: str) -> float:
        values = [r[name] for r in self.runs if r.get(name) is not None]
        return statistics.median(values) if values else math.nan

    @property
    def seconds(self) -> float:
        return self.median("seconds")


@dataclass
class Target:
    name: str
    measured: str
    verdict: str  # PASS, FAIL or SKIP


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    quota_skipped: str = ""

    def row(self, scenario: str, backend: str, tool: str, step: str) -> Row:
        for row in self.rows:
            if (row.scenario, row.backend, row.tool, row.step) == (scenario, backend, tool, step):
                return row
        row = Row(scenario, backend, tool, step)
        self.rows.append(row)
        return row

    def find(self, scenario: str, backend: str, tool: str, step: str) -> Row | None:
        for row in self.rows:
            if (row.scenario, row.backend, row.tool, row.step) == (scenario, backend, tool, step):
                return row if row.runs else None
        return None

    def fail(self, row: Row, problems: list[str]) -> None:
        row.verdict = "FAIL: " + "; ".join(problems)
        self.failures.append(f"{row.scenario} {row.backend} {row.tool} {row.step}: {problems}")
        print(f"  CHECK FAILED: {row.verdict}", file=sys.stderr)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- running keyledger and dlt -------------------------------------------------------------
class Workplace:
    """A backend's database URL and the config file a user would write for it."""

    def __init__(self, backend: str, url: str, folder: Path) -> None:
        self.backend = backend
        self.url = url
        self.folder = folder

    def config(self, sim: SimulatorProcess) -> str:
        path = self.folder / f"keyledger-{self.backend}.toml"
        path.write_text(
            f"database_url = {json.dumps(self.url)}\n\n"
            f"[openrouter]\nbase_url = {json.dumps(sim.base_url)}\n",
            encoding="utf-8",
        )
        return str(path)


def measured(sim: SimulatorProcess, mode: str, config_path: str) -> dict[str, Any]:
    """A keyledger worker (``mode`` sync or floor); requests as the simulator counted them."""
    before = sim.requests_served()
    result = run_worker(Path(__file__), {"mode": mode, "config_path": config_path}, sim.token)
    result["requests"] = sim.requests_served() - before - 1  # less the stats call itself
    return result


def keyledger_sync(
    report: Report, row: Row, sim: SimulatorProcess, place: Workplace, *, expect: int
) -> dict[str, Any]:
    """One measured sync, checked: every key seen, ``expect`` snapshot rows, truth exact."""
    counts_before = row_counts(place.url)
    result = measured(sim, "sync", place.config(sim))
    counts_after = row_counts(place.url)
    truth = sim.truth()
    live = sum(1 for k in truth["keys"] if k["deleted_at"] is None)
    added = {t: counts_after[t] - counts_before[t] for t in counts_after}
    result["rows_written"] = (
        result["new"]
        + result["changed"]
        + result["deleted"]
        + sum(n for t, n in added.items() if t not in ("api_keys", *LEDGER_TABLES) and n > 0)
    )
    result["rows_added"] = added
    result["live"] = live
    problems = check_truth(place.url, truth)
    if result["seen"] != live:
        problems.append(f"saw {result['seen']:,} keys, the simulator lists {live:,}")
    if expect >= 0 and added.get("usage_snapshots") != expect:
        problems.append(
            f"{added.get('usage_snapshots'):,} usage_snapshots rows, expected {expect:,}"
        )
    if added.get("usage_snapshots") != result["snapshots"]:
        problems.append("usage_snapshots rows differ from the SyncResult's count")
    row.runs.append(result)
    if problems:
        report.fail(row, problems)
    log(
        f"  {row.scenario} {LABELS.get(row.backend, row.backend)} {row.step}: "
        f"{result['seconds']:.2f}s, {result['requests']:,} requests, "
        f"{result['rows_written']:,} rows, {result['peak_rss_mib']:.1f} MiB"
    )
    return result


def peer_python() -> Path:
    """The peer venv's interpreter, created from peer-requirements.txt when missing."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / "requirements.installed"
    wanted = PEER_REQUIREMENTS.read_text(encoding="utf-8")
    if python.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        return python
    log(f"creating {PEER_VENV} from {PEER_REQUIREMENTS.name} (dlt; once)")
    venv.create(PEER_VENV, with_pip=True, clear=True)
    install = [str(python), "-m", "pip", "install", "-q", "-r", str(PEER_REQUIREMENTS)]
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Unavailable(f"pip could not install the peer: {done.stderr.strip()[-300:]}")
    stamp.write_text(wanted, encoding="utf-8")
    return python


class DltPlace:
    """Where dlt loads for one backend, and how to start over."""

    DATASET = "keyledger_peer"

    def __init__(self, place: Workplace) -> None:
        self.place = place
        self.pipelines_dir = place.folder / f"dlt-{place.backend}"

    def credentials(self) -> tuple[str, str]:
        """(dlt destination, its credentials)."""
        url = self.place.url
        if self.place.backend == "postgresql":
            from sqlalchemy import make_url

            # dlt's postgres destination speaks psycopg2 and insists on a password; the
            # servers here trust loopback, which ignores whatever password is sent.
            parsed = make_url(url).set(drivername="postgresql")
            if parsed.password is None:
                parsed = parsed.set(password="unused")
            return "postgres", parsed.render_as_string(hide_password=False)
        if self.place.backend == "sqlite":
            return "sqlalchemy", f"sqlite:///{self.place.folder / 'dlt.db'}"
        return "sqlalchemy", url

    def reset(self) -> None:
        """No dlt state anywhere: local pipeline folder, dataset, SQLite files."""
        from sqlalchemy import text

        from etl.store.database import make_engine

        shutil.rmtree(self.pipelines_dir, ignore_errors=True)
        if self.place.backend == "sqlite":
            for path in self.place.folder.glob("dlt*.db"):
                path.unlink()
            return
        self.stop_queries()
        engine = make_engine(self.place.url)
        try:
            with engine.begin() as connection:
                for dataset in (self.DATASET, f"{self.DATASET}_staging"):  # dlt stages merges
                    if self.place.backend == "postgresql":
                        connection.execute(text(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE'))
                    else:  # dlt's sqlalchemy destination makes a dataset a MariaDB database
                        connection.execute(text(f"DROP DATABASE IF EXISTS `{dataset}`"))
        finally:
            engine.dispose()

    def stop_queries(self) -> None:
        """Cancel dlt's statements still running on the server (a stopped run's): a
        server goes on with a statement after its client is killed."""
        from sqlalchemy import text

        from etl.store.database import make_engine

        pattern = f"%{self.DATASET}%"
        engine = make_engine(self.place.url)
        try:
            with engine.connect() as connection:
                if self.place.backend == "postgresql":
                    connection.execute(
                        text(
                            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                            "WHERE query LIKE :p AND datname = current_database() "
                            "AND pid <> pg_backend_pid()"
                        ),
                        {"p": pattern},
                    ).all()
                    return
                ids = connection.execute(
                    text(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE info LIKE :p AND db = DATABASE() AND id <> CONNECTION_ID()"
                    ),
                    {"p": pattern},
                ).scalars()
                for query_id in list(ids):
                    with contextlib.suppress(Exception):  # it may have ended meanwhile
                        connection.execute(text(f"KILL QUERY {int(query_id)}"))
        finally:
            engine.dispose()


def dlt_sync(
    report: Report,
    row: Row,
    sim: SimulatorProcess,
    where: DltPlace,
    python: Path,
    timeout: float,
) -> None:
    """One measured dlt run, its table counted; a run past ``timeout`` is stopped."""
    if row.stopped:
        return
    destination, credentials = where.credentials()
    truth = sim.truth()
    params = {
        "base_url": sim.base_url,
        "workspaces": [w["id"] for w in truth["workspaces"]],
        "destination": destination,
        "credentials": credentials,
        "dataset": where.DATASET,
        "pipelines_dir": str(where.pipelines_dir),
    }
    before = sim.requests_served()
    try:
        result = run_worker(
            PEER_SCRIPT, params, sim.token, interpreter=str(python), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        row.stopped = True
        row.verdict = f"stopped at {timeout:g} s"
        row.notes = [f"dlt did not finish in --peer-timeout {timeout:g} s: not repeated"]
        log(f"  {row.scenario} {LABELS[row.backend]} dlt {row.step}: stopped at {timeout:g}s")
        return
    result["requests"] = sim.requests_served() - before - 1
    live = sum(1 for k in truth["keys"] if k["deleted_at"] is None)
    result["seen"] = live
    row.runs.append(result)
    row.notes = [f"dlt {result['dlt_version']}"]
    if result["table_rows"] != live or result["distinct_hashes"] != live:
        report.fail(
            row,
            [
                f"dlt's table has {result['table_rows']:,} rows "
                f"({result['distinct_hashes']:,} hashes), the simulator lists {live:,}"
            ],
        )
    log(
        f"  {row.scenario} {LABELS[row.backend]} dlt {row.step}: {result['seconds']:.2f}s, "
        f"{result['requests']:,} requests, {result['rows_written']:,} rows, "
        f"{result['peak_rss_mib']:.1f} MiB"
    )


# -- the scenarios -------------------------------------------------------------------------
@contextlib.contextmanager
def simulator(
    workspaces: int, keys: int, *, latency_ms: float = 0.0, **options: Any
) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        workspaces=workspaces, keys_per_workspace=keys, latency_ms=latency_ms, **options
    ) as sim:
        log(f"simulator: {sim.label}; warming up (every key read once)")
        sim.warm_up()
        yield sim


def workplaces(args: argparse.Namespace, folder: Path, report: Report) -> list[Workplace]:
    """The backends that answer; each skipped one noted with its reason."""
    places = []
    for backend in args.backends:
        if backend == "sqlite":
            places.append(Workplace(backend, f"sqlite:///{folder / 'keyledger.db'}", folder))
            continue
        url = args.postgresql_url if backend == "postgresql" else args.mysql_url
        try:
            ensure_database(url)
        except Unavailable as exc:
            report.notes.append(f"{LABELS[backend]} skipped: {exc}")
            log(report.notes[-1])
            continue
        places.append(Workplace(backend, url, folder))
    return places


def reset_sqlite(place: Workplace) -> None:
    if place.backend == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(place.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


def run_throughput(
    args: argparse.Namespace, report: Report, places: list[Workplace], sim: SimulatorProcess
) -> None:
    for place in places if "keyledger" in args.tools else ():
        for _ in range(args.repeat):
            reset_sqlite(place)
            fresh_schema(place.url)
            live = sim.live_key_count()
            keyledger_sync(
                report,
                report.row("throughput", place.backend, "keyledger", FIRST),
                sim,
                place,
                expect=live,
            )
            keyledger_sync(
                report,
                report.row("throughput", place.backend, "keyledger", UNCHANGED),
                sim,
                place,
                expect=0,
            )
            touched = sim.touch(CHANGED_FRACTION)
            keyledger_sync(
                report,
                report.row("throughput", place.backend, "keyledger", CHANGED),
                sim,
                place,
                expect=touched,
            )
        drop_keyledger_objects(place.url)
        reset_sqlite(place)
    if "dlt" not in args.tools:
        report.notes.append("dlt not run (--tools)")
        return
    try:
        python = peer_python()
    except Unavailable as exc:
        report.notes.append(f"dlt skipped: {exc}")
        return
    for place in places:
        where = DltPlace(place)
        try:
            for _ in range(args.peer_repeat):
                where.reset()
                first = report.row("throughput", place.backend, "dlt", FIRST)
                dlt_sync(report, first, sim, where, python, args.peer_timeout)
                if first.stopped:
                    break
                dlt_sync(
                    report,
                    report.row("throughput", place.backend, "dlt", UNCHANGED),
                    sim,
                    where,
                    python,
                    args.peer_timeout,
                )
        except RuntimeError as exc:  # dlt could not load into this backend at all
            lines = str(exc).strip().splitlines()
            why = next((x for x in reversed(lines) if "Error" in x or "Exception" in x), lines[-1])
            report.notes.append(f"dlt into {LABELS[place.backend]} failed: {why.strip()[:300]}")
            log(report.notes[-1])
        finally:
            where.reset()


def run_floor(
    args: argparse.Namespace, report: Report, folder: Path, sim: SimulatorProcess
) -> None:
    place = Workplace("none", "sqlite:///unused.db", folder)
    live = sim.live_key_count()
    for _ in range(args.repeat):
        row = report.row("floor", "-", "keyledger fetch+parse", "all pages, no database")
        result = measured(sim, "floor", place.config(sim))
        row.runs.append(result)
        if result["seen"] != live:
            report.fail(row, [f"counted {result['seen']:,} keys, the simulator lists {live:,}"])
        log(f"  floor: {result['seconds']:.2f}s, {result['requests']:,} requests")


def latency_note(run: dict[str, Any]) -> str:
    where = run["settled_from"]
    note = f"settled concurrency {run['settled_concurrency']} (from {where}"
    if where != "client.stats":
        note += ": client.stats.settled_concurrency not there yet"
    return note + ")"


def run_latency(args: argparse.Namespace, report: Report, folder: Path, sizes: Sizes) -> None:
    place = Workplace("sqlite", f"sqlite:///{folder / 'latency.db'}", folder)
    with simulator(sizes.workspaces, sizes.keys, latency_ms=LATENCY_MS) as sim:
        for _ in range(args.repeat):
            reset_sqlite(place)
            fresh_schema(place.url)
            live = sim.live_key_count()
            for step, expect in ((FIRST, live), (UNCHANGED, 0)):
                row = report.row("latency 50 ms", "sqlite", "keyledger", step)
                run = keyledger_sync(report, row, sim, place, expect=expect)
                floor = math.ceil(run["requests"] / run["settled_concurrency"]) * LATENCY_MS / 1e3
                run["latency_floor"] = floor
                row.notes = [latency_note(run), "floor = ceil(requests / concurrency) x 50 ms"]
        reset_sqlite(place)


def simulator_has(option: str) -> bool:
    done = subprocess.run(
        [*keyledger_command(), "simulate", "--help"], capture_output=True, text=True, check=False
    )
    return option in done.stdout


def run_quota(args: argparse.Namespace, report: Report, folder: Path, sizes: Sizes) -> None:
    if not simulator_has("--quota-rps"):
        report.quota_skipped = "skipped: `keyledger simulate` has no --quota-rps option yet"
        report.notes.append(f"quota scenario {report.quota_skipped}")
        return
    rate = sizes.quota_rps
    place = Workplace("sqlite", f"sqlite:///{folder / 'quota.db'}", folder)
    with simulator(sizes.workspaces, sizes.keys, extra_args=["--quota-rps", f"{rate:g}"]) as sim:
        for _ in range(args.repeat):
            reset_sqlite(place)
            fresh_schema(place.url)
            row = report.row(f"quota {rate:g} rps", "sqlite", "keyledger", FIRST)
            run = keyledger_sync(report, row, sim, place, expect=sim.live_key_count())
            throttled = run["throttled"]
            if throttled is None:  # the client does not count 429s apart: its retries
                throttled = run["client_retries"]
                row.notes = ["429s counted as the client's retries (no client.stats.throttled)"]
            run["throttled_count"] = throttled
            run["quota_floor"] = (run["requests"] - throttled) / rate
        reset_sqlite(place)


def run_memory(
    args: argparse.Namespace, report: Report, places: list[Workplace], sizes: Sizes
) -> None:
    place = next((p for p in places if p.backend == "postgresql"), None) or next(
        p for p in places if p.backend == "sqlite"
    )
    runs = [(sizes.workspaces, sizes.keys), *sizes.memory]
    for workspaces, keys in runs:
        base = report.find("throughput", place.backend, "keyledger", FIRST)
        step = f"first sync, {workspaces} x {keys:,} keys"
        if (workspaces, keys) == (sizes.workspaces, sizes.keys) and base is not None:
            row = report.row("memory", place.backend, "keyledger", step)
            row.runs = base.runs
            row.notes = ["the throughput scenario's first syncs"]
            continue
        with simulator(workspaces, keys) as sim:
            for _ in range(args.memory_repeat):
                reset_sqlite(place)
                fresh_schema(place.url)
                row = report.row("memory", place.backend, "keyledger", step)
                keyledger_sync(report, row, sim, place, expect=sim.live_key_count())
        drop_keyledger_objects(place.url)
        reset_sqlite(place)


def advance_to_next_night(sim: SimulatorProcess) -> None:
    """Simulated time to 02:00 UTC of the next day, with the day's activity on the way."""
    now = datetime.fromisoformat(sim.control("POST", "advance", seconds="0")["now"][:-1])
    target = (now + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    sim.control("POST", "advance", seconds=f"{(target - now).total_seconds():.3f}")


def run_growth(
    args: argparse.Namespace, report: Report, places: list[Workplace], sizes: Sizes
) -> None:
    workspaces, keys, nights = sizes.growth
    per_night: dict[str, list[dict[str, Any]]] = {}
    program = [sys.executable, str(GROWTH_SIMULATOR)]
    for place in places:
        reset_sqlite(place)
        fresh_schema(place.url)
        with simulator(workspaces, keys, program=program, seed=30) as sim:
            first = report.row("growth", place.backend, "keyledger", "night 0: first sync")
            keyledger_sync(report, first, sim, place, expect=sim.live_key_count())
            row = report.row("growth", place.backend, "keyledger", f"nights 1-{nights}, median")
            for night in range(1, nights + 1):
                advance_to_next_night(sim)
                size_before = database_bytes(place.url)
                run = keyledger_sync(report, row, sim, place, expect=-1)
                run["night"] = night
                run["bytes_added"] = database_bytes(place.url) - size_before
                run["db_bytes"] = size_before + run["bytes_added"]
                run["keys_changed"] = run["new"] + run["changed"] + run["deleted"]
                # A snapshot for each new key and each changed usage/limit/state; a rename
                # changes a key without one.
                if run["rows_added"]["usage_snapshots"] > run["new"] + run["changed"]:
                    report.fail(row, [f"night {night}: more snapshots than new + changed keys"])
                per_night.setdefault(place.backend, []).append(run)
            row.notes = [f"{workspaces * keys:,} keys, ~10% spending a day"]
        drop_keyledger_objects(place.url)
        reset_sqlite(place)
    if per_night:
        report.details.append(growth_table(per_night))


def growth_table(per_night: dict[str, list[dict[str, Any]]]) -> str:
    headers = ["night"]
    for backend in per_night:
        label = LABELS[backend]
        headers += [f"{label} keys changed", f"{label} rows written", f"{label} KiB added"]
    rows = []
    for index in range(max(len(v) for v in per_night.values())):
        cells: list[object] = [index + 1]
        for runs in per_night.values():
            run = runs[index] if index < len(runs) else None
            cells += (
                [
                    f"{run['keys_changed']:,}",
                    f"{run['rows_written']:,}",
                    f"{run['bytes_added'] / 1024:,.0f}",
                ]
                if run
                else ["", "", ""]
            )
        rows.append(cells)
    return "### Growth, night by night\n\n" + markdown_table(headers, rows)


# -- the targets ---------------------------------------------------------------------------
def ratio_target(report: Report, name: str, value: float, limit: float, text: str) -> None:
    if math.isnan(value):
        report.targets.append(Target(name, "not measured", "SKIP"))
        return
    verdict = "PASS" if value <= limit else "FAIL"
    report.targets.append(Target(name, text.format(value=value), verdict))


def evaluate(report: Report, sizes: Sizes) -> None:
    def seconds(scenario: str, backend: str, tool: str, step: str) -> float:
        row = report.find(scenario, backend, tool, step)
        return row.seconds if row else math.nan

    for backend in ("postgresql", "sqlite"):
        for step, want in ((FIRST, 5.0), (UNCHANGED, 10.0)):
            ours = seconds("throughput", backend, "keyledger", step)
            theirs = seconds("throughput", backend, "dlt", step)
            ratio_target(
                report,
                f"{step} into {LABELS[backend]} >= {want:g}x faster than dlt",
                ours / theirs * want,
                1.0,
                f"{theirs / ours:.2f}x as fast (dlt {theirs:.2f}s, keyledger {ours:.2f}s)",
            )
    for step in (FIRST, UNCHANGED, CHANGED):
        pg = seconds("throughput", "postgresql", "keyledger", step)
        maria = seconds("throughput", "mysql", "keyledger", step)
        ratio_target(
            report, f"MariaDB {step} within 1.5x of PostgreSQL", maria / pg, 1.5, "{value:.2f}x"
        )
    floor = seconds("floor", "-", "keyledger fetch+parse", "all pages, no database")
    for backend in BACKENDS:
        unchanged = seconds("throughput", backend, "keyledger", UNCHANGED)
        changed = seconds("throughput", backend, "keyledger", CHANGED)
        ratio_target(
            report,
            f"{LABELS[backend]}: 10% changed within 1.5x of unchanged",
            changed / unchanged,
            1.5,
            "{value:.2f}x",
        )
        for step, limit in ((FIRST, 2.0), (UNCHANGED, 1.3)):
            ours = seconds("throughput", backend, "keyledger", step)
            ratio_target(
                report,
                f"{LABELS[backend]}: {step} within {limit:g}x of the floor",
                ours / floor,
                limit,
                "{value:.2f}x" + f" (floor {floor:.2f}s)",
            )
    latency = report.find("latency 50 ms", "sqlite", "keyledger", UNCHANGED)
    if latency is not None:
        wall, floor_s = latency.seconds, latency.median("latency_floor")
        ratio_target(
            report,
            "latency 50 ms, unchanged re-sync: within 1.25x of ceil(requests/concurrency) x 50 ms",
            wall / floor_s,
            1.25,
            "{value:.2f}x" + f" ({wall:.2f}s vs {floor_s:.2f}s; {latency_note(latency.runs[-1])})",
        )
    quota = next((r for r in report.rows if r.scenario.startswith("quota") and r.runs), None)
    if report.quota_skipped:
        report.targets.append(
            Target(
                "quota: wall within 1.3x of requests/R, 429s <= 5%", report.quota_skipped, "SKIP"
            )
        )
    if quota is not None:
        wall, floor_s = quota.seconds, quota.median("quota_floor")
        share = quota.median("throttled_count") / quota.median("requests")
        both = wall / floor_s <= 1.3 and share <= 0.05
        report.targets.append(
            Target(
                "quota: wall within 1.3x of requests/R, 429s <= 5%",
                f"{wall / floor_s:.2f}x ({wall:.2f}s vs {floor_s:.2f}s), 429s {share:.1%}",
                "PASS" if both else "FAIL",
            )
        )
    memory = [r for r in report.rows if r.scenario == "memory" and r.runs]
    if memory:
        base = memory[0].median("peak_rss_mib")
        for row in memory[1:]:
            peak = row.median("peak_rss_mib")
            good = peak <= MEMORY_LIMIT_MIB and peak <= 1.2 * base
            report.targets.append(
                Target(
                    f"memory, {row.step.removeprefix('first sync, ')} "
                    f"({LABELS[row.backend]}): <= 150 MB and within 1.2x",
                    f"{peak:.1f} MiB, {peak / base:.2f}x of {base:.1f} MiB "
                    f"({memory[0].step.removeprefix('first sync, ')})",
                    "PASS" if good else "FAIL",
                )
            )
    for row in report.rows:
        if row.scenario != "growth" or not row.step.startswith("nights"):
            continue
        keys = row.runs[0]["live"]
        rows_per_night = [r["rows_written"] for r in row.runs]
        changed = [r["keys_changed"] for r in row.runs]
        # Grows with change: at most a few rows per changed key, plus a few per workspace
        # a night; never a row per key.
        bound = [4 * c + 5 * sizes.growth[0] for c in changed]
        good = (
            all(n <= b for n, b in zip(rows_per_night, bound, strict=True))
            and max(rows_per_night) < keys / 2
        )
        per_key = sum(rows_per_night) / max(sum(changed), 1)
        kib = statistics.median(r["bytes_added"] for r in row.runs) / 1024
        report.targets.append(
            Target(
                f"growth ({LABELS[row.backend]}): rows a night follow changed keys, not keys",
                f"median {statistics.median(rows_per_night):,.0f} rows / "
                f"{statistics.median(changed):,.0f} changed keys a night "
                f"({per_key:.2f} rows per changed key; {keys:,} keys), "
                f"median {kib:,.0f} KiB a night",
                "PASS" if good else "FAIL",
            )
        )


# -- the table -----------------------------------------------------------------------------
def main_table(report: Report) -> str:
    rows = []
    for row in report.rows:
        if row.stopped and not row.runs:
            rows.append(
                [
                    row.scenario,
                    LABELS.get(row.backend, row.backend),
                    row.tool,
                    row.step,
                    f"> {row.verdict.split()[-2]}",
                    *([""] * 4),
                    row.verdict,
                    "; ".join(row.notes),
                ]
            )
            continue
        if not row.runs:
            continue
        wall = row.seconds
        seen = row.median("seen")
        notes = list(row.notes)
        if len(row.runs) > 1:
            walls = [r["seconds"] for r in row.runs]
            notes.insert(0, f"{len(row.runs)} runs {min(walls):.2f}-{max(walls):.2f}s")
        settings = row.runs[-1].get("client_settings")
        if settings and row.tool.startswith("keyledger") and row.scenario == "throughput":
            rps = settings["requests_per_second"]
            notes.append(
                f"client: rps {'no cap' if rps is None else format(rps, 'g')}, "
                f"concurrency {settings['concurrency']}"
            )
        rows.append(
            [
                row.scenario,
                LABELS.get(row.backend, row.backend),
                row.tool,
                row.step,
                f"{wall:.2f}",
                f"{seen / wall:,.0f}" if not math.isnan(seen) else "",
                f"{row.median('requests'):,.0f}",
                f"{row.median('rows_written'):,.0f}" if "rows_written" in row.runs[0] else "-",
                f"{row.median('peak_rss_mib'):.1f}",
                row.verdict,
                "; ".join(notes),
            ]
        )
    headers = [
        "scenario",
        "backend",
        "tool",
        "sync",
        "wall s",
        "keys/s",
        "requests",
        "rows written",
        "peak RSS MiB",
        "check",
        "notes",
    ]
    return markdown_table(headers, rows)


def print_report(report: Report, args: argparse.Namespace, loads: dict[str, str]) -> None:
    print(f"## bench_all: {', '.join(args.scenarios)}{' (quick)' if args.quick else ''}\n")
    print(f"Machine: {machine_summary()}; keyledger at {code_version()}.")
    print("Load average (1 min): " + ", ".join(f"{k} {v}" for k, v in loads.items()) + ".")
    print(
        f"Medians of {args.repeat} runs (dlt: {args.peer_repeat}, memory: {args.memory_repeat}); "
        "each run a fresh process, the simulator in its own, warmed first. keyledger with "
        "the settings a user gets (a config file with only database_url and base_url). "
        "rows written: api_keys rows new, changed or deleted, plus every row other "
        "tables gained (the run ledger left out); dlt's: the rows it normalized and loaded.\n"
    )
    print(main_table(report))
    for note in report.notes:
        print(f"\n{note}")
    for detail in report.details:
        print(f"\n{detail}")
    print("\n### Targets of issue 12\n")
    print(
        markdown_table(
            ["target", "measured", "verdict"],
            [[t.name, t.measured, t.verdict] for t in report.targets],
        )
    )
    if report.failures:
        print("\n**FAILED checks** (results that disagree with the truth):\n")
        for failure in report.failures:
            print(f"- {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke run")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=", ".join(SCENARIOS))
    parser.add_argument("--repeat", type=int, help="runs per measurement, median (default 3)")
    parser.add_argument("--peer-repeat", type=int, help="dlt's runs (default 2; quick 1)")
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=600.0,
        help="seconds after which a dlt run is stopped and reported as such (default 600)",
    )
    parser.add_argument("--memory-repeat", type=int, default=1, help="runs per memory size")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql,mysql")
    parser.add_argument("--postgresql-url", default=DEFAULT_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"])
    parser.add_argument(
        "--tools", default="keyledger,dlt", help="throughput: keyledger, dlt or both"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 3 when a target fails (checks always exit 1)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # SIGTERM ends the run like Ctrl-C: the simulators and databases are cleaned up.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    if args.worker:
        params = json.loads(args.worker)
        (sync_worker if params["mode"] == "sync" else floor_worker)(params)
        return
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    for name, chosen, known in (
        ("scenario", args.scenarios, SCENARIOS),
        ("backend", args.backends, BACKENDS),
    ):
        if set(chosen) - set(known):
            parser.error(f"unknown {name}: {', '.join(sorted(set(chosen) - set(known)))}")
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.peer_repeat = args.peer_repeat or (1 if args.quick else min(args.repeat, 2))
    sizes = QUICK if args.quick else FULL
    report = Report()
    loads = {"start": load_average()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keyledger-bench-all-") as tmp:
        folder = Path(tmp)
        places = workplaces(args, folder, report)
        if {"throughput", "floor"} & set(args.scenarios):
            with simulator(sizes.workspaces, sizes.keys) as sim:
                if "throughput" in args.scenarios:
                    run_throughput(args, report, places, sim)
                    loads["after throughput"] = load_average()
                if "floor" in args.scenarios:
                    run_floor(args, report, folder, sim)
        if "latency" in args.scenarios:
            run_latency(args, report, folder, sizes)
        if "quota" in args.scenarios:
            run_quota(args, report, folder, sizes)
        if "memory" in args.scenarios:
            run_memory(args, report, places, sizes)
            loads["after memory"] = load_average()
        if "growth" in args.scenarios:
            run_growth(args, report, places, sizes)
    loads["end"] = load_average()
    evaluate(report, sizes)
    if "throughput" not in args.scenarios:  # its targets were not asked for
        report.targets = [t for t in report.targets if t.measured != "not measured"]
    report.notes.append(f"Total time {time.monotonic() - started:.0f} s.")
    print_report(report, args, loads)
    if report.failures:
        sys.exit(1)
    if args.strict and any(t.verdict == "FAIL" for t in report.targets):
        sys.exit(3)


if __name__ == "__main__":
    main()
