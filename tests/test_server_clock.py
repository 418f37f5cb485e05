"""A wrong server clock (the `Date` header) is refused and cannot poison history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text, update

from etl.cli.main import cli
from etl.core.errors import ServerClockError
from etl.reports.build import build_report
from etl.server_clock import MAX_RUN_SPAN, ClockWatch
from etl.simulator.server import SimulatorServer
from etl.simulator.service import Simulator
from etl.simulator.world import World
from etl.store.database import make_engine
from etl.store.versions import close_versions
from etl.sync import SyncResult
from models import (
    ApiKey,
    ApiKeyVersion,
    DailyKeySpend,
    UsageSnapshot,
    Workspace,
    WorkspaceDay,
)
from tests.test_sync import TOKEN
from tests.test_sync import sync as sync_through_mock

DAY = timedelta(days=1)
TEN_YEARS = 3650 * 86400
# Everything a run files for a workspace (the run ledger records the refusal itself).
DATA = (ApiKey, UsageSnapshot, ApiKeyVersion, DailyKeySpend, WorkspaceDay, Workspace)


def make_simulator(keys: int = 40, **rates: float) -> Simulator:
    world = World(seed=5, workspaces=2, keys_per_workspace=keys)
    for name, value in rates.items():
        setattr(world.rates, name, value)
    return Simulator(world, token=TOKEN)


def sync(
    engine: Engine,
    simulator: Simulator,
    *,
    workspaces: tuple[str, ...] | None = None,
    **client: Any,
) -> SyncResult:
    """One run against ``simulator``, with client settings such as max_clock_jump_days."""
    return sync_through_mock(engine, simulator, workspaces=workspaces, client=client)


def nights(engine: Engine, simulator: Simulator, count: int) -> None:
    for _ in range(count):
        simulator.world.advance(DAY)
        assert sync(engine, simulator).status == "ok"


def dump(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every data table, to show that a refused run changed none."""
    with engine.connect() as connection:
        return {
            model.__tablename__: {tuple(row) for row in connection.execute(select(model))}
            for model in DATA
        }


def assert_sound_history(engine: Engine) -> None:
    """No inverted version, no negative spend, every synced workspace has its days."""
    with engine.connect() as connection:
        inverted = connection.scalar(
            select(func.count())
            .select_from(ApiKeyVersion)
            .where(ApiKeyVersion.valid_to < ApiKeyVersion.valid_from)
        )
        negative = connection.scalar(
            select(func.count()).select_from(DailyKeySpend).where(DailyKeySpend.spend_usd < 0)
        )
        synced = set(
            connection.scalars(select(Workspace.id).where(Workspace.last_synced_at.is_not(None)))
        )
        with_days = set(
            connection.scalars(select(WorkspaceDay.workspace_id).where(WorkspaceDay.observed))
        )
        report = build_report(connection, days=7)
    assert inverted == 0 and negative == 0
    assert synced and with_days == synced
    assert {w.workspace_id for w in report.workspaces} == synced


def test_date_ten_years_ahead_is_refused_and_writes_nothing(engine: Engine) -> None:
    simulator = make_simulator()
    assert sync(engine, simulator).status == "ok"
    nights(engine, simulator, 2)
    before = dump(engine)
    simulator.world.advance(DAY)
    simulator.faults.date_offset_seconds = TEN_YEARS
    result = sync(engine, simulator)
    assert result.status == "failed"
    assert {w.status for w in result.workspaces} == {"failed"}
    for workspace in result.workspaces:
        assert workspace.error is not None and "\n" not in workspace.error
        assert workspace.error.startswith("refused, the server's clock jumped: server time 2036-")
        assert "more than max_clock_jump_days = 35" in workspace.error
    assert dump(engine) == before
    simulator.faults.date_offset_seconds = 0
    assert sync(engine, simulator).status == "ok"  # the next honest night goes through
    assert_sound_history(engine)


def test_clock_going_back_never_inverts_versions(engine: Engine) -> None:
    # Two pages per workspace, so one run can carry Dates days apart.
    simulator = make_simulator(keys=150, renames=2.0, relimits=2.0, disables=0.5, enables=0.5)
    assert sync(engine, simulator).status == "ok"
    nights(engine, simulator, 3)
    before = dump(engine)
    simulator.world.advance(DAY)
    simulator.faults.date_offset_seconds = -5 * 86400  # a restarted server, 5 days behind
    back = sync(engine, simulator)
    assert back.status == "failed"
    assert all("before the latest time already filed" in str(w.error) for w in back.workspaces)
    assert dump(engine) == before
    simulator.faults.date_offset_seconds = 0
    simulator.faults.date_alternate_seconds = 2 * 86400  # +2, -2, +2, ... days per response
    # One by one: the signs alternate over the server's responses, so workspaces loading
    # at once could each see one clock only (as each could behind a balancer of two
    # servers 4 days apart, one by one too).
    swinging = sync(engine, simulator, workspace_concurrency=1)
    assert swinging.status == "failed"
    # Whichever page comes first, one of them is days before the other or before the
    # last sync.
    assert all("s clock jumped" in str(w.error) for w in swinging.workspaces)
    assert dump(engine) == before
    simulator.faults.date_alternate_seconds = 0
    nights(engine, simulator, 1)
    with engine.connect() as connection:
        versions = connection.scalar(select(func.count()).select_from(ApiKeyVersion))
    assert versions is not None and versions > 300  # keys did change: versions were closed
    assert_sound_history(engine)


