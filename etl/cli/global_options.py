"""The options every command takes (``--log-format``, ``--quiet``, ``-v``), before or
after the command's name: ``keyledger -v sync`` and ``keyledger sync -v`` alike.

``KeyledgerGroup`` adds them to each command registered with it, and to its subgroups'
commands in turn; what is given at each level is gathered in the context, and logging is
configured from it once, just before the command runs (etl/cli/logs.py). A -v counts
wherever it stands (``keyledger -v sync -v`` is -vv); a --log-format after the command
wins over one before it, and either over ``$KEYLEDGER_LOG_FORMAT``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from etl.cli.logs import configure_logging, say
from etl.core.config import LOG_FORMAT_ENV, LOG_FORMATS, load_log_format
from etl.core.errors import ConfigError
from etl.core.exit_codes import EXIT_FAILURE

_META = "keyledger.logging"
C = TypeVar("C", bound=click.Command)


@dataclass
class LogChoice:
    """What the command line asked for, gathered over the group and the command."""

    log_format: str | None = None
    verbosity: int = 0
    quiet: bool = False


def _choice(ctx: click.Context) -> LogChoice:
    choice: LogChoice = ctx.meta.setdefault(_META, LogChoice())  # meta is shared by the chain
    return choice


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    choice = _choice(ctx)
    if param.name == "log_format" and value is not None:
        choice.log_format = value
    elif param.name == "verbose":
        choice.verbosity += value
    elif param.name == "quiet":
        choice.quiet = choice.quiet or value


def _options() -> list[click.Parameter]:
    """Fresh instances for one command (click keeps per-command state in them)."""
    return [
        click.Option(
            ["--log-format"],
            type=click.Choice(LOG_FORMATS),
            default=None,
            expose_value=False,
            callback=_remember,
            help="Log lines on stderr as text for people, or json: one object per line for "
            f"log collectors (default text, or ${LOG_FORMAT_ENV}).",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Only errors and the final summary on stderr (for cron).",
        ),
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_remember,
            help="More log output on stderr: each workspace's progress and every retry; "
            "-vv for debug (HTTP requests too).",
        ),
    ]


def _configured(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` run once logging is configured from what the command line gathered."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        choice = _choice(ctx)
        if choice.quiet and choice.verbosity:
            raise click.UsageError("--quiet and --verbose ask for opposite things; use one")
        try:
            log_format = choice.log_format or load_log_format() or "text"
        except ConfigError as exc:
            configure_logging()
            say(f"keyledger: error: {exc}")
            ctx.exit(EXIT_FAILURE)
        configure_logging(log_format=log_format, verbosity=choice.verbosity, quiet=choice.quiet)
        return callback(*args, **kwargs)

    return run


def with_global_options(command: C) -> C:
    """Give ``command`` the global options (once), and configure logging before it runs."""
    if any(param.name == "log_format" for param in command.params):
        return command
    command.params.extend(_options())
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():  # a group built elsewhere, then added
            with_global_options(subcommand)
    elif command.callback is not None:
        command.callback = _configured(command.callback)
    return command


class KeyledgerGroup(click.Group):
    """A group whose commands, and subgroups, all take the global options."""

    group_class = type  # subgroups made with @group.group() are KeyledgerGroups too

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register ``cmd`` with the global options added."""
        super().add_command(with_global_options(cmd), name)
