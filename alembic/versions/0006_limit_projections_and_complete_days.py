"""limit projections and complete workspace days

Revision ID: 0006
Revises: 0005

key_limit_status: a projection that never contradicts itself. days_until_limit and
projected_limit_date are NULL together (before, days_until_limit ignored resets while the
date did not), projected_limit_date = as_of_day + days_until_limit, a limit that resets
(or a key that expires) on or before the projected day is never projected as reached,
and 0 days means "at its limit now", never "burns more than its limit in a day". New
column limit_resets_on: when the current window ends.

daily_workspace_spend and weekly_workspace_spend keep spend_usd as the sum of the keys
whose spend is known and gain `complete` (and, weekly, unknown_key_days), so a partial
sum can always be told from a complete one.

Self-contained on purpose: it drops and recreates only these three views, the downgrade
restores the 0003 / 0002 definitions (read from those modules), and the SQL is right
whether SQLite stores money as TEXT or REAL (arithmetic and comparisons on `x + 0`).
Create Date: 2026-12-01 09:30:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _earlier(filename: str) -> ModuleType:
    """An earlier migration module (its name starts with a digit, so no plain import)."""
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"keyledger_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V0002 = _earlier("0002_analytics_tables_and_views.py")
V0003 = _earlier("0003_gap_days_without_a_row_per_key.py")

# Readers first: PostgreSQL refuses to drop a view another view reads.
REPLACED = ("weekly_workspace_spend", "daily_workspace_spend", "key_limit_status")

# spend_usd: NULL when the workspace was not observed on the day and the next (nothing
# about the day is known); otherwise the sum of the keys whose spend is known, which is
# what a reader wants to chart (a deleted key's last day must not blank out the rest of
# the workspace). `complete` says whether that sum covers every key; unknown_keys how
# many it leaves out. The inner query is 0003's view, unchanged.
DAILY_WORKSPACE_SPEND = """
CREATE VIEW daily_workspace_spend AS
SELECT t.workspace_id AS workspace_id,
       t.day AS day,
       t.spend_usd AS spend_usd,
       t.byok_spend_usd AS byok_spend_usd,
       t.active_keys AS active_keys,
       t.unknown_keys AS unknown_keys,
       (t.spend_usd IS NOT NULL AND t.unknown_keys = 0) AS complete
FROM ({inner}) t
"""

# The same rule a week at a time: NULL while any day is (not observed or not over),
# otherwise the sum of the days' known spend; complete only when every day is.
WEEKLY_WORKSPACE_SPEND = """
CREATE VIEW weekly_workspace_spend AS
SELECT workspace_id, {week} AS week_start,
       CASE WHEN COUNT(*) = COUNT(spend_usd) THEN SUM(spend_usd + 0) END AS spend_usd,
       CASE WHEN COUNT(*) = COUNT(byok_spend_usd) THEN SUM(byok_spend_usd + 0) END
           AS byok_spend_usd,
       SUM(CASE WHEN spend_usd IS NULL THEN 1 ELSE 0 END) AS unknown_days,
       SUM(unknown_keys) AS unknown_key_days,
       (COUNT(*) = COUNT(spend_usd) AND SUM(unknown_keys) = 0) AS complete
