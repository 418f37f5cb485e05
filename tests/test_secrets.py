"""The management key never shows: not in output, logs, errors or the database."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, MetaData, func, select

from etl.core.errors import ApiStatusError, PayloadError
from etl.openrouter.client import OpenRouterClient
from etl.simulator.server import SimulatorServer
from etl.simulator.service import ECHO_MODES, Faults, Simulator
from etl.simulator.world import World
from etl.store.database import make_engine, masked
from etl.store.migrations import upgrade
from models import SyncRun
from tests.helpers import SECRET, error_body, json_response, key_payload, secret, settings

CANARY = "sk-or-v1-CANARY-7f3a9c0d1e2b"


def traces(text: str, key: str = CANARY) -> list[str]:
    """The forms of ``key`` that ``text`` still shows, ignoring case.

    Checked by hand here rather than with etl.core.redact, so a blind spot there cannot
    hide itself. Slices skip "sk-or-v1-", the prefix every key's public label shares.
    """

    def b64(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    forms = {
        "its start": key[:12],
        "its secret part": key[9:],
        "URL-encoded": quote(key, safe="")[:12],
        "base64": b64(key)[:16],
        "base64 of the header value": b64(f"Bearer {key}")[12:28],
    }
    lowered = text.lower()
    return [name for name, form in forms.items() if form.lower() in lowered]


def run_sync(
    tmp_path: Path,
    base_url: str,
    database_url: str,
    key: str = CANARY,
    *,
    key_env: dict[str, str] | None = None,
    verbosity: str = "-vv",  # debug logging: every library's DEBUG lines are shown
    log_format: str = "text",
    **settings: Any,
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "keyledger.toml"
    lines = ["[openrouter]", *(f"{name} = {value}" for name, value in settings.items())]
    config.write_text("\n".join(lines) + "\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KEYLEDGER_", "OPENROUTER_"))},
        **({"OPENROUTER_MANAGEMENT_KEY": key} if key_env is None else key_env),
        "OPENROUTER_BASE_URL": base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from etl.cli.main import main; main()",
            *([verbosity] if verbosity else []),
            "sync",
            "--config",
            str(config),
            "--log-format",  # after the command, as a global option may be
            log_format,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def database_text(engine: Engine) -> str:
    """Every value of every row of every table, as text."""
    metadata = MetaData()
    metadata.reflect(engine)
    parts = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


SCENARIOS = {
    "401 refused": ({}, {"token": "another-key"}, {}),
    "429 exhausted": (
        {"rate_limit_rate": 1.0, "retry_after_seconds": 0.01},
        {},
        {"max_attempts": 2},
    ),
    "500 exhausted": ({"error_rate": 1.0, "error_burst": 50}, {}, {"max_attempts": 2}),
    "timeouts": (
        {"slow_rate": 1.0, "slow_seconds": 1.0},
        {},
        {"max_attempts": 2, "timeout_seconds": 0.2},
    ),
    "dropped connections": ({"drop_rate": 1.0}, {}, {"max_attempts": 2}),
    "malformed page": ({"malformed_json_rate": 1.0}, {}, {}),
    "success": ({"schema_drift": True}, {}, {}),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_key_appears_nowhere(
    engine: Engine, database_url: str, tmp_path: Path, scenario: str
) -> None:
    faults, simulator_options, settings = SCENARIOS[scenario]
    world = World(seed=2, workspaces=1, keys_per_workspace=20)
    token = simulator_options.get("token", CANARY)
    simulator = Simulator(world, token=token, faults=Faults(**faults))
    with SimulatorServer(simulator) as server:
        done = run_sync(tmp_path, server.base_url, database_url, **settings)
    output = done.stdout + done.stderr
    assert done.returncode == (0 if scenario == "success" else 1), output
    assert not traces(output)
    assert not traces(database_text(engine))
    if scenario == "401 refused":
        assert "refused the management key" in done.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("mode", [mode for mode in ECHO_MODES if mode])
def test_server_echo_of_key_in_an_error_is_scrubbed_from_output_and_ledger(
    engine: Engine, database_url: str, tmp_path: Path, mode: str, log_format: str
) -> None:
    # Each 500 quotes the key (in ``mode``) in its message and in a response header; the
    # message is printed, logged with each retry and kept in the run ledger.
    faults = Faults(error_rate=1.0, error_burst=50, echo_credentials=mode)
    simulator = Simulator(World(seed=2, workspaces=1), token=CANARY, faults=faults)
    with SimulatorServer(simulator) as server:
        # One named workspace: the listing's failure is a workspace's, kept in the ledger.
        done = run_sync(
            tmp_path,
            server.base_url,
            database_url,
            log_format=log_format,
            max_attempts=2,
            workspaces='["default"]',
        )
    assert done.returncode == 1, done.stderr
    if log_format == "json":
        assert all(json.loads(line) for line in done.stderr.splitlines())
    stored = database_text(engine)
    assert "request failed for credentials ***" in done.stderr  # kept, but scrubbed
    assert "request failed for credentials ***" in stored
    assert not traces(done.stdout + done.stderr), done.stderr
    assert not traces(stored)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("mode", ["exact", "base64-bearer"])
def test_key_echoed_in_a_401_header_is_scrubbed_from_debug_logs(
    engine: Engine, database_url: str, tmp_path: Path, mode: str, log_format: str
) -> None:
    # httpcore logs response headers at DEBUG; only the log filter stands between a
    # server that echoes the key in a header and the terminal.
    simulator = Simulator(
        World(seed=2, workspaces=1), token=CANARY, faults=Faults(echo_credentials=mode)
    )
    with SimulatorServer(simulator) as server:
        done = run_sync(
            tmp_path,
            server.base_url,
            database_url,
            key=CANARY.replace("C", "D"),
            log_format=log_format,
        )
    assert done.returncode == 1
    if log_format == "json":
        lines = [json.loads(line) for line in done.stderr.splitlines()]
        assert any("b'X-Echoed-Credentials', b'***" in line["message"] for line in lines)
    assert "b'X-Echoed-Credentials', b'***" in done.stderr  # the header was logged
    assert not traces(done.stderr, CANARY.replace("C", "D")), done.stderr
    assert not traces(database_text(engine), CANARY.replace("C", "D"))


BAD_HEADER_KEYS = {
    "line feed": CANARY[:12] + "\n" + CANARY[12:],
    "carriage return and line feed": CANARY[:12] + "\r\n" + CANARY[12:],
    "non-ASCII": CANARY[:12] + "\u00e9" + CANARY[12:],
}


@pytest.mark.parametrize("verbosity", ["", "-v", "-vv"])
@pytest.mark.parametrize("name", list(BAD_HEADER_KEYS))
def test_key_with_newline_is_refused_before_any_request(
    tmp_path: Path, name: str, verbosity: str
) -> None:
    key = BAD_HEADER_KEYS[name]
    simulator = Simulator(World(seed=2, workspaces=1), token=key)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    upgrade(engine)  # so nothing but the key could stop the run before its requests
    with SimulatorServer(simulator) as server:
        done = run_sync(tmp_path, server.base_url, url, key=key, verbosity=verbosity)
    assert done.returncode == 1
    assert done.stdout == ""
    kind = "a non-ASCII character" if "ASCII" in name else "a line break"
    assert done.stderr.splitlines() == [
        f"keyledger: error: {tmp_path / 'keyledger.toml'}: [openrouter] management key: "
        f"environment variable OPENROUTER_MANAGEMENT_KEY holds {kind} at character 13 of "
        f"{len(key)}, which cannot be sent in an HTTP header"
    ]
    assert simulator.stats.requests == 0
    with engine.connect() as connection:  # refused before a run was even recorded
        assert connection.execute(select(func.count()).select_from(SyncRun)).scalar() == 0
    engine.dispose()


def test_key_file_with_a_non_ascii_character_is_refused_naming_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(CANARY + "\u2019\n", encoding="utf-8")  # a "smart" quote pasted along
    key_file.chmod(0o600)
    simulator = Simulator(World(seed=2, workspaces=1), token=CANARY)
    with SimulatorServer(simulator) as server:
        done = run_sync(
            tmp_path,
            server.base_url,
            f"sqlite:///{tmp_path / 'ledger.db'}",
            key_env={"OPENROUTER_MANAGEMENT_KEY_FILE": str(key_file)},
        )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"management_key_file {key_file} holds a non-ASCII character at character 29" in line
    assert not traces(line)
    assert simulator.stats.requests == 0


# -- the client on its own (MockTransport) ------------------------------------------------


def test_client_scrubs_a_base64_echo_from_its_error_and_retry_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echoed = base64.b64encode(f"Bearer {SECRET}".encode()).decode()
    transport = httpx.MockTransport(
        lambda request: json_response(500, error_body(500, f"upstream rejected {echoed}"))
    )
    client = OpenRouterClient(
        settings(max_attempts=2), secret(), transport=transport, sleep=lambda _: None
    )
    with client, caplog.at_level(logging.INFO), pytest.raises(ApiStatusError) as caught:
        client.fetch_key_page("default", 0)
    # Base64 padding ("=") may follow the mask: it carries no bits of the key.
    assert str(caught.value).rstrip("=").endswith("HTTP 500: upstream rejected ***")
    assert "upstream rejected ***" in caplog.text  # the retry's log line
    assert not traces(str(caught.value) + caplog.text + repr(caught.value.args), SECRET)


def test_key_quoted_back_in_a_payload_error_is_scrubbed() -> None:
    # A server that puts the key where a number belongs: the PayloadError quotes the
    # value it rejects (40 characters of it), which would be a prefix of the key.
    page = {"data": [key_payload(0, usage=SECRET.lower())]}
    transport = httpx.MockTransport(lambda request: json_response(200, page))
    with (
        OpenRouterClient(settings(), secret(), transport=transport) as client,
        pytest.raises(PayloadError) as caught,
    ):
        [r.full() for page in client.iter_key_pages("default") for r in page.records]
    assert "field 'usage' should be a number, got the string '***'" in str(caught.value)
    assert not traces(str(caught.value), SECRET)


def test_key_never_in_a_database_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ledger:db-password-9@127.0.0.1:9/ledger"
    done = run_sync(tmp_path, "http://127.0.0.1:9/api/v1", url)
    assert done.returncode == 1
    assert not traces(done.stdout + done.stderr)
    assert "db-password-9" not in done.stdout + done.stderr


# -- database passwords ------------------------------------------------------------------

# Each written into the URL as a careless user would: unencoded.
PASSWORDS = {
    "at sign": "db-pass@word-9",
    "two at signs": "db-pass@wo@rd-9",
    "colon": "db-pass:word-9",
    "slash": "db-pass/word-9",
    "hash": "db-pass#word-9",
    "percent": "db-pass%word-9",
    "percent-encoded": "db-pass%40word-9",
    "question mark": "db-pass?word-9",
    "all of them": "db-p@ss:w/o#r%d?-9",
}


def fragments(password: str) -> list[str]:
    """Pieces of ``password`` long enough to mean something, split where a URL parser may."""
    pieces = [password, *(piece for piece in re.split(r"[@:/#%?]", password))]
    return [piece for piece in pieces if len(piece) >= 3]


def test_password_with_at_sign_is_masked() -> None:
    url = "postgresql+psycopg://ledger:db-pass@word-9@db.example:5432/ledger"
    assert masked(url) == "postgresql+psycopg://ledger:***@db.example:5432/ledger"


@pytest.mark.parametrize("name", list(PASSWORDS))
def test_password_is_masked_whatever_characters_it_holds(name: str) -> None:
    url = f"postgresql+psycopg://ledger:{PASSWORDS[name]}@db.example:5432/ledger?sslmode=require"
    assert masked(url) == "postgresql+psycopg://ledger:***@db.example:5432/ledger?sslmode=require"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql+pymysql://root@127.0.0.1:3306/test", "mysql+pymysql://root@127.0.0.1:3306/test"),
        ("postgresql+psycopg://:db-pw-9@db/x", "postgresql+psycopg://:***@db/x"),
        ("mysql+pymysql://u:pw@[::1]:3306/db", "mysql+pymysql://u:***@[::1]:3306/db"),
        ("sqlite:////srv/ledger@2026.db", "sqlite:////srv/ledger@2026.db"),
        (
            "postgresql+psycopg://u@db/x?sslmode=require&password=db-pw-9",
            "postgresql+psycopg://u@db/x?sslmode=require&password=***",
        ),
        ("not a url with db-pw-9", "***"),
    ],
)
def test_urls_without_a_user_password_keep_the_rest_visible(url: str, shown: str) -> None:
    assert masked(url) == shown


@pytest.mark.parametrize("name", [name for name in PASSWORDS if "@" not in PASSWORDS[name]])
def test_password_never_shows_when_the_database_cannot_be_reached(
    tmp_path: Path, name: str
) -> None:
    password = PASSWORDS[name]
    url = f"postgresql+psycopg://ledger:{password}@127.0.0.1:9/ledger"
    done = run_sync(tmp_path, "http://127.0.0.1:9/api/v1", url)
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert "cannot connect to postgresql+psycopg://ledger:***@127.0.0.1:9/ledger: " in line
    for piece in fragments(password):
        assert piece not in done.stdout + done.stderr


@pytest.mark.parametrize("name", [name for name in PASSWORDS if "@" in PASSWORDS[name]])
def test_password_with_at_sign_is_refused_without_showing_it(tmp_path: Path, name: str) -> None:
    # SQLAlchemy would take the password's tail for the host name, and the driver's
    # "cannot resolve host" error would print it.
    password = PASSWORDS[name]
    url = f"postgresql+psycopg://ledger:{password}@127.0.0.1:9/ledger"
    done = run_sync(tmp_path, "http://127.0.0.1:9/api/v1", url)
    assert done.returncode == 1
    # With a ':' after the '@' too, SQLAlchemy cannot parse the URL at all.
    reason = (
        "is not a database URL"
        if name == "all of them"
        else "has an '@' in its password (or user name); write each '@' there as %40"
    )
    (line,) = done.stderr.splitlines()
    # The URL came from the environment (not the config file, which does exist).
    assert line.startswith("keyledger: error: environment variable KEYLEDGER_DATABASE_URL ")
    assert reason in line
    for piece in fragments(password):
        assert piece not in done.stderr
