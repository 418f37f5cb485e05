"""The data dictionary (docs/schema.md), generated from the models' comments.

Run ``python -m etl.store.data_dictionary > docs/schema.md`` after changing a model; a test
fails while the file is stale.
"""

from __future__ import annotations

from sqlalchemy import Table

import models
from etl.store.examples import EXAMPLE_QUERIES
from models.types import Money, UtcDateTime

# The sums the activity views share (migration 0010).
ACTIVITY_MEASURES = [
    ("usage_usd", "OpenRouter credits spent in USD: sum of daily_activity.usage_usd."),
    (
        "byok_usage_inference_usd",
        "BYOK inference cost in USD: sum of daily_activity.byok_usage_inference_usd.",
    ),
    ("requests", "Requests made."),
    ("prompt_tokens", "Prompt tokens used."),
    ("completion_tokens", "Completion tokens generated."),
    ("reasoning_tokens", "Reasoning tokens used."),
]

# Views are created by migrations, not models: their columns are described here.
VIEWS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "daily_workspace_spend": (
        "Spend per workspace per UTC day. One rule: spend_usd is NULL when the workspace "
        "was not observed on the day and the next (nothing about the day is known); "
        "otherwise it is the sum of the keys whose spend that day is known, and `complete` "
        "says whether that is every key. One row per day since the workspace's first "
        "successful sync.",
        [
            ("workspace_id", "Workspace UUID."),
            ("day", "The UTC day."),
            (
                "spend_usd",
                "OpenRouter credit spent that day in USD by the keys whose spend is known; "
                "NULL when the day or the next was not observed. A lower bound unless "
                "complete.",
            ),
            ("byok_spend_usd", "BYOK spend that day in USD, by the same rule."),
            ("active_keys", "Keys with any spend that day."),
            (
                "unknown_keys",
                "Keys whose own spend that day is unknown (deleted between two syncs, the "
                "day before a missed night, or inside a gap): left out of spend_usd.",
            ),
            (
                "complete",
                "True when spend_usd is known and covers every key (unknown_keys = 0).",
            ),
        ],
    ),
    "weekly_workspace_spend": (
        "Spend per workspace per week (weeks start on Monday, as the API's weekly "
        "counters do), by daily_workspace_spend's rule: NULL while any day of the week is "
        "NULL (not observed, or not over); otherwise the sum of the days, complete when "
        "every day is. Days before the workspace's first sync are not counted.",
        [
            ("workspace_id", "Workspace UUID."),
            ("week_start", "The Monday the week starts on."),
            (
                "spend_usd",
                "USD spent in the week by the keys whose spend is known; NULL when any of "
                "its days is NULL. A lower bound unless complete.",
            ),
            ("byok_spend_usd", "BYOK USD spent in the week, by the same rule."),
            ("unknown_days", "Days of the week whose spend_usd is NULL (unknown or not over)."),
            ("unknown_key_days", "Sum of the days' unknown_keys: key-days left out."),
            ("complete", "True when every day of the week is complete."),
        ],
    ),
    "daily_key_spend_gaps": (
        "Key-days inside a gap of days no sync observed: their spend is unknown (NULL), "
        "though daily_key_spend has no row for them (a gap costs one NULL row per key, "
        "on the last observed day before it, however long it is). A key is in the gap "
        "when it has that row; key-days that have a row of their own are left out.",
        [
            ("key_hash", "The key (api_keys.hash)."),
            ("day", "The UTC day, one the workspace was not observed on."),
            ("workspace_id", "Workspace UUID."),
        ],
    ),
    "monthly_key_spend": (
        "Spend per key per calendar month, from daily_key_spend and daily_key_spend_gaps "
        "(a gap day is an unknown day).",
        [
            ("key_hash", "The key (api_keys.hash)."),
            ("workspace_id", "Workspace UUID."),
            ("month", "First day of the month."),
            ("spend_usd", "USD spent in the month; NULL when any day's spend is unknown."),
            ("byok_spend_usd", "BYOK USD spent in the month; NULL likewise."),
            ("unknown_days", "Days of the month with unknown spend."),
        ],
    ),
    "key_limit_status": (
        "One row per live key: its limit, how much of the current limit window is used, "
        "recent spend and, at the recent burn rate, the day the limit is reached if that "
        "comes before the window resets (docs/analytics.md has the full rules).",
        [
            ("key_hash", "The key (api_keys.hash)."),
            ("workspace_id", "Workspace UUID."),
            ("name", "Name of the key."),
            ("label", "Label of the key."),
            ("credit_limit", "Spending limit in USD; NULL = no limit."),
            (
                "limit_remaining",
                "USD left under the limit in the current window (the whole life without a "
                "reset) at the last sync.",
            ),
            (
                "utilization",
                "Share of the current window's limit used at the last sync, 0 to 1: "
                "(credit_limit - limit_remaining) / credit_limit. NULL without a limit (or "
                "with a limit of 0).",
            ),
            ("limit_reset", "Limit reset period: daily, weekly, monthly or NULL."),
            ("disabled", "Whether the key is disabled."),
            ("expires_at", "Expiry (UTC); NULL = never."),
            (
                "spend_last_7_days",
                "USD spent in the workspace's 7 latest complete days; divided by those "
                "days (up to 7) it is the burn rate.",
            ),
            ("spend_last_30_days", "USD spent in the workspace's 30 latest complete days."),
            ("as_of_day", "The workspace's latest observed day: the projection starts there."),
            (
                "days_until_limit",
                "Days after as_of_day until the limit is reached at the burn rate: "
                "CEIL(limit_remaining / rate), so at least 1; 0 when the key is at its limit "
                "now. NULL exactly when projected_limit_date is.",
            ),
            (
                "projected_limit_date",
                "as_of_day + days_until_limit. NULL when it is not reached: no limit, no "
                "recent spend, disabled, the window resets on or before that day "
                "(limit_resets_on), the key expires on or before it, or beyond 36,500 days.",
            ),
            (
                "limit_resets_on",
                "The day the current window ends and the whole limit is back (00:00 UTC): "
                "the day after as_of_day, the next Monday or the next 1st; NULL without a "
                "limit or a reset.",
            ),
        ],
    ),
    **{
        f"daily_{by}_spend": (
            f"Spend per workspace, UTC day and {what}, from daily_activity (GET /activity). "
            "Only days stored whole have rows: a day activity_days records as missing, or "
            "that no run has fetched yet, is absent here (unknown), never 0.",
            [
                ("workspace_id", "Workspace UUID."),
                ("day", "The UTC day."),
                (column, meaning),
                *ACTIVITY_MEASURES,
            ],
        )
        for by, what, column, meaning in (
            ("model", "model", "model", "Model slug, e.g. openai/gpt-4.1 (every provider)."),
            ("provider", "provider", "provider_name", "Provider, e.g. OpenAI (every model)."),
        )
    },
    "monthly_model_spend": (
        "Spend per workspace, calendar month and model: the sums of the month's stored "
        "days, beside how many of the workspace's days of that month are stored "
        "(fetched_days) and lost for good (missing_days). A month with missing days, or "
        "fewer fetched days than it has (not over, or before the first fetch), gives a "
        "lower bound.",
        [
            ("workspace_id", "Workspace UUID."),
            ("month", "First day of the month."),
            ("model", "Model slug."),
            *ACTIVITY_MEASURES,
            ("active_days", "Days of the month on which the model had activity."),
            (
                "fetched_days",
                "Days of the month stored whole for the workspace (activity_days 'fetched'), "
                "whatever the model.",
            ),
            (
                "missing_days",
                "Days of the month lost for good for the workspace (activity_days "
                "'missing'): the sums leave them out.",
            ),
        ],
    ),
    "activity_reconciliation": (
        "Per workspace and UTC day (every day either source knows of): the activity "
        "total beside the key ledger's daily spend (daily_workspace_spend), their "
        "difference and whether they agree. They measure the same usage two ways, so "
        "they agree to the cent unless activity was booked after the ledger closed the "
        "day (late usage: +x on its day, -x on the day the ledger saw it) or one source "
        "is wrong. Differences are exact, except on SQLite: rounded to 1e-9 USD there.",
        [
            ("workspace_id", "Workspace UUID."),
            ("day", "The UTC day."),
            ("month", "First day of the day's month, to add the days up by month."),
            (
                "activity_status",
                "activity_days.status: 'fetched', 'missing', or NULL (not fetched: before "
                "the workspace's first activity fetch, or not yet complete).",
            ),
            (
                "activity_usd",
                "Sum of daily_activity.usage_usd for the day; 0 for a fetched day without "
                "activity; NULL unless activity_status is 'fetched'.",
            ),
            (
                "ledger_usd",
                "daily_workspace_spend.spend_usd: NULL when the ledger does not know the "
                "day (it or the next was not observed); a lower bound unless "
                "ledger_complete.",
            ),
            ("difference_usd", "activity_usd - ledger_usd; NULL when either is NULL."),
            ("activity_byok_usd", "Sum of daily_activity.byok_usage_inference_usd, likewise."),
            ("ledger_byok_usd", "daily_workspace_spend.byok_spend_usd, likewise."),
            ("byok_difference_usd", "activity_byok_usd - ledger_byok_usd, likewise."),
            (
                "ledger_complete",
                "daily_workspace_spend.complete: the ledger's sum covers every key. NULL "
                "when the ledger has no row for the day.",
            ),
            (
                "agree",
                "True when both sides are known and both differences are 0 (a ledger "
                "lower bound equal to the activity total is the whole); false otherwise "
                "(difference_usd NULL: not comparable; non-zero: they disagree, as they "
                "must by the left-out keys' spend on a day not ledger_complete).",
            ),
        ],
    ),
}