FROM daily_workspace_spend
GROUP BY workspace_id, {week}
"""

# Three layers so each rule is written once: `p` gathers the key, its recent spend and
# the workspace's as-of day and works out the days the remaining limit lasts; `q` turns
# them into a date; the outer query keeps the projection only when nothing (a reset,
# the key's expiry) comes first, so both columns are NULL together.
#
# The model, at day resolution: limit_remaining (at the last sync, on as_of_day) is
# spent from the next day on at the burn rate (the 7-day spend per complete day), so the
# limit is reached on the first day whose cumulative spend covers it: CEIL(remaining /
# rate) days after as_of_day, at least 1. 0 days is kept for a key already at its limit.
# The ratio is rounded to 9 decimals first, so SQLite's float division cannot move a
# day that the exact NUMERIC division on the other backends puts on a boundary.
KEY_LIMIT_STATUS = """
CREATE VIEW key_limit_status AS
SELECT q.key_hash AS key_hash,
       q.workspace_id AS workspace_id,
       q.name AS name,
       q.label AS label,
       q.credit_limit AS credit_limit,
       q.limit_remaining AS limit_remaining,
       q.utilization AS utilization,
       q.limit_reset AS limit_reset,
       q.disabled AS disabled,
       q.expires_at AS expires_at,
       q.spend_last_7_days AS spend_last_7_days,
       q.spend_last_30_days AS spend_last_30_days,
       q.as_of_day AS as_of_day,
       CASE WHEN {reached} THEN q.days END AS days_until_limit,
       CASE WHEN {reached} THEN q.projected END AS projected_limit_date,
       q.limit_resets_on AS limit_resets_on
