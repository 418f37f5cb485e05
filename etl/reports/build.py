"""`keyledger report`: spend per workspace, top keys, keys near their limit, and spend
by model and provider (``etl.reports.activity``).

Reads only the relations a BI tool reads (the views ``daily_workspace_spend``,
``daily_key_spend_gaps`` and ``key_limit_status``, the table ``daily_key_spend``, and
``workspaces`` for names), so the report and a dashboard agree. The window ends at the latest day in
``daily_workspace_spend``, not at the local clock, so reports on simulated (or stale)
data still make sense. Money is summed here as ``Decimal`` from ``daily_key_spend``:
SQLite's SUM goes through REAL and would lose digits; ``daily_workspace_spend`` says
which workspace-days are known, and it is defined as exactly that sum.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal, localcontext

from sqlalchemy import Connection, Date, Float, String, column, func, or_, select, table
from sqlalchemy.exc import SQLAlchemyError

from etl.core.errors import KeyledgerError, first_line
from etl.reports.activity import ActivitySpend, activity_spend
from etl.reports.exact import EXACT_DIGITS, exact_sum
from models import DailyKeySpend, Workspace
from models.types import Money, without_padding

NEAR_LIMIT_UTILIZATION = 0.8  # share of the limit used
NEAR_LIMIT_DAYS = 7  # days until the projected limit date (when it comes before a reset)

DAILY_WORKSPACE_SPEND = table(
    "daily_workspace_spend",
    column("workspace_id", String),
    column("day", Date),
    column("spend_usd"),  # untyped: only NULL-ness is read (SQLite gives REAL here)
    column("unknown_keys"),  # keys whose own spend that day is unknown
)
# Key-days inside a gap of unobserved days: unknown spend, without a daily_key_spend row.
DAILY_KEY_SPEND_GAPS = table(
    "daily_key_spend_gaps", column("key_hash", String), column("day", Date)
)
KEY_LIMIT_STATUS = table(
    "key_limit_status",
    column("key_hash", String),
    column("workspace_id", String),
    column("name", String),
    column("credit_limit", Money),
    column("limit_remaining", Money),
    column("utilization", Float),
    column("limit_reset", String),
    column("days_until_limit"),  # a whole number of days; NULL with projected_limit_date
    column("projected_limit_date", Date),
)


class ReportError(KeyledgerError):
    """Nothing to report, or the report cannot be written as asked (exit 1)."""


@dataclass(frozen=True)
class DaySpend:
    """One workspace's spend on one UTC day; ``spend_usd`` None means unknown."""

    day: date
    spend_usd: Decimal | None
    in_ledger: bool  # False: the ledger has no row for the day (not synced around then)
    # Keys whose own spend that day is unknown (None when the ledger has no row for the
    # day: not even that is known). With spend_usd known, the day's total leaves them
    # out and is a lower bound (a partial day).
    unknown_keys: int | None = None

    @property
    def partial(self) -> bool:
        """True when the spend is known for some keys only: a lower bound."""
        return self.spend_usd is not None and bool(self.unknown_keys)


@dataclass(frozen=True)
class WorkspaceSpend:
    """A workspace's daily spend over the window, oldest day first."""

    workspace_id: str
    name: str
    daily: tuple[DaySpend, ...]

    @property
    def total_usd(self) -> Decimal | None:
        """Sum of the known days; None when no day is known (unknown, not zero)."""
        known = [d.spend_usd for d in self.daily if d.spend_usd is not None]
        return exact_sum(known) if known else None

    @property
    def unknown_days(self) -> int:
        """Days of the window whose spend is not known."""
        return sum(1 for d in self.daily if d.spend_usd is None)

    @property
    def partial_days(self) -> int:
        """Known days whose total leaves out keys with unknown spend."""
        return sum(1 for d in self.daily if d.partial)

    @property
    def is_lower_bound(self) -> bool:
        """True when the true total may be higher than ``total_usd``."""
        return bool(self.unknown_days or self.partial_days)

    @property
    def unsynced_days(self) -> int:
        """Unknown days the ledger has no row for (before the first sync, or not synced)."""
        return sum(1 for d in self.daily if not d.in_ledger)


