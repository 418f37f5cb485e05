"""spend by model views

Revision ID: 0010
Revises: 0009

Views over the activity tables of 0009 (issue 14): daily_model_spend and
daily_provider_spend (per workspace and UTC day), monthly_model_spend (per workspace and
calendar month, with how many of the month's days are stored or lost), and
activity_reconciliation (per workspace and day, the activity total beside the key
ledger's daily spend, their difference and whether they agree). Views only: no row
moves, and the downgrade drops them. The SQL differs per dialect only in the month, in
casting integer sums back to integers and in rounding differences on SQLite (whose
money is a double); every view returns the same rows on SQLite,
PostgreSQL and MariaDB. Money is summed as `x + 0`, as in 0002.
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
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

# SUM of a BIGINT is NUMERIC on PostgreSQL and DECIMAL on MariaDB, which BI tools show
# as 1234.0: counts are cast back to whole numbers (SQLite's SUM of integers is one).
WHOLE = {
    "postgresql": "CAST({x} AS BIGINT)",
    "mysql": "CAST({x} AS SIGNED)",
    "sqlite": "{x}",
}

# The measures of daily_activity, summed; the counts go through WHOLE.
SUMS = """
       SUM(usage_usd + 0) AS usage_usd,
       SUM(byok_usage_inference_usd + 0) AS byok_usage_inference_usd,
       {requests} AS requests,
       {prompt_tokens} AS prompt_tokens,
       {completion_tokens} AS completion_tokens,
       {reasoning_tokens} AS reasoning_tokens"""

# Only stored days have rows: a day activity_days calls missing (or never fetched) has
# none, so it is absent here, never zero. A stored day without activity has none either.
DAILY_MODEL_SPEND = """
CREATE VIEW daily_model_spend AS
SELECT workspace_id, day, model,{sums}
FROM daily_activity
GROUP BY workspace_id, day, model
"""

DAILY_PROVIDER_SPEND = """
CREATE VIEW daily_provider_spend AS
SELECT workspace_id, day, provider_name,{sums}
FROM daily_activity
GROUP BY workspace_id, day, provider_name
"""

# The month's sums of the days stored, beside how many of the workspace's days of that
# month are stored (fetched_days) and lost for good (missing_days): a month with
# missing days, or not over, is a lower bound.
MONTHLY_MODEL_SPEND = """
CREATE VIEW monthly_model_spend AS
SELECT m.workspace_id AS workspace_id,
       m.month AS month,
       m.model AS model,
       m.usage_usd AS usage_usd,
       m.byok_usage_inference_usd AS byok_usage_inference_usd,
       m.requests AS requests,
       m.prompt_tokens AS prompt_tokens,
       m.completion_tokens AS completion_tokens,
       m.reasoning_tokens AS reasoning_tokens,
       m.active_days AS active_days,
       COALESCE(c.fetched_days, 0) AS fetched_days,
       COALESCE(c.missing_days, 0) AS missing_days
FROM (
    SELECT workspace_id, {month} AS month, model,{sums},
           COUNT(DISTINCT day) AS active_days
    FROM daily_activity
    GROUP BY workspace_id, {month}, model
) m
LEFT JOIN (
    SELECT workspace_id, {month} AS month,
           SUM(CASE WHEN status = 'fetched' THEN 1 ELSE 0 END) AS fetched_days,
           SUM(CASE WHEN status = 'missing' THEN 1 ELSE 0 END) AS missing_days
    FROM activity_days
    GROUP BY workspace_id, {month}
) c ON c.workspace_id = m.workspace_id AND c.month = m.month
"""

# Every workspace-day either source knows of. The activity side is NULL unless
# activity_days says the day is stored whole; the ledger side is daily_workspace_spend's
# spend_usd (NULL when the day, or the next, was not observed; with ledger_complete
# false it leaves out keys of unknown spend and is a lower bound). agree is true when
# both sides are known and both differences are 0: a lower bound that equals the activity
# total is the whole (the keys it leaves out spent nothing that day).
ACTIVITY_RECONCILIATION = """
CREATE VIEW activity_reconciliation AS
SELECT r.workspace_id AS workspace_id,
       r.day AS day,
       r.month AS month,
       r.activity_status AS activity_status,
       r.activity_usd AS activity_usd,
       r.ledger_usd AS ledger_usd,
       {difference} AS difference_usd,
       r.activity_byok_usd AS activity_byok_usd,
       r.ledger_byok_usd AS ledger_byok_usd,
       {byok_difference} AS byok_difference_usd,
       r.ledger_complete AS ledger_complete,
       (r.activity_usd IS NOT NULL AND r.ledger_usd IS NOT NULL
        AND r.activity_byok_usd IS NOT NULL AND r.ledger_byok_usd IS NOT NULL
        AND {difference} = 0 AND {byok_difference} = 0) AS agree
FROM (
    SELECT k.workspace_id AS workspace_id,
           k.day AS day,
           {month} AS month,
           a.status AS activity_status,
           CASE WHEN a.status = 'fetched' THEN COALESCE(t.usage_usd, 0) END AS activity_usd,
           CASE WHEN a.status = 'fetched' THEN COALESCE(t.byok_usd, 0) END
               AS activity_byok_usd,
           s.spend_usd AS ledger_usd,
           s.byok_spend_usd AS ledger_byok_usd,
           s.complete AS ledger_complete
    FROM (
        SELECT workspace_id, day FROM activity_days
        UNION
        SELECT workspace_id, day FROM workspace_days
    ) k
    LEFT JOIN activity_days a ON a.workspace_id = k.workspace_id AND a.day = k.day
    LEFT JOIN (
        SELECT workspace_id, day,
               SUM(usage_usd + 0) AS usage_usd,
               SUM(byok_usage_inference_usd + 0) AS byok_usd
        FROM daily_activity
        GROUP BY workspace_id, day
    ) t ON t.workspace_id = k.workspace_id AND t.day = k.day
    LEFT JOIN daily_workspace_spend s ON s.workspace_id = k.workspace_id AND s.day = k.day
) r
"""

# Exact on PostgreSQL and MariaDB. SQLite sums money as doubles, so there the difference
# is rounded to 1e-9 USD (the accuracy docs/schema.md gives its sums; `+ 0` turns -0.0
# into 0.0): it reads 0 where the exact sums agree.
DIFFERENCE = {
    "postgresql": "({a} - {b})",
    "mysql": "({a} - {b})",
    "sqlite": "(ROUND({a} - {b}, 9) + 0)",
}

# Readers first, so a downgrade never drops a view another one reads.
VIEWS = (
    "activity_reconciliation",
    "monthly_model_spend",
    "daily_provider_spend",
    "daily_model_spend",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    month = V0002.MONTH_START[dialect]
    whole = WHOLE[dialect]
    sums = SUMS.format(
        **{
            name: whole.format(x=f"SUM({name})")
            for name in ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens")
        }
    )
    op.execute(DAILY_MODEL_SPEND.format(sums=sums))
    op.execute(DAILY_PROVIDER_SPEND.format(sums=sums))
    op.execute(MONTHLY_MODEL_SPEND.format(sums=sums, month=month.format(d="day")))
    op.execute(
        ACTIVITY_RECONCILIATION.format(
            month=month.format(d="k.day"),
            difference=DIFFERENCE[dialect].format(a="r.activity_usd", b="r.ledger_usd"),
            byok_difference=DIFFERENCE[dialect].format(
                a="r.activity_byok_usd", b="r.ledger_byok_usd"
            ),
        )
    )


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
