"""SIGINT and SIGTERM during a sync: ask the run to stop, as a cron citizen should.

The first signal only sets the run's ``Stop`` (etl/core/stop.py): the run rolls back
the workspaces in flight, records itself ``interrupted``, prints its summary and exits
128 + the signal's number (130 for SIGINT, 143 for SIGTERM). A second signal ends the
process at once; the database rolls back what was open, and the next run marks this
one abandoned.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

import click

from etl.cli.logs import formatted
from etl.core.stop import Stop

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received = False  # a stop signal came: the process exits without joining fetch threads


def stop_on_signals() -> Stop:
    """From now until the current click command ends, SIGINT and SIGTERM request the
    returned ``Stop`` (a no-op off the main thread, where handlers cannot be set)."""
    stop = Stop()

    def handle(signum: int, _frame: FrameType | None) -> None:
        global _received
        _received = True
        name = signal.Signals(signum).name
        # os.write, not logging or print: a handler may run in the middle of another
        # write to stderr, holding its lock. The line is in the log format all the same.
        if stop.requested:
            os.write(2, formatted(f"keyledger: {name} again: stopping at once").encode())
            os._exit(128 + signum)
        notice = f"keyledger: {name}: stopping; the workspaces in flight roll back"
        os.write(2, formatted(notice).encode())
        stop.request(name)

    if threading.current_thread() is threading.main_thread():
        previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}

        def restore() -> None:
            for number, handler in previous.items():
                signal.signal(number, handler)

        click.get_current_context().call_on_close(restore)
    return stop


def leave_if_stopped(code: int | str | None) -> None:
    """After a command stopped by a signal has recorded its end and printed its summary,
    exit with ``code`` at once, without joining threads still waiting on the network (a
    request in flight would hold the exit back until it ends, up to the client's
    timeout). Otherwise return, and the caller exits as usual."""
    if not _received or not isinstance(code, int):
        return
    if all(t.daemon or t is threading.main_thread() for t in threading.enumerate()):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
