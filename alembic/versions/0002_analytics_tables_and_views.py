"""analytics tables and views

Revision ID: 0002
Revises: 0001

Tables the sync maintains (workspace_days, daily_key_spend, api_key_versions) and the
views BI tools read. View SQL differs per dialect only in date arithmetic; every view
returns the same rows on SQLite, PostgreSQL and MariaDB.
Create Date: 2026-11-28 09:17:16.899479
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

# Unicode names verbatim and byte-exact comparisons on MariaDB/MySQL, whatever the
# server's defaults (which may be latin1).
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_days",
        sa.Column("workspace_id", sa.String(length=64), nullable=False, comment="Workspace UUID."),
        sa.Column("day", sa.Date(), nullable=False, comment="The UTC day."),
        sa.Column(
            "observed",
            sa.Boolean(),
            nullable=False,
            comment="True when a successful sync observed the workspace on this day.",
        ),
        sa.Column(
            "first_observed_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) of the first successful sync that day.",
        ),
        sa.Column(
            "next_day_observed",
            sa.Boolean(),
            nullable=False,
            comment="True when the following UTC day was observed too: only then is the day's spend known (it is the difference of the two day-start totals).",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "day", name=op.f("pk_workspace_days")),
        comment="One row per workspace and UTC day since its first successful sync: whether a successful sync observed it that day (every live key was then observed too, changed or not) and whether the next day was observed.",
        **MYSQL_TABLE,
    )
    op.create_table(
        "api_key_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="Row id.",
        ),
        sa.Column(
            "key_hash", sa.String(length=128), nullable=False, comment="The key (api_keys.hash)."
        ),
        sa.Column(
            "valid_from",
            models.types.UtcDateTime(timezone=True),
            nullable=False,
            comment="Server time (UTC) from which this version was observed.",
        ),
        sa.Column(
            "valid_to",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Server time (UTC) when the next version (or the deletion) was observed; NULL for the current version.",
        ),
        sa.Column("workspace_id", sa.String(length=64), nullable=False, comment="Workspace UUID."),
        sa.Column("name", sa.Text(), nullable=False, comment="Name of the key."),
        sa.Column("label", sa.Text(), nullable=False, comment="Label of the key."),
        sa.Column(
            "credit_limit",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="Spending limit in USD; NULL = no limit.",
        ),
        sa.Column(
            "limit_reset",
            sa.String(length=32),
            nullable=True,
            comment="Limit reset period: daily, weekly, monthly or NULL.",
        ),
        sa.Column(
            "include_byok_in_limit",
            sa.Boolean(),
            nullable=False,
            comment="Whether BYOK usage counts toward the limit.",
        ),
        sa.Column(
            "disabled", sa.Boolean(), nullable=False, comment="Whether the key was disabled."
        ),
        sa.Column(
            "expires_at",
            models.types.UtcDateTime(timezone=True),
            nullable=True,
            comment="Expiry (UTC); NULL = never.",
        ),
        sa.ForeignKeyConstraint(
            ["key_hash"], ["api_keys.hash"], name=op.f("fk_api_key_versions_key_hash_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_versions")),
        comment="History of each key's descriptive attributes as validity intervals: one row per change, valid_to NULL for the current version. 'What was this key called, and what was its limit, at time X' is: valid_from <= X AND (valid_to IS NULL OR valid_to > X).",
        **MYSQL_TABLE,
    )
    with op.batch_alter_table("api_key_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_api_key_versions_key_hash_valid_from", ["key_hash", "valid_from"], unique=False
        )

    op.create_table(
        "daily_key_spend",
        sa.Column(
            "key_hash", sa.String(length=128), nullable=False, comment="The key (api_keys.hash)."
        ),
        sa.Column("day", sa.Date(), nullable=False, comment="The UTC day."),
        sa.Column(
            "workspace_id",
            sa.String(length=64),
            nullable=False,
            comment="Workspace the key belonged to on that day.",
        ),
        sa.Column(
            "spend_usd",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="OpenRouter credit spent that UTC day in USD; NULL = unknown.",
        ),
        sa.Column(
            "byok_spend_usd",
            models.types.Money(precision=65, scale=30),
            nullable=True,
            comment="External BYOK spend that UTC day in USD; NULL = unknown.",
        ),
        sa.ForeignKeyConstraint(
            ["key_hash"], ["api_keys.hash"], name=op.f("fk_daily_key_spend_key_hash_api_keys")
        ),
        sa.PrimaryKeyConstraint("key_hash", "day", name=op.f("pk_daily_key_spend")),
        comment="Exact spend per key per UTC day, from the day-start totals (usage - usage_daily) observed on that day and the next. Sparse: a row for every key-day with spend, and a NULL row for every key-day of a key's observed life whose spend is unknown (a bounding day was not observed). A key-day without a row had no spend.",
        **MYSQL_TABLE,
    )
    with op.batch_alter_table("daily_key_spend", schema=None) as batch_op:
        batch_op.create_index("ix_daily_key_spend_day", ["day"], unique=False)
        batch_op.create_index(
            "ix_daily_key_spend_workspace_id_day", ["workspace_id", "day"], unique=False
        )

    create_views()


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for table in ("daily_key_spend", "api_key_versions", "workspace_days"):
        op.drop_table(table)


# -- views ----------------------------------------------------------------------------
# Money is compared and summed as `x + 0`: on SQLite the exact decimal is stored as
# TEXT, and `+ 0` makes SQLite treat it as a number (it already is one elsewhere).

# A day's total is known when the workspace was observed that day and the next; a key
# whose own spend is unknown that day (e.g. deleted between the syncs) is left out of
# the sum and counted in unknown_keys.
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

MONTHLY_KEY_SPEND = """
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