@dataclass(frozen=True)
class KeySpend:
    """A key's spend over the window; ``name`` is None for a key no longer live."""

    key_hash: str
    name: str | None
    workspace_id: str
    workspace_name: str
    spend_usd: Decimal  # over the known days: a lower bound when unknown_days > 0
    unknown_days: int  # days of the window whose spend for this key is not known


@dataclass(frozen=True)
class LimitStatus:
    """A live key near its credit limit, as ``key_limit_status`` reports it."""

    key_hash: str
    name: str
    workspace_id: str
    workspace_name: str
    credit_limit: Decimal | None
    limit_remaining: Decimal | None
    utilization: float | None
    limit_reset: str | None
    days_until_limit: int | None
    projected_limit_date: date | None


@dataclass(frozen=True)
class Report:
    """Everything ``keyledger report`` shows, for the UTC days ``start``..``end``."""

    start: date
    end: date
    workspaces: tuple[WorkspaceSpend, ...]
    top_keys: tuple[KeySpend, ...]
    near_limit: tuple[LimitStatus, ...]  # the most urgent ``top``
    near_limit_more: int = 0  # keys near their limit left out of ``near_limit``
    activity: ActivitySpend | None = None  # by model and provider; None: not read

    @property
    def days(self) -> tuple[date, ...]:
        """Every day of the window, oldest first."""
        return tuple(self.start + timedelta(n) for n in range((self.end - self.start).days + 1))


def build_report(connection: Connection, *, days: int = 30, top: int = 10) -> Report:
    """The report for the ``days`` UTC days ending at the latest day in the ledger."""
    if days < 1:
        raise ValueError("a report covers at least one day")
    try:
        end = connection.scalar(select(func.max(DAILY_WORKSPACE_SPEND.c.day)))
        if end is None:
            raise ReportError(
                "nothing to report: no workspace has been synced into this database yet "
                "(run `keyledger sync` first)"
            )
        start = end - timedelta(days=days - 1)
        names = {r.id: r.name or r.id for r in connection.execute(select(Workspace))}
        workspaces, keys = workspace_and_key_spend(connection, start, end, names)
        top_keys = name_keys(connection, keys[:top])
        near = near_limit_keys(connection, names)
        window = tuple(start + timedelta(n) for n in range(days))
        by_model = activity_spend(connection, window, [w.workspace_id for w in workspaces], top=top)
    except SQLAlchemyError as exc:
        raise ReportError(f"cannot read the analysis views: {first_line(exc)}") from exc
    return Report(start, end, workspaces, top_keys, near[:top], max(0, len(near) - top), by_model)


def workspace_and_key_spend(
    connection: Connection, start: date, end: date, names: dict[str, str]
) -> tuple[tuple[WorkspaceSpend, ...], list[KeySpend]]:
    """Daily spend per workspace and window spend per key (highest first), exactly."""
    by_day: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    by_key: dict[str, Decimal] = defaultdict(Decimal)
    unknown: dict[str, set[date]] = defaultdict(set)  # key-days of unknown spend
    owner: dict[str, tuple[date, str]] = {}
    rows = connection.execute(
        select(
            DailyKeySpend.key_hash,
            DailyKeySpend.workspace_id,
            DailyKeySpend.day,
            DailyKeySpend.spend_usd,
        )
        .where(DailyKeySpend.day.between(start, end))
        .execution_options(yield_per=10_000)
    )
    with localcontext() as context:
        context.prec = EXACT_DIGITS
        for key_hash, workspace_id, day, spend in rows:
            if key_hash not in owner or owner[key_hash][0] < day:
                owner[key_hash] = (day, workspace_id)  # where the key last spent
            if spend is None:
                unknown[key_hash].add(day)
            else:
                by_day[(workspace_id, day)] += spend
                by_key[key_hash] += spend
    gaps = DAILY_KEY_SPEND_GAPS.c
    for key_hash, day in connection.execute(
        select(gaps.key_hash, gaps.day).where(gaps.day.between(start, end))
    ):
        unknown[key_hash].add(day)
    view = DAILY_WORKSPACE_SPEND.c
    seen: dict[str, dict[date, tuple[bool, int]]] = defaultdict(dict)
    for workspace_id, day, spend, unknown_keys in connection.execute(
        select(view.workspace_id, view.day, view.spend_usd, view.unknown_keys).where(
            view.day.between(start, end)
        )
    ):
        seen[workspace_id][day] = (spend is not None, int(unknown_keys or 0))
    window = [start + timedelta(n) for n in range((end - start).days + 1)]
    workspaces = [
        WorkspaceSpend(
            workspace_id,
            names.get(workspace_id, workspace_id),
            tuple(_day_spend(d, days.get(d), by_day[(workspace_id, d)]) for d in window),
        )
        for workspace_id, days in seen.items()
    ]
    workspaces.sort(
        key=lambda w: (w.total_usd is None, -(w.total_usd or 0), w.name, w.workspace_id)
    )
    # A day its workspace's total does not know (not synced, or not over yet: the
    # latest day has no key rows at all) is unknown for each of its keys too; without
    # this a key's spend over the window would silently read such days as zero.
    unknown_in = {
        w.workspace_id: {d.day for d in w.daily if d.spend_usd is None} for w in workspaces
    }
    keys = [
        KeySpend(
            h,
            None,
            owner[h][1],
            names.get(owner[h][1], owner[h][1]),
            without_padding(spent),
            len(unknown[h] | unknown_in.get(owner[h][1], set())),
        )
        for h, spent in by_key.items()
    ]
    keys = [k for k in keys if k.spend_usd > 0]
    keys.sort(key=lambda k: (-k.spend_usd, k.key_hash))
    return tuple(workspaces), keys


