"""A chart of a ``Report``: daily spend per workspace, and below it the top models and
providers over the window, with matplotlib (optional extra).

matplotlib comes with ``pip install "keyledger[report]"``; it is imported only when a
chart is asked for, and drawn with the non-interactive Agg canvas (no display needed).
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

from etl.reports.activity import ActivitySpend, ActivityTotal
from etl.reports.build import Report, ReportError, WorkspaceSpend

CHART_SUFFIXES = (".png", ".svg")
UNKNOWN_SHADE = "#e6e6e6"  # behind the days on which no workspace's spend is known
MISSING_MATPLOTLIB = '--output needs matplotlib: pip install "keyledger[report]"'
TOP_BARS = 10  # models (and providers) drawn, whatever --top says


def spend_series(workspace: WorkspaceSpend) -> list[float]:
    """Daily spend to plot, NaN where unknown: matplotlib breaks the line there rather
    than drawing it through zero."""
    return [math.nan if d.spend_usd is None else float(d.spend_usd) for d in workspace.daily]


def known_days(report: Report) -> int:
    """Days of the window on which at least one workspace's spend is known."""
    return sum(
        1
        for i in range(len(report.days))
        if any(w.daily[i].spend_usd is not None for w in report.workspaces)
    )


def unknown_spans(report: Report) -> list[tuple[date, date]]:
    """Runs of days (first, last) on which no workspace's spend is known, to shade."""
    spans: list[tuple[date, date]] = []
    for i, day in enumerate(report.days):
        if any(w.daily[i].spend_usd is not None for w in report.workspaces):
            continue
        if spans and (day - spans[-1][1]).days == 1:
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans


def chart_title(report: Report) -> str:
    """The title, saying how much of the window has known spend when not all of it."""
    title = f"Daily spend per workspace, {report.start} to {report.end} (UTC)"
    known, n = known_days(report), len(report.days)
    return (
        title if known == n else f"{title}\n{known} of {n} days with known spend (shaded: unknown)"
    )


def activity_title(what: str, activity: ActivitySpend | None) -> str:
    """A bar panel's title, saying when its amounts are only the known part."""
    title = f"Top {what} over the window (USD)"
    if activity is None or activity.total_usd is None:
        return f"{title}\nunknown: no activity stored"
    if activity.is_lower_bound:
        lost = f", {activity.missing_days} lost for good" if activity.missing_days else ""
        return (
            f"{title}\nat least: activity unknown on {activity.unknown_days} of "
            f"{activity.days} days{lost}"
        )
    return title


def draw_top(
    axes: Any, what: str, entries: tuple[ActivityTotal, ...], activity: ActivitySpend | None
) -> None:
    """Horizontal bars, biggest on top; the panel says so when nothing is known."""
    shown = entries[:TOP_BARS]
    axes.set_title(activity_title(what, activity), fontsize="medium")
    if not shown:
        axes.text(
            0.5,
            0.5,
            "unknown" if activity is None or activity.total_usd is None else "no spend",
            ha="center",
            va="center",
            transform=axes.transAxes,
        )
        axes.set_axis_off()
        return
    names = [e.name for e in reversed(shown)]
    axes.barh(names, [float(e.usage_usd) for e in reversed(shown)], color="#4c72b0")
    axes.set_xlabel("USD spent (OpenRouter credits)")
    axes.tick_params(axis="y", labelsize="small")
    axes.grid(axis="x", alpha=0.3)


def write_chart(report: Report, path: Path) -> None:
    """Draw daily spend per workspace (one line each) to a .png or .svg file."""
    if path.suffix.lower() not in CHART_SUFFIXES:
        raise ReportError(f"{path}: a chart is written as .png or .svg")
    try:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ReportError(MISSING_MATPLOTLIB) from exc
    figure = Figure(figsize=(10, 9.5), layout="constrained")
    FigureCanvasAgg(figure)  # Agg, never a GUI backend; savefig picks SVG for .svg
    grid = figure.add_gridspec(2, 2, height_ratios=(5.5, 4))
    axes = figure.add_subplot(grid[0, :])
    activity = report.activity
    draw_top(figure.add_subplot(grid[1, 0]), "models", _entries(activity, "models"), activity)
    draw_top(figure.add_subplot(grid[1, 1]), "providers", _entries(activity, "providers"), activity)
    days = np.array(report.days, dtype="datetime64[D]")
    half_day = np.timedelta64(12, "h")
    # The window is drawn whole, so a mostly unsynced one shows why it is empty.
    # matplotlib.dates has no type annotations.
    for first, last in unknown_spans(report):
        axes.axvspan(
            date2num(first) - 0.5,  # type: ignore[no-untyped-call]  # unit: one day
            date2num(last) + 0.5,  # type: ignore[no-untyped-call]
            color=UNKNOWN_SHADE,
            zorder=0,
            label="_nolegend_",
        )
    for workspace in report.workspaces:
        axes.plot(days, spend_series(workspace), marker="o", markersize=3, label=workspace.name)
    # matplotlib.dates has no type annotations.
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_title(chart_title(report))
    axes.set_xlabel("UTC day (gaps: spend unknown)")
    axes.set_ylabel("USD spent per day")
    axes.set_xlim(days[0] - half_day, days[-1] + half_day)  # the whole window, data or not
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(title="workspace", fontsize="small")
    try:
        figure.savefig(path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _entries(activity: ActivitySpend | None, what: str) -> tuple[ActivityTotal, ...]:
    if activity is None:
        return ()
    return activity.top_models if what == "models" else activity.top_providers