def test_small_date_jitter_inside_a_run_is_accepted(engine: Engine) -> None:
    simulator = make_simulator(keys=150)  # two pages per workspace
    simulator.faults.date_alternate_seconds = 60  # a minute either way: clocks of two servers
    assert sync(engine, simulator).status == "ok"
    simulator.world.advance(DAY)
    assert sync(engine, simulator).status == "ok"


def test_date_swinging_inside_a_run_is_refused_whatever_the_jump_limit(engine: Engine) -> None:
    simulator = make_simulator(keys=250)  # three pages per workspace, and the empty one
    assert sync(engine, simulator).status == "ok"
    simulator.world.advance(3 * DAY)  # -2 days is still after the last sync
    before = dump(engine)
    simulator.faults.date_alternate_seconds = 2 * 86400
    # Not a gap: no override. One by one, as in test_clock_going_back_never_inverts_versions.
    result = sync(engine, simulator, max_clock_jump_days=4000, workspace_concurrency=1)
    assert result.status == "failed"
    # 4 days before an earlier page, or 4 days after the first one, depending on order.
    assert all("4.0 days" in str(w.error) for w in result.workspaces)
    assert all(
        "this run's first response" in str(w.error)
        or "earlier response of this run" in str(w.error)
        for w in result.workspaces
    )
    assert dump(engine) == before


# -- through the command line, the simulator on a real socket ---------------------------


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    world = World(seed=9, workspaces=2, keys_per_workspace=60)
    with SimulatorServer(Simulator(world, token=TOKEN)) as running:
        yield running


def invoke(*args: str, env: dict[str, str]) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def sim_env(server: SimulatorServer, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "OPENROUTER_MANAGEMENT_KEY": TOKEN,
        "OPENROUTER_BASE_URL": server.base_url,
        "KEYLEDGER_DATABASE_URL": database_url,
        **extra,
    }


def test_a_gap_past_the_limit_fails_only_that_workspace_until_accepted(
    server: SimulatorServer, database_url: str
) -> None:
    world = server.simulator.world
    first, second = world.workspace_ids
    env = sim_env(server, database_url)
    assert invoke("sync", env=env).exit_code == 0
    world.advance(20 * DAY, activity=False)
    assert invoke("sync", "--workspace", second, env=env).exit_code == 0
    world.advance(20 * DAY, activity=False)
    engine = make_engine(database_url)
    before = dump(engine)
    partial = invoke("sync", env=env)
    assert partial.exit_code == 3, partial.output  # the other workspace committed
    refusals = [line for line in partial.stderr.splitlines() if "refused" in line]
    assert len(refusals) == 1 and first in refusals[0], partial.stderr
    assert "40.0 days after this workspace's last successful sync" in refusals[0]
    assert "KEYLEDGER_MAX_CLOCK_JUMP_DAYS" in refusals[0]
    after = dump(engine)
    with engine.connect() as connection:
        days = set(
            connection.scalars(select(WorkspaceDay.day).where(WorkspaceDay.workspace_id == first))
        )
    assert days == {d for (w, d, *_rest) in before["workspace_days"] if w == first}
    assert after["workspace_days"] != before["workspace_days"]  # the second one was filed
    accepted = invoke("sync", env={**env, "KEYLEDGER_MAX_CLOCK_JUMP_DAYS": "45"})
    assert accepted.exit_code == 0, accepted.output
    engine.dispose()


def test_report_works_after_a_refused_clock_jump(
    server: SimulatorServer, database_url: str
) -> None:
    world = server.simulator.world
    env = sim_env(server, database_url)
    for _ in range(4):
        assert invoke("sync", env=env).exit_code == 0
        world.advance(DAY)
    server.simulator.faults.date_offset_seconds = TEN_YEARS
    refused = invoke("sync", env=env)
    assert refused.exit_code == 1  # every workspace refused: nothing synced
    assert refused.stderr.count("refused, the server's clock jumped") == 2
    report = invoke("report", "--format", "json", env=env)
    assert report.exit_code == 0, report.output
    assert '"end": "2026-11-05"' in report.output  # still the last honest night, not 2036


