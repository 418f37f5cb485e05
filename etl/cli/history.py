"""``keyledger runs``, ``keyledger runs show ID`` and ``keyledger status``: the run ledger
read back for people and monitors. They only read: never a write, never an API call.

``status`` is a monitoring check as it is: exit 0 when every workspace synced within
``--max-age``, 5 when one is older or never synced (1 failure, 2 usage error, as for
every command).
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from etl.cli.options import config_option, database_option, fail
from etl.core.clock import utcnow
from etl.core.config import DEFAULT_WORKSPACE, load_configured_workspaces, load_database_url
from etl.core.errors import KeyledgerError
from etl.core.exit_codes import EXIT_OK, EXIT_STALE, EXIT_USAGE
from etl.reports import history as show
from etl.store.database import open_engine
from etl.store.history import reading, recent_runs, run_detail, workspace_syncs
from etl.store.migrations import check_current

DEFAULT_MAX_AGE = "26h"  # a nightly run, with two hours' slack
_AGE_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
T = TypeVar("T")


def parse_age(text: str) -> timedelta:
    """``26h``, ``90m``, ``2d``, ``1d12h`` (units s, m, h, d, w) as a timedelta."""
    spec = text.strip().lower()
    if not spec or _AGE_PART.sub("", spec):
        raise ValueError(
            f"--max-age {text[:40]!r} is not a duration like 26h, 90m, 2d or 1d12h "
            "(units s, m, h, d, w)"
        )
    age = timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _AGE_PART.findall(spec)))
    if not age:
        raise ValueError(f"--max-age {text[:40]!r} should be longer than zero")
    return age


def workspace_id(text: str) -> str:
    """A --workspace value: "default" or a UUID (as sync writes it: lower case)."""
    if text == DEFAULT_WORKSPACE:
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(
            f'--workspace {text[:60]!r} is not "default" or a workspace UUID'
        ) from None


format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people; json for programs (shape in docs/operations.md).",
)


@contextmanager
def _ledger(config_path: str | None, database_url: str | None) -> Iterator[Any]:
    """The database as sync finds it, at the current schema, opened for reading."""
    url = load_database_url(config_path, database_url=database_url)
    with open_engine(url) as engine:
        check_current(engine)
        with reading(engine) as connection:
            yield connection


def _read(config_path: str | None, database_url: str | None, read: Callable[[Any], T]) -> T:
    try:
        with _ledger(config_path, database_url) as connection:
            return read(connection)
    except KeyledgerError as exc:
        fail(str(exc))


@click.group("runs", invoke_without_command=True)
@config_option
@database_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs to list, newest first.",
)
@format_option
@click.pass_context
def runs(
    ctx: click.Context,
    config_path: str | None,
    database_url: str | None,
    limit: int,
    output_format: str,
) -> None:
    """Recent sync runs, newest first: when, how long, how they ended, what they counted.

    Each line: run id, start (UTC), duration, status, workspaces ok/failed/skipped and
    keys seen/new/changed/deleted. `keyledger runs show ID` gives one run's workspaces
    and errors. Dry runs are never recorded, so never listed.
    """
    # `runs --database-url URL show ID` means the same as `runs show ID --database-url URL`.
    chosen = ctx.get_parameter_source("output_format") is not ParameterSource.DEFAULT
    ctx.obj = (config_path, database_url, output_format if chosen else None)
    if ctx.invoked_subcommand is not None:
        return
    found = _read(config_path, database_url, lambda c: recent_runs(c, limit=limit))
    click.echo(
        show.runs_json(found) if output_format == "json" else show.runs_table(found), nl=False
    )


@runs.command("show")
@click.argument("run_id", metavar="ID", type=click.IntRange(1, 2**63 - 1))
@config_option
@database_option
@format_option
@click.pass_context
def runs_show(
    ctx: click.Context,
    run_id: int,
    config_path: str | None,
    database_url: str | None,
    output_format: str,
) -> None:
    """One run in detail: each workspace's outcome, counts and error (exit 1 if unknown)."""
    given_config, given_url, given_format = ctx.obj
    config_path = config_path or given_config
    database_url = database_url or given_url
    if ctx.get_parameter_source("output_format") is ParameterSource.DEFAULT and given_format:
        output_format = given_format
    detail = _read(config_path, database_url, lambda c: run_detail(c, run_id))
    if detail is None:
        fail(f"no run with id {run_id} in the run ledger (`keyledger runs` lists them)")
    text = (
        show.run_detail_json(detail) if output_format == "json" else show.run_detail_table(detail)
    )
    click.echo(text, nl=False)


@click.command("status")
@config_option
@database_option
@click.option(
    "--max-age",
    default=DEFAULT_MAX_AGE,
    show_default=True,
    metavar="AGE",
    help="Oldest acceptable last successful sync, e.g. 26h, 90m, 2d, 1d12h.",
)
@click.option(
    "--workspace",
    "workspaces",
    multiple=True,
    metavar="ID",
    help='Check only this workspace ("default" or a UUID); repeatable.',
)
@format_option
def status(
    config_path: str | None,
    database_url: str | None,
    max_age: str,
    workspaces: tuple[str, ...],
    output_format: str,
) -> None:
    """Each workspace's last successful sync and its age; a monitoring check.

    Lists every workspace the database knows (synced, or attempted and failed) and
    every one the configuration names. The age runs on the local clock from when the
    workspace's last successful sync finished. Delisted workspaces, and those an
    account's workspaces list no longer names, are shown but not checked.

    \b
    Exit codes:
      0  every checked workspace synced within --max-age
      5  some workspace is older, or never synced; or none has synced yet
      1  the database cannot be read, has no schema or an old one; bad config
      2  usage error
    """
    try:
        limit = parse_age(max_age)
        chosen = [workspace_id(w) for w in workspaces]
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        configured = {} if chosen else load_configured_workspaces(config_path)
    except KeyledgerError as exc:
        fail(str(exc))
    expected = [(None, w) for w in chosen] + [
        (account, w) for account, listed in configured.items() for w in listed or ()
    ]
    syncs = _read(config_path, database_url, lambda c: workspace_syncs(c, expected=expected))
    if chosen:
        wanted = set(chosen)
        syncs = [s for s in syncs if s.workspace_id in wanted or s.requested_as & wanted]
    listed = {a: set(w) for a, w in configured.items() if w is not None}
    report = show.judge(syncs, now=utcnow(), max_age=limit, configured=listed)
    text = show.status_json(report) if output_format == "json" else show.status_table(report)
    click.echo(text, nl=False)
    sys.exit(EXIT_OK if report.ok else EXIT_STALE)
