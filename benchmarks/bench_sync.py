"""Sync benchmark: ``etl.sync.run_sync`` of the simulator into SQLite, PostgreSQL, MariaDB.

Runs ``keyledger simulate`` (0 ms latency) in its own process; for each backend it
migrates an empty database, then measures three syncs, each in a fresh worker process
(its peak RSS is its own): the first sync, an unchanged second sync, and a sync after
10% of the keys changed (``POST /_sim/touch?fraction=0.1``). Tables are dropped
afterwards. Then one first sync into SQLite runs under cProfile (every thread).

    python benchmarks/bench_sync.py                      # 10 x 10,000 keys, every backend
    python benchmarks/bench_sync.py --quick              # 10 x 1,000 keys: a smoke run
    python benchmarks/bench_sync.py --backends sqlite --no-profile
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

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

BACKENDS = {
    "sqlite": None,  # a file in a temporary directory
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
# Tables whose rows a sync writes, beyond api_keys and usage_snapshots (when present).
HISTORY_TABLES = ("api_key_versions", "daily_key_spend", "workspace_days")
CHANGED_FRACTION = 0.1
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- the measured process ----------------------------------------------------------------
class AllThreadsProfile:
    """cProfile of the calling thread and of every thread started while it is on.

    The fetch threads parse the JSON, so a main-thread-only profile would miss it.
    Each new thread gets its own ``cProfile.Profile`` (installed by
    ``threading.setprofile`` before the thread runs); ``stats`` merges them all.
    """

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        self._main = cProfile.Profile()

    def _start_thread(self, frame: FrameType, event: str, arg: object) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def __enter__(self) -> AllThreadsProfile:
        threading.setprofile(self._start_thread)
        self._main.enable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._main.disable()
        threading.setprofile(None)

    def stats(self) -> pstats.Stats:
        """Every thread's profile, merged (call after the profiled threads ended)."""
        stats = pstats.Stats(self._main)
        for profile in self._profiles:
            stats.add(profile)
        return stats


@dataclass
class MainThreadSplit:
    """Where run_sync's thread spends its time: blocked on the next page, or loading."""

    waiting: float = 0.0  # inside next(pages): the fetch threads had no page ready
    loading: float = 0.0  # between pages: load_keys and the rest of the loop body

    def timed(self, pages: Iterator[Any]) -> Iterator[Any]:
        """``pages``, timing the consumer's side of each step."""
        while True:
            started = time.perf_counter()
            try:
                page = next(pages)
            except StopIteration:
                self.waiting += time.perf_counter() - started
                return
            got = time.perf_counter()
            self.waiting += got - started
            yield page
            self.loading += time.perf_counter() - got


def timed_client_factory(split: MainThreadSplit) -> Callable[[Any], Any]:
    """A run_sync client factory whose key listings report into ``split``."""
    from etl.core.config import DEFAULT_WORKSPACE, Account
    from etl.openrouter.client import OpenRouterClient

    class TimedClient(OpenRouterClient):
        def iter_key_pages(self, workspace_id: str = DEFAULT_WORKSPACE) -> Iterator[Any]:
            return split.timed(super().iter_key_pages(workspace_id))

    def make(account: Account) -> OpenRouterClient:
        return TimedClient(account.client, account.management_key)

    return make


