"""`keyledger report`: invoke it on simulated nights, then check its numbers against the views."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text

from etl.cli import cli
from etl.report import DaySpend
from etl.report_format import CSV_COLUMNS, UNKNOWN, sparkline
from models import DailyKeySpend
from tests.analytics_support import Ledgered, at, make_world, sync_at

DAY = date(2026, 11, 3)  # the simulator starts on Monday 2026-11-02 09:00 UTC
NIGHTS = 10
LAST_DAY = DAY + timedelta(days=NIGHTS - 1)
EPSILON = Decimal("1e-9")  # SQLite's views sum through REAL


@dataclass
class Ledger:
    """A database holding NIGHTS nightly syncs of two simulated workspaces."""

    url: str
    engine: Engine
    ledger: Ledgered
    near_limit_key: str


@pytest.fixture
def synced(engine: Engine, database_url: str) -> Ledger:
    """Ten nights of 02:00 syncs; one key is given a limit it has nearly used up."""
    ledger = make_world(keys=8, workspaces=2, active_fraction=1.0, deletes=0.0, relimits=0.0)
    world = ledger.world
    truth = {k["hash"]: k for k in world.truth_keys()}
    key_hash = max(world.live_hashes(world.workspace_ids[0]), key=lambda h: truth[h]["usage"])
    usage = truth[key_hash]["usage"]
    world.update_key(
        key_hash,
        limit=(usage / Decimal("0.9")).quantize(Decimal("0.01")),
        limit_reset=None,
        disabled=False,
    )
    for night in range(NIGHTS):
        sync_at(engine, ledger, at(DAY + timedelta(days=night), 2))
    return Ledger(database_url, engine, ledger, key_hash)


def report(url: str, *args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, ["report", "--database-url", url, *args], catch_exceptions=False)


def as_date(value: Any) -> date:
    """Views give DATE values as strings on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def view_totals(engine: Engine, start: date, end: date) -> dict[str, Decimal]:
    """Spend per workspace over start..end, summed from daily_workspace_spend."""
    totals: dict[str, Decimal] = {}
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT workspace_id, day, spend_usd FROM daily_workspace_spend")
        )
        for row in rows:
            if start <= as_date(row.day) <= end and row.spend_usd is not None:
                spend = Decimal(str(row.spend_usd))
                totals[row.workspace_id] = totals.get(row.workspace_id, Decimal(0)) + spend
    return totals


def key_totals(engine: Engine, start: date, end: date) -> dict[str, Decimal]:
    """Spend per key over start..end, summed exactly from daily_key_spend."""
    totals: dict[str, Decimal] = {}
    with engine.connect() as connection:
        for key_hash, day, spend in connection.execute(
            select(DailyKeySpend.key_hash, DailyKeySpend.day, DailyKeySpend.spend_usd)
        ):
            if start <= day <= end and spend is not None:
                totals[key_hash] = totals.get(key_hash, Decimal(0)) + spend
    return totals


def table_amount(output: str, label: str) -> Decimal:
    """The first amount on the line that starts with ``label``."""
    line = next(x for x in output.splitlines() if x.strip().startswith(label))
    found = re.search(r"\s(\d+\.\d{4})(\s|$)", line[line.index(label) + len(label) :])
    assert found, line
    return Decimal(found.group(1))


