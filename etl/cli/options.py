"""What several commands share: the --config and --database-url options, and the one
way a command fails (an error line in the log format, then the exit code)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from etl.cli.logs import say
from etl.core.exit_codes import EXIT_FAILURE

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML settings file (default ./keyledger.toml, or $KEYLEDGER_CONFIG).",
)
database_option = click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy database URL (default sqlite:///keyledger.db, or $KEYLEDGER_DATABASE_URL).",
)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Log one error line on stderr and exit with ``code``."""
    say(f"keyledger: error: {message}")
    sys.exit(code)