def worker(params: dict[str, Any]) -> None:
    """Run one sync and emit wall time, counts and peak RSS (and a profile, if asked)."""
    from etl.cli.memory import limit_heap_growth
    from etl.core.config import Account, ClientSettings, Secret, Settings
    from etl.store.database import make_engine
    from etl.sync import run_sync

    limit_heap_growth()  # as the keyledger command does at start: RSS as a user sees it
    token = worker_token()
    rss_after_imports = peak_rss_mib()
    url = params["database_url"]
    client = ClientSettings(
        base_url=params["base_url"],
        requests_per_second=params["rps"],
        concurrency=params["concurrency"],
    )
    account = Account(name="bench", management_key=Secret(token), workspaces=None, client=client)
    settings = Settings(database_url=url, accounts=(account,))
    engine = make_engine(url)
    profile = AllThreadsProfile() if params.get("profile_path") else None
    split = MainThreadSplit()
    with Stopwatch() as watch, profile or contextlib.nullcontext():
        result = run_sync(engine, settings, client_factory=timed_client_factory(split))
    engine.dispose()
    if result.status != "ok":
        errors = "; ".join(f"{w.workspace_id}: {w.error}" for w in result.workspaces if w.error)
        raise SystemExit(f"sync {result.status}: {result.summary()} {errors}")
    if profile is not None:
        profile.stats().dump_stats(params["profile_path"])
    emit_result(
        {
            "seconds": watch.seconds,
            "pid": os.getpid(),
            "run_id": result.run_id,
            "workspaces": len(result.workspaces),
            "pages": sum(w.pages for w in result.workspaces),
            "seen": sum(w.counts.seen for w in result.workspaces),
            "new": sum(w.counts.new for w in result.workspaces),
            "changed": sum(w.counts.changed for w in result.workspaces),
            "deleted": sum(w.deleted for w in result.workspaces),
            "snapshots": sum(w.counts.snapshots for w in result.workspaces),
            "waiting_for_pages": split.waiting,
            "loading_pages": split.loading,
            "rss_after_imports_mib": rss_after_imports,
            "peak_rss_mib": peak_rss_mib(),
            "vm_hwm_mib": vm_hwm_mib(),
        }
    )


# -- databases ---------------------------------------------------------------------------
def pytest_running() -> list[int]:
    """Process ids of running pytest processes (the shared test databases are theirs)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if int(entry.name) != os.getpid() and any(b"pytest" in arg for arg in argv):
                pids.append(int(entry.name))
    return pids


def wait_for_pytest(limit_seconds: float) -> bool:
    """Wait until no pytest runs (at most ``limit_seconds``); whether none does."""
    deadline = time.monotonic() + limit_seconds
    while pids := pytest_running():
        if time.monotonic() >= deadline:
            return False
        print(f"  waiting: pytest is running (pids {pids})", file=sys.stderr)
        time.sleep(10)
    return True


def reachable(url: str) -> str | None:
    """None when the database answers, else why not (one line)."""
    from sqlalchemy import text

    from etl.store.database import make_engine

    try:
        engine = make_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # a missing driver, a refused connection, bad credentials
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"{type(exc).__name__}: {reason[0] if reason else ''}"[:200]
    return None


def object_names(url: str) -> tuple[set[str], set[str]]:
    """(tables, views) of the database."""
    from sqlalchemy import inspect

    from etl.store.database import make_engine

    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        return set(inspector.get_table_names()), set(inspector.get_view_names())
    finally:
        engine.dispose()


def table_identity(url: str) -> str | None:
    """Something that changes when alembic_version is dropped and created again: the
    table's oid on PostgreSQL, its creation time on MariaDB; None when it is absent."""
    from sqlalchemy import text

    from etl.store.database import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            dialect = connection.dialect.name
            if dialect == "postgresql":
                query = "SELECT to_regclass('alembic_version')::oid::text"
            elif dialect == "mysql":
                query = (
                    "SELECT CAST(CREATE_TIME AS CHAR) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'alembic_version'"
                )
            else:  # SQLite: a file in our own temporary directory
                query = "SELECT name FROM sqlite_master WHERE name = 'alembic_version'"
            value = connection.execute(text(query)).scalar()
    finally:
        engine.dispose()
    return None if value is None else str(value)


