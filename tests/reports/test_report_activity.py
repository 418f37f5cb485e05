"""`keyledger report`'s top models and providers: synced over loopback, checked against
the simulator's truth in every format, and unknown shown as unknown."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete

from etl.cli.main import cli
from etl.reports.build import build_report
from etl.reports.chart import activity_title
from models import ActivityDay, DailyActivity
from tests.activity_support import (
    Sums,
    mark_missing,
    model_of,
    provider_of,
    sync_over_loopback,
    truth_by,
)
from tests.analytics_support import Ledgered, at, make_world

DAY = date(2026, 11, 3)
NIGHTS = 5
LAST_DAY = DAY + timedelta(days=NIGHTS - 1)  # the report's window ends here
FIELDS = (
    "usage_usd",
    "byok_usage_inference_usd",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
)


@dataclass
class Synced:
    url: str
    engine: Engine
    ledger: Ledgered


@pytest.fixture
def synced(engine: Engine, database_url: str) -> Synced:
    ledger = make_world(keys=6, workspaces=2, seed=7, deletes=0.0, active_fraction=1.0)
    for night in range(NIGHTS):
        sync_over_loopback(engine, ledger, at(DAY + timedelta(days=night), 2))
    return Synced(database_url, engine, ledger)


def report(url: str, *args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, ["report", "--database-url", url, *args], catch_exceptions=False)


def json_report(url: str, *args: str) -> dict[str, Any]:
    result = report(url, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def completed_days(days: int = 30) -> list[date]:
    """The window's days but the last, which is not over: no activity for it yet."""
    return [LAST_DAY - timedelta(days=n) for n in range(days - 1, 0, -1)]


def as_sums(entry: dict[str, Any]) -> Sums:
    return (
        Decimal(entry["usage_usd"]),
        Decimal(entry["byok_usage_inference_usd"]),
        entry["requests"],
        entry["prompt_tokens"],
        entry["completion_tokens"],
        entry["reasoning_tokens"],
    )


def ranked(truth: dict[tuple[Any, ...], Sums]) -> list[tuple[str, Sums]]:
    return sorted(((k[0], v) for k, v in truth.items()), key=lambda e: (-e[1][0], -e[1][1], e[0]))


def test_top_models_and_providers_equal_the_truth_over_the_window(synced: Synced) -> None:
    data = json_report(synced.url, "--top", "20")
    # The activity of every completed day is stored; the window's last day is not over.
    assert data["activity"] == {
        "days": 30,
        "known_days": 29,
        "unknown_days": 1,
        "missing_days": 0,
        "total_usd": data["activity"]["total_usd"],
        "models_more": 0,
        "providers_more": 0,
    }
    days = completed_days()
    models = ranked(truth_by(synced.ledger, lambda d, w, e: (model_of(e),), days))
    providers = ranked(truth_by(synced.ledger, lambda d, w, e: (provider_of(e),), days))
    assert len(models) >= 4 and len(providers) > len(models) - 2
    assert [(m["model"], as_sums(m)) for m in data["top_models"]] == models  # exact
    assert [(p["provider_name"], as_sums(p)) for p in data["top_providers"]] == providers
    assert all(m["unknown_days"] == 1 for m in data["top_models"] + data["top_providers"])
    total = sum((s[0] for _, s in models), Decimal(0))
    assert Decimal(data["activity"]["total_usd"]) == total
    # Both sources measure the same usage: the days the ledger knows add up alike.
    known = [w for w in data["workspaces"] if w["total_usd"] is not None]
    ledger_days = {d["day"] for w in known for d in w["daily"] if d["spend_usd"] is not None}
    by_day = truth_by(synced.ledger, lambda d, w, e: (d.isoformat(),), days)
    ledger_total = sum(Decimal(w["total_usd"]) for w in known)
    assert ledger_total == sum(by_day[(d,)][0] for d in ledger_days)


