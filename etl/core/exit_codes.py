"""The exit codes of ``keyledger`` (DESIGN.md), declared once: the commands exit with
these names, the Python API reports the code the command line would exit with, and
``sync --help`` lists them from this table."""

from __future__ import annotations

import signal

from etl.core.statuses import RunStatus

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_LOCKED = 4
EXIT_STALE = 5  # `keyledger status` only: a workspace older than --max-age, or never synced

# What each code means to whoever reads it from cron or a monitor.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "every workspace synced (workspaces another run had are skipped)",
    EXIT_FAILURE: "failure: configuration, management key, database, or nothing synced",
    EXIT_USAGE: "usage error: an unknown option or a bad value on the command line",
    EXIT_PARTIAL: "partial: some workspaces (or an account's activity) failed, the rest committed",
    EXIT_LOCKED: "locked: another run holds every workspace (or the migration lock)",
    130: "interrupted by SIGINT (Ctrl-C): workspaces in flight rolled back, finished ones kept",
    143: "interrupted by SIGTERM: workspaces in flight rolled back, finished ones kept",
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


def exit_code_of(status: RunStatus, interrupted: str | None = None) -> int:
    """The code a sync run that ended ``status`` exits with; one stopped by a signal
    (``interrupted``, "SIGTERM") exits as a shell reports it: 128 + its number."""
    if interrupted is not None:
        return exit_code_of_signal(interrupted)
    return _RUN_EXIT_CODES.get(status, EXIT_FAILURE)


def exit_code_of_signal(signal_name: str) -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signal.Signals[signal_name].value