def drop_views(engine: Engine, views: set[str]) -> None:
    """Drop these views, dependents first (found by retrying: no dialect tells it alike)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    left = set(views)
    while left:
        failed: dict[str, DBAPIError] = {}
        for view in sorted(left):
            try:
                with engine.begin() as connection:
                    connection.execute(text(f"DROP VIEW IF EXISTS {view}"))
            except DBAPIError as exc:  # another view still depends on it
                failed[view] = exc
        if failed and len(failed) == len(left):
            raise next(iter(failed.values()))
        left = set(failed)


@contextlib.contextmanager
def scratch_schema(url: str) -> Iterator[None]:
    """Migrate an empty database to head; drop exactly what that created afterwards.

    A pytest run (they share these databases and wipe them) that started meanwhile may
    have replaced the tables with its own: then they are left to it.
    """
    from sqlalchemy import MetaData

    from etl.store.database import make_engine
    from etl.store.migrations import upgrade
    from models import Base

    ours = {"alembic_version", *Base.metadata.tables}
    tables_before, views_before = object_names(url)
    clash = sorted(tables_before & ours)
    if clash:
        raise SkipBackend(f"it already holds keyledger tables ({', '.join(clash)}): in use?")
    engine = make_engine(url)
    identity = None
    try:
        upgrade(engine)
        identity = table_identity(url)
        yield
    finally:
        if identity is None or table_identity(url) != identity:
            print(f"  {url}: not our tables any more; left alone", file=sys.stderr)
        else:
            tables_after, views_after = object_names(url)
            drop_views(engine, views_after - views_before)
            metadata = MetaData()
            metadata.reflect(engine, only=sorted((tables_after - tables_before) & ours))
            metadata.drop_all(engine)
            left = object_names(url)
            if left != (tables_before, views_before):
                raise RuntimeError(f"tables left behind in {url}: {left}")
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """Rows of api_keys, usage_snapshots and the history tables the sync maintains."""
    from sqlalchemy import func, select

    from etl.store.database import make_engine
    from models import Base

    wanted = ("api_keys", "usage_snapshots", *HISTORY_TABLES)
    names = [n for n in wanted if n in Base.metadata.tables]
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: int(
                    connection.scalar(select(func.count()).select_from(Base.metadata.tables[name]))
                    or 0
                )
                for name in names
            }
    finally:
        engine.dispose()


class SkipBackend(Exception):
    """This backend cannot be benchmarked now (the reason is the message)."""


# -- the orchestrating process -----------------------------------------------------------
@dataclass
class Step:
    """One measured sync and what it wrote."""

    backend: str
    name: str
    result: dict[str, Any]
    snapshot_rows: int  # usage_snapshots rows the sync added (from the database)
    api_keys_rows: int  # api_keys rows after the sync (from the database)
    expected_changed: int
    history_rows: dict[str, int]  # rows each history table gained (from the database)


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def sync_params(sim: SimulatorProcess, url: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "database_url": url,
        "base_url": sim.base_url,
        "rps": args.rps,
        "concurrency": args.concurrency,
    }


def bench_backend(
    backend: str, url: str, sim: SimulatorProcess, live: int, args: argparse.Namespace
) -> list[Step]:
    """Migrate, first sync, unchanged sync, sync after 10% changed; check every count."""
    steps: list[Step] = []
    with scratch_schema(url):
        before = row_counts(url)
        for name in ("first sync", "unchanged sync", f"{CHANGED_FRACTION:.0%} changed"):
            expected = live if name == "first sync" else 0
            if name.endswith("changed"):
                expected = sim.touch(CHANGED_FRACTION)
            if backend != "sqlite" and pytest_running():
                raise SkipBackend("a pytest run started meanwhile: stopped to leave it alone")
            result = run_worker(Path(__file__), sync_params(sim, url, args), sim.token)
            after = row_counts(url)
            step = Step(
                backend,
                name,
                result,
                after["usage_snapshots"] - before["usage_snapshots"],
                after["api_keys"],
                expected,
                {t: after[t] - before[t] for t in HISTORY_TABLES if t in after},
            )
            check(step, live)
            steps.append(step)
            print(
                f"  {LABELS[backend]}, {name}: {result['seconds']:.2f}s, "
                f"new {result['new']:,}, changed {result['changed']:,}, "
                f"snapshots {step.snapshot_rows:,}, peak RSS {result['peak_rss_mib']:.1f} MiB",
                file=sys.stderr,
            )
            before = after
    return steps


def check(step: Step, live: int) -> None:
    """Fail loudly unless the sync saw every key and wrote exactly what changed."""
    r = step.result
    first = step.name == "first sync"
    problems = []
    if r["seen"] != live:
        problems.append(f"saw {r['seen']:,} keys, the simulator has {live:,}")
    if step.api_keys_rows != live:
        problems.append(f"api_keys has {step.api_keys_rows:,} rows, expected {live:,}")
    if (r["new"] if first else r["changed"]) != step.expected_changed or (
        r["changed"] if first else r["new"]
    ):
        problems.append(
            f"new {r['new']:,} / changed {r['changed']:,}, expected {step.expected_changed:,}"
        )
    if step.snapshot_rows != step.expected_changed or r["snapshots"] != step.snapshot_rows:
        problems.append(
            f"{step.snapshot_rows:,} usage_snapshots rows added (SyncResult "
            f"{r['snapshots']:,}), expected {step.expected_changed:,}"
        )
    if problems:
        raise SystemExit(f"FAILED: {LABELS[step.backend]} {step.name}: " + "; ".join(problems))


def sync_table(steps: list[Step]) -> str:
    rows = [
        [
            LABELS[s.backend],
            s.name,
            f"{s.result['seconds']:.2f}",
            f"{s.result['seen'] / s.result['seconds']:,.0f}",
            f"{s.result['seen']:,}",
            f"{s.result['new'] + s.result['changed'] + s.result['deleted']:,}",
            f"{s.snapshot_rows:,}",
            ", ".join(f"{t} {n:,}" for t, n in s.history_rows.items()) or "-",
            f"{s.result['waiting_for_pages']:.1f} / {s.result['loading_pages']:.1f}",
            f"{s.result['peak_rss_mib']:.1f}",
        ]
        for s in steps
    ]
    headers = [
        "backend",
        "sync",
        "wall s",
        "keys/s",
        "keys seen",
        "api_keys rows written",
        "usage_snapshots rows written",
        "other rows written",
        "waiting for pages / loading them s",
        "peak RSS MiB",
    ]
    return markdown_table(headers, rows)


# -- the profiles ------------------------------------------------------------------------
WAITING = "waiting: idle threads, locks, futures, sleeps"
DATABASE = "database driver: C calls (sqlite3 / psycopg / PyMySQL)"
REDUMP = "raw_json re-serialising: etl/core/exact_json.py dump_json"
PARSE_JSON = "JSON parse: json.loads with Decimal numbers"
RECORDS = "etl/openrouter/records.py: parse_key and its field readers"
LOAD = "etl/store/{loading,workspace_load,versions,daily_spend,bulk}.py: per-row Python"
TYPES = "models/types.py: Money, UtcDateTime bind/result processing"
SQLALCHEMY = "SQLAlchemy: statement building, compile cache, per-row binds"
HTTP = "HTTP: httpx, httpcore, h11, sockets, etl/openrouter/client.py and its retries"
PAGINATION = "etl/openrouter/paging.py"
BUILTINS = "other C built-ins: str, dict, datetime, Decimal methods"
OTHER = "other Python"
_CLIENT_MODULES = tuple(
    f"etl/openrouter/{name}.py" for name in ("client", "retry", "statuses", "headers")
)
_FETCHES = ("fetchone", "fetchmany", "fetchall")
_DB_CALLS = ("do_execute", "do_executemany", "do_execute_no_params", "do_commit", "do_rollback")


def _category(path: str, name: str) -> str:
    """The category of a function (a cProfile entry or a py-spy frame)."""
    if name.startswith(("<method 'acquire' of '_thread", "<method 'get' of '_queue")):
        return WAITING
    if "time.sleep" in name or "select" in name:
        return WAITING
    if "sqlite3." in name or any(p in path for p in ("/psycopg", "/pymysql", "/sqlite3/")):
        return DATABASE
    if path.endswith("sqlalchemy/engine/default.py") and name in _DB_CALLS:
        return DATABASE
    if path.endswith("sqlalchemy/engine/cursor.py") and name in _FETCHES:
        return DATABASE  # the DBAPI cursor's fetch: SQLite runs a SELECT as rows are fetched
    if "_socket.socket" in name or "/ssl.py" in path or "/socket.py" in path:
        return HTTP
    if path.endswith("json/decoder.py") or (name == "loads" and "json/" in path):
        return PARSE_JSON
    if name == "dump_json" or "json/encoder.py" in path or (name == "dumps" and "json/" in path):
        return REDUMP
    if path.endswith("etl/core/exact_json.py") and name != "parse_json":
        return REDUMP  # the writer's walk and its scalar encoders
    rules = (
        (
            ("etl/openrouter/records.py", "etl/core/key_fields.py", "etl/core/column_limits.py"),
            RECORDS,
        ),
        (
            (
                "etl/store/loading.py",
                "etl/store/workspace_load.py",
                "etl/store/versions.py",
                "etl/store/daily_spend.py",
                "etl/store/bulk.py",
            ),
            LOAD,
        ),
        (("models/",), TYPES),
        (("/sqlalchemy/",), SQLALCHEMY),
        (("/httpx/", "/httpcore/", "/h11/", *_CLIENT_MODULES), HTTP),
        (("etl/openrouter/paging.py",), PAGINATION),
    )
    for markers, label in rules:
        if any(m in path for m in markers):
            return label
    return BUILTINS if path == "~" else OTHER


def _where(path: str, line: int, name: str) -> str:
    """A short name: ``file:line function``, or the built-in's own description."""
    if path == "~":
        return name.strip("<>")
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO_ROOT)):
        path = str(Path(path).relative_to(REPO_ROOT))
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{path}:{line} {name}"