def test_table_and_csv_show_the_same_models_and_mark_lower_bounds(synced: Synced) -> None:
    data = json_report(synced.url, "--top", "3")
    assert len(data["top_models"]) == 3 and data["activity"]["models_more"] >= 1
    table = report(synced.url, "--top", "3").stdout
    section = table[table.index("Top models") : table.index("Top providers")]
    for rank, model in enumerate(data["top_models"], 1):
        spend = Decimal(model["usage_usd"]).quantize(Decimal("0.0001"))
        line = next(x for x in section.splitlines() if x.strip().startswith(f"{rank}  "))
        assert model["model"][:20] in line and f"≥ {spend}" in line, line
        assert f"  {model['requests']}  " in line
    assert f"… and {data['activity']['models_more']} more models" in section
    assert "activity unknown on 1 of 30 days" in table
    assert "lost for good" not in table

    rows = list(
        csv.DictReader(io.StringIO(report(synced.url, "--format", "csv", "--top", "3").stdout))
    )
    top_models = [r for r in rows if r["record"] == "top_model"]
    assert [(r["model"], r["spend_usd"], r["byok_usage_inference_usd"]) for r in top_models] == [
        (m["model"], m["usage_usd"], m["byok_usage_inference_usd"]) for m in data["top_models"]
    ]
    assert [int(r["requests"]) for r in top_models] == [m["requests"] for m in data["top_models"]]
    providers = [r["provider_name"] for r in rows if r["record"] == "top_provider"]
    assert providers == [p["provider_name"] for p in data["top_providers"]]
    (total,) = [r for r in rows if r["record"] == "activity_total"]
    assert (total["spend_usd"], total["unknown_days"], total["missing_days"]) == (
        data["activity"]["total_usd"],
        "1",
        "0",
    )


def test_no_stored_activity_is_unknown_in_every_format(synced: Synced, tmp_path: Path) -> None:
    with synced.engine.begin() as connection:
        connection.execute(delete(DailyActivity))
        connection.execute(delete(ActivityDay))
    data = json_report(synced.url)
    assert data["activity"]["total_usd"] is None  # not "0"
    assert (data["activity"]["known_days"], data["activity"]["unknown_days"]) == (0, 30)
    assert data["top_models"] == [] and data["top_providers"] == []
    assert data["workspaces"]  # the key ledger's part is there as before
    rows = list(csv.DictReader(io.StringIO(report(synced.url, "--format", "csv").stdout)))
    (total,) = [r for r in rows if r["record"] == "activity_total"]
    assert (total["spend_usd"], total["unknown_days"]) == ("", "30")
    assert not [r for r in rows if r["record"] in ("top_model", "top_provider")]
    table = report(synced.url).stdout
    section = table[table.index("Top models") : table.index("Keys near their limit")]
    assert section.count("— unknown: no activity is stored for this window") == 2
    assert "0.0000" not in section
    with synced.engine.connect() as connection:
        built = build_report(connection)
    assert "unknown: no activity stored" in activity_title("models", built.activity)


def test_lost_days_are_counted_and_make_the_amounts_lower_bounds(synced: Synced) -> None:
    world = synced.ledger.world
    first_stored = DAY - timedelta(days=30)
    lost = first_stored - timedelta(days=2)
    mark_missing(synced.engine, world.workspace_ids[1], lost)
    data = json_report(synced.url, "--days", "40")
    activity = data["activity"]
    # 40 days: 34 stored for both workspaces (the first run's 30, then one a night); of
    # the 6 others one is lost, four came before the first fetch, the last is not over.
    assert (activity["known_days"], activity["unknown_days"], activity["missing_days"]) == (
        34,
        6,
        1,
    )
    days = completed_days(40)
    models = ranked(truth_by(synced.ledger, lambda d, w, e: (model_of(e),), days))
    stored = [d for d in days if d >= first_stored]
    assert [(m["model"], as_sums(m)) for m in data["top_models"]] == ranked(
        truth_by(synced.ledger, lambda d, w, e: (model_of(e),), stored)
    )[: len(data["top_models"])]
    assert len(models) >= len(data["top_models"])
    table = report(synced.url, "--days", "40").stdout
    assert "activity unknown on 6 of 40 days (1 lost for good" in table


def test_chart_draws_the_top_models_and_says_what_is_unknown(
    synced: Synced, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    data = json_report(synced.url)
    chart = tmp_path / "spend.svg"
    result = report(synced.url, "--output", str(chart))
    assert result.exit_code == 0, result.output
    content = chart.read_bytes()
    assert b"Top models over the window (USD)" in content
    assert b"Top providers over the window (USD)" in content
    assert b"at least: activity unknown on 1 of 30 days" in content
    for entry in data["top_models"][:3]:
        assert entry["model"].encode() in content
    for entry in data["top_providers"][:3]:
        assert entry["provider_name"].encode() in content
