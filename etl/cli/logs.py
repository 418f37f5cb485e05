"""Logging, configured once per command: what reaches stderr, in which format.

Two kinds of lines reach stderr. The command's own (its errors, the per-workspace
failures and the summary) come from the ``keyledger`` logger (``OUTPUT``); in text they
print bare, as they always have. Everything else is a log record of keyledger or a
library, timestamped. ``--log-format json`` writes both kinds as one JSON object per
line: time, level, logger, message, and run_id, account and workspace where the record
is about one (etl.core.log_context), plus the summary's figures on its line.

How much: by default warnings and errors; ``-v`` adds each workspace's progress and
every retry, ``-vv`` debug (HTTP requests too); ``--quiet`` only errors and the summary.
Every line, in either format, goes through the redaction filter first.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from etl.core.log_context import CONTEXT_FIELDS, LogContextFilter
from etl.core.redact import RedactingFilter

OUTPUT = logging.getLogger("keyledger")
# Scrubs every management key from every log line; keys are added once they are loaded.
LOG_REDACTION = RedactingFilter()

_TEXT_LINE = "%(asctime)s %(levelname)s %(name)s%(about)s: %(message)s"
_LABELS = {"run_id": "run", "account": "account", "workspace": "workspace"}


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a test's capture, too),
    unless pointed at another stream for a while (the live display's, etl.cli.progress)."""

    _pinned = False

    def setStream(self, stream: Any) -> Any:
        self._pinned = stream is not sys.stderr
        return super().setStream(stream)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._pinned:
            self.stream = sys.stderr
        super().emit(record)


class TextFormatter(logging.Formatter):
    """The command's own lines bare; other records timestamped, with what they are about."""

    def __init__(self) -> None:
        super().__init__(_TEXT_LINE)

    def format(self, record: logging.LogRecord) -> str:
        if record.name == OUTPUT.name:
            return record.getMessage()
        about = [f"{_LABELS[name]} {v}" for name in CONTEXT_FIELDS if (v := _field(record, name))]
        record.about = f" [{', '.join(about)}]" if about else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = _field(record, name)
            if value is not None:
                entry[name] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update((name, value) for name, value in fields.items() if value is not None)
        # The redaction filter leaves a scrubbed exc_text; format it here only if it did not.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str)


def _field(record: logging.LogRecord, name: str) -> object:
    return getattr(record, name, None)


class _Threshold(logging.Filter):
    """Records at ``level`` or above, and the summary line whatever its level."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or bool(getattr(record, "summary", False))


_for_people = True  # text logs without --quiet: a live display may join them


def for_people() -> bool:
    """Whether the logs as configured are for a person (text, not --quiet): a machine
    reading JSON lines, or a cron job asking for quiet, gets no live display."""
    return _for_people


def configure_logging(*, log_format: str = "text", verbosity: int = 0, quiet: bool = False) -> None:
    """Send log records to stderr in ``log_format``; replaces what an earlier call set up."""
    global _for_people
    _for_people = log_format == "text" and not quiet
    level = logging.ERROR if quiet else logging.WARNING - 10 * min(verbosity, 2)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # On the handler, not a logger: records of library loggers (httpx and httpcore log
    # at DEBUG, exceptions with header values included) propagate to it unfiltered.
    for keep in (_Threshold(level), LogContextFilter(), LOG_REDACTION):
        handler.addFilter(keep)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    OUTPUT.setLevel(logging.DEBUG)  # its lines are chosen by the handler's threshold
    # After a lost connection psycopg also warns "error ignored terminating <Pipeline>";
    # keyledger reports the loss itself, in its one error line. Likewise SQLAlchemy's
    # pool logs, with a traceback, each connection it cannot reset once the database is
    # gone (seen on MariaDB with workspaces loading at once). -v shows them.
    logging.getLogger("psycopg").setLevel(logging.NOTSET if verbosity else logging.ERROR)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.NOTSET if verbosity else logging.CRITICAL)
    # One line per HTTP request (or alembic's "Context impl SQLiteImpl.") is debug, not
    # progress: -v shows keyledger's own.
    for chatty in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(logging.NOTSET if verbosity > 1 else logging.WARNING)


def formatted(message: str, *, level: int = logging.WARNING) -> str:
    """``message`` as ``say`` would write it (text or a JSON object), without handling
    it: for a signal handler, which must not take the logging locks."""
    record = OUTPUT.makeRecord(OUTPUT.name, level, __file__, 0, message, (), None)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, StderrHandler)]
    formatter = handlers[0].formatter if handlers and handlers[0].formatter else TextFormatter()
    return formatter.format(record) + "\n"


def say(message: str, *, level: int = logging.ERROR, **fields: object) -> None:
    """One of the command's own lines (an error, a workspace's failure) on stderr."""
    OUTPUT.log(level, message, extra={"fields": fields} if fields else None)


def say_summary(message: str, *, level: int = logging.INFO, **fields: object) -> None:
    """The run's summary line: shown even with --quiet; ``fields`` go to its JSON."""
    OUTPUT.log(level, message, extra={"summary": True, "fields": fields})