def test_a_run_spanning_more_than_a_day_is_refused(engine: Engine) -> None:
    start = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    with engine.connect() as connection:
        watch = ClockWatch(connection, max_jump_days=4000)
        watch.check(start)
        watch.check(start + MAX_RUN_SPAN)  # a slow run, still plausible
        with pytest.raises(ServerClockError, match=r"1\.0 days after this run.s first response"):
            watch.check(start + MAX_RUN_SPAN + timedelta(seconds=1))


def count_by_key(engine: Engine, model: Any) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(
            connection.execute(select(model.key_hash, func.count()).group_by(model.key_hash)).all()
        )


def test_accepted_clock_jump_writes_at_most_one_row_per_key(engine: Engine) -> None:
    simulator = make_simulator(keys=60, active_fraction=3.0)
    assert sync(engine, simulator).status == "ok"
    nights(engine, simulator, 2)
    before = {
        model: count_by_key(engine, model)
        for model in (DailyKeySpend, UsageSnapshot, ApiKeyVersion)
    }
    with engine.connect() as connection:
        keys = connection.scalar(select(func.count()).select_from(ApiKey))
        days_before = connection.scalar(select(func.count()).select_from(WorkspaceDay))
    simulator.world.advance(DAY)
    simulator.faults.date_offset_seconds = TEN_YEARS
    result = sync(engine, simulator, max_clock_jump_days=4000)  # the override: accepted
    # The keys are filed in 2036. GET /activity, whose window follows the server's own
    # (right) clock, refuses the days that Date makes completed: that part alone fails.
    assert {w.status for w in result.workspaces} == {"ok"}, result.summary()
    (activity,) = result.activity
    assert activity.status == "failed" and result.status == "partial"
    assert "Date must be within the last 30 (completed) UTC days" in (activity.error or "")
    assert result.seconds < 30  # it took 151 s when a decade was a row per key per day
    for model, counts in before.items():
        after = count_by_key(engine, model)
        grown = {h: n - counts.get(h, 0) for h, n in after.items() if n > counts.get(h, 0)}
        assert all(n == 1 for n in grown.values()), (model.__tablename__, grown)
        assert sum(grown.values()) <= keys
    with engine.connect() as connection:
        days_after = connection.scalar(select(func.count()).select_from(WorkspaceDay))
        gap_key_days = connection.scalar(text("SELECT COUNT(*) FROM daily_key_spend_gaps"))
        unknown = connection.execute(
            text("SELECT unknown_keys, spend_usd FROM daily_workspace_spend WHERE day = :d"),
            {"d": date(2031, 1, 1)},
        ).all()
    # The decade in between is one row per workspace per day, not one per key per day
    # (3650 days of offset, plus the night that passed)...
    assert days_after - days_before == 2 * 3651
    # ...and still reads as unknown spend for every key that was live.
    assert gap_key_days is not None and gap_key_days >= 100 * 3649
    assert len(unknown) == 2 and all(r.spend_usd is None and r.unknown_keys >= 50 for r in unknown)
    with engine.connect() as connection:
        report = build_report(connection, days=7)
        monthly = connection.scalar(
            text("SELECT COUNT(*) FROM monthly_key_spend WHERE spend_usd IS NULL")
        )
    assert report.end.year == 2036  # accepted: the ledger now lives there, and says so
    assert monthly is not None and monthly >= 100 * 119
    assert_sound_history(engine)


def test_going_back_past_a_later_page_of_the_last_sync_is_refused(engine: Engine) -> None:
    simulator = make_simulator()
    assert sync(engine, simulator).status == "ok"
    with engine.begin() as connection:
        workspace_id, synced_at = connection.execute(
            select(Workspace.id, Workspace.last_synced_at).limit(1)
        ).one()
        # As if that listing's last page came ten minutes after its first.
        connection.execute(
            update(UsageSnapshot)
            .where(UsageSnapshot.workspace_id == workspace_id)
            .values(captured_at=synced_at + timedelta(minutes=10))
        )
    with engine.connect() as connection:
        watch = ClockWatch(connection, max_jump_days=35)
        watch.know_workspace(workspace_id)
        watch.check(synced_at + timedelta(minutes=10))  # where the ledger left off: fine
        later = ClockWatch(connection, max_jump_days=35)
        later.know_workspace(workspace_id)
        with pytest.raises(ServerClockError, match="before the latest time already filed"):
            later.check(synced_at + timedelta(minutes=5))  # after H, before what H's run filed


def test_a_version_closed_by_an_earlier_date_ends_where_it_began(engine: Engine) -> None:
    simulator = make_simulator()
    assert sync(engine, simulator).status == "ok"
    with engine.begin() as connection:
        key_hash, valid_from = connection.execute(
            select(ApiKeyVersion.key_hash, ApiKeyVersion.valid_from).limit(1)
        ).one()
        close_versions(connection, [key_hash], valid_from - timedelta(minutes=3))
        valid_to = connection.scalar(
            select(ApiKeyVersion.valid_to).where(ApiKeyVersion.key_hash == key_hash)
        )
    assert valid_to == valid_from  # an empty interval, never an inverted one