def json_report(url: str, *args: str) -> dict[str, Any]:
    result = report(url, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def four_places(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.0001"))


def test_table_shows_each_workspace_with_its_total_from_the_view(synced: Ledger) -> None:
    result = report(synced.url)
    assert result.exit_code == 0, result.output
    start = LAST_DAY - timedelta(days=29)
    assert f"{start} to {LAST_DAY} (30 UTC days" in result.stdout
    data = json_report(synced.url)
    expected = view_totals(synced.engine, start, LAST_DAY)
    assert {w["workspace_id"] for w in data["workspaces"]} == set(expected)
    for workspace in data["workspaces"]:
        exact = Decimal(workspace["total_usd"])
        assert abs(exact - expected[workspace["workspace_id"]]) <= EPSILON
        assert table_amount(result.stdout, workspace["name"]) == four_places(exact)
        assert workspace["unknown_days"] >= 1  # the last day is not over yet
    assert "days unknown" in result.stdout
    assert any(bar in result.stdout for bar in "▁▂▃▄▅▆▇█")


def test_top_keys_are_ordered_by_spend_and_match_daily_key_spend(synced: Ledger) -> None:
    data = json_report(synced.url, "--top", "5")
    expected = key_totals(synced.engine, LAST_DAY - timedelta(days=29), LAST_DAY)
    top = data["top_keys"]
    assert len(top) == 5
    spends = [Decimal(k["spend_usd"]) for k in top]
    assert spends == sorted(spends, reverse=True)
    for key in top:
        assert Decimal(key["spend_usd"]) == expected[key["key_hash"]]
        assert key["name"]  # every key is live: named from key_limit_status
    assert spends[0] == max(expected.values())
    table = report(synced.url, "--top", "5").stdout
    listed = [line for line in table.splitlines() if re.match(r"\s+\d+\s{2}", line)]
    assert len(listed) == 5
    for line, key in zip(listed, top, strict=True):
        assert key["name"] in line
        assert line.rstrip().endswith(str(four_places(Decimal(key["spend_usd"]))))


def test_deleted_key_keeps_its_spend_and_is_shown_by_hash(synced: Ledger) -> None:
    world = synced.ledger.world
    top = json_report(synced.url)["top_keys"][0]["key_hash"]
    world.delete_key(top)
    sync_at(synced.engine, synced.ledger, at(LAST_DAY + timedelta(days=1), 2))
    entry = next(k for k in json_report(synced.url)["top_keys"] if k["key_hash"] == top)
    assert entry["name"] is None
    assert f"{top[:12]}… (deleted)" in report(synced.url).stdout


def test_key_near_its_limit_is_listed(synced: Ledger) -> None:
    data = json_report(synced.url)
    near = {k["key_hash"]: k for k in data["near_limit"]}
    assert synced.near_limit_key in near
    status = near[synced.near_limit_key]
    assert status["utilization"] >= 0.8
    assert Decimal(status["credit_limit"]) > 0
    table = report(synced.url).stdout
    section = table[table.index("Keys near their limit") :]
    assert status["name"] in section
    for status in data["near_limit"]:
        soon = status["days_until_limit"] is not None and status["days_until_limit"] <= 7
        assert status["utilization"] >= 0.8 or (soon and status["projected_limit_date"])


def test_csv_and_json_agree_with_the_table(synced: Ledger) -> None:
    data = json_report(synced.url)
    result = report(synced.url, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    totals = {r["workspace_id"]: r["spend_usd"] for r in rows if r["record"] == "workspace_total"}
    assert totals == {w["workspace_id"]: w["total_usd"] for w in data["workspaces"]}
    for workspace in data["workspaces"]:
        days = [
            r
            for r in rows
            if r["record"] == "workspace_day" and r["workspace_id"] == workspace["workspace_id"]
        ]
        assert [r["spend_usd"] or None for r in days] == [
            d["spend_usd"] for d in workspace["daily"]
        ]
        known = [Decimal(d["spend_usd"]) for d in workspace["daily"] if d["spend_usd"]]
        assert sum(known, Decimal(0)) == Decimal(workspace["total_usd"])
    top = [(r["key_hash"], r["spend_usd"]) for r in rows if r["record"] == "top_key"]
    assert top == [(k["key_hash"], k["spend_usd"]) for k in data["top_keys"]]
    near = [r["key_hash"] for r in rows if r["record"] == "near_limit"]
    assert near == [k["key_hash"] for k in data["near_limit"]]
    table = report(synced.url).stdout
    for workspace in data["workspaces"]:
        total = four_places(Decimal(workspace["total_usd"]))
        assert table_amount(table, workspace["name"]) == total


def test_days_narrows_the_window(synced: Ledger) -> None:
    data = json_report(synced.url, "--days", "3")
    start = LAST_DAY - timedelta(days=2)
    assert data["window"] == {"start": str(start), "end": str(LAST_DAY), "days": 3}
    expected = view_totals(synced.engine, start, LAST_DAY)
    keys = key_totals(synced.engine, start, LAST_DAY)
    for workspace in data["workspaces"]:
        assert [d["day"] for d in workspace["daily"]] == [
            str(start + timedelta(days=n)) for n in range(3)
        ]
        assert abs(Decimal(workspace["total_usd"]) - expected[workspace["workspace_id"]]) <= EPSILON
    for key in data["top_keys"]:
        assert Decimal(key["spend_usd"]) == keys[key["key_hash"]]
    wide = json_report(synced.url)
    assert sum(Decimal(w["total_usd"]) for w in data["workspaces"]) < sum(
        Decimal(w["total_usd"]) for w in wide["workspaces"]
    )
    assert f"{start} to {LAST_DAY} (3 UTC days" in report(synced.url, "--days", "3").stdout


CHARTS = {"png": (".png", b"\x89PNG\r\n\x1a\n"), "svg": (".svg", b"<svg")}


@pytest.mark.parametrize(("suffix", "magic"), list(CHARTS.values()), ids=list(CHARTS))
def test_output_writes_a_chart(synced: Ledger, tmp_path: Path, suffix: str, magic: bytes) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / f"spend{suffix}"
    result = report(synced.url, "--output", str(chart))
    assert result.exit_code == 0, result.output
    assert "Spend per workspace" in result.stdout  # the report is printed too
    assert f"wrote the chart to {chart}" in result.stderr
    content = chart.read_bytes()
    assert len(content) > 10_000
    if suffix == ".png":
        assert content.startswith(magic)
    else:
        assert magic in content[:1000] and content.rstrip().endswith(b"</svg>")
        names = [w["name"] for w in json_report(synced.url)["workspaces"]]
        assert all(name.encode() in content for name in names)  # the legend


def test_output_without_matplotlib_fails_with_one_line(
    synced: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # even when never imported
    chart = tmp_path / "spend.png"
    result = report(synced.url, "--output", str(chart))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert 'pip install "keyledger[report]"' in result.stderr
    assert not chart.exists()
    assert result.stdout == ""


def test_output_must_be_png_or_svg(database_url: str, tmp_path: Path) -> None:
    result = report(database_url, "--output", str(tmp_path / "spend.pdf"))
    assert result.exit_code == 2
    assert ".png or .svg" in result.stderr


def test_database_without_synced_data_fails_with_one_line(database_url: str) -> None:
    result = report(database_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("keyledger: error: nothing to report")
    assert result.stderr.count("\n") == 1
    assert "keyledger sync" in result.stderr
    assert result.stdout == ""


def test_database_without_schema_fails_with_one_line(tmp_path: Path) -> None:
    result = report(f"sqlite:///{tmp_path / 'new.db'}")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "keyledger db upgrade" in result.stderr


# -- the sparkline, alone ---------------------------------------------------------------


def days(*values: str | None, in_ledger: bool = True) -> list[DaySpend]:
    return [
        DaySpend(DAY + timedelta(days=n), None if v is None else Decimal(v), in_ledger)
        for n, v in enumerate(values)
    ]


def test_sparkline_scales_to_the_busiest_day_and_marks_unknown_days() -> None:
    line = sparkline(days(None, in_ledger=False) + days("0", "1", None, "7"))
    assert line == f" ▁▂{UNKNOWN}█"


def test_sparkline_of_a_long_window_is_bucketed() -> None:
    line = sparkline(days(*(["1"] * 120)))
    assert line == "█" * 60
    assert sparkline(days(*(["1"] * 119 + [None])))[-1] == UNKNOWN


def test_help_documents_the_csv_and_json_structure() -> None:
    result = CliRunner().invoke(cli, ["report", "--help"], catch_exceptions=False)
    text = " ".join(result.output.split())
    assert ", ".join(CSV_COLUMNS) in text
    for field in ("top_keys", "near_limit", "projected_limit_date", "total_usd"):
        assert f'"{field}"' in text
