"""Shared pieces of the benchmarks: the simulator process, measured workers, tables.

Every measured scenario runs in a fresh Python process (``run_worker``) so its peak RSS
(``ru_maxrss``) is its own, and the simulator runs in yet another process
(``SimulatorProcess``) so none of the simulated world is counted either.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

TOKEN_ENV = "KEYLEDGER_BENCH_TOKEN"
RESULT_PREFIX = "BENCH-RESULT "
SIMULATOR_START_SECONDS = 600.0


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def keyledger_command() -> list[str]:
    """The ``keyledger`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "keyledger"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("keyledger")
    if found is None:
        raise SystemExit("keyledger is not installed: run `pip install '.[test]'` first")
    return [found]


class SimulatorProcess:
    """``keyledger simulate`` in its own process, on a free loopback port.

    The base URL is the first line the command prints; the process is terminated (then
    killed if it lingers) when the ``with`` block ends.
    """

    def __init__(
        self,
        *,
        workspaces: int,
        keys_per_workspace: int,
        latency_ms: float = 0.0,
        seed: int = 0,
        extra_args: Sequence[str] = (),
        program: Sequence[str] | None = None,
    ) -> None:
        """``extra_args`` go after the usual options; ``program`` replaces
        ``keyledger simulate`` (a script taking the same options)."""
        self.workspaces = workspaces
        self.extra_args = list(extra_args)
        self.program = list(program) if program is not None else None
        self.keys_per_workspace = keys_per_workspace
        self.latency_ms = latency_ms
        self.seed = seed
        self.token = "bench-" + secrets.token_hex(16)
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None
        # Kept open for the life of the simulator (closed in __exit__), read on failure.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    def __enter__(self) -> SimulatorProcess:
        command = [
            *(self.program or [*keyledger_command(), "simulate"]),
            "--port",
            "0",
            "--seed",
            str(self.seed),
            "--workspaces",
            str(self.workspaces),
            "--keys-per-workspace",
            str(self.keys_per_workspace),
            "--latency-ms",
            f"{self.latency_ms:g}",
            "--token",
            self.token,
            *self.extra_args,
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        try:
            self.base_url = self._first_line()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _first_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=SIMULATOR_START_SECONDS)
        line = self._process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self._stderr.seek(0)
            raise RuntimeError(
                f"the simulator did not start (first line {line!r}): {self._stderr.read()[-2000:]}"
            )
        return line

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._stderr.close()

    @property
    def label(self) -> str:
        """e.g. ``10 x 10,000 keys, 50 ms``."""
        return (
            f"{self.workspaces} x {self.keys_per_workspace:,} keys, {self.latency_ms:g} ms latency"
        )

    def control(self, method: str, action: str, **params: str) -> Any:
        """Call a ``/_sim/<action>`` control endpoint and return its JSON."""
        url = self.base_url.removesuffix("/api/v1") + "/_sim/" + action
        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.request(method, url, params=params, headers=headers, timeout=600)
        response.raise_for_status()
        return response.json()

    def truth(self) -> dict[str, Any]:
        """The simulator's ground truth: workspaces, every key's state, daily spend."""
        truth: dict[str, Any] = self.control("GET", "truth")
        return truth

    def live_key_count(self) -> int:
        """Keys the simulator lists (not deleted), from its ground truth."""
        return sum(1 for key in self.truth()["keys"] if key["deleted_at"] is None)

    def touch(self, fraction: float) -> int:
        """Spend a small exact amount on ``fraction`` of the live keys; how many."""
        return int(self.control("POST", "touch", fraction=repr(fraction))["touched"])

    def warm_up(self) -> int:
        """Read every key once, unmeasured: the simulator renders each key's JSON on first
        request and caches it, so every measured run then finds the same warm server."""
        from etl.core.config import ClientSettings, Secret
        from etl.openrouter.client import OpenRouterClient

        settings = ClientSettings(base_url=self.base_url, requests_per_second=1e6, concurrency=8)
        keys = 0
        with OpenRouterClient(settings, Secret(self.token)) as client:
            for workspace in client.list_workspaces():
                for page in client.iter_key_pages(workspace.id):
                    keys += len(page.records)
        return keys

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the simulator process has used so far; 0.0 where
        /proc is missing. Tells whether a 0 ms run waited on the simulator."""
        if self._process is None:
            return 0.0
        try:
            stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def requests_served(self) -> int:
        """Requests the simulator has answered so far (control calls included)."""
        return int(self.control("GET", "stats")["requests"])


# Linux carries ru_maxrss across exec: a child spawned straight from this (possibly big)
# process would start with this process's peak as its own. A tiny launcher in between
# has a small peak, so the worker's ru_maxrss is the worker's alone.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def vm_hwm_mib() -> float | None:
    """The peak RSS of this process's current address space (Linux ``VmHWM``), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_worker(
    script: Path,
    params: dict[str, Any],
    token: str,
    extra_env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
    interpreter: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``script --worker PARAMS`` in a fresh interpreter and return its result.

    The token goes through the environment, never the command line. ``wrapper`` (a
    profiler's command line) replaces the launcher; ``interpreter`` (another venv's
    python) replaces this one for the worker. Past ``timeout`` seconds the worker is
    killed and ``subprocess.TimeoutExpired`` raised.
    """
    env = {**os.environ, **(extra_env or {}), TOKEN_ENV: token}
    worker = [interpreter or sys.executable, str(script), "--worker", json.dumps(params)]
    # Its own session, so a worker that overruns ``timeout`` goes with its launcher.
    with subprocess.Popen(
        [*wrapper, *worker] if wrapper else [sys.executable, "-S", "-c", _LAUNCHER, *worker],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:  # the timeout, or Ctrl-C: no worker left behind
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    results = [
        line[len(RESULT_PREFIX) :] for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)
    ]
    if process.returncode != 0 or not results:
        raise RuntimeError(f"worker {params} failed (exit {process.returncode}):\n{stderr[-4000:]}")
    result: dict[str, Any] = json.loads(results[-1])
    hwm = result.get("vm_hwm_mib")
    if hwm is not None and abs(hwm - result["peak_rss_mib"]) > 2:
        raise RuntimeError(
            f"ru_maxrss {result['peak_rss_mib']:.1f} MiB disagrees with VmHWM {hwm:.1f} MiB: "
            "the worker's peak RSS is not its own"
        )
    return result


def emit_result(result: dict[str, Any]) -> None:
    """Hand a worker's result to ``run_worker`` (one line on stdout)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def worker_token() -> str:
    """The simulator's token, as ``run_worker`` passed it."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise SystemExit(f"{TOKEN_ENV} is not set: run the benchmark without --worker")
    return token


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; numbers right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    numeric = [
        all(_looks_numeric(row[i]) for row in cells) if cells else False
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("x", "").replace("%", "").strip()
    try:
        float(stripped)
    except ValueError:
        return stripped in ("", "-")
    return True


def machine_summary() -> str:
    """One line: cores, Python, platform."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{os.cpu_count()} cores ({usable} usable), "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()} {platform.machine()}"
    )


def code_version() -> str:
    """The checkout's commit (``+dirty`` when files differ from it), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty=+dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described or "unknown"


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews timings)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


class Stopwatch:
    """Wall time of a block, from ``time.perf_counter``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._started
