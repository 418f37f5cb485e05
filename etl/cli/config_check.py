"""``keyledger config check``: is this setup ready for its first (or next) sync?

The checks are the library's (the key: etl.openrouter.probe; the database:
etl.store.checks); this module shows what was resolved and prints the checklist.
Exit 0 only when every item is ok, 1 when any needs fixing (2 stays usage errors).
"""

from __future__ import annotations

import sys

import click

from etl.cli.options import config_option, database_option
from etl.core.config import Account, Settings, load_database_url_and_source, load_settings
from etl.core.errors import ConfigError
from etl.openrouter.probe import probe_key
from etl.store.checks import SchemaState, check_database

EXIT_OK, EXIT_TO_FIX = 0, 1


@click.group("config")
def config_group() -> None:
    """Configuration commands."""


@config_group.command("check")
@config_option
@database_option
def config_check(config_path: str | None, database_url: str | None) -> None:
    """Validate the settings, test each management key with one request, check the
    database and its schema, and print a checklist of what to fix.

    Keys are never shown: only whether each is set and where it is read from. Exit 0
    when every item is ok, 1 when something needs fixing.
    """
    items: list[tuple[bool, str]] = []
    settings: Settings | None = None
    try:
        settings = load_settings(config_path, database_url=database_url)
    except ConfigError as exc:
        items.append((False, f"configuration: {exc}"))
    if settings is not None:
        items.append((True, "configuration is valid"))
        url, url_source = settings.database_url, settings.database_url_source
        where = str(settings.config_path) if settings.config_path else "none (environment only)"
        click.echo(f"config file: {where}")
    else:
        try:
            url, url_source = load_database_url_and_source(config_path, database_url=database_url)
        except ConfigError as exc:
            url = None
            if str(exc) not in items[0][1]:
                items.append((False, f"database: {exc}"))
    if settings is not None:
        for account in settings.accounts:
            show_account(account)
            items.append(check_key(account))
    if url is not None:
        items.append(check_schema(url, url_source))
    click.echo("checklist:")
    for ok, text in items:
        click.echo(f"  {'ok ' if ok else 'FIX'}  {text}")
    to_fix = sum(1 for ok, _ in items if not ok)
    if to_fix:
        click.echo(f"keyledger: {to_fix} item(s) to fix", err=True)
        sys.exit(EXIT_TO_FIX)
    click.echo("keyledger: all is well", err=True)


def show_account(account: Account) -> None:
    """The account as resolved: API, where its key comes from, its workspaces."""
    if account.workspaces is None:
        workspaces = "all the key can see"
    else:
        workspaces = ", ".join(
            f"{spec.id} ({spec.name})" if spec.name else spec.id for spec in account.workspaces
        )
    click.echo(f"account {account.name}:")
    click.echo(f"  api: {account.client.base_url}")
    click.echo(f"  management key: set, from {account.key_source}")
    click.echo(f"  workspaces: {workspaces}")
    click.echo(f"  activity: {describe_activity(account)}")


def describe_activity(account: Account) -> str:
    """The account's GET /activity settings in words."""
    settings = account.activity
    if not settings.enabled:
        return "off"
    text = f"on, the latest {settings.refetch_days} completed days re-fetched every run"
    if settings.key_hashes:
        text += f"; per key for {len(settings.key_hashes)} listed keys"
    elif settings.top_keys:
        text += f"; per key for the top {settings.top_keys} keys by the previous day's spend"
    if settings.per_key:
        text += f", at most {settings.key_requests} requests a run"
    return text


def check_key(account: Account) -> tuple[bool, str]:
    """One request with the account's key, as a checklist item."""
    probe = probe_key(account)
    name = f"account {account.name}: management key"
    if probe.problem is None:
        return True, (
            f"{name} accepted by {probe.endpoint} "
            f"(GET /keys, workspace {probe.workspace}: {probe.keys_on_first_page} keys on "
            "the first page)"
        )
    if probe.refused:
        return False, f"{name} refused by {probe.endpoint}: {probe.problem}"
    return False, f"{name} not tested: {probe.problem}"


def check_schema(url: str, source: str) -> tuple[bool, str]:
    """The database and its schema revision, as a checklist item."""
    check = check_database(url)
    click.echo(f"database: {check.url} (from {source})")
    name = f"database {check.url}"
    if check.problem is not None:
        return False, f"{name}: {check.problem}"
    if check.state is SchemaState.NO_DATABASE:
        return True, f"{name}: does not exist yet; the first sync creates it at rev {check.head}"
    if check.state is SchemaState.EMPTY:
        return True, f"{name}: empty; the first sync creates the schema at rev {check.head}"
    return True, f"{name}: connected, schema at rev {check.current} (current)"
