"""The metrics file: a run's figures in Prometheus text format, for node_exporter's
textfile collector (``--metrics-file``, ``metrics_file``, ``KEYLEDGER_METRICS_FILE``).

Written at the end of every run, failed ones included, and replaced whole: the text
goes to a hidden temporary file in the same directory (which the collector, reading
only ``*.prom``, ignores), is flushed to disk, then renamed over the old file, so a
scrape never sees half a file. Every figure is a gauge: each run replaces the last
run's figures rather than adding to them.

The last success of each workspace comes from the run ledger, so a workspace that
failed this run still shows when it last synced (and an alert on its age fires).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from etl.core.config import Settings
from etl.core.errors import KeyledgerError
from etl.core.statuses import ActivityStatus, RunStatus, WorkspaceStatus
from etl.store.database import make_engine, one_line
from etl.store.last_success import last_successes
from etl.sync import SyncResult

log = logging.getLogger(__name__)

PREFIX = "keyledger_"
# The run outcomes a monitor may alert on; each gets a 0/1 series, so a rule can say
# keyledger_run_status{status="ok"} == 0 without waiting for the series to appear.
RUN_STATUSES = (RunStatus.OK, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.LOCKED)
WORKSPACE_STATUSES = (
    WorkspaceStatus.OK,
    WorkspaceStatus.FAILED,
    WorkspaceStatus.SKIPPED,
    WorkspaceStatus.DELISTED,
)
ALL_WORKSPACES = "*"  # a WorkspaceResult for an account whose workspaces could not be listed

Labels = Mapping[str, str]


@dataclass(frozen=True)
class RunOutcome:
    """What the metrics of one run are made of."""

    exit_code: int
    status: RunStatus
    seconds: float
    finished: float  # Unix time
    result: SyncResult | None  # None when the run failed before it had one
    last_success: Mapping[tuple[str, str], datetime]
    accounts: tuple[str, ...]


def write_run_metrics(
    path: Path, settings: Settings, result: SyncResult | None, *, exit_code: int, seconds: float
) -> None:
    """Gather the run's figures (and the ledger's last successes) and write them to
    ``path``; a failure to do so is logged as a warning, never raised."""
    accounts = tuple(account.name for account in settings.accounts)
    outcome = RunOutcome(
        exit_code=exit_code,
        status=result.status if result is not None else _status_of(exit_code),
        seconds=result.seconds if result is not None else seconds,
        finished=time.time(),
        result=result,
        last_success=_ledger_successes(settings.database_url, accounts),
        accounts=accounts,
    )
    try:
        write_atomically(path, render(outcome))
    except OSError as exc:
        log.warning("cannot write the metrics file %s: %s", path, exc.strerror or exc)


def _status_of(exit_code: int) -> RunStatus:
    return RunStatus.LOCKED if exit_code == 4 else RunStatus.FAILED


def _ledger_successes(
    database_url: str, accounts: tuple[str, ...]
) -> dict[tuple[str, str], datetime]:
    """The ledger's last successes; none when the database cannot tell (it is gone, or
    has no schema yet): the run's own failure line already says why."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return last_successes(connection, accounts)
    except (SQLAlchemyError, KeyledgerError) as exc:
        log.info("metrics: cannot read the last successes: %s", one_line(exc))
        return {}
    finally:
        engine.dispose()


