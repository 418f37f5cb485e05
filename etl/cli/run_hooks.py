"""What monitoring gets from one ``keyledger sync``: the dead-man's pings (etl/deadman.py)
and the metrics file (etl/metrics.py).

``RunHooks`` wraps the command's body: it pings ``/start`` on entry and, on the way
out, however the command exits (its ``sys.exit`` status, an interrupt, a crash),
writes the metrics file and pings the exit status with the lines the run printed.
Neither can change that exit status. A dry run writes nothing, so it does neither.
"""

from __future__ import annotations

import time
from types import TracebackType

from etl.cli.run_report import where
from etl.core.config import Settings
from etl.core.exit_codes import exit_code_of_signal
from etl.deadman import Pinger
from etl.metrics import write_run_metrics
from etl.sync import SyncResult


class RunHooks:
    """The monitoring hooks around one sync run; set ``result`` (or ``error``) inside."""

    def __init__(self, settings: Settings, *, dry_run: bool = False) -> None:
        self.settings = settings
        self.result: SyncResult | None = None
        self.error: str | None = None  # the one-line reason a run without a result ended
        self._started = time.monotonic()
        active = not dry_run
        self._metrics_file = settings.metrics_file if active else None
        self._pinger = Pinger(settings.ping_url) if active and settings.ping_url else None

    def __enter__(self) -> RunHooks:
        if self._pinger is not None:
            self._pinger.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        code = exit_status(exc)
        try:
            if self._metrics_file is not None:
                write_run_metrics(
                    self._metrics_file,
                    self.settings,
                    self.result,
                    exit_code=code,
                    seconds=time.monotonic() - self._started,
                )
            if self._pinger is not None:
                self._pinger.finish(code, self.report(code))
        finally:
            if self._pinger is not None:
                self._pinger.close()

    def report(self, code: int) -> str:
        """The ping's body: the lines the run printed (failures, then its summary)."""
        if self.result is None:
            return f"keyledger: error: {self.error or f'exit status {code}'}\n"
        lines = [
            f"keyledger: {where(w.account, w.workspace_id)}: {w.status}: {w.error}"
            for w in self.result.workspaces
            if w.error is not None
        ]
        if self.result.error is not None:
            lines.append(f"keyledger: error: {self.result.error}")
        lines.append(self.result.summary())
        return "\n".join(lines) + "\n"


def exit_status(exc: BaseException | None) -> int:
    """The status the process is about to exit with, given what ends the command."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    if isinstance(exc, KeyboardInterrupt):
        return exit_code_of_signal("SIGINT")
    return 1
