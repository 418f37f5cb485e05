"""`keyledger sync`'s live progress: drawn when stderr is a terminal (a real
pseudo-terminal here), and not a byte of it otherwise."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from etl.cli.main import cli
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from models import SyncRunWorkspace

TOKEN = "sk-or-v1-progress-test-key-0123456789"
SUMMARY = re.compile(
    r"sync: 2 workspaces ok, 0 failed, 0 skipped; keys seen 500, new 500, changed 0, "
    r"deleted 0; 500 snapshot rows; (?:activity [^;]*; )?\d+ requests, \d+ retries; \d+\.\ds\n"
)
# What a terminal does not print: colours, cursor moves, line erasing.
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    """The simulator on a real loopback socket: 2 workspaces of 250 keys (3 pages each)."""
    world = World(seed=5, workspaces=2, keys_per_workspace=250)
    with SimulatorServer(Simulator(world, token=TOKEN)) as running:
        yield running


def keyledger() -> str:
    command = shutil.which("keyledger", path=str(Path(sys.executable).parent))
    assert command, "keyledger is not installed in this environment"
    return command


def sim_env(server: SimulatorServer, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a sync against ``server``, free of whatever the terminal
    running the tests says about itself."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"TERM", "COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR"}
        and not name.startswith("TTY_")
    }
    env.update(
        OPENROUTER_MANAGEMENT_KEY=TOKEN,
        OPENROUTER_BASE_URL=server.base_url,
        KEYLEDGER_DATABASE_URL=database_url,
        TERM="xterm-256color",
    )
    env.update(extra)
    return env


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``keyledger ARGS`` with stderr on a pseudo-terminal 120 columns wide; its
    exit status and everything it wrote there."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        process = subprocess.Popen(
            [keyledger(), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=env,
        )
    finally:
        os.close(slave)
    written = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal's last writer
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(master)
        code = process.wait(timeout=120)
    return code, written.decode()


def pages_ledgered(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(SyncRunWorkspace.workspace_id, SyncRunWorkspace.pages))
        pages = {row.workspace_id: row.pages for row in rows}
    engine.dispose()
    return pages


def test_sync_on_a_terminal_shows_each_workspace_live(
    server: SimulatorServer, database_url: str
) -> None:
    code, written = run_on_terminal(["sync"], sim_env(server, database_url))
    assert code == 0, written
    shown = ESCAPE.sub("", written).replace("\r\n", "\n")
    assert "\x1b[?25l" in written  # the display hid the cursor while it was live
    pages = pages_ledgered(database_url)
    assert sorted(pages) == sorted(server.simulator.world.workspace_ids)
    for workspace, count in pages.items():
        # Its live row, and the line that stays once it ended.
        assert re.search(rf"workspace {workspace} \(default\) +\d+ pages +[\d,]+ keys", shown)
        assert f"workspace {workspace} (default): ok, {count} pages, 250 keys in " in shown
    assert re.search(r"all workspaces: 2 done +\d+ pages +500 keys +[\d,]+ keys/s", shown)
    # The display is gone before the summary, which ends the output as it always does.
    summary = SUMMARY.search(written.replace("\r\n", "\n"))
    assert summary is not None and summary.end() == len(written.replace("\r\n", "\n"))


def test_log_lines_come_out_whole_above_the_display(
    server: SimulatorServer, database_url: str
) -> None:
    code, written = run_on_terminal(["-vv", "sync"], sim_env(server, database_url))
    assert code == 0, written
    requests = list(
        re.finditer(r"[\d-]+ [\d:,]+ INFO httpx[^:\r\n]*: HTTP Request: GET [^\x1b\r\n]*", written)
    )
    assert len(requests) >= 6  # every page of both workspaces at least
    for request in requests:
        # On a line of its own: the display erased its rows first (2K: erase the line)
        # and drew them again below it, rather than the line running into them.
        assert written[: request.start()].endswith(("\n", "\x1b[2K")), request.group()
        assert request.group().endswith('"HTTP/1.1 200 OK"'), request.group()
        assert written[request.end() :].startswith("\r\n"), request.group()
    assert TOKEN not in written
    assert "all workspaces: 2 done" in ESCAPE.sub("", written)  # the display was live


@pytest.mark.parametrize(
    ("args", "extra"),
    [(["sync", "--no-progress"], {}), (["sync"], {"TERM": "dumb"})],
    ids=["--no-progress", "TERM=dumb"],
)
def test_a_terminal_can_go_without_the_display(
    server: SimulatorServer, database_url: str, args: list[str], extra: dict[str, str]
) -> None:
    code, written = run_on_terminal(args, sim_env(server, database_url, **extra))
    assert code == 0, written
    assert SUMMARY.fullmatch(written.replace("\r\n", "\n")), written


def test_sync_into_a_pipe_writes_only_its_summary(
    server: SimulatorServer, database_url: str
) -> None:
    # FORCE_COLOR would make rich draw into a pipe: whether to show the display is
    # keyledger's decision, made on stderr being a terminal.
    env = sim_env(server, database_url, FORCE_COLOR="1")
    done = subprocess.run(
        [keyledger(), "sync"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert SUMMARY.fullmatch(done.stderr), done.stderr
    assert done.stdout == ""


def test_sync_under_click_runner_writes_only_its_summary(
    server: SimulatorServer, database_url: str
) -> None:
    env = {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }
    result = CliRunner().invoke(cli, ["sync"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert SUMMARY.fullmatch(result.stderr), result.stderr
