"""docs/schema.md is generated from the models and kept current."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect

from etl.store.data_dictionary import VIEWS, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def test_data_dictionary_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/schema.md is stale: run python -m etl.store.data_dictionary > docs/schema.md"
    )


def test_data_dictionary_covers_every_column() -> None:
    text = render()
    for table in ("api_keys", "usage_snapshots", "sync_runs", "sync_run_workspaces", "workspaces"):
        assert f"## `{table}`" in text
    assert "| `credit_limit` | money (USD) |" in text


def test_every_view_is_described_column_by_column(engine: Engine) -> None:
    """BI tools show no comments for views: the data dictionary is where they are."""
    inspector = inspect(engine)
    views = set(inspector.get_view_names())
    assert views == set(VIEWS)
    for view in views:
        described = [column for column, _ in VIEWS[view][1]]
        assert [c["name"] for c in inspector.get_columns(view)] == described, view
