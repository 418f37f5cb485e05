"""gap days without a row per key

Revision ID: 0003
Revises: 0002

Until now a run that found days no sync had observed wrote a NULL daily_key_spend row
per key per missed day: one run whose server clock was ten years ahead wrote 730,266
rows for 200 keys. From now on a gap costs one workspace_days row per day (observed
false, as before) and one NULL row per key, on the last observed day before the gap;
the view daily_key_spend_gaps gives the key-days inside the gap, and the views that sum
per key read it as NULL spend. Rows written the old way stay and mean the same (the
view leaves out key-days that have a row), so upgrading loses nothing; downgrading
writes the gap key-days back as rows.
Create Date: 2026-12-01 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A key is inside a gap on an unobserved day when it has a daily_key_spend row on the
# workspace's last observed day before it (gap_since): the sync that ends a gap writes
# one for every key live then, since that day's spend is unknown too.
GAPS = """
CREATE VIEW daily_key_spend_gaps AS
SELECT s.key_hash AS key_hash, wd.day AS day, wd.workspace_id AS workspace_id
FROM workspace_days wd
JOIN daily_key_spend s ON s.workspace_id = wd.workspace_id AND s.day = wd.gap_since
WHERE NOT wd.observed
  AND NOT EXISTS (
      SELECT 1 FROM daily_key_spend x WHERE x.key_hash = s.key_hash AND x.day = wd.day
  )
"""

# As in 0002, plus the gap key-days in unknown_keys (their spend is unknown too).
DAILY_WORKSPACE_SPEND = """
CREATE VIEW daily_workspace_spend AS
SELECT wd.workspace_id AS workspace_id,
       wd.day AS day,
       CASE WHEN wd.observed AND wd.next_day_observed
            THEN COALESCE(SUM(s.spend_usd + 0), 0) END AS spend_usd,
       CASE WHEN wd.observed AND wd.next_day_observed
            THEN COALESCE(SUM(s.byok_spend_usd + 0), 0) END AS byok_spend_usd,
       SUM(CASE WHEN s.spend_usd + 0 > 0 OR s.byok_spend_usd + 0 > 0 THEN 1 ELSE 0 END)
           AS active_keys,
       SUM(CASE WHEN s.key_hash IS NOT NULL AND s.spend_usd IS NULL THEN 1 ELSE 0 END)
           + CASE WHEN wd.observed THEN 0 ELSE (
                 SELECT COUNT(*) FROM daily_key_spend_gaps g
                 WHERE g.workspace_id = wd.workspace_id AND g.day = wd.day
             ) END AS unknown_keys
FROM workspace_days wd
LEFT JOIN daily_key_spend s ON s.workspace_id = wd.workspace_id AND s.day = wd.day
GROUP BY wd.workspace_id, wd.day, wd.observed, wd.next_day_observed
"""

OLD_DAILY_WORKSPACE_SPEND = """
CREATE VIEW daily_workspace_spend AS
SELECT wd.workspace_id AS workspace_id,
       wd.day AS day,
       CASE WHEN wd.observed AND wd.next_day_observed
            THEN COALESCE(SUM(s.spend_usd + 0), 0) END AS spend_usd,
       CASE WHEN wd.observed AND wd.next_day_observed
            THEN COALESCE(SUM(s.byok_spend_usd + 0), 0) END AS byok_spend_usd,
       SUM(CASE WHEN s.spend_usd + 0 > 0 OR s.byok_spend_usd + 0 > 0 THEN 1 ELSE 0 END)
           AS active_keys,
       SUM(CASE WHEN s.key_hash IS NOT NULL AND s.spend_usd IS NULL THEN 1 ELSE 0 END)
           AS unknown_keys
FROM workspace_days wd
LEFT JOIN daily_key_spend s ON s.workspace_id = wd.workspace_id AND s.day = wd.day
GROUP BY wd.workspace_id, wd.day, wd.observed, wd.next_day_observed
"""

MONTH_START = {
    "postgresql": "CAST(date_trunc('month', {d}) AS DATE)",
    "mysql": "CAST(DATE_FORMAT({d}, '%Y-%m-01') AS DATE)",
    "sqlite": "date({d}, 'start of month')",
}

# As in 0002, over the rows and the gap key-days.
MONTHLY_KEY_SPEND = """
CREATE VIEW monthly_key_spend AS
SELECT key_hash, workspace_id, {month} AS month,
       CASE WHEN COUNT(*) = COUNT(spend_usd) THEN SUM(spend_usd + 0) END AS spend_usd,
       CASE WHEN COUNT(*) = COUNT(byok_spend_usd) THEN SUM(byok_spend_usd + 0) END
           AS byok_spend_usd,
       SUM(CASE WHEN spend_usd IS NULL THEN 1 ELSE 0 END) AS unknown_days
FROM (
    SELECT key_hash, workspace_id, day, spend_usd, byok_spend_usd FROM daily_key_spend
    UNION ALL
    SELECT key_hash, workspace_id, day, NULL, NULL FROM daily_key_spend_gaps
) d
GROUP BY key_hash, workspace_id, {month}
"""

OLD_MONTHLY_KEY_SPEND = """
CREATE VIEW monthly_key_spend AS
SELECT key_hash, workspace_id, {month} AS month,
       CASE WHEN COUNT(*) = COUNT(spend_usd) THEN SUM(spend_usd + 0) END AS spend_usd,
       CASE WHEN COUNT(*) = COUNT(byok_spend_usd) THEN SUM(byok_spend_usd + 0) END
           AS byok_spend_usd,
       SUM(CASE WHEN spend_usd IS NULL THEN 1 ELSE 0 END) AS unknown_days
