"""`keyledger runs` and `keyledger status` as text: a table for people, JSON for programs.

Timestamps are ISO-8601 in UTC (``2026-12-01T17:20:03.123456+00:00``, always with
microseconds); durations and ages are seconds (``duration_seconds``, ``age_seconds``,
to the microsecond); counts are integers. The shapes (new keys may be added, none
removed or renamed):

``runs``: ``{"runs": [RUN, ...]}``, newest first, where RUN is
``{"id", "started_at", "finished_at" (null while running), "duration_seconds" (null
while running), "status", "hostname", "pid", "keyledger_version", "error",
"workspaces": {"ok", "failed", "skipped", "delisted", "abandoned", "running", "total"},
"keys": {"seen", "new", "changed", "deleted"}, "pages", "snapshots_written"}``.

``runs show ID``: ``{"run": RUN, "workspaces": [{"account", "requested_as",
"workspace_id", "name", "status", "started_at", "finished_at", "duration_seconds",
"server_time", "keys": {...}, "pages", "snapshots_written", "error"}, ...]}``.

``status``: ``{"checked_at", "max_age_seconds", "ok" (true when some workspace is
fresh and none is stale or never synced), "counts": {"fresh", "stale", "never_synced",
"delisted", "not_configured"}, "workspaces": [{"workspace_id", "name", "account",
"state" (one of those five), "last_success_at", "last_success_run", "age_seconds",
"server_time", "delisted_at", "last_attempt": null | {"run_id", "status",
"finished_at", "error"}}, ...]}``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from etl.core.statuses import WorkspaceStatus
from etl.reports.text_width import display_width, pad, truncate
from etl.store.history import KeyTotals, RunDetail, RunRow, RunWorkspaceRow, WorkspaceSync

FRESH, STALE, NEVER = "fresh", "stale", "never_synced"
DELISTED, UNCONFIGURED = "delisted", "not_configured"  # shown, never checked
STATES = (FRESH, STALE, NEVER, DELISTED, UNCONFIGURED)
NAME_WIDTH = 24  # terminal columns for a workspace name
ERROR_WIDTH = 200  # an error line in a table; JSON keeps it whole


@dataclass(frozen=True)
class Freshness:
    """One workspace judged against the maximum age."""

    sync: WorkspaceSync
    state: str
    age: timedelta | None


@dataclass(frozen=True)
class StatusReport:
    """Every workspace's freshness at ``checked_at``."""

    checked_at: datetime
    max_age: timedelta
    workspaces: list[Freshness]

    @property
    def ok(self) -> bool:
        """True when some workspace is fresh and none is stale or never synced
        (delisted and no longer configured ones do not count). An empty ledger is not
        ok: a monitor set up before the first run should not be green."""
        states = {f.state for f in self.workspaces}
        return FRESH in states and not states & {STALE, NEVER}

    def counts(self) -> dict[str, int]:
        """How many workspaces are in each state."""
        return {state: sum(f.state == state for f in self.workspaces) for state in STATES}


def judge(
    syncs: Sequence[WorkspaceSync],
    *,
    now: datetime,
    max_age: timedelta,
    configured: Mapping[str, set[str]] | None = None,
) -> StatusReport:
    """Each workspace fresh, stale, never synced, delisted or (for an account whose
    settings list its workspaces, in ``configured``) no longer configured, at ``now``."""
    judged = []
    for sync in syncs:
        age = None if sync.last_ok_at is None else now - sync.last_ok_at
        listed = (configured or {}).get(sync.account or "")
        if sync.delisted_at is not None:
            state = DELISTED
        elif listed is not None and not ({sync.workspace_id} | sync.requested_as) & listed:
            state = UNCONFIGURED
        elif age is None:
            state = NEVER
        else:
            state = FRESH if age <= max_age else STALE
        judged.append(Freshness(sync, state, age))
    return StatusReport(now, max_age, judged)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with microseconds, or None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def seconds(span: timedelta | None) -> float | None:
    """A duration in seconds, to the microsecond."""
    return None if span is None else round(span.total_seconds(), 6)


