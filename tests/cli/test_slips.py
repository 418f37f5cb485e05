"""Slips get one helpful line: a database URL with a wrong or missing driver, an
unwritable SQLite location, an API host that does not resolve or refuses."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from etl.cli.main import cli
from etl.store.database import make_engine

TOKEN = "sk-or-v1-slips-test-key-0123456789"
PASSWORD = "hunter2-in-the-url"

# (URL, what the line must suggest)
SLIPS = [
    (f"postgres://ledger:{PASSWORD}@db.example/ledger", "write postgresql+psycopg://..."),
    (f"postgresql+psycopg2://ledger:{PASSWORD}@db.example/ledger", "write postgresql+psycopg://"),
    (f"mysql://ledger:{PASSWORD}@db.example/ledger", "write mysql+pymysql://..."),
    ("sqllite:///x.db", "unknown scheme 'sqllite://' (a typo?): write sqlite:///x.db"),
    ("sqlite://x.db", "sqlite://x.db has two slashes: write sqlite:///x.db"),
    ("sim.db", "'sim.db' is a file path, not a database URL: write sqlite:///sim.db"),
    ("/var/lib/sim.db", "write sqlite:////var/lib/sim.db"),
    (f"nosuchdb://ledger:{PASSWORD}@h/x", "write sqlite:///keyledger.db, postgresql+psycopg://"),
]


def invoke(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def one_line(result: click.testing.Result) -> str:
    """The only line on stderr (no traceback), with nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(("url", "suggestion"), SLIPS, ids=[url for url, _ in SLIPS])
@pytest.mark.parametrize("source", ["option", "environment", "file"])
@pytest.mark.parametrize("command", [("sync",), ("db", "upgrade")], ids=" ".join)
def test_database_url_slip_is_one_line_naming_the_fix_and_its_source(
    tmp_path: Path, url: str, suggestion: str, source: str, command: tuple[str, ...]
) -> None:
    env = {"OPENROUTER_MANAGEMENT_KEY": TOKEN}
    args = list(command)
    config = tmp_path / "keyledger.toml"
    if source == "option":
        args += ["--database-url", url]
        named = "keyledger: error: --database-url: "
    elif source == "environment":
        env["KEYLEDGER_DATABASE_URL"] = url
        named = "keyledger: error: environment variable KEYLEDGER_DATABASE_URL: "
    else:
        config.write_text(f"database_url = {json.dumps(url)}\n")
        args += ["--config", str(config)]
        named = f"keyledger: error: {config}: 'database_url': "
    result = invoke(*args, env=env)
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith(named), line
    assert suggestion in line
    assert PASSWORD not in result.output
    assert not list(tmp_path.glob("*.db"))  # refused before any database is touched


@pytest.mark.parametrize(
    ("module", "url", "install"),
    [
        (
            "psycopg",
            "postgresql+psycopg://ledger@127.0.0.1/ledger",
            'pip install "keyledger[postgres]"',
        ),
        ("pymysql", "mysql+pymysql://ledger@127.0.0.1/ledger", 'pip install "keyledger[mysql]"'),
    ],
)
def test_missing_driver_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, url: str, install: str
) -> None:
    # None in sys.modules makes `import psycopg` fail as it does where it is not installed.
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    result = invoke("db", "upgrade", "--database-url", url)
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("keyledger: error: --database-url: the ")
    assert "driver is not installed" in line and install in line


def test_missing_sqlite_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    result = invoke("db", "upgrade", "--database-url", f"sqlite:///{missing / 'x.db'}")
    assert result.exit_code == 1
    assert one_line(result) == (
        f"keyledger: error: cannot open the SQLite database: directory {missing} does not exist "
        f"({tmp_path / 'no'} is missing); create it first"
    )


def test_a_file_where_the_sqlite_directory_should_be_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    result = invoke("db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'data' / 'x.db'}")
    assert result.exit_code == 1
    assert one_line(result).endswith(f"{tmp_path / 'data'} is a file, not a directory")


def unprivileged(work: Callable[[], list[object]]) -> list[object]:
    """``work()`` in a forked child that is not root (root writes through permissions)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)  # nobody
            answer = json.dumps(work())
        except BaseException as exc:
            answer = json.dumps(["child failed", repr(exc)])
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    return list(json.loads(data))


@pytest.fixture
def world_walkable_dir() -> Iterator[Path]:
    """A directory anyone may walk into (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="keyledger-slips-"))
    path.chmod(0o755)
    yield path
    for folder in path.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o755)
    shutil.rmtree(path)


def test_read_only_sqlite_directory_is_named(world_walkable_dir: Path) -> None:
    base = world_walkable_dir
    readonly = base / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    warm = make_engine(f"sqlite:///{base / 'warm.db'}")  # the driver loaded before the fork
    warm.connect().close()
    warm.dispose()

    def sync_into_readonly() -> list[object]:
        result = CliRunner().invoke(
            cli, ["db", "upgrade", "--database-url", f"sqlite:///{readonly / 'x.db'}"], env={}
        )
        return [result.exit_code, result.stderr]

    exit_code, stderr = unprivileged(sync_into_readonly)
    assert exit_code == 1, stderr
    assert stderr == (
        f"keyledger: error: cannot open the SQLite database: directory {readonly} is not "
        "writable by this user (SQLite creates x.db and its -wal/-shm files there); choose "
        "another directory or fix its permissions\n"
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    ("base_url", "named", "attempts"),
    [
        (
            "http://nonexistent.invalid/api/v1",
            "cannot connect to http://nonexistent.invalid:80: the host name "
            "nonexistent.invalid does not resolve",
            2,
        ),
        (
            "http://127.0.0.1:{port}/api/v1",
            "cannot connect to http://127.0.0.1:{port}: connection refused",
            3,
        ),
    ],
    ids=["unresolvable", "refused"],
)
def test_unreachable_api_host_is_named_and_not_retried_for_long(
    tmp_path: Path, base_url: str, named: str, attempts: int
) -> None:
    port = closed_port()
    env = {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": base_url.format(port=port),
        "KEYLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
    }
    result = invoke("sync", env=env)
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if "failed: GET /workspaces" in line]
    assert len(failed) == 1, result.stderr
    assert f"gave up after {attempts} attempts" in failed[0]
    assert named.format(port=port) in failed[0]
    assert TOKEN not in result.output
