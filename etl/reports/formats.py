"""Rendering a ``Report`` as text: a terminal table, CSV or JSON.

JSON (one object; money as exact decimal strings, null = unknown)::

    {"window": {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD", "days": N},
     "workspaces": [{"workspace_id", "name",
                     "total_usd" (sum of the known days; null when none is known),
                     "unknown_days", "partial_days" (known days leaving out some keys),
                     "daily": [{"day", "spend_usd", "unknown_keys" (keys of unknown
                                spend; null: day not in the ledger)}, ...]}, ...],
     "top_keys": [{"key_hash", "name" (null: key deleted), "workspace_id",
                   "workspace_name", "spend_usd", "unknown_days"}, ...],
     "near_limit": [{"key_hash", "name", "workspace_id", "workspace_name",
                     "credit_limit", "limit_remaining", "utilization" (0..1 number),
                     "limit_reset", "days_until_limit", "projected_limit_date"}, ...],
     "near_limit_more": N (keys near their limit beyond --top, most urgent listed),
     "activity": {"days", "known_days" (days whose activity is stored for every
                  workspace), "unknown_days", "missing_days" (lost for good: they left
                  the API's 30-day window unfetched), "total_usd" (usage over what is
                  stored; null when nothing is), "models_more", "providers_more"},
     "top_models": [{"model", "usage_usd", "byok_usage_inference_usd", "requests",
                     "prompt_tokens", "completion_tokens", "reasoning_tokens",
                     "unknown_days"}, ...],
     "top_providers": [{"provider_name", the same fields}, ...]}

CSV: one header (``CSV_COLUMNS``) and one row per record; the ``record`` column says
which: ``workspace_day`` (one per workspace and day; empty spend_usd = unknown),
``workspace_total`` (empty spend_usd: no day known), ``top_key``, ``near_limit``,
``top_model`` and ``top_provider`` (spend_usd is the usage), or ``activity_total``
(spend_usd: usage by every model; empty when no activity is stored); columns a record
lacks are empty. A total with ``unknown_days`` or ``partial_days`` above 0 is the sum
of what is known, a lower bound.

The table is for people: money rounded to 1/100 of a cent, ``—`` for unknown, ``≥``
before a total that leaves out unknown days or keys. CSV and JSON keep every digit.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from etl.reports.activity_formats import activity_data, activity_table
from etl.reports.build import (
    NEAR_LIMIT_DAYS,
    NEAR_LIMIT_UTILIZATION,
    DaySpend,
    KeySpend,
    LimitStatus,
    Report,
    WorkspaceSpend,
)
from etl.reports.cells import (
    ABSENT,
    AT_LEAST,
    KEY_NAME_WIDTH,
    bound,
    money,
    plain,
    rounded,
    table,
)
from etl.reports.text_width import truncate

BARS = "▁▂▃▄▅▆▇█"
UNKNOWN, NOT_IN_LEDGER = "·", " "
SPARK_WIDTH = 60  # longer windows are drawn in buckets of several days
CSV_COLUMNS = (
    "record",
    "workspace_id",
    "workspace_name",
    "key_hash",
    "key_name",
    "day",
    "spend_usd",
    "unknown_days",
    "unknown_keys",
    "partial_days",
    "credit_limit",
    "limit_remaining",
    "utilization",
    "limit_reset",
    "days_until_limit",
    "projected_limit_date",
    "model",
    "provider_name",
    "byok_usage_inference_usd",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "missing_days",
)


def sparkline(daily: Sequence[DaySpend]) -> str:
    """One bar per day (or bucket of days) scaled to the busiest; '·' unknown, ' ' no data."""
    size = max(1, math.ceil(len(daily) / SPARK_WIDTH))
    buckets = [daily[i : i + size] for i in range(0, len(daily), size)]
    totals = [
        None if any(d.spend_usd is None for d in b) else sum(d.spend_usd or 0 for d in b)
        for b in buckets
    ]
    peak = max((t for t in totals if t is not None), default=Decimal(0))
    marks = []
    for bucket, total in zip(buckets, totals, strict=True):
        if total is None:
            in_ledger = any(d.in_ledger for d in bucket)
            marks.append(UNKNOWN if in_ledger else NOT_IN_LEDGER)
        else:
            marks.append(BARS[int(total / peak * (len(BARS) - 1) + Decimal("0.5")) if peak else 0])
    return "".join(marks)


def format_table(report: Report) -> str:
    """The report for a terminal: three aligned tables."""
    n = len(report.days)
    out = [
        f"keyledger report: {report.start} to {report.end} ({n} UTC days, ending at the "
        "latest synced day)",
        "",
        "Spend per workspace (USD)",
    ]
    rows: list[tuple[str, ...]] = [
        (
            truncate(w.name, KEY_NAME_WIDTH),
            bound(w.total_usd, lower_bound=w.is_lower_bound),
            sparkline(w.daily),
            _unknown(w.unknown_days, n, w),
        )
        for w in report.workspaces
    ]
    out += table(("workspace", "total", "daily", ""), rows, right={1})
    out.append(
        f"  daily: {BARS[0]}..{BARS[-1]} up to the workspace's busiest day; "
        f"{UNKNOWN} unknown; blank: not synced around then"
    )
    out.append(
        f"  {AT_LEAST}total of the known days only (the rest unknown); {ABSENT} no day known"
    )
    out += ["", f"Top keys by spend over the window (USD, top {len(report.top_keys)})"]
    rows = [
        (
            str(i),
            _key_name(k.name, k.key_hash),
            truncate(k.workspace_name, KEY_NAME_WIDTH),
            bound(k.spend_usd, lower_bound=k.unknown_days > 0),
            _unknown(k.unknown_days, n),
        )
        for i, k in enumerate(report.top_keys, 1)
    ]
    out += table(("#", "key", "workspace", "spend", ""), rows, right={0, 3})
    out += activity_table(report.activity)
    out += [
        "",
        f"Keys near their limit (>= {NEAR_LIMIT_UTILIZATION:.0%} used, or reaching it "
        f"within {NEAR_LIMIT_DAYS} days at the last 7 days' pace)",
    ]
    rows = [
        (
            _key_name(s.name, s.key_hash),
            truncate(s.workspace_name, KEY_NAME_WIDTH),
            rounded(s.credit_limit),
            rounded(s.limit_remaining),
            _percent(s.utilization),
            s.limit_reset or "never",
            ABSENT if s.days_until_limit is None else str(s.days_until_limit),
            str(s.projected_limit_date or ABSENT),
        )
        for s in report.near_limit
    ]
    headers = (
        "key",
        "workspace",
        "limit",
        "remaining",
        "used",
        "resets",
        "days left",
        "limit reached",
    )
    out += table(headers, rows, right={2, 3, 4, 6})
    if report.near_limit_more:
        out.append(
            f"  … and {report.near_limit_more} more near their limit "
            f"(listed most urgent first; --top {len(report.near_limit) + report.near_limit_more}"
            " shows all)"
        )
    return "\n".join(out) + "\n"


def report_data(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (structure in the module docstring)."""
    window = {"start": plain(report.start), "end": plain(report.end), "days": len(report.days)}
    workspaces = [
        {
            "workspace_id": w.workspace_id,
            "name": w.name,
            "total_usd": money(w.total_usd),
            "unknown_days": w.unknown_days,
            "partial_days": w.partial_days,
            "daily": [
                {
                    "day": plain(d.day),
                    "spend_usd": money(d.spend_usd),
                    "unknown_keys": d.unknown_keys,
                }
                for d in w.daily
            ],
        }
        for w in report.workspaces
    ]
    return {
        "window": window,
        "workspaces": workspaces,
        "top_keys": [_fields(k) for k in report.top_keys],
        "near_limit": [_fields(s) for s in report.near_limit],
        "near_limit_more": report.near_limit_more,
        **activity_data(report.activity),
    }