def _share_table(by_category: dict[str, float], total: float, unit: str) -> str:
    rows = [
        [label, f"{value:.2f}", "" if label == WAITING else f"{value / total:.0%}"]
        for label, value in sorted(by_category.items(), key=lambda kv: -kv[1])
    ]
    return markdown_table(["category", unit, "share"], rows)


def cprofile_report(stats_path: Path, wall: float, top: int) -> str:
    """Top functions by cumulative and self time, and self time by category."""
    entries = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    rows = [
        (_where(path, line, name), calls, own, cumulative, _category(path, name))
        for (path, line, name), (_, calls, own, cumulative, _) in entries.items()
    ]
    busy = sum(r[2] for r in rows if r[4] != WAITING)
    by_category: dict[str, float] = {}
    for row in rows:
        by_category[row[4]] = by_category.get(row[4], 0.0) + row[2]
    plumbing = ("threading.py", "concurrent/futures/thread.py", "{method 'run' of")
    by_cumulative = [
        r
        for r in sorted(rows, key=lambda r: -r[3])
        if r[4] != WAITING and not any(p in r[0] for p in plumbing)
    ][:top]
    by_self = sorted((r for r in rows if r[4] != WAITING), key=lambda r: -r[2])[:top]
    return "\n".join(
        [
            f"Wall time under cProfile: {wall:.1f} s. Self time summed over all threads: "
            f"{busy:.1f} s busy, plus waiting. Self time of a C call that releases the GIL "
            "(sqlite3, sockets, os.urandom) includes waiting to get the GIL back.\n",
            "#### Self time by category\n",
            _share_table(by_category, busy, "self s"),
            f"\n#### Top {top} by cumulative time (thread plumbing left out)\n",
            markdown_table(
                ["function", "calls", "cumulative s", "self s"],
                [[r[0], f"{r[1]:,}", f"{r[3]:.2f}", f"{r[2]:.2f}"] for r in by_cumulative],
            ),
            f"\n#### Top {top} by self time (waiting left out)\n",
            markdown_table(
                ["function", "calls", "self s", "cumulative s"],
                [[r[0], f"{r[1]:,}", f"{r[2]:.2f}", f"{r[3]:.2f}"] for r in by_self],
            ),
        ]
    )


