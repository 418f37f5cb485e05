"""`keyledger report`: invoke it on simulated nights, then check its numbers against the views."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text

from etl.cli.main import cli
from etl.core.config import Account, ClientSettings, Secret, Settings, WorkspaceSpec
from etl.openrouter.client import OpenRouterClient
from etl.reports.build import DaySpend, LimitStatus, Report, WorkspaceSpend, build_report, urgency
from etl.reports.chart import UNKNOWN_SHADE, chart_title, spend_series, unknown_spans
from etl.reports.formats import CSV_COLUMNS, UNKNOWN, format_table, sparkline
from etl.reports.text_width import display_width, truncate
from etl.sync import run_sync
from models import DailyKeySpend
from tests.analytics_support import TOKEN, Ledgered, at, make_world, sync_at

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
    section = table[table.index("Top keys") : table.index("Top models")]
    listed = [line for line in section.splitlines() if re.match(r"\s+\d+\s{2}", line)]
    assert len(listed) == 5
    for line, key in zip(listed, top, strict=True):
        assert key["name"] in line
        # The window reaches back before the first sync: each key's spend is a lower bound.
        assert key["unknown_days"] >= 30 - NIGHTS + 1
        assert f"≥ {four_places(Decimal(key['spend_usd']))}  {key['unknown_days']} of 30" in line


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


# -- unknown is never zero --------------------------------------------------------------


def sync_only(engine: Engine, ledger: Ledgered, moment: datetime, workspace_id: str) -> None:
    """Like ``sync_at``, for one workspace only (the others are not observed that night)."""
    world = ledger.world
    world.advance(moment - world.now)
    account = Account(
        name="report",
        management_key=Secret(TOKEN),
        workspaces=(WorkspaceSpec(workspace_id),),
        client=ClientSettings(base_url="http://sim.test/api/v1", requests_per_second=1e6),
    )

    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client,
            account.management_key,
            transport=ledger.simulator.mock_transport(),
            sleep=lambda seconds: None,
        )

    settings = Settings(database_url=str(engine.url), accounts=(account,))
    result = run_sync(engine, settings, client_factory=client_factory)
    assert result.status == "ok", result.summary()


@dataclass
class HalfSynced:
    """Workspace ``known`` synced every night; ``never`` only on the last one, so none
    of its days has a known spend."""

    url: str
    engine: Engine
    known: str
    never: str


@pytest.fixture
def half_synced(engine: Engine, database_url: str) -> HalfSynced:
    ledger = make_world(keys=6, workspaces=2, active_fraction=1.0, deletes=0.0, relimits=0.0)
    never, known = ledger.world.workspace_ids[:2]
    for night in range(NIGHTS - 1):
        sync_only(engine, ledger, at(DAY + timedelta(days=night), 2), known)
    sync_at(engine, ledger, at(LAST_DAY, 2))
    return HalfSynced(database_url, engine, known, never)


def workspace_line(table: str, name: str) -> str:
    section = table[: table.index("Top keys")]
    return next(x for x in section.splitlines() if x.strip().startswith(name))


def test_workspace_with_no_known_day_is_unknown_in_every_format(half_synced: HalfSynced) -> None:
    data = json_report(half_synced.url)
    by_id = {w["workspace_id"]: w for w in data["workspaces"]}
    never, known = by_id[half_synced.never], by_id[half_synced.known]
    assert never["total_usd"] is None  # not "0"
    assert never["unknown_days"] == 30
    assert all(d["spend_usd"] is None for d in never["daily"])
    # Not synced at all before the last day: not even how many keys are unknown is known.
    assert [d["unknown_keys"] for d in never["daily"][:29]] == [None] * 29
    assert Decimal(known["total_usd"]) > 0
    assert known["unknown_days"] == 30 - (NIGHTS - 1)  # the last day is not over yet
    known_days = [d for d in known["daily"] if d["spend_usd"] is not None]
    assert sum(Decimal(d["spend_usd"]) for d in known_days) == Decimal(known["total_usd"])

    rows = list(csv.DictReader(io.StringIO(report(half_synced.url, "--format", "csv").stdout)))
    mine = [r for r in rows if r["workspace_id"] == half_synced.never]
    total = next(r for r in mine if r["record"] == "workspace_total")
    assert (total["spend_usd"], total["unknown_days"]) == ("", "30")
    assert [r["spend_usd"] for r in mine if r["record"] == "workspace_day"] == [""] * 30
    theirs = next(
        r
        for r in rows
        if r["workspace_id"] == half_synced.known and r["record"] == "workspace_total"
    )
    assert (theirs["spend_usd"], theirs["unknown_days"]) == (known["total_usd"], "21")

    table = report(half_synced.url).stdout
    line = workspace_line(table, never["name"])
    assert "0.0000" not in line
    assert re.search(r"\s—\s", line), line
    assert "30 of 30 days unknown (29 not synced)" in line
    rounded = four_places(Decimal(known["total_usd"]))
    line = workspace_line(table, known["name"])
    assert f"≥ {rounded}" in line and "21 of 30 days unknown (20 not synced)" in line
    names = [w["name"] for w in data["workspaces"]]
    assert names[-1] == never["name"]  # unknown sorts after every known total


def test_chart_leaves_unknown_days_as_gaps_and_says_how_many_are_known(
    half_synced: HalfSynced, tmp_path: Path
) -> None:
    with half_synced.engine.connect() as connection:
        built = build_report(connection)
    known = next(w for w in built.workspaces if w.workspace_id == half_synced.known)
    series = spend_series(known)
    assert len(series) == 30
    assert [math.isnan(v) for v in series] == [d.spend_usd is None for d in known.daily]
    assert sum(not math.isnan(v) for v in series) == NIGHTS - 1
    # Nothing is known before the first sync nor on the last day, not yet over.
    first_sync = DAY
    assert unknown_spans(built) == [
        (built.start, first_sync - timedelta(days=1)),
        (LAST_DAY, LAST_DAY),
    ]
    assert "9 of 30 days with known spend (shaded: unknown)" in chart_title(built)
    pytest.importorskip("matplotlib")
    chart = tmp_path / "spend.svg"
    assert report(half_synced.url, "--output", str(chart)).exit_code == 0
    content = chart.read_bytes()
    assert b"9 of 30 days with known spend" in content  # SVG keeps text as comments
    assert f"fill: {UNKNOWN_SHADE}".encode() in content


def test_full_window_chart_title_has_no_note() -> None:
    daily = tuple(days("1", "2"))
    built = Report(DAY, DAY + timedelta(days=1), (WorkspaceSpend("w", "w", daily),), (), ())
    assert "known spend" not in chart_title(built)
    assert unknown_spans(built) == []


def test_day_with_some_keys_unknown_makes_the_total_a_lower_bound(synced: Ledger) -> None:
    world = synced.ledger.world
    workspace = world.workspace_ids[0]
    victim = next(h for h in world.live_hashes(workspace) if h != synced.near_limit_key)
    # Deleted between two syncs: its spend on the last day it was seen is unknown, while
    # both bounding days of its workspace were observed.
    world.advance(timedelta(hours=6))
    world.delete_key(victim)
    sync_at(synced.engine, synced.ledger, at(LAST_DAY + timedelta(days=1), 2))
    sync_at(synced.engine, synced.ledger, at(LAST_DAY + timedelta(days=2), 2))
    data = json_report(synced.url)
    entry = next(w for w in data["workspaces"] if w["workspace_id"] == workspace)
    day = next(d for d in entry["daily"] if d["day"] == str(LAST_DAY))
    assert day["unknown_keys"] >= 1
    # Whichever rule daily_workspace_spend follows (NULL, or the sum of the known keys),
    # the report must not present that day, or the total, as complete.
    assert day["spend_usd"] is None or entry["partial_days"] >= 1
    line = workspace_line(report(synced.url).stdout, entry["name"])
    assert "≥ " in line
    if day["spend_usd"] is not None:
        assert "1 day with some keys unknown" in line
    rows = list(csv.DictReader(io.StringIO(report(synced.url, "--format", "csv").stdout)))
    cell = next(
        r
        for r in rows
        if r["record"] == "workspace_day"
        and r["workspace_id"] == workspace
        and r["day"] == str(LAST_DAY)
    )
    assert int(cell["unknown_keys"]) == day["unknown_keys"]


def test_near_limit_list_is_capped_by_top_and_most_urgent_first(synced: Ledger) -> None:
    world = synced.ledger.world
    world.rates.enables = world.rates.disables = world.rates.relimits = 0.0
    truth = {k["hash"]: k for k in world.truth_keys()}
    spenders = [h for h in world.live_hashes(world.workspace_ids[1]) if truth[h]["usage"] > 0]
    exhausted, idle = spenders[:2]
    world.update_key(
        exhausted, limit=truth[exhausted]["usage"] / 2, limit_reset=None, disabled=False
    )
    # 99.9% used but spending nothing any more: never projected to run out.
    world.update_key(
        idle,
        limit=(truth[idle]["usage"] * Decimal("1.001")).quantize(Decimal("0.000001")),
        limit_reset=None,
        disabled=True,
    )
    nights = 8  # so that idle's last 7 complete days have no spend
    for night in range(1, nights):
        sync_at(synced.engine, synced.ledger, at(LAST_DAY + timedelta(days=night), 2))
    with synced.engine.connect() as connection:
        paces = {
            h: Decimal(str(spent)) / 7
            for h, spent in connection.execute(
                text("SELECT key_hash, spend_last_7_days FROM key_limit_status")
            )
            if h in spenders[2:]
        }
    soon = max(paces, key=lambda h: paces[h])
    last = at(LAST_DAY + timedelta(days=nights), 2)
    world.advance(last - timedelta(minutes=1) - world.now)
    usage = next(k for k in world.truth_keys() if k["hash"] == soon)["usage"]
    # Three days' spend left at its pace: projected to run out within the week.
    world.update_key(soon, limit=usage + 3 * paces[soon], limit_reset=None, disabled=False)
    sync_at(synced.engine, synced.ledger, last)

    every = json_report(synced.url, "--top", "100")
    assert every["near_limit_more"] == 0
    near = {k["key_hash"]: k for k in every["near_limit"]}
    listed = list(near)
    assert {exhausted, idle, soon} <= set(listed)
    assert Decimal(near[exhausted]["limit_remaining"]) == 0
    assert near[soon]["projected_limit_date"] and near[soon]["days_until_limit"] <= 7
    assert near[idle]["projected_limit_date"] is None
    assert near[idle]["utilization"] > near[soon]["utilization"]
    # Used up first, then the soonest projection, then by share used: a key that is
    # running out ranks above one more used that has stopped spending.
    assert listed.index(exhausted) < listed.index(soon) < listed.index(idle)
    used_up = [Decimal(k["limit_remaining"]) <= 0 for k in every["near_limit"]]
    assert used_up == sorted(used_up, reverse=True)
    count = len(listed)
    capped = json_report(synced.url, "--top", "2")
    assert [k["key_hash"] for k in capped["near_limit"]] == listed[:2]
    assert capped["near_limit_more"] == count - 2
    table = report(synced.url, "--top", "2").stdout
    section = table[table.index("Keys near their limit") :]
    assert f"… and {count - 2} more near their limit" in section
    assert f"--top {count} shows all" in section
    assert "more near their limit" not in report(synced.url, "--top", str(count)).stdout


def limit_status(name: str, **fields: Any) -> LimitStatus:
    values: dict[str, Any] = {
        "key_hash": name,
        "name": name,
        "workspace_id": "w",
        "workspace_name": "w",
        "credit_limit": Decimal(10),
        "limit_remaining": Decimal(1),
        "utilization": 0.9,
        "limit_reset": None,
        "days_until_limit": None,
        "projected_limit_date": None,
    }
    return LimitStatus(**{**values, **fields})


def test_urgency_puts_used_up_limits_first_then_the_soonest_projection() -> None:
    statuses = [
        limit_status("most used", utilization=0.99),
        limit_status("in 5 days", utilization=0.5, days_until_limit=5, projected_limit_date=DAY),
        limit_status("used up", limit_remaining=Decimal(0), utilization=1.0),
        limit_status("in 2 days", utilization=0.4, days_until_limit=2, projected_limit_date=DAY),
        # Would run out in a day at this pace, but the limit resets first: not projected.
        limit_status("resets first", utilization=0.85, days_until_limit=1),
    ]
    ordered = [s.name for s in sorted(statuses, key=urgency)]
    assert ordered == ["used up", "in 2 days", "in 5 days", "most used", "resets first"]


# -- text for people ---------------------------------------------------------------------

FULLWIDTH = "\uff46\uff55\uff4c\uff4c"  # "full" in fullwidth forms


def test_display_width_counts_wide_characters_twice_and_marks_not_at_all() -> None:
    assert display_width("abc") == 3
    assert display_width("数据管道") == 8
    assert display_width("Agent 🚀") == 8
    assert display_width("Zoe\u0308") == 3  # e + combining diaeresis: one column
    assert display_width(FULLWIDTH) == 8  # fullwidth forms
    assert display_width("a\u200db") == 2  # zero-width joiner


def test_truncate_cuts_by_columns_and_never_splits_a_wide_character() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("数据管道数据管道", 7) == "数据管…"
    assert display_width(truncate("数据管道数据管道", 8)) <= 8
    assert truncate("abcdefgh", 5) == "abcd…"


def column_starts(line: str) -> list[int]:
    """Display columns where each run of non-space text in ``line`` starts after two spaces."""
    starts, column, previous = [], 0, "  "
    for char in line:
        if char != " " and previous.endswith("  "):
            starts.append(column)
        previous = (previous + char)[-2:]
        column += display_width(char)
    return starts


def test_table_stays_aligned_with_wide_names() -> None:
    names = ["plain", "数据管道", "Agent 🚀 prod", "Zoe\u0308's team", FULLWIDTH]
    workspaces = tuple(
        WorkspaceSpend(f"id-{i}", name, tuple(days(str(i + 1), "2")))
        for i, name in enumerate(names)
    )
    built = Report(DAY, DAY + timedelta(days=1), workspaces, (), ())
    lines = format_table(built).splitlines()
    header = next(i for i, x in enumerate(lines) if x.strip().startswith("workspace"))
    rows = lines[header + 2 : header + 2 + len(names)]
    expected = column_starts(lines[header + 1])  # the ---- line
    for row in rows:
        assert column_starts(row)[-2:] == expected[-2:], row  # total and daily columns
        assert display_width(row) == display_width(rows[0])