def _day_spend(day: date, seen: tuple[bool, int] | None, spend: Decimal) -> DaySpend:
    """One workspace-day: unknown when the view's spend_usd is NULL (or it has no row)."""
    if seen is None:
        return DaySpend(day, None, in_ledger=False)
    known, unknown_keys = seen
    return DaySpend(day, without_padding(spend) if known else None, True, unknown_keys)


def name_keys(connection: Connection, keys: list[KeySpend]) -> tuple[KeySpend, ...]:
    """``keys`` with the names ``key_limit_status`` gives live keys (None for the others)."""
    if not keys:
        return ()
    status = KEY_LIMIT_STATUS.c
    in_keys = status.key_hash.in_([k.key_hash for k in keys])
    live = dict(connection.execute(select(status.key_hash, status.name).where(in_keys)).all())
    return tuple(replace(k, name=live.get(k.key_hash)) for k in keys)


def near_limit_keys(connection: Connection, names: dict[str, str]) -> tuple[LimitStatus, ...]:
    """Live keys that used >= 80% of their limit or will reach it within 7 days."""
    status = KEY_LIMIT_STATUS.c
    # The view's days_until_limit is NULL when the limit is not reached (it resets
    # first, the key is disabled or expires): such a key is not about to run out.
    soon = status.days_until_limit <= NEAR_LIMIT_DAYS
    rows = connection.execute(
        select(KEY_LIMIT_STATUS).where(or_(status.utilization >= NEAR_LIMIT_UTILIZATION, soon))
    )
    found = [
        LimitStatus(
            key_hash=r.key_hash,
            name=r.name,
            workspace_id=r.workspace_id,
            workspace_name=names.get(r.workspace_id, r.workspace_id),
            credit_limit=r.credit_limit,
            limit_remaining=r.limit_remaining,
            utilization=None if r.utilization is None else round(float(r.utilization), 6),
            limit_reset=r.limit_reset,
            days_until_limit=None if r.days_until_limit is None else int(r.days_until_limit),
            projected_limit_date=r.projected_limit_date,
        )
        for r in rows
    ]
    found.sort(key=urgency)
    return tuple(found)


def urgency(status: LimitStatus) -> tuple[int, float, float, str, str]:
    """Sort key, most urgent first: limits already used up, then those projected to
    run out (soonest first), then the rest by share used (highest first)."""
    exhausted = (status.limit_remaining is not None and status.limit_remaining <= 0) or (
        status.utilization is not None and status.utilization >= 1
    )
    projected = status.projected_limit_date is not None and status.days_until_limit is not None
    if exhausted:
        rank, days = 0, 0.0
    elif projected:
        rank, days = 1, float(status.days_until_limit or 0)
    else:
        rank, days = 2, 0.0
    return (rank, days, -(status.utilization or 0.0), status.name, status.key_hash)