# Weeks start on Monday, as the API's weekly counters do.
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

ADD_DAYS = {
    "postgresql": "({d} + CAST({n} AS INTEGER))",
    "mysql": "DATE_ADD({d}, INTERVAL {n} DAY)",
    "sqlite": "date({d}, '+' || CAST({n} AS INTEGER) || ' days')",
}
# Whole days, rounded down: a limit that lasts 0.5 days at the burn rate runs out on
# the as-of day itself. (Only used on positive numbers; not every SQLite build has FLOOR.)
WHOLE_DAYS = {
    "postgresql": "FLOOR({x})",
    "mysql": "FLOOR({x})",
    "sqlite": "CAST({x} AS INTEGER)",
}
NEXT_MONDAY = {
    "postgresql": "(CAST(date_trunc('week', {d}) AS DATE) + 7)",
    "mysql": "DATE_ADD({d}, INTERVAL 7 - WEEKDAY({d}) DAY)",
    "sqlite": "date({d}, '+1 day', 'weekday 1')",
}
NEXT_MONTH = {
    "postgresql": "CAST(date_trunc('month', {d}) + INTERVAL '1 month' AS DATE)",
    "mysql": "DATE_ADD(LAST_DAY({d}), INTERVAL 1 DAY)",
    "sqlite": "date({d}, 'start of month', '+1 month')",
}

# One row per live key. Spend windows are the workspace's 7 and 30 latest complete
# (observed, with the next day observed) days; the burn rate is the 7-day spend per
# complete day; the projection counts from the workspace's latest observed day and is
# NULL without a limit, without recent spend, or when the limit resets before it runs out.
KEY_LIMIT_STATUS = """
CREATE VIEW key_limit_status AS
SELECT k.hash AS key_hash,
       k.workspace_id AS workspace_id,
       k.name AS name,
       k.label AS label,
       k.credit_limit AS credit_limit,
       k.limit_remaining AS limit_remaining,
       CASE WHEN k.credit_limit + 0 > 0
            THEN (k.credit_limit + 0.0 - k.limit_remaining) / (k.credit_limit + 0.0) END
           AS utilization,
       k.limit_reset AS limit_reset,
       k.disabled AS disabled,
       k.expires_at AS expires_at,
       COALESCE(w.spend_7d, 0) AS spend_last_7_days,
       COALESCE(w.spend_30d, 0) AS spend_last_30_days,
       d.as_of_day AS as_of_day,
       CASE WHEN k.credit_limit IS NOT NULL AND w.spend_7d > 0 AND d.days_7d > 0
                 AND {days_left} < {horizon}
            THEN {whole_days_left} END AS days_until_limit,
       CASE WHEN k.credit_limit IS NULL OR w.spend_7d IS NULL OR w.spend_7d <= 0
                 OR d.days_7d IS NULL OR d.days_7d = 0 OR {days_left} >= {horizon} THEN NULL
            WHEN k.limit_reset = 'daily' AND {projected} >= {next_day} THEN NULL
            WHEN k.limit_reset = 'weekly' AND {projected} >= {next_monday} THEN NULL
            WHEN k.limit_reset = 'monthly' AND {projected} >= {next_month} THEN NULL
            ELSE {projected}
       END AS projected_limit_date
FROM api_keys k
LEFT JOIN (
    SELECT s.key_hash AS key_hash,
           SUM(CASE WHEN r.rn <= 7 THEN s.spend_usd + 0 ELSE 0 END) AS spend_7d,
           SUM(s.spend_usd + 0) AS spend_30d
    FROM daily_key_spend s
    JOIN ({recent}) r ON r.workspace_id = s.workspace_id AND r.day = s.day AND r.rn <= 30
    GROUP BY s.key_hash
) w ON w.key_hash = k.hash
LEFT JOIN (
    SELECT o.workspace_id AS workspace_id, o.as_of_day AS as_of_day, c.days_7d AS days_7d
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
"""

# A limit that lasts longer than this at the burn rate never runs out as far as anyone
# cares (and a date that far out overflows integer and date arithmetic).
HORIZON_DAYS = 36500

RECENT_DAYS = (
    "SELECT workspace_id, day, ROW_NUMBER() OVER (PARTITION BY workspace_id ORDER BY day DESC)"
    " AS rn FROM workspace_days WHERE observed AND next_day_observed"
)

VIEWS = (
    "daily_workspace_spend",
    "weekly_workspace_spend",
    "monthly_key_spend",
    "key_limit_status",
)


def create_views() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(DAILY_WORKSPACE_SPEND)
    op.execute(WEEKLY_WORKSPACE_SPEND.format(week=WEEK_START[dialect].format(d="day")))
    op.execute(MONTHLY_KEY_SPEND.format(month=MONTH_START[dialect].format(d="day")))
    days_left = "(k.limit_remaining + 0.0) / (w.spend_7d / d.days_7d)"
    projected = ADD_DAYS[dialect].format(d="d.as_of_day", n=WHOLE_DAYS[dialect].format(x=days_left))
    op.execute(
        KEY_LIMIT_STATUS.format(
            recent=RECENT_DAYS,
            days_left=days_left,
            horizon=HORIZON_DAYS,
            whole_days_left=WHOLE_DAYS[dialect].format(x=days_left),
            projected=projected,
            next_day=ADD_DAYS[dialect].format(d="d.as_of_day", n="1"),
            next_monday=NEXT_MONDAY[dialect].format(d="d.as_of_day"),
            next_month=NEXT_MONTH[dialect].format(d="d.as_of_day"),
        )
    )