def span(span: timedelta | None) -> str:
    """A duration for people: 4.2s, 3m05s, 2h03m, 3d04h."""
    if span is None:
        return "-"
    total = span.total_seconds()
    if total < 60:
        return f"{max(total, 0):.1f}s"
    whole = int(total)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def limit(age: timedelta) -> str:
    """A maximum age in the largest unit that holds it whole: 2d, 26h, 90m, 45s."""
    whole = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{age.total_seconds():g}s"


def when(moment: datetime | None) -> str:
    """A UTC time for a table cell."""
    return "-" if moment is None else f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}"


def _duration(start: datetime, end: datetime | None) -> timedelta | None:
    return None if end is None else end - start


def _workspace_counts(counted: dict[str, int]) -> dict[str, int]:
    shown = {status.value: counted.get(status.value, 0) for status in WorkspaceStatus}
    for status, count in counted.items():  # a status a newer keyledger wrote
        shown.setdefault(status, count)
    return {**shown, "total": sum(counted.values())}


def _keys(totals: KeyTotals) -> dict[str, int]:
    return {
        "seen": totals.seen,
        "new": totals.new,
        "changed": totals.changed,
        "deleted": totals.deleted,
    }


def run_data(run: RunRow) -> dict[str, Any]:
    """One run as JSON-ready data."""
    return {
        "id": run.id,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": seconds(_duration(run.started_at, run.finished_at)),
        "status": run.status,
        "hostname": run.hostname,
        "pid": run.pid,
        "keyledger_version": run.keyledger_version,
        "error": run.error,
        "workspaces": _workspace_counts(run.workspaces),
        "keys": _keys(run.totals),
        "pages": run.totals.pages,
        "snapshots_written": run.totals.snapshots,
    }


def _run_workspace_data(w: RunWorkspaceRow) -> dict[str, Any]:
    return {
        "account": w.account,
        "requested_as": w.requested_as,
        "workspace_id": w.workspace_id,
        "name": w.name,
        "status": w.status,
        "started_at": iso(w.started_at),
        "finished_at": iso(w.finished_at),
        "duration_seconds": seconds(_duration(w.started_at, w.finished_at)),
        "server_time": iso(w.server_time),
        "keys": _keys(w.totals),
        "pages": w.totals.pages,
        "snapshots_written": w.totals.snapshots,
        "error": w.error,
    }


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def runs_json(runs: Sequence[RunRow]) -> str:
    """``keyledger runs --format json``."""
    return _dump({"runs": [run_data(r) for r in runs]})


def runs_table(runs: Sequence[RunRow]) -> str:
    """``keyledger runs``: one line per run, newest first."""
    if not runs:
        return "no runs recorded yet\n"
    headers = ["run", "started (UTC)", "duration", "status", "ok", "failed", "skipped"]
    headers += ["seen", "new", "changed", "deleted"]
    rows = []
    for r in runs:
        counts = r.workspaces
        rows.append(
            [
                str(r.id),
                when(r.started_at),
                span(_duration(r.started_at, r.finished_at)),
                r.status,
                *(str(counts.get(s, 0)) for s in ("ok", "failed", "skipped")),
                *(str(n) for n in _keys(r.totals).values()),
            ]
        )
    return "\n".join(_table(headers, rows, right={0, 2, *range(4, 11)})) + "\n"


def run_detail_json(detail: RunDetail) -> str:
    """``keyledger runs show ID --format json``."""
    return _dump(
        {
            "run": run_data(detail.run),
            "workspaces": [_run_workspace_data(w) for w in detail.workspaces],
            "activity": [dataclasses.asdict(a) for a in detail.activity],
        }
    )


