"""Spend by model and provider in the report's renderings: the terminal sections and
the JSON-ready data (CSV takes its records from that data)."""

from __future__ import annotations

import dataclasses
from typing import Any

from etl.reports.activity import ActivitySpend, ActivityTotal
from etl.reports.cells import ABSENT, AT_LEAST, KEY_NAME_WIDTH, bound, money, plain, table
from etl.reports.text_width import truncate


def activity_table(activity: ActivitySpend | None) -> list[str]:
    """Top models and providers, and what is unknown about them."""
    out: list[str] = []
    sections = (
        ("model", "Top models", () if activity is None else activity.top_models),
        ("provider", "Top providers", () if activity is None else activity.top_providers),
    )
    for what, title, entries in sections:
        out += ["", f"{title} by spend over the window (USD, from GET /activity)"]
        if activity is None or activity.total_usd is None:
            out.append(f"  {ABSENT} unknown: no activity is stored for this window")
            continue
        lower = activity.is_lower_bound
        rows = [
            (
                str(i),
                truncate(e.name, KEY_NAME_WIDTH),
                bound(e.usage_usd, lower_bound=lower),
                bound(e.byok_usage_inference_usd, lower_bound=lower),
                str(e.requests),
                str(e.prompt_tokens),
                str(e.completion_tokens),
            )
            for i, e in enumerate(entries, 1)
        ]
        headers = ("#", what, "spend", "BYOK", "requests", "prompt tok.", "completion tok.")
        out += table(headers, rows, right={0, 2, 3, 4, 5, 6})
        more = activity.models_more if what == "model" else activity.providers_more
        if more:
            out.append(f"  … and {more} more {what}s with spend (--top shows more)")
    if activity is not None and activity.total_usd is not None:
        total = bound(activity.total_usd, lower_bound=activity.is_lower_bound)
        out.append(f"  all models together: {total}")
        if activity.is_lower_bound:
            lost = activity.missing_days
            out.append(
                f"  {AT_LEAST}the known part only: activity unknown on "
                f"{activity.unknown_days} of {activity.days} days"
                + (
                    f" ({lost} lost for good: they left the API's 30-day window before a "
                    "sync fetched them)"
                    if lost
                    else ""
                )
            )
    return out


def activity_data(activity: ActivitySpend | None) -> dict[str, Any]:
    """The report's spend by model and provider as JSON-ready data."""
    if activity is None:
        return {"activity": None, "top_models": [], "top_providers": []}
    summary = {
        "days": activity.days,
        "known_days": activity.known_days,
        "unknown_days": activity.unknown_days,
        "missing_days": activity.missing_days,
        "total_usd": money(activity.total_usd),
        "models_more": activity.models_more,
        "providers_more": activity.providers_more,
    }
    return {
        "activity": summary,
        "top_models": [_activity_fields(e, "model", activity) for e in activity.top_models],
        "top_providers": [
            _activity_fields(e, "provider_name", activity) for e in activity.top_providers
        ],
    }


def _activity_fields(entry: ActivityTotal, name: str, activity: ActivitySpend) -> dict[str, Any]:
    fields = {f.name: plain(getattr(entry, f.name)) for f in dataclasses.fields(entry)}
    return {name: fields.pop("name"), **fields, "unknown_days": activity.unknown_days}
