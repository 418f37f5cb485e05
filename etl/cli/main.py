"""The ``keyledger`` command: parse options, build settings, call the library, report.

No SQL, no HTTP and no retry logic here; errors map to the exit codes of DESIGN.md
(etl/core/exit_codes.py); a sync stopped by SIGINT or SIGTERM exits 130 or 143
(etl/cli/signals.py). Every command takes the global options (etl/cli/global_options.py)
and logs through etl/cli/logs.py, configured once before it runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NoReturn

import click

from etl import __version__, api
from etl.cli import signals
from etl.cli.config_check import config_group
from etl.cli.global_options import KeyledgerGroup, with_global_options
from etl.cli.history import runs, status
from etl.cli.logs import LOG_REDACTION, for_people, say, say_summary
from etl.cli.memory import limit_heap_growth
from etl.cli.options import config_option, database_option, fail
from etl.cli.progress import sync_progress
from etl.cli.run_hooks import RunHooks
from etl.cli.run_report import report_sync
from etl.cli.simulate import simulate
from etl.core.config import Settings, load_database_url, load_settings
from etl.core.errors import ConfigError, KeyledgerError
from etl.core.exit_codes import (
    EXIT_FAILURE,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    exit_code_of_signal,
    exit_code_table,
)
from etl.core.redact import url_secret
from etl.core.stop import Stop
from etl.demo import DEFAULT_DEMO_DATABASE, reset_demo_database, run_demo
from etl.openrouter.extract import extract_keys
from etl.reports.build import build_report
from etl.reports.chart import CHART_SUFFIXES, write_chart
from etl.reports.formats import FORMATS
from etl.store.database import open_engine
from etl.store.migrations import MigrationLockedError, check_current, upgrade

# Importable from here as before.
__all__ = ["EXIT_FAILURE", "EXIT_LOCKED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "cli", "main"]


@with_global_options
@click.group(cls=KeyledgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyledger")
def cli() -> None:
    """keyledger: an exact, queryable SQL ledger of OpenRouter API keys and their spend.

    --log-format, --quiet and -v work before or after the command's name.
    """


cli.add_command(simulate)
cli.add_command(runs)
cli.add_command(status)
cli.add_command(config_group)

workspace_option = click.option(
    "--workspace",
    "workspaces",
    multiple=True,
    metavar="ID",
    help='Only this workspace ("default" or a UUID); repeatable.',
)


def build_settings(
    config_path: str | None,
    workspaces: tuple[str, ...],
    database_url: str | None = None,
    *,
    metrics_file: str | None = None,
    ping_url: str | None = None,
) -> Settings:
    """Settings from file and environment, or exit 1 with the one-line reason."""
    try:
        settings = load_settings(
            config_path,
            workspaces=workspaces,
            database_url=database_url,
            metrics_file=metrics_file,
            ping_url=ping_url,
        )
    except ConfigError as exc:
        fail(str(exc))
    for account in settings.accounts:
        LOG_REDACTION.protect(account.management_key.reveal())
    if settings.ping_url is not None:
        LOG_REDACTION.protect(url_secret(settings.ping_url.reveal()))
    return settings


@cli.command(epilog=exit_code_table())
@config_option
@database_option
@workspace_option
@click.option("--dry-run", is_flag=True, help="Fetch and report what would change; write nothing.")
@click.option(
    "--migrate",
    is_flag=True,
    help="Upgrade an old database schema first (an empty database gets its schema anyway).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="Wait up to this long for workspaces another run is syncing (default: skip them).",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No live progress display (shown only when stderr is a terminal).",
)
@click.option(
    "--metrics-file",
    metavar="PATH",
    help="Write the run's Prometheus metrics here at its end, e.g. for node_exporter's "
    "textfile collector (or $KEYLEDGER_METRICS_FILE).",
)
@click.option(
    "--ping-url",
    metavar="URL",
    help="Dead-man's switch: ping this healthchecks.io-style URL at start and end "
    "(better $KEYLEDGER_PING_URL or the config file: it is a secret).",
)
def sync(
    config_path: str | None,
    database_url: str | None,
    workspaces: tuple[str, ...],
    dry_run: bool,
    migrate: bool,
    wait_seconds: float,
    no_progress: bool,
    metrics_file: str | None,
    ping_url: str | None,
) -> None:
    """One sync run: every key of every configured workspace into the database."""
    stop = signals.stop_on_signals()
    settings = build_settings(
        config_path, workspaces, database_url, metrics_file=metrics_file, ping_url=ping_url
    )
    progress = not no_progress and for_people()
    with RunHooks(settings, dry_run=dry_run) as hooks:
        _sync(
            hooks,
            settings,
            dry_run=dry_run,
            migrate=migrate,
            wait_seconds=wait_seconds,
            progress=progress,
            stop=stop,
        )


def _sync(
    hooks: RunHooks,
    settings: Settings,
    *,
    dry_run: bool,
    migrate: bool,
    wait_seconds: float,
    progress: bool,
    stop: Stop,
) -> NoReturn:
    try:
        # The same call an orchestrator makes (etl/api.py): one path for both.
        with sync_progress(enabled=progress) as observer:
            report = api.sync(
                settings,
                dry_run=dry_run,
                migrate=migrate,
                wait_seconds=wait_seconds,
                observer=observer,
                stop=stop,
            )
    except KeyledgerError as exc:
        hooks.error = str(exc)
        if stop.signal_name is not None:
            fail(str(exc), exit_code_of_signal(stop.signal_name))
        fail(str(exc), api.exit_code_for(exc))
    hooks.result = report.result
    if report.schema_change is not None:
        say(f"keyledger: {report.schema_change}", level=logging.WARNING)
    report_sync(report.result)
    sys.exit(report.exit_code)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@config_option
@database_option
def db_upgrade(config_path: str | None, database_url: str | None) -> None:
    """Apply every pending migration (works from any directory)."""
    try:
        url = load_database_url(config_path, database_url=database_url)
        with open_engine(url) as engine:
            change = upgrade(engine)
    except KeyledgerError as exc:
        fail(str(exc), EXIT_LOCKED if isinstance(exc, MigrationLockedError) else EXIT_FAILURE)
    say_summary(f"keyledger: {change.describe()}")


@cli.command()
@config_option
@workspace_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["summary", "jsonl"]),
    default="summary",
    show_default=True,
    help="jsonl: print every key as one JSON line (exact numbers) on stdout.",
)
def extract(config_path: str | None, workspaces: tuple[str, ...], output_format: str) -> None:
    """Read every key of every configured workspace from the API; write no database."""
    settings = build_settings(config_path, workspaces)
    out = sys.stdout if output_format == "jsonl" else None
    try:
        result = extract_keys(settings, out=out)
    except KeyledgerError as exc:
        fail(str(exc))
    for tally in result.failed:
        say(f"keyledger: workspace {tally.workspace.id} failed: {tally.error}")
    code = EXIT_OK
    if result.failed:
        code = EXIT_PARTIAL if len(result.failed) < len(result.workspaces) else EXIT_FAILURE
    say_summary(result.summary(), exit_code=code)
    sys.exit(code)


@cli.command()
@click.option(
    "--database-url",
    metavar="URL",
    help="Load into this (new, empty) database instead of ./keyledger-demo.db, which "
    "is replaced on every run.",
)
@click.option(
    "--nights",
    type=click.IntRange(1, 366),
    default=7,
    show_default=True,
    help="Simulated nights of syncs.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Simulator seed.")
def demo(database_url: str | None, nights: int, seed: int) -> None:
    """Run the bundled simulator and several simulated nights of syncs, then show the data."""
    if database_url is None:
        reset_demo_database(Path(DEFAULT_DEMO_DATABASE))
        database_url = f"sqlite:///{DEFAULT_DEMO_DATABASE}"
    try:
        run_demo(database_url, nights=nights, seed=seed, echo=click.echo)
    except KeyledgerError as exc:
        fail(str(exc))


def chart_path(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """Accept only a .png or .svg file name for ``--output``."""
    if value is not None and value.suffix.lower() not in CHART_SUFFIXES:
        raise click.BadParameter("the chart file must end in .png or .svg")
    return value


@cli.command()
@config_option
@database_option
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="UTC days in the window, which ends at the latest day the ledger has synced.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many keys (and models, and providers) to list by spend.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(list(FORMATS)),
    default="table",
    show_default=True,
    help="table for people; csv or json for programs (structures above).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=chart_path,
    metavar="FILE.png|FILE.svg",
    help="Also draw daily spend per workspace and the top models and providers to this file"
    ' (needs "keyledger[report]").',
)
def report(
    config_path: str | None,
    database_url: str | None,
    days: int,
    top: int,
    output_format: str,
    output: Path | None,
) -> None:
    """Spend per workspace, top keys, keys near their limit and top models and providers
    over the last N days.

    Reads only the analysis views and the tables behind them (what a BI tool sees).
    Unknown days show as '·' in the daily bars.

    \b
    json: {"window": {"start", "end", "days"},
           "workspaces": [{"workspace_id", "name", "total_usd", "unknown_days",
                           "partial_days", "daily": [{"day", "spend_usd",
                           "unknown_keys"}]}],
           "top_keys": [{"key_hash", "name", "workspace_id", "workspace_name",
                         "spend_usd", "unknown_days"}],
           "near_limit": [{"key_hash", "name", "workspace_id", "workspace_name",
                           "credit_limit", "limit_remaining", "utilization",
                           "limit_reset", "days_until_limit", "projected_limit_date"}],
           "near_limit_more": N,
           "activity": {"days", "known_days", "unknown_days", "missing_days",
                        "total_usd", "models_more", "providers_more"},
           "top_models": [{"model", "usage_usd", "byok_usage_inference_usd",
                           "requests", "prompt_tokens", "completion_tokens",
                           "reasoning_tokens", "unknown_days"}],
           "top_providers": [{"provider_name", the same fields}]}
    Money is an exact decimal string; null means unknown (a key's name is null once
    it is deleted). A total is the sum of the known days (null when none is known):
    with unknown_days or partial_days (days whose sum leaves out unknown_keys keys)
    above 0 it is a lower bound. near_limit holds the --top most urgent keys;
    near_limit_more counts the rest. Spend by model and provider comes from the
    activity the sync keeps (GET /activity): a day is known when every workspace's
    activity for it is stored, missing_days were lost for good (they left the API's
    30-day window unfetched), and with unknown_days above 0 the amounts are lower
    bounds; total_usd is null when no activity is stored. Dates are YYYY-MM-DD (UTC).

    \b
    csv: one header, then one row per record: record, workspace_id, workspace_name,
    key_hash, key_name, day, spend_usd, unknown_days, unknown_keys, partial_days,
    credit_limit, limit_remaining, utilization, limit_reset, days_until_limit,
    projected_limit_date, model, provider_name, byok_usage_inference_usd, requests,
    prompt_tokens, completion_tokens, reasoning_tokens, missing_days. record is
    workspace_day, workspace_total (spend_usd holds the total), top_key, near_limit,
    top_model or top_provider (spend_usd holds the usage) or activity_total; an empty
    cell is unknown or does not apply to the record.

    The table rounds money to 1/100 of a cent, shows unknown as '—' and marks a
    total that leaves out unknown days or keys with '≥'; csv and json keep every
    digit. The chart (--output) draws daily spend per workspace and the top models
    and providers.
    """
    try:
        url = load_database_url(config_path, database_url=database_url)
        with open_engine(url) as engine:
            check_current(engine)
            with engine.connect() as connection:
                summary = build_report(connection, days=days, top=top)
        if output is not None:
            write_chart(summary, output)
    except KeyledgerError as exc:
        fail(str(exc))
    click.echo(FORMATS[output_format](summary), nl=False)
    if output is not None:
        say_summary(f"keyledger: wrote the chart to {output}")


def main() -> None:
    """Console-script entry point."""
    limit_heap_growth()  # before any fetch thread exists
    try:
        cli(prog_name="keyledger")
    except SystemExit as done:
        signals.leave_if_stopped(done.code)
        raise
