"""The metrics file: Prometheus text a real parser reads, written in one rename."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from etl.core.statuses import RunStatus, WorkspaceStatus
from etl.metrics import RunOutcome, render, write_atomically
from etl.store.counts import PageCounts
from etl.sync import SyncResult, WorkspaceResult

ODD = 'ops "eu"\\west\nnight'  # every character the format escapes in a label value
UUID = "0df9e665-d932-5740-b2c7-b52af166bc11"
AT = datetime(2026, 11, 30, 2, 0, 5, tzinfo=timezone.utc)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    parsed: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        parsed[family.name] = [(dict(s.labels), s.value) for s in family.samples]
    return parsed


def outcome(result: SyncResult | None, **overrides: object) -> RunOutcome:
    values: dict[str, object] = {
        "exit_code": 3,
        "status": RunStatus.PARTIAL,
        "seconds": 12.5,
        "finished": 1_764_468_000.25,
        "result": result,
        "last_success": {(ODD, "default"): AT, (ODD, UUID): AT},
        "accounts": (ODD,),
    }
    values.update(overrides)
    return RunOutcome(**values)  # type: ignore[arg-type]


def test_every_family_parses_and_label_values_survive_escaping() -> None:
    result = SyncResult(
        run_id=7,
        workspaces=[
            WorkspaceResult(ODD, "default", WorkspaceStatus.OK, PageCounts(5, 2, 1, 3), deleted=1),
            WorkspaceResult(ODD, UUID, WorkspaceStatus.FAILED, error="boom"),
        ],
        seconds=12.5,
        requests=9,
        retries=2,
    )
    text = render(outcome(result))
    assert text.endswith("\n") and "# TYPE keyledger_run_keys_seen gauge\n" in text
    parsed = samples(text)
    assert all(name.startswith("keyledger_") for name in parsed)
    assert parsed["keyledger_run_exit_code"] == [({}, 3)]
    assert parsed["keyledger_run_timestamp_seconds"] == [({}, 1_764_468_000.25)]
    status = {labels["status"]: value for labels, value in parsed["keyledger_run_status"]}
    assert status == {"ok": 0, "partial": 1, "failed": 0, "locked": 0}
    keys = {name: parsed[f"keyledger_run_{name}"][0][1] for name in ("keys_seen", "keys_new")}
    assert keys == {"keys_seen": 5, "keys_new": 2}
    assert parsed["keyledger_run_keys_deleted"] == [({}, 1)]
    assert parsed["keyledger_run_requests"] == [({}, 9)]
    assert parsed["keyledger_run_retries"] == [({}, 2)]
    failed = {
        labels["workspace"]: (labels["account"], v)
        for labels, v in parsed["keyledger_workspace_failed"]
    }
    assert failed == {"default": (ODD, 0), UUID: (ODD, 1)}
    last = parsed["keyledger_workspace_last_success_timestamp_seconds"]
    assert {(labels["account"], labels["workspace"]) for labels, _ in last} == {
        (ODD, "default"),
        (ODD, UUID),
    }
    assert {value for _, value in last} == {AT.timestamp()}


def test_an_account_that_could_not_be_listed_fails_every_workspace_it_had() -> None:
    result = SyncResult(
        run_id=8,
        workspaces=[WorkspaceResult(ODD, "*", WorkspaceStatus.FAILED, error="refused")],
        seconds=0.3,
    )
    parsed = samples(render(outcome(result, exit_code=1, status=RunStatus.FAILED)))
    failed = {labels["workspace"]: v for labels, v in parsed["keyledger_workspace_failed"]}
    assert failed == {"default": 1, UUID: 1}
    # Their last successes stay visible, ageing, for the staleness alert.
    assert len(parsed["keyledger_workspace_last_success_timestamp_seconds"]) == 2


def test_a_workspace_no_longer_configured_drops_out() -> None:
    result = SyncResult(
        run_id=9, workspaces=[WorkspaceResult(ODD, UUID, WorkspaceStatus.OK)], seconds=1.0
    )
    parsed = samples(render(outcome(result, exit_code=0, status=RunStatus.OK)))
    last = parsed["keyledger_workspace_last_success_timestamp_seconds"]
    assert [labels["workspace"] for labels, _ in last] == [UUID]


def test_a_run_without_a_result_still_reports_its_status() -> None:
    parsed = samples(render(outcome(None, exit_code=1, status=RunStatus.FAILED, seconds=0.5)))
    assert parsed["keyledger_run_exit_code"] == [({}, 1)]
    assert parsed["keyledger_run_duration_seconds"] == [({}, 0.5)]
    assert parsed["keyledger_run_requests"] == [({}, 0)]
    assert parsed["keyledger_workspace_failed"] == []


def test_the_file_is_replaced_by_a_rename_and_no_temporary_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "keyledger.prom"
    write_atomically(path, "old 1\n")
    reader = path.open(encoding="utf-8")  # a scrape in progress during the next write
    before = path.stat().st_ino
    write_atomically(path, "new 2\n")
    assert reader.read() == "old 1\n"  # the reader kept the whole old file
    reader.close()
    assert path.read_text(encoding="utf-8") == "new 2\n"
    assert path.stat().st_ino != before  # a new file renamed in, not the old one rewritten
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # node_exporter may be another user
    assert os.listdir(tmp_path) == ["keyledger.prom"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "keyledger.prom"
    write_atomically(path, "old 1\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(path, "half written \udc80")  # fails part way through
    assert path.read_text(encoding="utf-8") == "old 1\n"
    assert os.listdir(tmp_path) == ["keyledger.prom"]


def test_an_accounts_failed_activity_part_has_its_own_series() -> None:
    from etl.activity_sync import ActivityResult
    from etl.core.statuses import ActivityStatus
    from etl.store.activity_runs import ActivityCounts

    result = SyncResult(
        run_id=8,
        workspaces=[WorkspaceResult("a", UUID, WorkspaceStatus.OK, PageCounts(1, 1, 0, 1))],
        seconds=1.0,
        activity=[
            ActivityResult("a", ActivityStatus.OK, ActivityCounts(days_fetched=30, days_missing=2)),
            ActivityResult("b", ActivityStatus.FAILED, error="GET /activity: HTTP 500"),
        ],
    )
    parsed = samples(render(outcome(result)))
    assert parsed["keyledger_activity_failed"] == [({"account": "a"}, 0), ({"account": "b"}, 1)]
    assert parsed["keyledger_run_activity_days_fetched"] == [({}, 30)]
    assert parsed["keyledger_run_activity_days_missing"] == [({}, 2)]
    assert result.status is RunStatus.PARTIAL  # keys all synced, one activity part failed