FROM daily_key_spend
GROUP BY key_hash, workspace_id, {month}
"""

WEEK_START = {
    "postgresql": "CAST(date_trunc('week', {d}) AS DATE)",
    "mysql": "DATE_SUB({d}, INTERVAL WEEKDAY({d}) DAY)",
    "sqlite": "date({d}, '-' || ((CAST(strftime('%w', {d}) AS INTEGER) + 6) % 7) || ' days')",
}

# Unchanged from 0002; dropped and created again because it reads daily_workspace_spend.
WEEKLY_WORKSPACE_SPEND = """
CREATE VIEW weekly_workspace_spend AS
SELECT workspace_id, {week} AS week_start,
       CASE WHEN COUNT(*) = COUNT(spend_usd) THEN SUM(spend_usd + 0) END AS spend_usd,
       CASE WHEN COUNT(*) = COUNT(byok_spend_usd) THEN SUM(byok_spend_usd + 0) END
           AS byok_spend_usd,
       SUM(CASE WHEN spend_usd IS NULL THEN 1 ELSE 0 END) AS unknown_days
FROM daily_workspace_spend
GROUP BY workspace_id, {week}
"""

# Readers first: PostgreSQL refuses to drop a view another view reads.
REPLACED = ("weekly_workspace_spend", "monthly_key_spend", "daily_workspace_spend")


GAP_SINCE_COMMENT = (
    "On a day no sync observed: the workspace's last observed day before it. The keys "
    "with a daily_key_spend row on that day have unknown spend on this one (view "
    "daily_key_spend_gaps). NULL on observed days."
)
OLD_COMMENT = (
    "Exact spend per key per UTC day, from the day-start totals (usage - usage_daily) "
    "observed on that day and the next. Sparse: a row for every key-day with spend, and a "
    "NULL row for every key-day of a key's observed life whose spend is unknown (a bounding "
    "day was not observed). A key-day without a row had no spend."
)
COMMENT = (
    "Exact spend per key per UTC day, from the day-start totals (usage - usage_daily) "
    "observed on that day and the next. Sparse: a row for every key-day with spend, and a "
    "NULL row for a key-day whose spend is unknown (a bounding day was not observed). The "
    "days inside a gap of unobserved days have no row per key: the view "
    "daily_key_spend_gaps lists them (spend unknown). A key-day in neither had no spend."
)


def upgrade() -> None:
    op.add_column(
        "workspace_days",
        sa.Column("gap_since", sa.Date(), nullable=True, comment=GAP_SINCE_COMMENT),
    )
    _fill_gap_since()
    for view in REPLACED:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute(GAPS)
    _create(DAILY_WORKSPACE_SPEND, MONTHLY_KEY_SPEND)
    _comment(COMMENT, OLD_COMMENT)


def downgrade() -> None:
    # 0002 reads a gap from its rows: write the gap key-days back as NULL rows.
    op.execute(
        "INSERT INTO daily_key_spend (key_hash, day, workspace_id, spend_usd, byok_spend_usd) "
        "SELECT key_hash, day, workspace_id, NULL, NULL FROM daily_key_spend_gaps"
    )
    for view in REPLACED:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DROP VIEW IF EXISTS daily_key_spend_gaps")
    _create(OLD_DAILY_WORKSPACE_SPEND, OLD_MONTHLY_KEY_SPEND)
    _comment(OLD_COMMENT, COMMENT)
    op.drop_column("workspace_days", "gap_since")


def _create(daily_workspace_spend: str, monthly_key_spend: str) -> None:
    dialect = op.get_bind().dialect.name
    op.execute(daily_workspace_spend)
    op.execute(WEEKLY_WORKSPACE_SPEND.format(week=WEEK_START[dialect].format(d="day")))
    op.execute(monthly_key_spend.format(month=MONTH_START[dialect].format(d="day")))


def _comment(comment: str, existing: str) -> None:
    if op.get_bind().dialect.name != "sqlite":  # SQLite keeps no comments
        op.create_table_comment("daily_key_spend", comment, existing_comment=existing)


def _fill_gap_since() -> None:
    """gap_since of the unobserved days already stored, computed here rather than in
    one UPDATE: MariaDB refuses an UPDATE that reads the table it writes."""
    days = sa.table(
        "workspace_days",
        sa.column("workspace_id", sa.String),
        sa.column("day", sa.Date),
        sa.column("observed", sa.Boolean),
        sa.column("gap_since", sa.Date),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(days.c.workspace_id, days.c.day, days.c.observed).order_by(
            days.c.workspace_id, days.c.day
        )
    ).all()
    updates, last_seen = [], {}
    for workspace_id, day, observed in rows:
        if observed:
            last_seen[workspace_id] = day
        elif workspace_id in last_seen:
            updates.append({"w": workspace_id, "d": day, "since": last_seen[workspace_id]})
    if updates:
        bind.execute(
            sa.update(days)
            .where(days.c.workspace_id == sa.bindparam("w"), days.c.day == sa.bindparam("d"))
            .values(gap_since=sa.bindparam("since")),
            updates,
        )