FROM (
    SELECT p.*, CASE WHEN p.days IS NOT NULL THEN {projected} END AS projected
    FROM (
        SELECT k.hash AS key_hash,
               k.workspace_id AS workspace_id,
               k.name AS name,
               k.label AS label,
               k.credit_limit AS credit_limit,
               k.limit_remaining AS limit_remaining,
               CASE WHEN k.credit_limit + 0 > 0
                    THEN (k.credit_limit + 0.0 - k.limit_remaining) / (k.credit_limit + 0.0)
               END AS utilization,
               k.limit_reset AS limit_reset,
               k.disabled AS disabled,
               k.expires_at AS expires_at,
               COALESCE(w.spend_7d, 0) AS spend_last_7_days,
               COALESCE(w.spend_30d, 0) AS spend_last_30_days,
               d.as_of_day AS as_of_day,
               {expiry_day} AS expiry_day,
               CASE WHEN k.credit_limit IS NOT NULL AND d.as_of_day IS NOT NULL THEN
                   CASE k.limit_reset WHEN 'daily' THEN {next_day}
                                      WHEN 'weekly' THEN {next_monday}
                                      WHEN 'monthly' THEN {next_month} END
               END AS limit_resets_on,
               CASE WHEN k.credit_limit IS NULL OR k.credit_limit + 0 <= 0
                         OR k.limit_remaining IS NULL
                         OR d.as_of_day IS NULL OR k.disabled THEN NULL
                    WHEN k.limit_remaining + 0 <= 0 THEN 0
                    WHEN w.spend_7d > 0 AND d.days_7d > 0 AND {ratio} <= {horizon}
                         THEN {ceil_ratio}
               END AS days
        FROM api_keys k
        LEFT JOIN (
            SELECT s.key_hash AS key_hash,
                   SUM(CASE WHEN r.rn <= 7 THEN s.spend_usd + 0 ELSE 0 END) AS spend_7d,
                   SUM(s.spend_usd + 0) AS spend_30d
            FROM daily_key_spend s
            JOIN ({recent}) r ON r.workspace_id = s.workspace_id AND r.day = s.day
                              AND r.rn <= 30
            GROUP BY s.key_hash
        ) w ON w.key_hash = k.hash
        LEFT JOIN (
            SELECT o.workspace_id AS workspace_id, o.as_of_day AS as_of_day,
                   c.days_7d AS days_7d
            FROM (
                SELECT workspace_id, MAX(day) AS as_of_day
                FROM workspace_days WHERE observed GROUP BY workspace_id
            ) o
            LEFT JOIN (
                SELECT workspace_id, SUM(CASE WHEN rn <= 7 THEN 1 ELSE 0 END) AS days_7d
                FROM ({recent}) r2 GROUP BY workspace_id
            ) c ON c.workspace_id = o.workspace_id
        ) d ON d.workspace_id = k.workspace_id
        WHERE k.deleted_at IS NULL
    ) p
) q
"""

# Kept only when no reset comes on or before the projected day (the window starts again
# at 00:00 of limit_resets_on) and the key does not expire on or before it (an expired
# key never spends again; on the day itself expiry is taken to come first).
REACHED = (
    "q.projected IS NOT NULL"
    " AND (q.limit_resets_on IS NULL OR q.projected < q.limit_resets_on)"
    " AND (q.expiry_day IS NULL OR q.expiry_day > q.projected)"
)

# Days at the burn rate, as an exact ratio where the backend has one.
RATIO = "(k.limit_remaining + 0.0) * d.days_7d / w.spend_7d"

# CEIL of a positive number, as an integer (not every SQLite build has CEIL; PostgreSQL
# and MariaDB give NUMERIC/DECIMAL from CEIL of one, which BI tools show as 7.0).
CEIL = {
    "postgresql": "CAST(CEIL({x}) AS INTEGER)",
    "mysql": "CAST(CEIL({x}) AS SIGNED)",
    "sqlite": "(CAST({x} AS INTEGER) + ({x} > CAST({x} AS INTEGER)))",
}

# The UTC day of a timestamp: PostgreSQL's timestamptz must not go through the session's
# time zone; the others store UTC wall time.
UTC_DAY = {
    "postgresql": "CAST({t} AT TIME ZONE 'UTC' AS DATE)",
    "mysql": "DATE({t})",
    "sqlite": "date({t})",
}


def upgrade() -> None:
    _drop()
    dialect = op.get_bind().dialect.name
    op.execute(DAILY_WORKSPACE_SPEND.format(inner=_inner_daily_workspace_spend()))
    op.execute(WEEKLY_WORKSPACE_SPEND.format(week=V0002.WEEK_START[dialect].format(d="day")))
    ratio = f"ROUND({RATIO}, 9)"
    op.execute(
        KEY_LIMIT_STATUS.format(
            reached=REACHED,
            projected=V0002.ADD_DAYS[dialect].format(d="p.as_of_day", n="p.days"),
            expiry_day=UTC_DAY[dialect].format(t="k.expires_at"),
            next_day=V0002.ADD_DAYS[dialect].format(d="d.as_of_day", n="1"),
            next_monday=V0002.NEXT_MONDAY[dialect].format(d="d.as_of_day"),
            next_month=V0002.NEXT_MONTH[dialect].format(d="d.as_of_day"),
            ratio=ratio,
            horizon=V0002.HORIZON_DAYS,
            ceil_ratio=CEIL[dialect].format(x=ratio),
            recent=V0002.RECENT_DAYS,
        )
    )


def downgrade() -> None:
    _drop()
    dialect = op.get_bind().dialect.name
    op.execute(V0003.DAILY_WORKSPACE_SPEND)
    op.execute(V0003.WEEKLY_WORKSPACE_SPEND.format(week=V0003.WEEK_START[dialect].format(d="day")))
    # 0002's create_views() makes every view at once; this is its key_limit_status part.
    days_left = "(k.limit_remaining + 0.0) / (w.spend_7d / d.days_7d)"
    whole_days = V0002.WHOLE_DAYS[dialect].format(x=days_left)
    op.execute(
        V0002.KEY_LIMIT_STATUS.format(
            recent=V0002.RECENT_DAYS,
            days_left=days_left,
            horizon=V0002.HORIZON_DAYS,
            whole_days_left=whole_days,
            projected=V0002.ADD_DAYS[dialect].format(d="d.as_of_day", n=whole_days),
            next_day=V0002.ADD_DAYS[dialect].format(d="d.as_of_day", n="1"),
            next_monday=V0002.NEXT_MONDAY[dialect].format(d="d.as_of_day"),
            next_month=V0002.NEXT_MONTH[dialect].format(d="d.as_of_day"),
        )
    )


def _drop() -> None:
    for view in REPLACED:
        op.execute(f"DROP VIEW IF EXISTS {view}")


def _inner_daily_workspace_spend() -> str:
    sql: str = V0003.DAILY_WORKSPACE_SPEND
    prefix = "CREATE VIEW daily_workspace_spend AS"
    assert sql.strip().startswith(prefix)
    return sql.strip()[len(prefix) :]