def render(outcome: RunOutcome) -> str:
    """The metrics of one run in Prometheus text exposition format (version 0.0.4)."""
    result = outcome.result
    lines: list[str] = []
    _family(
        lines,
        "run_timestamp_seconds",
        "When the last sync run ended (Unix time).",
        [({}, outcome.finished)],
    )
    _family(
        lines,
        "run_duration_seconds",
        "How long the last sync run took.",
        [({}, outcome.seconds)],
    )
    _family(
        lines,
        "run_exit_code",
        "Exit status of the last sync run (0 ok, 1 failed, 3 partial, 4 locked).",
        [({}, outcome.exit_code)],
    )
    _family(
        lines,
        "run_status",
        "1 for the status the last sync run ended with, 0 for the others.",
        [({"status": s.value}, int(s is outcome.status)) for s in RUN_STATUSES],
    )
    states = [w.status for w in result.workspaces] if result else []
    _family(
        lines,
        "run_workspaces",
        "Workspaces of the last sync run by outcome (failed: the run's failures).",
        [({"status": s.value}, states.count(s)) for s in WORKSPACE_STATUSES],
    )
    workspaces = result.workspaces if result else []
    committed = "in the last sync run (committed work only)"
    figures = {
        "keys_seen": (f"Distinct keys listed {committed}.", sum(w.counts.seen for w in workspaces)),
        "keys_new": (
            f"Keys seen for the first time {committed}.",
            sum(w.counts.new for w in workspaces),
        ),
        "keys_changed": (
            f"Known keys whose stored row changed {committed}.",
            sum(w.counts.changed for w in workspaces),
        ),
        "keys_deleted": (
            f"Keys confirmed deleted {committed}.",
            sum(w.deleted for w in workspaces),
        ),
        "snapshots_written": (
            f"usage_snapshots rows written {committed}.",
            sum(w.counts.snapshots for w in workspaces),
        ),
        "activity_days_fetched": (
            f"Workspace-days of GET /activity stored whole {committed}.",
            sum(a.counts.days_fetched for a in result.activity) if result else 0,
        ),
        "activity_days_missing": (
            f"Workspace-days recorded missing (left the 30-day window unfetched) {committed}.",
            sum(a.counts.days_missing for a in result.activity) if result else 0,
        ),
        "requests": (
            "HTTP requests the last sync run sent to the management API, retries included.",
            result.requests if result else 0,
        ),
        "retries": (
            "Requests the last sync run retried after a transient failure.",
            result.retries if result else 0,
        ),
    }
    for name, (help_text, value) in figures.items():
        _family(lines, f"run_{name}", help_text, [({}, value)])
    _family(
        lines,
        "workspace_failed",
        "1 when the workspace failed in the last sync run, 0 when it did not.",
        [(labels, int(failed)) for labels, failed in _workspace_outcomes(outcome)],
    )
    _family(
        lines,
        "activity_failed",
        "1 when the account's GET /activity part failed in the last sync run, 0 when not.",
        [
            ({"account": a.account}, int(a.status is ActivityStatus.FAILED))
            for a in (result.activity if result else [])
        ],
    )
    _family(
        lines,
        "workspace_last_success_timestamp_seconds",
        "When the workspace last synced successfully (Unix time, from the run ledger).",
        [
            ({"account": account, "workspace": workspace}, finished.timestamp())
            for (account, workspace), finished in sorted(outcome.last_success.items())
            if _monitored(outcome, account, workspace)
        ],
    )
    return "".join(lines)


def _workspace_outcomes(outcome: RunOutcome) -> Iterable[tuple[Labels, bool]]:
    """Each workspace of the run and whether it failed; an account whose workspaces
    could not be listed fails every workspace the ledger knows for it."""
    result = outcome.result
    if result is None:
        return
    seen: set[tuple[str, str]] = set()
    for w in result.workspaces:
        if w.status is WorkspaceStatus.DELISTED:
            continue
        pairs = (
            [pair for pair in sorted(outcome.last_success) if pair[0] == w.account]
            if w.workspace_id == ALL_WORKSPACES
            else [(w.account, w.workspace_id)]
        )
        for pair in pairs:
            if pair not in seen:
                seen.add(pair)
                yield (
                    {"account": pair[0], "workspace": pair[1]},
                    (w.status is WorkspaceStatus.FAILED),
                )


def _monitored(outcome: RunOutcome, account: str, workspace: str) -> bool:
    """Whether the run was meant to sync this workspace: one it attempted (or skipped),
    or any of an account it could not list; with no result, every workspace the ledger
    knows. A workspace no longer configured or no longer listed drops out."""
    if outcome.result is None:
        return True
    return any(
        w.account == account
        and w.status is not WorkspaceStatus.DELISTED
        and w.workspace_id in (workspace, ALL_WORKSPACES)
        for w in outcome.result.workspaces
    )


def _family(
    lines: list[str], name: str, help_text: str, samples: Iterable[tuple[Labels, float]]
) -> None:
    full = PREFIX + name
    lines.append(f"# HELP {full} {_escape_help(help_text)}\n")
    lines.append(f"# TYPE {full} gauge\n")
    for labels, value in samples:
        lines.append(f"{full}{_labels(labels)} {_number(value)}\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    # The format's three escapes in label values: backslash, double quote, line feed.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: a reader sees the old file or the
    new one, never part of one. The temporary file never outlives a failure."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes it private (0600); node_exporter often runs as another user.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