def run_detail_table(detail: RunDetail) -> str:
    """``keyledger runs show ID``: the run, a line per workspace, then their errors."""
    run = detail.run
    duration = _duration(run.started_at, run.finished_at)
    counts = _workspace_counts(run.workspaces)
    keys = _keys(run.totals)
    outcome = ", ".join(f"{n} {s}" for s, n in counts.items() if n and s != "total")
    lines = [
        f"run {run.id}: {run.status}",
        f"  started     {when(run.started_at)} UTC",
        f"  finished    {when(run.finished_at)} UTC" + (f" ({span(duration)})" if duration else "")
        if run.finished_at is not None
        else "  finished    - (still running, or its process died)",
        f"  host        {run.hostname}, pid {run.pid}, keyledger {run.keyledger_version}",
        f"  workspaces  {outcome or 'none recorded'}",
        f"  keys        seen {keys['seen']}, new {keys['new']}, changed {keys['changed']}, "
        f"deleted {keys['deleted']}; {run.totals.pages} pages, "
        f"{run.totals.snapshots} snapshot rows",
    ]
    if run.error:
        lines.append(f"  error       {run.error}")
    for a in detail.activity:  # GET /activity, one line per account
        per_key = f", {a.key_days_fetched} key-days" if a.key_days_fetched else ""
        why = f": {truncate(a.error, ERROR_WIDTH)}" if a.error else ""
        lines.append(
            f"  activity    {a.account}: {a.status}, {a.days_fetched} days "
            f"({a.days_refetched} re-fetched, {a.days_missing} missing), {a.rows_written} rows"
            f"{per_key}, {a.requests} requests{why}"
        )
    if detail.workspaces:
        headers = ["workspace", "name", "account", "status", "duration", "pages"]
        headers += ["seen", "new", "changed", "deleted", "snapshots"]
        rows = [
            [
                w.workspace_id
                if w.workspace_id == w.requested_as
                else f"{w.workspace_id} ({w.requested_as})",
                truncate(w.name or "-", NAME_WIDTH),
                w.account,
                w.status,
                span(_duration(w.started_at, w.finished_at)),
                str(w.totals.pages),
                *(str(n) for n in _keys(w.totals).values()),
                str(w.totals.snapshots),
            ]
            for w in detail.workspaces
        ]
        lines += ["", *_table(headers, rows, right={4, *range(5, 11)})]
    errors = [w for w in detail.workspaces if w.error]
    if errors:
        lines += ["", "errors:"]
        lines += [
            f"  {w.workspace_id} ({w.account}) {w.status}: {truncate(w.error or '', ERROR_WIDTH)}"
            for w in errors
        ]
    return "\n".join(lines) + "\n"


def status_json(report: StatusReport) -> str:
    """``keyledger status --format json``."""
    workspaces = []
    for f in report.workspaces:
        s = f.sync
        attempt = s.last_attempt
        workspaces.append(
            {
                "workspace_id": s.workspace_id,
                "name": s.name,
                "account": s.account,
                "state": f.state,
                "last_success_at": iso(s.last_ok_at),
                "last_success_run": s.last_ok_run,
                "age_seconds": seconds(f.age),
                "server_time": iso(s.server_time),
                "delisted_at": iso(s.delisted_at),
                "last_attempt": None
                if attempt is None
                else {
                    "run_id": attempt.run_id,
                    "status": attempt.status,
                    "finished_at": iso(attempt.finished_at),
                    "error": attempt.error,
                },
            }
        )
    return _dump(
        {
            "checked_at": iso(report.checked_at),
            "max_age_seconds": seconds(report.max_age),
            "ok": report.ok,
            "counts": report.counts(),
            "workspaces": workspaces,
        }
    )


def status_table(report: StatusReport) -> str:
    """``keyledger status``: a line per workspace, then a one-line verdict."""
    headers = ["workspace", "name", "account", "last success (UTC)", "age", "state"]
    rows = []
    for f in report.workspaces:
        s = f.sync
        state = f.state.replace("_", " ")
        attempt = s.last_attempt
        if attempt is not None and attempt.status != "ok":  # fresh still, but failing now
            state += f" (last attempt: run {attempt.run_id} {attempt.status})"
        rows.append(
            [
                s.workspace_id,
                truncate(s.name or "-", NAME_WIDTH),
                s.account or "-",
                when(s.last_ok_at),
                span(f.age),
                state,
            ]
        )
    counts = report.counts()
    verdict = (
        f"status: {'ok' if report.ok else 'NOT OK'}: {counts[FRESH]} fresh, {counts[STALE]} "
        f"stale, {counts[NEVER]} never synced (max age {limit(report.max_age)})"
    )
    unchecked = [
        f"{counts[s]} {s.replace('_', ' ')}" for s in (DELISTED, UNCONFIGURED) if counts[s]
    ]
    if unchecked:
        verdict += f"; not checked: {', '.join(unchecked)}"
    if not rows:
        return "no workspace has synced yet\n" + verdict + "\n"
    return "\n".join([*_table(headers, rows, right={4}), "", verdict]) + "\n"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(display_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            pad(cell, width, right=i in right)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