# A sample belongs to the sync when run_sync or a fetch thread is on its stack.
_IN_SYNC = ("run_sync (", "concurrent/futures/thread.py")
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*):(?P<line>\d+)\)$")


def _frame(text: str) -> tuple[str, str]:
    """(short name, category) of one py-spy frame ``function (file:line)``."""
    match = _FRAME.match(text)
    if match is None:
        return text, OTHER
    path, line, name = match["path"], int(match["line"]), match["name"]
    name = name.rsplit(".", 1)[-1] if "." in name and not name.startswith("<") else name
    return _where(path, line, name), _category(path, name)


def py_spy_report(raw_path: Path, wall: float, rate: float, top: int) -> str:
    """GIL-holding samples (``py-spy --gil``): by category (of the innermost frame, or
    ``dump_json`` anywhere in the stack), by function self and cumulative, by thread."""
    return _py_spy_tables(raw_path, wall, rate, top, only_sync_thread=False)


def py_spy_wall_report(raw_path: Path, wall: float, rate: float, top: int) -> str:
    """Wall-clock samples of run_sync's thread (``py-spy --idle``): where the thread
    that loads pages spends its time, C calls that release the GIL included."""
    return _py_spy_tables(raw_path, wall, rate, top, only_sync_thread=True)


def _py_spy_tables(
    raw_path: Path, wall: float, rate: float, top: int, *, only_sync_thread: bool
) -> str:
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    by_category: dict[str, float] = {}
    total = outside = main_thread = 0
    for line in raw_path.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        markers = ("run_sync (",) if only_sync_thread else _IN_SYNC
        if not any(marker in stack for marker in markers):
            outside += count  # start-up (imports, engine), or another thread
            continue
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        main_thread += count if "run_sync (" in stack else 0
        leaf, category = frames[-1]
        if any(c == REDUMP for _, c in frames):
            category = REDUMP
        own[leaf] = own.get(leaf, 0) + count
        for name in {n for n, _ in frames}:
            cumulative[name] = cumulative.get(name, 0) + count
        by_category[category] = by_category.get(category, 0.0) + count / rate
    seconds = total / rate
    plumbing = ("threading.py", "concurrent/futures/thread.py", "<module>", "bench_sync.py")

    def table(counts: dict[str, int], label: str) -> str:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        rows = [
            [name, f"{n / rate:.2f}", f"{n / total:.0%}"]
            for name, n in ranked
            if not any(p in name for p in plumbing)
        ][:top]
        return markdown_table(["function", f"{label} {share}", "share"], rows)

    if only_sync_thread:
        share = "s of run_sync's thread"
        header = (
            f"run_sync took {wall:.1f} s under py-spy; {seconds:.1f} s of samples of its "
            f"thread ({total:,} at {rate:g}/s). A C call shows as the Python line that "
            "called it: the driver's executemany is the database's time, with or without "
            "the GIL; time spent waiting for the GIL shows at the line that waits.\n"
        )
    else:
        share = "s with the GIL"
        header = (
            f"run_sync took {wall:.1f} s under py-spy. Some thread held the GIL for "
            f"{seconds:.1f} s of it ({seconds / wall:.0%}): run_sync's thread "
            f"{main_thread / rate:.1f} s, the fetch threads {(total - main_thread) / rate:.1f} s "
            f"({total:,} samples at {rate:g}/s; start-up before run_sync, "
            f"{outside / rate:.1f} s, left out). C code that runs without the GIL (sqlite3 "
            "executing a statement, socket I/O) is not sampled; C code that holds it shows as "
            "the Python line that called it.\n"
        )
    return "\n".join(
        [
            header,
            "#### Time by category\n",
            _share_table(by_category, seconds, share),
            f"\n#### Top {top} by self time\n",
            table(own, "self"),
            f"\n#### Top {top} by cumulative time (thread plumbing left out)\n",
            table(cumulative, "cumulative"),
        ]
    )


