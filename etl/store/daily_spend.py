"""Daily spend (daily_key_spend) and the days a workspace was observed (workspace_days).

Daily spend is the difference of two day-start totals: ``usage - usage_daily`` is a
key's exact cumulative usage at 00:00 UTC of the day it was captured. A day-start total
is known for a day on which the key was observed — captured with a snapshot, or seen
unchanged by a successful sync of its workspace (then it equals the latest snapshot's) —
and is 0 for any day that began before the key was created. A day's spend is known
when the day-start totals of it and of the next day are known; otherwise it is NULL.
Unchanged keys spent nothing, so they get no rows: the table grows with spend. Days no
sync observed (a gap) are not written per key: a gap costs one workspace_days row per
day and one NULL row per key, and the view daily_key_spend_gaps (migration 0003) says
which key-days fall inside it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, insert, literal, select, update

from etl.store.bulk import upsert_rows
from models import ApiKey, DailyKeySpend, WorkspaceDay


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of an aware datetime."""
    return moment.astimezone(timezone.utc).date()


def day_start(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def day_start_total(values: Mapping[str, Any], prefix: str = "") -> Decimal:
    """Cumulative usage at 00:00 UTC of the capture day: ``usage - usage_daily``."""
    return values[f"{prefix}usage"] - values[f"{prefix}usage_daily"]  # type: ignore[no-any-return]


def spend_row(
    before: Mapping[str, Any] | None,
    row: Mapping[str, Any],
    captured_at: datetime,
    created_at: datetime,
    observed_days: Collection[date],
) -> dict[str, Any] | None:
    """The daily_key_spend row for the day before the capture day, if this capture is
    the key's first of its day; None when there is nothing to write."""
    today = utc_day(captured_at)
    yesterday = today - timedelta(days=1)
    previous_at = before["snapshot_at"] if before is not None else None
    if previous_at is not None and utc_day(previous_at) >= today:
        return None  # an earlier capture today already settled yesterday
    if created_at >= day_start(today):
        return None  # created today: it spent nothing yesterday
    if created_at >= day_start(yesterday):
        start, byok_start = Decimal(0), Decimal(0)  # yesterday began before the key did
    elif (
        before is not None
        and previous_at is not None
        and (utc_day(previous_at) == yesterday or yesterday in observed_days)
    ):
        # Seen yesterday, changed or unchanged: its day-start then is the snapshot's.
        start, byok_start = day_start_total(before), day_start_total(before, "byok_")
    elif before is not None:
        return unknown_spend_row(row["hash"], row["workspace_id"], yesterday)
    else:
        return None  # first seen now and older than yesterday: outside its observed life
    spend = day_start_total(row) - start
    byok = day_start_total(row, "byok_") - byok_start
    if not spend and not byok:
        return None
    return {
        "key_hash": row["hash"],
        "day": yesterday,
        "workspace_id": row["workspace_id"],
        "spend_usd": spend,
        "byok_spend_usd": byok,
    }


def unknown_spend_row(key_hash: str, workspace_id: str, day: date) -> dict[str, Any]:
    """A row saying the key's spend on ``day`` is unknown."""
    return {
        "key_hash": key_hash,
        "day": day,
        "workspace_id": workspace_id,
        "spend_usd": None,
        "byok_spend_usd": None,
    }


def write_spend(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert daily_key_spend rows (a later, better-informed run may settle a NULL)."""
    upsert_rows(connection, DailyKeySpend, ["key_hash", "day"], rows)


def observed_days(connection: Connection, workspace_id: str, since: date) -> frozenset[date]:
    """Days since ``since`` on which successful syncs observed the workspace."""
    query = select(WorkspaceDay.day).where(
        WorkspaceDay.workspace_id == workspace_id,
        WorkspaceDay.observed.is_(True),
        WorkspaceDay.day >= since,
    )
    return frozenset(connection.scalars(query))


def recent_observations(
    connection: Connection, workspace_id: str, listed_at: datetime
) -> frozenset[date]:
    """Days just before a listing at ``listed_at`` on which earlier runs observed the
    workspace (all that ``spend_row`` and ``deleted_key_rows`` look back at)."""
    return observed_days(connection, workspace_id, since=utc_day(listed_at) - timedelta(days=2))


def record_listing(
    connection: Connection,
    workspace_id: str,
    first_page_at: datetime,
    last_page_at: datetime | None,
) -> None:
    """Mark the workspace observed on the day of a complete listing, unless the listing
    ran across midnight: then it saw some keys on each day and all keys on neither, so
    it marks no day observed (its snapshots still count for their own day)."""
    if last_page_at is None or utc_day(last_page_at) == utc_day(first_page_at):
        record_observation(connection, workspace_id, first_page_at)


def record_observation(connection: Connection, workspace_id: str, observed_at: datetime) -> None:
    """Mark the workspace observed on ``observed_at``'s day; the days since the previous
    observation that no sync saw (a gap) get a workspace_days row each, marked
    unobserved, and their keys' spend is unknown (``_open_gap``)."""
    today = utc_day(observed_at)
    previous = connection.scalar(
        select(WorkspaceDay.day)
        .where(
            WorkspaceDay.workspace_id == workspace_id,
            WorkspaceDay.observed.is_(True),
            WorkspaceDay.day <= today,
        )
        .order_by(WorkspaceDay.day.desc())
        .limit(1)
    )
    if previous == today:
        return
    gap = [] if previous is None else _days(previous + timedelta(days=1), today)
    days = [
        {
            "workspace_id": workspace_id,
            "day": d,
            "observed": False,
            "first_observed_at": None,
            "next_day_observed": False,
            "gap_since": previous,
        }
        for d in gap
    ]
    days.append(
        {
            "workspace_id": workspace_id,
            "day": today,
            "observed": True,
            "first_observed_at": observed_at,
            "next_day_observed": False,
            "gap_since": None,
        }
    )
    upsert_rows(connection, WorkspaceDay, ["workspace_id", "day"], days)
    connection.execute(
        update(WorkspaceDay)
        .where(
            WorkspaceDay.workspace_id == workspace_id, WorkspaceDay.day == today - timedelta(days=1)
        )
        .values(next_day_observed=True)
    )
    if previous is not None and gap:
        _open_gap(connection, workspace_id, previous, today)


def _days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((end - first).days)]


def _open_gap(connection: Connection, workspace_id: str, previous: date, today: date) -> None:
    """Keys that were live when the workspace was last seen get a NULL row for that day
    (its next day was never observed): one row per key, however long the gap. The
    view daily_key_spend_gaps reads the days after it, up to yesterday, as unknown for
    every key with such a row, so a NULL row inside the gap would only repeat it."""
    seen_by = day_start(previous + timedelta(days=1))
    live = select(ApiKey.hash).where(
        ApiKey.workspace_id == workspace_id,
        ApiKey.deleted_at.is_(None),
        ApiKey.first_seen_at < seen_by,
    )
    already = exists().where(
        and_(DailyKeySpend.key_hash == ApiKey.hash, DailyKeySpend.day == previous)
    )
    connection.execute(
        insert(DailyKeySpend).from_select(
            ["key_hash", "day", "workspace_id"],
            live.add_columns(literal(previous), ApiKey.workspace_id).where(~already),
        )
    )
    connection.execute(
        delete(DailyKeySpend).where(
            DailyKeySpend.workspace_id == workspace_id,
            DailyKeySpend.day > previous,
            DailyKeySpend.day < today,
            DailyKeySpend.spend_usd.is_(None),
            DailyKeySpend.byok_spend_usd.is_(None),
            DailyKeySpend.key_hash.in_(live),
        )
    )


def deleted_key_rows(
    hashes: Iterable[str], workspace_id: str, deleted_at: datetime, observed: Collection[date]
) -> list[dict[str, Any]]:
    """A deleted key's spend on the last day it was seen alive is unknown: it may have
    spent between that sighting and its deletion, and no later day-start will come."""
    today = utc_day(deleted_at)
    last_seen = max((d for d in observed if d <= today), default=None)
    if last_seen is None or last_seen < today - timedelta(days=1):
        return []  # a gap since: the gap rule speaks for the days after last_seen
    return [unknown_spend_row(h, workspace_id, last_seen) for h in hashes]
