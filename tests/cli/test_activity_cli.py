"""`keyledger sync` when GET /activity fails: exit 3, its own stderr line, keys kept."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from etl.core.exit_codes import EXIT_PARTIAL
from etl.store.database import make_engine
from models import ApiKey, SyncRunActivity
from tests.cli.test_logs import SUMMARY, TOKEN, invoke, restore_logging, serve

__all__ = ["restore_logging"]  # the fixture, used here too


def test_a_refused_activity_fetch_is_its_own_line_and_exits_partial(database_url: str) -> None:
    with serve(activity_status=403) as server:
        result = invoke(server, database_url, "sync")
    assert result.exit_code == EXIT_PARTIAL, result.stderr
    lines = result.stderr.splitlines()
    failures = [line for line in lines if line.startswith("keyledger: account default, activity")]
    assert len(failures) == 1
    assert failures[0].startswith("keyledger: account default, activity: failed: GET /activity: ")
    assert "HTTP 403" in failures[0] and TOKEN not in result.stderr
    summary = SUMMARY.match(lines[-1])
    assert summary is not None and "2 workspaces ok, 0 failed" in lines[-1]
    assert "failed for 1 account" in lines[-1]
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ApiKey)) == 300
        assert connection.scalar(select(SyncRunActivity.status)) == "failed"
    engine.dispose()


def test_the_json_summary_carries_the_activity_figures(database_url: str) -> None:
    with serve() as server:
        result = invoke(server, database_url, "--log-format", "json", "sync")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stderr.splitlines()[-1])
    assert summary["activity_days"] == 60  # 30 completed days of 2 workspaces
    assert summary["activity_failed"] == 0 and summary["activity_rows"] >= 0


def test_runs_show_gives_each_accounts_activity_line(database_url: str) -> None:
    with serve(activity_status=400) as server:  # not retried: the test stays quick
        assert invoke(server, database_url, "sync").exit_code == EXIT_PARTIAL
        server.simulator.faults.activity_status = 0
        assert invoke(server, database_url, "sync").exit_code == 0
        failed = invoke(server, database_url, "runs", "show", "1")
        ok = invoke(server, database_url, "runs", "show", "2", "--format", "json")
    assert failed.exit_code == 0, failed.stderr
    (line,) = [line for line in failed.stdout.splitlines() if line.startswith("  activity")]
    assert line.startswith(
        "  activity    default: failed, 0 days (0 re-fetched, 0 missing), 0 rows"
    )
    assert line.endswith("1 requests: GET /activity: HTTP 400: Invalid request parameters")
    (activity,) = json.loads(ok.stdout)["activity"]
    assert (activity["status"], activity["days_fetched"], activity["error"]) == ("ok", 60, None)