def py_spy_path() -> str | None:
    """The py-spy executable of this environment, if installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def fresh_sqlite(folder: Path, name: str) -> str:
    """A migrated SQLite database in ``folder``."""
    from etl.store.database import make_engine
    from etl.store.migrations import upgrade

    url = f"sqlite:///{folder / name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def run_profiles(sim: SimulatorProcess, args: argparse.Namespace, live: int) -> list[str]:
    """Profiled syncs into fresh SQLite files: a first sync under each profiler, and
    an unchanged (second) sync under py-spy; their reports."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="keyledger-bench-") as tmp:
        keep = Path(args.profile_dir or tmp)
        keep.mkdir(parents=True, exist_ok=True)
        if "cprofile" in args.profilers:
            stats_path = keep / "sync.pstats"
            url = fresh_sqlite(Path(tmp), "cprofile.db")
            params = {**sync_params(sim, url, args), "profile_path": str(stats_path)}
            result = run_worker(Path(__file__), params, sim.token)
            check_profiled(result, live, live)
            reports.append(
                "### cProfile (deterministic, every thread; inflates many small calls)\n\n"
                + cprofile_report(stats_path, result["seconds"], args.top)
            )
        if "py-spy" in args.profilers:
            py_spy = py_spy_path()
            if py_spy is None:
                reports.append("py-spy is not installed (`pip install py-spy`): skipped.")
            modes = [
                ("--gil", "py-spy --gil (sampling: the thread holding the GIL)", py_spy_report),
                ("--idle", "py-spy --idle: run_sync's thread, wall clock", py_spy_wall_report),
            ]
            runs = [(m, sync) for sync in ("first", "unchanged") for m in modes]
            for (flag, title, report), sync in [] if py_spy is None else runs:
                raw_path = keep / f"sync.{sync}.py-spy{flag}.txt"
                url = fresh_sqlite(Path(tmp), f"py-spy{flag}-{sync}.db")
                if sync == "unchanged":  # a first sync, unprofiled, to have something stored
                    first = run_worker(Path(__file__), sync_params(sim, url, args), sim.token)
                    check_profiled(first, live, live)
                wrapper = [py_spy, "record", "--format", "raw", "--output", str(raw_path)]
                wrapper += ["--rate", f"{args.py_spy_rate:g}", "--full-filenames", "--function"]
                wrapper += [flag]
                result = run_worker(
                    Path(__file__), sync_params(sim, url, args), sim.token, wrapper=[*wrapper, "--"]
                )
                check_profiled(result, live, live if sync == "first" else 0)
                reports.append(
                    f"### {title}; {sync} sync\n\n"
                    + report(raw_path, result["seconds"], args.py_spy_rate, args.top)
                )
    return reports