HEADER = """\
# keyledger data dictionary

Generated from the comments on the models by `python -m etl.store.data_dictionary > docs/schema.md`;
do not edit by hand. BI tools show the same comments (they are in the database too,
except on SQLite, which has no column comments).

Units and conventions:
- Money columns are USD amounts, numbers to SQL on every backend: plain `ORDER BY`,
  `<`, `SUM`, `AVG` and `GROUP BY` need no casts. Exact `NUMERIC(65,30)` on PostgreSQL,
  `DECIMAL(65,30)` on MariaDB/MySQL. SQLite has no decimal type: there they are `REAL`,
  which holds every value the API sends (its money fields are doubles, printed in
  shortest round-trip form) digit for digit; amounts keyledger derives (daily spend)
  are exact in Python and stored there as the nearest double, so SQLite's sums can
  differ from the exact ones by float rounding, far below 1e-9 USD. `raw_json` keeps
  the payload's text as sent.
- `usage` is a reserved word on MariaDB/MySQL: qualify it (`k.usage`) or quote it.
- Times are UTC. PostgreSQL stores `timestamptz`; MariaDB `DATETIME(6)` and SQLite
  store UTC wall time without a zone.
- Snapshot and sync times are the OpenRouter server's clock (its `Date` header), so
  the per-day counters line up with the server's UTC day.
"""


