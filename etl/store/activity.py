"""GET /activity's days into daily_activity and activity_days (and the per-key pair),
through a Connection it is given; never commits.

A (workspace, day) is replaced whole: its rows are deleted and the fetched ones inserted
in the caller's transaction, so readers see the old day or the new one, never both and
never half. activity_days says what each stored day is: 'fetched' (the rows are the
whole day) or 'missing' (it left the API's 30-day window before any run fetched it).
The same functions serve the per-key tables (``per_key=True``), keyed by the key hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from etl.core.activity_item import ActivityItem
from models import ActivityDay, DailyActivity, DailyKeyActivity, DailyKeySpend, KeyActivityDay

FETCHED = "fetched"
MISSING = "missing"


@dataclass(frozen=True)
class StoredDays:
    """The days activity_days (or key_activity_days) holds for one workspace (or key)."""

    fetched: frozenset[date]
    missing: frozenset[date]

    @property
    def first(self) -> date | None:
        """The first day recorded, fetched or missing (None: never fetched)."""
        return min(self.fetched | self.missing, default=None)

    @property
    def last(self) -> date | None:
        """The last day recorded."""
        return max(self.fetched | self.missing, default=None)


NOTHING_STORED = StoredDays(frozenset(), frozenset())


def _tables(per_key: bool) -> tuple[Any, Any]:
    return (DailyKeyActivity, KeyActivityDay) if per_key else (DailyActivity, ActivityDay)


def _owner(model: Any) -> Any:
    return model.key_hash if hasattr(model, "key_hash") else model.workspace_id


def stored_days(
    connection: Connection, owners: Iterable[str], *, per_key: bool = False
) -> dict[str, StoredDays]:
    """What is recorded per workspace (or key hash) of ``owners``."""
    _, days = _tables(per_key)
    wanted = sorted(set(owners))
    found: dict[str, tuple[set[date], set[date]]] = {o: (set(), set()) for o in wanted}
    if wanted:
        rows = connection.execute(
            select(_owner(days), days.day, days.status).where(_owner(days).in_(wanted))
        )
        for owner, day, status in rows:
            found[owner][0 if status == FETCHED else 1].add(day)
    return {o: StoredDays(frozenset(f), frozenset(m)) for o, (f, m) in found.items()}


def replace_day(
    connection: Connection,
    owner: str,
    day: date,
    items: Sequence[ActivityItem],
    *,
    run_id: int,
    fetched_at: datetime,
    per_key: bool = False,
) -> int:
    """Store ``items`` as the whole of ``day`` for ``owner`` (a workspace, or a key
    hash when ``per_key``), replacing what was stored; the rows written."""
    rows_table, days = _tables(per_key)
    connection.execute(delete(rows_table).where(_owner(rows_table) == owner, rows_table.day == day))
    if items:
        connection.execute(
            insert(rows_table),
            [_row(owner, item, run_id, fetched_at, per_key=per_key) for item in items],
        )
    connection.execute(delete(days).where(_owner(days) == owner, days.day == day))
    connection.execute(
        insert(days).values(
            {
                _owner(days).key: owner,
                "day": day,
                "status": FETCHED,
                "row_count": len(items),
                "run_id": run_id,
                "fetched_at": fetched_at,
            }
        )
    )
    return len(items)


def mark_missing(
    connection: Connection, owner: str, missing: Iterable[date], *, per_key: bool = False
) -> int:
    """Record ``missing`` days of ``owner`` as lost (never fetched); how many."""
    _, days = _tables(per_key)
    rows = [
        {_owner(days).key: owner, "day": day, "status": MISSING, "row_count": 0}
        for day in sorted(missing)
    ]
    if rows:
        connection.execute(insert(days), rows)
    return len(rows)


def lost_days(stored: StoredDays, window_start: date) -> list[date]:
    """Days from ``owner``'s first recorded day to the window's start that were never
    recorded: they left the window unfetched (a first fetch has none)."""
    first = stored.first
    if first is None:
        return []
    known = stored.fetched | stored.missing
    span = (window_start - first).days
    return [
        first + timedelta(days=n) for n in range(span) if first + timedelta(days=n) not in known
    ]


def top_spending_keys(
    connection: Connection, workspace_ids: Iterable[str], day: date, limit: int
) -> list[str]:
    """The ``limit`` keys of these workspaces that spent most on ``day`` (the key
    ledger's daily_key_spend; keys without known spend are left out), most first."""
    spend = DailyKeySpend.spend_usd
    query = (
        select(DailyKeySpend.key_hash)
        .where(
            DailyKeySpend.workspace_id.in_(sorted(set(workspace_ids))),
            DailyKeySpend.day == day,
            spend > 0,
        )
        .order_by(spend.desc(), DailyKeySpend.key_hash)
        .limit(limit)
    )
    return list(connection.scalars(query))


def _row(
    owner: str, item: ActivityItem, run_id: int, fetched_at: datetime, *, per_key: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "workspace_id": item.workspace_id,
        "day": item.day,
        "endpoint_id": item.endpoint_id,
        "model": item.model,
        "model_permaslug": item.model_permaslug,
        "provider_name": item.provider_name,
        "usage_usd": item.usage,
        "byok_usage_inference_usd": item.byok_usage_inference,
        "requests": item.requests,
        "prompt_tokens": item.prompt_tokens,
        "completion_tokens": item.completion_tokens,
        "reasoning_tokens": item.reasoning_tokens,
        "run_id": run_id,
        "fetched_at": fetched_at,
    }
    if per_key:
        row["key_hash"] = owner
    return row