def format_json(report: Report) -> str:
    """The report as one JSON object (see the module docstring)."""
    return json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"


def format_csv(report: Report) -> str:
    """The report as CSV: one header, one row per record (see the module docstring)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for w in report.workspaces:
        base = {"workspace_id": w.workspace_id, "workspace_name": w.name}
        for d in w.daily:
            day = {
                "day": plain(d.day),
                "spend_usd": money(d.spend_usd),
                "unknown_keys": d.unknown_keys,
            }
            writer.writerow({"record": "workspace_day", **base, **day})
        total = {
            "spend_usd": money(w.total_usd),
            "unknown_days": w.unknown_days,
            "partial_days": w.partial_days,
        }
        writer.writerow({"record": "workspace_total", **base, **total})
    for record, items in (("top_key", report.top_keys), ("near_limit", report.near_limit)):
        for item in items:
            row = _fields(item)
            row["key_name"] = row.pop("name")
            writer.writerow({"record": record, **row})
    data = activity_data(report.activity)
    for record, items in (
        ("top_model", data["top_models"]),
        ("top_provider", data["top_providers"]),
    ):
        for item in items:
            spend = item.pop("usage_usd")  # the usage is the record's spend
            writer.writerow({"record": record, **item, "spend_usd": spend})
    if data["activity"] is not None:
        summary = data["activity"]
        writer.writerow(
            {
                "record": "activity_total",
                "spend_usd": summary["total_usd"],
                "unknown_days": summary["unknown_days"],
                "missing_days": summary["missing_days"],
            }
        )
    return buffer.getvalue()


FORMATS: dict[str, Callable[[Report], str]] = {
    "table": format_table,
    "csv": format_csv,
    "json": format_json,
}


def _unknown(days: int, window: int, workspace: WorkspaceSpend | None = None) -> str:
    unsynced = 0 if workspace is None else workspace.unsynced_days
    partial = 0 if workspace is None else workspace.partial_days
    notes = []
    if days:  # unsynced days are among the unknown ones
        notes.append(
            f"{days} of {window} days unknown" + (f" ({unsynced} not synced)" if unsynced else "")
        )
    if partial:
        notes.append(f"{partial} {'day' if partial == 1 else 'days'} with some keys unknown")
    return ", ".join(notes)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _key_name(name: str | None, key_hash: str) -> str:
    if name is None:
        return f"{key_hash[:12]}… (deleted)"
    return truncate(name, KEY_NAME_WIDTH)


def _fields(item: KeySpend | LimitStatus) -> dict[str, Any]:
    return {f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item)}