def column_type(table: Table, name: str) -> str:
    """A backend-neutral name of a column's type."""
    column_type_ = table.columns[name].type
    if isinstance(column_type_, Money):
        return "money (USD)"
    if isinstance(column_type_, UtcDateTime):
        return "timestamp (UTC)"
    return str(column_type_.compile()).lower()


def render() -> str:
    """The whole data dictionary as Markdown."""
    parts = [HEADER]
    for table in sorted(models.Base.metadata.tables.values(), key=lambda t: t.name):
        parts.append(f"\n## `{table.name}`\n\n{table.comment}\n")
        parts.append("| column | type | meaning |\n|---|---|---|")
        for column in table.columns:
            key = " (primary key)" if column.primary_key else ""
            null = "" if column.nullable else ", not null"
            comment = (column.comment or "").replace("|", "\\|")
            parts.append(
                f"| `{column.name}` | {column_type(table, column.name)}{null}{key} | {comment} |"
            )
    parts.append("\n# Views\n\nCreated by migrations; BI tools read them like tables.")
    for name, (comment, columns) in VIEWS.items():
        parts.append(f"\n## `{name}` (view)\n\n{comment}\n")
        parts.append("| column | meaning |\n|---|---|")
        parts.extend(f"| `{column}` | {meaning} |" for column, meaning in columns)
    parts.append(
        "\n# Example queries\n\nEach runs unchanged on SQLite, PostgreSQL and MariaDB "
        "(a test runs them all)."
    )
    for title, sql in EXAMPLE_QUERIES.items():
        parts.append(f"\n## {title}\n\n```sql{sql}\n```")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
