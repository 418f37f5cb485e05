"""A sync's live progress on a terminal: a row per workspace in flight (pages and keys
fetched, keys a second, time elapsed) under a row for the whole run, and a line that
stays for each workspace once it ends.

Only when stderr is a terminal: under cron, a pipe or CI, nothing of it is drawn and
stderr is exactly what it is without it. Drawn with rich's Progress, which redraws
from its own thread and takes updates from any thread (workspaces load several at
once); while it is live, log lines are printed above it instead of through it.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from etl.core.progress import NO_OBSERVER, SyncObserver


@contextmanager
def sync_progress(*, enabled: bool = True) -> Iterator[SyncObserver]:
    """The observer to hand run_sync: a live display while the block runs when
    ``enabled`` (no --no-progress, --quiet or JSON logs) and stderr is a terminal;
    otherwise one that shows nothing."""
    stderr = sys.stderr
    if not enabled or not stderr.isatty():
        yield NO_OBSERVER
        return
    console = Console(file=stderr)
    if console.is_dumb_terminal:  # TERM=dumb: no cursor moves to redraw with
        yield NO_OBSERVER
        return
    display = _Display(console)
    with display.progress, _logs_above(display.progress.console, stderr):
        yield display


def _numbers() -> Column:
    # Never narrowed: on a narrow terminal the names give way (_Name).
    return Column(no_wrap=True, justify="right")


class _Name(ProgressColumn):
    """The workspace's (or the run's) name, cut short with an ellipsis when the
    terminal is too narrow for it and the numbers."""

    def render(self, task: Task) -> Text:
        return Text(task.description, no_wrap=True, overflow="ellipsis")


class _Rate(ProgressColumn):
    """Keys a second, over the last few seconds."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} keys/s", style="progress.data.speed")


@dataclass
class _Row:
    """What the display counts for a workspace in flight, or for the run."""

    task: TaskID
    started: float = field(default_factory=time.monotonic)
    pages: int = 0
    keys: int = 0


class _Display(SyncObserver):
    """A row per workspace in flight, and one for the run."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            _Name(),
            TextColumn("{task.fields[pages]:,} pages", table_column=_numbers()),
            TextColumn("{task.completed:,.0f} keys", table_column=_numbers()),
            _Rate(table_column=_numbers()),
            TimeElapsedColumn(table_column=_numbers()),
            console=console,
            transient=True,  # the summary line says it all once the run ends
            redirect_stdout=False,  # stdout may be piped on while stderr is a terminal
            speed_estimate_period=10,
        )
        self._lock = threading.Lock()
        self._done = 0
        # No total: how many keys a workspace holds is known only once it is listed.
        self._run = _Row(self.progress.add_task(self._run_description(), total=None, pages=0))
        self._workspaces: dict[tuple[str, str], _Row] = {}

    def _run_description(self) -> str:
        return f"all workspaces: {self._done} done"

    def workspace_started(self, account: str, workspace: str) -> None:
        """Show a row for the workspace (from zero again when it is run again)."""
        with self._lock:
            again = self._workspaces.pop((account, workspace), None)
            if again is not None:  # run again after a deadlock: its pages rolled back
                self.progress.remove_task(again.task)
                self._count(self._run, pages=-again.pages, keys=-again.keys)
            name = f"workspace {workspace} ({account})"
            task = self.progress.add_task(name, total=None, pages=0)
            self._workspaces[account, workspace] = _Row(task)
        self.progress.refresh()  # so even a quick workspace is drawn once

    def page_fetched(self, account: str, workspace: str, keys: int) -> None:
        """Count a page and its keys, for the workspace and the run."""
        with self._lock:
            row = self._workspaces.get((account, workspace))
            if row is not None:
                self._count(row, pages=1, keys=keys)
                self._count(self._run, pages=1, keys=keys)

    def workspace_finished(self, account: str, workspace: str, status: str) -> None:
        """Replace the workspace's row by a line that stays above the display."""
        with self._lock:
            self._done += 1
            self.progress.update(self._run.task, description=self._run_description())
            row = self._workspaces.pop((account, workspace), None)
            line = f"workspace {workspace} ({account}): {status}"
            if row is not None:
                self.progress.remove_task(row.task)
                seconds = time.monotonic() - row.started
                line += f", {row.pages:,} pages, {row.keys:,} keys in {seconds:.1f}s"
        self.progress.console.print(Text(line), soft_wrap=True)

    def _count(self, row: _Row, *, pages: int, keys: int) -> None:
        row.pages += pages
        row.keys += keys
        self.progress.update(row.task, completed=row.keys, pages=row.pages)


@contextmanager
def _logs_above(console: Console, stderr: TextIO) -> Iterator[None]:
    """Point the log handlers that write to stderr at the console while the display is
    live, so each log line is printed above it rather than torn through it; their
    format is theirs."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is stderr
    ]
    above = _Above(console)
    for handler in handlers:
        handler.setStream(above)
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(stderr)


class _Above(io.TextIOBase):
    """A stream whose lines the console prints above the live display, as they are
    (the terminal wraps them; no markup, no highlighting)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._console.print(Text(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Lines are printed as they end; a partial one waits for its end."""
