"""The data dictionary (docs/schema.md), generated from the models' comments.

Run ``python -m etl.schema_doc > docs/schema.md`` after changing a model; a test
fails while the file is stale.
"""

from __future__ import annotations

from sqlalchemy import Table

import models
from etl.examples import EXAMPLE_QUERIES
from models.types import Money, UtcDateTime

# Views are created by migrations, not models: their columns are described here.
VIEWS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "daily_workspace_spend": (
        "Spend per workspace per UTC day: the sum of its keys' daily_key_spend, NULL when "
        "the day or the next was not observed. One row per day since the workspace's first "
        "successful sync.",
        [
            ("workspace_id", "Workspace UUID."),
            ("day", "The UTC day."),
            ("spend_usd", "OpenRouter credit spent that day in USD; NULL = unknown."),
            ("byok_spend_usd", "BYOK spend that day in USD; NULL = unknown."),
            ("active_keys", "Keys with any spend that day."),
            (
                "unknown_keys",
                "Keys whose own spend that day is unknown (e.g. deleted between two syncs): "
                "left out of spend_usd, which is then a lower bound.",
            ),
        ],
    ),
    "weekly_workspace_spend": (
        "Spend per workspace per week (weeks start on Monday, as the API's weekly "
        "counters do). NULL while any day of the week is unknown or not over.",
        [
            ("workspace_id", "Workspace UUID."),
            ("week_start", "The Monday the week starts on."),
            ("spend_usd", "USD spent in the week; NULL when any of its days is unknown."),
            ("byok_spend_usd", "BYOK USD spent in the week; NULL likewise."),
            ("unknown_days", "Days of the week whose spend is unknown (or not over)."),
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
        "One row per live key: its limit, how much of it is used, recent spend and when "
        "the limit runs out at the recent burn rate.",
        [
            ("key_hash", "The key (api_keys.hash)."),
            ("workspace_id", "Workspace UUID."),
            ("name", "Name of the key."),
            ("label", "Label of the key."),
            ("credit_limit", "Spending limit in USD; NULL = no limit."),
            ("limit_remaining", "USD left under the limit at the last sync."),
            ("utilization", "Share of the limit used (0 to 1); NULL without a limit."),
            ("limit_reset", "Limit reset period: daily, weekly, monthly or NULL."),
            ("disabled", "Whether the key is disabled."),
            ("expires_at", "Expiry (UTC); NULL = never."),
            ("spend_last_7_days", "USD spent in the workspace's 7 latest complete days."),
            ("spend_last_30_days", "USD spent in the workspace's 30 latest complete days."),
            ("as_of_day", "The workspace's latest observed day: the projection starts there."),
            (
                "days_until_limit",
                "Whole days (rounded down) until limit_remaining is spent at the 7-day burn "
                "rate, ignoring resets; NULL without a limit or recent spend, or beyond "
                "36,500 days.",
            ),
            (
                "projected_limit_date",
                "The day the limit runs out: as_of_day + days_until_limit; NULL when it never "
                "does (no limit, no recent spend, or the limit resets first).",
            ),
        ],
    ),
}

HEADER = """\
# keyledger data dictionary

Generated from the comments on the models by `python -m etl.schema_doc > docs/schema.md`;
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
