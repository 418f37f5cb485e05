"""A chart of a ``Report``'s daily spend per workspace, with matplotlib (optional extra).

matplotlib comes with ``pip install "keyledger[report]"``; it is imported only when a
chart is asked for, and drawn with the non-interactive Agg canvas (no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path

from etl.report import Report, ReportError

CHART_SUFFIXES = (".png", ".svg")
MISSING_MATPLOTLIB = '--output needs matplotlib: pip install "keyledger[report]"'


def write_chart(report: Report, path: Path) -> None:
    """Draw daily spend per workspace (one line each) to a .png or .svg file."""
    if path.suffix.lower() not in CHART_SUFFIXES:
        raise ReportError(f"{path}: a chart is written as .png or .svg")
    try:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ReportError(MISSING_MATPLOTLIB) from exc
    figure = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(figure)  # Agg, never a GUI backend; savefig picks SVG for .svg
    axes = figure.add_subplot()
    days = np.array(report.days, dtype="datetime64[D]")
    for workspace in report.workspaces:
        spend = [math.nan if d.spend_usd is None else float(d.spend_usd) for d in workspace.daily]
        axes.plot(days, spend, marker="o", markersize=3, label=workspace.name)
    # matplotlib.dates has no type annotations.
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_title(f"Daily spend per workspace, {report.start} to {report.end} (UTC)")
    axes.set_xlabel("UTC day (gaps: spend unknown)")
    axes.set_ylabel("USD spent per day")
    half_day = np.timedelta64(12, "h")
    axes.set_xlim(days[0] - half_day, days[-1] + half_day)  # the whole window, data or not
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(title="workspace", fontsize="small")
    try:
        figure.savefig(path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc
