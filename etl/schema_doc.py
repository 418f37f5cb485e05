"""The data dictionary (docs/schema.md), generated from the models' comments.

Run ``python -m etl.schema_doc > docs/schema.md`` after changing a model; a test
fails while the file is stale.
"""

from __future__ import annotations

from sqlalchemy import Table

import models
from models.types import Money, UtcDateTime

HEADER = """\
# keyledger data dictionary

Generated from the comments on the models by `python -m etl.schema_doc > docs/schema.md`;
do not edit by hand. BI tools show the same comments (they are in the database too,
except on SQLite, which has no column comments).

Units and conventions:
- Money columns are exact USD amounts: `NUMERIC(65,30)` on PostgreSQL, `DECIMAL(65,30)`
  on MariaDB/MySQL. SQLite has no exact decimal type, so there they hold the exact
  decimal as TEXT: SQLite does arithmetic on them through REAL (write `usage + 0` to
  sort or compare numerically).
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
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
