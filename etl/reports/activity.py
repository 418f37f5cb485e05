"""The report's spend by model and by provider, from the activity kept by the sync.

Read from the tables behind the views a BI tool reads (``daily_activity``, summed here
exactly as ``Decimal``, as ``build`` sums ``daily_key_spend``: SQLite's SUM goes through
REAL; ``activity_days`` for which workspace-days are stored). A day of the window counts
as known only when every workspace's activity for it is stored whole: on any other day
some model may have spent an amount nobody knows, so every amount is then a lower bound
(the stored part), and a window with nothing stored has no total at all (unknown, not
zero).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext

from sqlalchemy import Connection, select

from etl.reports.exact import EXACT_DIGITS, exact_sum
from models import ActivityDay, DailyActivity
from models.types import without_padding

FETCHED, MISSING = "fetched", "missing"  # activity_days.status


@dataclass(frozen=True)
class ActivityTotal:
    """One model's (or provider's) activity over the stored days of the window."""

    name: str  # the model slug, or the provider's name
    usage_usd: Decimal
    byok_usage_inference_usd: Decimal
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True)
class ActivitySpend:
    """Spend by model and provider over the report's window (highest first, ``top`` each)."""

    days: int  # days in the window
    known_days: int  # stored whole for every workspace
    missing_days: int  # lost for good for some workspace (left the API's window unfetched)
    total_usd: Decimal | None  # usage over the stored workspace-days; None: none stored
    top_models: tuple[ActivityTotal, ...]
    top_providers: tuple[ActivityTotal, ...]
    models_more: int = 0  # models with spend left out of top_models
    providers_more: int = 0

    @property
    def unknown_days(self) -> int:
        """Days of the window on which some workspace's activity is not known."""
        return self.days - self.known_days

    @property
    def is_lower_bound(self) -> bool:
        """True when the amounts may be higher than shown."""
        return self.unknown_days > 0


def activity_spend(
    connection: Connection,
    window: tuple[date, ...],
    workspace_ids: Iterable[str],
    *,
    top: int,
) -> ActivitySpend:
    """Spend by model and provider over ``window`` (every day, oldest first), known where
    every workspace of ``workspace_ids`` (and any other with activity in the window) has
    its activity stored."""
    start, end = window[0], window[-1]
    status: dict[tuple[str, date], str] = {
        (w, d): s
        for w, d, s in connection.execute(
            select(ActivityDay.workspace_id, ActivityDay.day, ActivityDay.status).where(
                ActivityDay.day.between(start, end)
            )
        )
    }
    workspaces = set(workspace_ids) | {w for w, _ in status}
    known = [
        d for d in window if workspaces and all(status.get((w, d)) == FETCHED for w in workspaces)
    ]
    missing = {d for (_, d), s in status.items() if s == MISSING}
    a = DailyActivity
    rows = connection.execute(
        select(
            a.model,
            a.provider_name,
            a.usage_usd,
            a.byok_usage_inference_usd,
            a.requests,
            a.prompt_tokens,
            a.completion_tokens,
            a.reasoning_tokens,
        )
        .where(a.day.between(start, end))
        .execution_options(yield_per=10_000)
    )
    by_model: dict[str, _Running] = defaultdict(_Running)
    by_provider: dict[str, _Running] = defaultdict(_Running)
    with localcontext() as context:
        context.prec = EXACT_DIGITS
        for model, provider, usage, byok, requests, prompt, completion, reasoning in rows:
            for running in (by_model[model], by_provider[provider]):
                running.usage += usage
                running.byok += byok
                running.counts[0] += requests
                running.counts[1] += prompt
                running.counts[2] += completion
                running.counts[3] += reasoning
    models, providers = _ranked(by_model), _ranked(by_provider)
    stored = any(s == FETCHED for s in status.values())
    total = exact_sum(m.usage_usd for m in models) if stored else None
    return ActivitySpend(
        days=len(window),
        known_days=len(known),
        missing_days=len(missing),
        total_usd=total,
        top_models=tuple(models[:top]),
        top_providers=tuple(providers[:top]),
        models_more=max(0, len(models) - top),
        providers_more=max(0, len(providers) - top),
    )


@dataclass
class _Running:
    """Sums being added up: money exact, counts as integers."""

    usage: Decimal = Decimal(0)
    byok: Decimal = Decimal(0)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])


def _ranked(totals: dict[str, _Running]) -> list[ActivityTotal]:
    """Entries with any spend or use, by usage then BYOK (highest first), then name."""
    entries = [
        ActivityTotal(name, without_padding(r.usage), without_padding(r.byok), *r.counts)
        for name, r in totals.items()
    ]
    entries = [e for e in entries if e.usage_usd or e.byok_usage_inference_usd or e.requests]
    entries.sort(key=lambda e: (-e.usage_usd, -e.byok_usage_inference_usd, e.name))
    return entries