def check_profiled(result: dict[str, Any], live: int, new: int) -> None:
    if result["seen"] != live or result["new"] != new:
        raise SystemExit(
            f"FAILED: a profiled sync saw {result['seen']:,} of {live:,} keys, "
            f"{result['new']:,} new where {new:,} were expected"
        )
    print(f"  profiled sync: {result['seconds']:.2f}s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--keys-per-workspace", type=int, help="default 10,000 (quick: 1,000)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated, of: sqlite, postgresql, mysql (MariaDB)",
    )
    parser.add_argument("--postgresql-url", default=BACKENDS["postgresql"])
    parser.add_argument("--mysql-url", default=BACKENDS["mysql"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rps", type=float, default=1000.0, help="client requests_per_second")
    parser.add_argument(
        "--pytest-wait",
        type=float,
        default=900.0,
        help="seconds to wait for running pytest processes before skipping PG/MariaDB",
    )
    parser.add_argument(
        "--profilers",
        default="cprofile,py-spy",
        help="comma-separated: cprofile, py-spy (if installed); empty for none",
    )
    parser.add_argument("--profile-dir", help="keep sync.pstats and the raw py-spy stacks here")
    parser.add_argument("--py-spy-rate", type=float, default=200.0, help="samples per second")
    parser.add_argument("--top", type=int, default=20, help="rows of each profile table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    keys = args.keys_per_workspace or (1_000 if args.quick else 10_000)
    load_before = load_average()
    outcome = Outcome()
    with SimulatorProcess(workspaces=args.workspaces, keys_per_workspace=keys) as sim:
        live = sim.live_key_count()
        print(f"simulator: {sim.label}: {live:,} live keys", file=sys.stderr)
        sim.warm_up()
        for backend in backends:
            with contextlib.ExitStack() as stack:
                if backend == "sqlite":
                    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="keyledger-"))
                    url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                else:
                    url = args.postgresql_url if backend == "postgresql" else args.mysql_url
                try:
                    why = None if backend == "sqlite" else reachable(url)
                    if why is not None:
                        raise SkipBackend(f"not reachable ({why})")
                    if backend != "sqlite" and not wait_for_pytest(args.pytest_wait):
                        raise SkipBackend("a pytest run is using the shared test databases")
                    outcome.steps += bench_backend(backend, url, sim, live, args)
                except SkipBackend as exc:
                    message = f"{LABELS[backend]} skipped: {exc}"
                    print(message, file=sys.stderr)
                    outcome.skipped.append(message)
        args.profilers = {p.strip() for p in args.profilers.split(",") if p.strip()}
        profiles = run_profiles(sim, args, live) if args.profilers else []

    print(f"## Sync: {args.workspaces} workspaces x {keys:,} keys, simulator at 0 ms\n")
    print(f"Machine: {machine_summary()}; keyledger at {code_version()}.")
    print(f"Load average (1 min): {load_before} before, {load_average()} after.")
    print(
        f"Client: concurrency {args.concurrency}, requests_per_second {args.rps:g}; "
        "each sync in a fresh process; simulator in its own process.\n"
    )
    print(sync_table(outcome.steps))
    for message in outcome.skipped:
        print(f"\n{message}")
    if profiles:
        print(f"\n## Profiles: syncs of {live:,} keys into SQLite\n")
        print("\n\n".join(profiles))


if __name__ == "__main__":
    main()
