"""The exit codes of ``keyledger`` (DESIGN.md), declared once: the commands exit with
these names, the Python API reports the code the command line would exit with, and
``sync --help`` lists them from this table."""

from __future__ import annotations

from etl.core.statuses import RunStatus

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_LOCKED = 4

# What each code means to whoever reads it from cron or a monitor.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "every workspace synced (workspaces another run had are skipped)",
    EXIT_FAILURE: "failure: configuration, management key, database, or nothing synced",
    EXIT_USAGE: "usage error: an unknown option or a bad value on the command line",
    EXIT_PARTIAL: "partial: some workspaces failed, the others are committed",
    EXIT_LOCKED: "locked: another run holds every workspace (or the migration lock)",
}


def exit_code_table() -> str:
    """The codes as help text: one per line, kept as written by click (``\\b``)."""
    lines = [f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()]
    return "\b\nExit codes:\n" + "\n".join(lines)


_RUN_EXIT_CODES = {
    RunStatus.OK: EXIT_OK,
    RunStatus.PARTIAL: EXIT_PARTIAL,
    RunStatus.LOCKED: EXIT_LOCKED,
}


def exit_code_of(status: RunStatus) -> int:
    """The code a sync run that ended ``status`` exits with."""
    return _RUN_EXIT_CODES.get(status, EXIT_FAILURE)
