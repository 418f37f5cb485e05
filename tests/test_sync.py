"""`run_sync` against the simulator (MockTransport) on every backend."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import Engine, event, func, select, update

from etl.core.config import Account, ClientSettings, Secret, Settings, WorkspaceSpec
from etl.core.exact_json import dump_json, parse_json
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from etl.store.counts import PageCounts
from etl.sync import KEY_REFUSED, SyncResult, run_sync
from models import ApiKey, SyncRun, SyncRunWorkspace, UsageSnapshot, Workspace
from tests.helpers import as_stored, refuse_keys, seen_keys_left

TOKEN = "sk-or-v1-sim-management-key-for-tests"


def make_simulator(workspaces: int = 2, keys: int = 130, **faults: Any) -> Simulator:
    world = World(seed=7, workspaces=workspaces, keys_per_workspace=keys)
    return Simulator(world, token=TOKEN, faults=Faults(**faults))


def sync(
    engine: Engine,
    simulator: Simulator,
    *,
    workspaces: tuple[str, ...] | None = None,
    client: dict[str, Any] | None = None,
    **options: Any,
) -> SyncResult:
    """One run against ``simulator`` through its MockTransport (``client``: settings
    beyond the test defaults; ``options``: run_sync's)."""
    account = Account(
        name="test",
        management_key=Secret(TOKEN),
        workspaces=tuple(WorkspaceSpec(w) for w in workspaces) if workspaces else None,
        client=ClientSettings(
            base_url="http://simulator.test/api/v1",
            requests_per_second=1e6,
            max_attempts=3,
            **(client or {}),
        ),
    )
    settings = Settings(database_url=str(engine.url), accounts=(account,))

    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client,
            account.management_key,
            transport=simulator.mock_transport(),
            sleep=lambda seconds: None,
        )

    return run_sync(engine, settings, client_factory=client_factory, **options)


def count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def stored_keys(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        return {row.hash: row for row in connection.execute(select(ApiKey))}


def live_truth(world: World) -> dict[str, dict[str, Any]]:
    return {k["hash"]: k for k in world.truth_keys() if k["deleted_at"] is None}


def test_first_sync_stores_every_key_exactly(engine: Engine) -> None:
    simulator = make_simulator()
    result = sync(engine, simulator)
    assert result.status == "ok"
    truth = live_truth(simulator.world)
    stored = stored_keys(engine)
    assert set(stored) == set(truth)
    for key_hash, payload in truth.items():
        row = stored[key_hash]
        assert row.usage == payload["usage"]
        assert row.usage_daily == payload["usage_daily"]
        assert row.byok_usage_monthly == payload["byok_usage_monthly"]
        assert row.credit_limit == payload["limit"]
        assert row.name == payload["name"]
        assert row.workspace_id == payload["workspace_id"]
        assert row.deleted_at is None
        assert parse_json(row.raw_json.encode())["usage"] == payload["usage"]
    assert count(engine, UsageSnapshot) == len(truth)
    assert seen_keys_left(engine) == 0  # the listing's seen keys die with its transaction
    with engine.connect() as connection:
        ledger = connection.execute(select(SyncRunWorkspace)).all()
        run = connection.execute(select(SyncRun)).one()
    assert run.status == "ok" and run.finished_at is not None
    assert {w.status for w in ledger} == {"ok"}
    assert sum(w.keys_new for w in ledger) == len(truth)
    assert sum(w.snapshots_written for w in ledger) == len(truth)


def test_snapshots_are_dated_by_the_server_clock(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=5)
    sync(engine, simulator)
    with engine.connect() as connection:
        captured = set(connection.scalars(select(UsageSnapshot.captured_at)))
    assert captured == {simulator.world.now}  # simulated time, not the test machine's


def test_second_sync_writes_no_snapshots_and_touches_no_key(engine: Engine) -> None:
    simulator = make_simulator()
    sync(engine, simulator)
    before = {h: (r.raw_json, r.changed_at) for h, r in stored_keys(engine).items()}
    snapshots = count(engine, UsageSnapshot)
    simulator.world.advance(timedelta(minutes=5), activity=False)
    result = sync(engine, simulator)
    assert result.status == "ok"
    assert count(engine, UsageSnapshot) == snapshots
    after = {h: (r.raw_json, r.changed_at) for h, r in stored_keys(engine).items()}
    assert after == before
    assert sum(w.counts.changed + w.counts.new for w in result.workspaces) == 0


def test_one_changed_key_gives_exactly_one_snapshot(engine: Engine) -> None:
    simulator = make_simulator()
    sync(engine, simulator)
    snapshots = count(engine, UsageSnapshot)
    world = simulator.world
    key_hash = world.live_hashes(world.workspace_ids[1])[3]
    world.spend(key_hash, Decimal("0.000000001"))
    result = sync(engine, simulator)
    assert count(engine, UsageSnapshot) == snapshots + 1
    assert sum(w.counts.changed for w in result.workspaces) == 1
    with engine.connect() as connection:
        latest = connection.execute(
            select(UsageSnapshot)
            .where(UsageSnapshot.key_hash == key_hash)
            .order_by(UsageSnapshot.id.desc())
        ).first()
    assert latest is not None
    assert latest.usage == live_truth(world)[key_hash]["usage"]


def test_rename_changes_the_key_row_but_writes_no_snapshot(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=10)
    sync(engine, simulator)
    snapshots = count(engine, UsageSnapshot)
    key_hash = simulator.world.live_hashes(simulator.world.workspace_ids[0])[0]
    simulator.world.update_key(key_hash, name="renamed")
    sync(engine, simulator)
    assert stored_keys(engine)[key_hash].name == "renamed"
    assert count(engine, UsageSnapshot) == snapshots


def test_deleted_key_is_marked_after_its_404_and_keeps_history(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=20)
    sync(engine, simulator)
    world = simulator.world
    key_hash = world.live_hashes(world.workspace_ids[0])[5]
    world.advance(timedelta(hours=1), activity=False)
    world.delete_key(key_hash)
    lookups_before = simulator.stats.by_kind.get("key", 0)
    result = sync(engine, simulator)
    assert result.workspaces[0].deleted == 1
    assert simulator.stats.by_kind.get("key", 0) == lookups_before + 1  # confirmed by GET
    row = stored_keys(engine)[key_hash]
    assert row.deleted_at == world.now
    assert count(engine, UsageSnapshot, UsageSnapshot.key_hash == key_hash) == 1
    # A later run neither re-asks about it nor changes it.
    sync(engine, simulator)
    assert simulator.stats.by_kind.get("key", 0) == lookups_before + 1


def test_key_skipped_by_paging_drift_is_not_marked_deleted(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=20)
    sync(engine, simulator)
    world = simulator.world
    hidden = world.live_hashes(world.workspace_ids[0])[0]
    original = simulator.handle

    def hide_one_key(method: str, path: str, query: str, *rest: Any) -> Any:
        # The listing misses a key that still exists (as offset drift can make it).
        response = original(method, path, query, *rest)
        if path.endswith("/keys") and response.status == 200:
            body = parse_json(response.body)
            body["data"] = [k for k in body["data"] if k["hash"] != hidden]
            from etl.core.exact_json import dump_json

            return type(response)(response.status, response.headers, dump_json(body).encode())
        return response

    simulator.handle = hide_one_key  # type: ignore[method-assign]
    result = sync(engine, simulator)
    assert result.status == "ok"
    assert stored_keys(engine)[hidden].deleted_at is None
    assert result.workspaces[0].deleted == 0


def test_deleted_key_that_reappears_is_undeleted(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=5)
    sync(engine, simulator)
    key_hash = simulator.world.live_hashes(simulator.world.workspace_ids[0])[0]
    with engine.begin() as connection:
        connection.execute(
            ApiKey.__table__.update()
            .where(ApiKey.hash == key_hash)
            .values(deleted_at=simulator.world.now - timedelta(days=1))
        )
    sync(engine, simulator)
    assert stored_keys(engine)[key_hash].deleted_at is None


def test_key_moved_to_another_workspace_is_updated_not_duplicated(engine: Engine) -> None:
    simulator = make_simulator(workspaces=2, keys=10)
    sync(engine, simulator)
    world = simulator.world
    first, second = world.workspace_ids
    key_hash = world.live_hashes(first)[2]
    # Move it by hand: the simulator has no API for moving keys.
    key = world.find_key(key_hash)
    assert key is not None
    world.delete_key(key_hash)
    key.deleted_at = None
    key.workspace_id = second
    import bisect

    from etl.simulator.world import _order_key

    bisect.insort(world._order[second], key, key=_order_key)
    key.version += 1
    world._ws_version[second] += 1
    world._ws_version[first] += 1
    result = sync(engine, simulator)
    assert result.status == "ok"
    stored = stored_keys(engine)
    assert stored[key_hash].workspace_id == second
    assert stored[key_hash].deleted_at is None
    assert count(engine, ApiKey) == 20


def test_failed_workspace_leaves_no_rows_and_others_commit(engine: Engine) -> None:
    simulator = make_simulator(workspaces=3, keys=250)
    broken = simulator.world.workspace_ids[1]
    original = simulator.handle

    def fail_second_page(method: str, path: str, query: str, *rest: Any) -> Any:
        response = original(method, path, query, *rest)
        if broken in query and "offset=99" in query:
            return type(response)(200, response.headers, b'{"data": [{"hash": "x"')
        return response

    simulator.handle = fail_second_page  # type: ignore[method-assign]
    result = sync(engine, simulator)
    assert result.status == "partial"
    failed = [w for w in result.workspaces if w.status == "failed"]
    assert [w.workspace_id for w in failed] == [broken]
    assert failed[0].error is not None
    assert f"workspace {broken}, offset 99" in failed[0].error
    assert count(engine, ApiKey, ApiKey.workspace_id == broken) == 0
    assert count(engine, UsageSnapshot, UsageSnapshot.workspace_id == broken) == 0
    assert count(engine, Workspace, Workspace.id == broken) == 0
    for other in set(simulator.world.workspace_ids) - {broken}:
        assert count(engine, ApiKey, ApiKey.workspace_id == other) == 250
    with engine.connect() as connection:
        ledger = {w.workspace_id: w for w in connection.execute(select(SyncRunWorkspace)).all()}
        run = connection.execute(select(SyncRun)).one()
    assert ledger[broken].status == "failed"
    assert "offset 99" in ledger[broken].error
    assert run.status == "partial"


def test_dry_run_writes_nothing(engine: Engine) -> None:
    simulator = make_simulator(workspaces=2, keys=30)
    result = sync(engine, simulator, dry_run=True)
    assert result.status == "ok"
    assert sum(w.counts.new for w in result.workspaces) == 60
    for model in (ApiKey, UsageSnapshot, SyncRun, SyncRunWorkspace, Workspace):
        assert count(engine, model) == 0


def test_dry_run_workspaces_share_one_connection_and_each_finds_its_missing_keys(
    engine: Engine,
) -> None:
    # A dry run's workspaces are savepoints of one outer transaction on one connection:
    # each listing must start with an empty seen-key table, the one before it committed
    # (released) or not.
    simulator = make_simulator(workspaces=3, keys=30)
    sync(engine, simulator)
    world = simulator.world
    world.advance(timedelta(hours=1), activity=False)
    gone = [world.live_hashes(w)[n] for n, w in enumerate(world.workspace_ids)]
    for key_hash in gone:
        world.delete_key(key_hash)
    before = {h: r.deleted_at for h, r in stored_keys(engine).items()}

    result = sync(engine, simulator, dry_run=True)

    assert result.status == "ok"
    assert [w.deleted for w in result.workspaces] == [1, 1, 1]
    assert sum(w.counts.seen for w in result.workspaces) == 87
    assert {h: r.deleted_at for h, r in stored_keys(engine).items()} == before  # rolled back
    assert seen_keys_left(engine) == 0


@pytest.mark.parametrize(
    "amount",
    [
        "0.30000000000000004",
        "1e-9",
        "123456789.0123456789",
        "0",
        "1e+20",
        "12345678901234567890.0123456789012345",  # more digits than Decimal's default 28
        "1E-30",
    ],
)
def test_money_round_trips_exactly(engine: Engine, amount: str) -> None:
    simulator = make_simulator(workspaces=1, keys=1)
    key_hash = simulator.world.live_hashes(simulator.world.workspace_ids[0])[0]
    simulator.world.update_key(key_hash, limit=Decimal(amount))
    sync(engine, simulator)
    row = stored_keys(engine)[key_hash]
    # Exact on PostgreSQL/MariaDB; on SQLite the nearest double, which is the amount
    # itself for all but the two values with more than 17 significant digits.
    expected = as_stored(Decimal(amount), engine)
    if engine.dialect.name == "sqlite":
        assert (expected == Decimal(amount)) == (len(Decimal(amount).as_tuple().digits) <= 17)
    else:
        assert expected == Decimal(amount)
    assert row.credit_limit == expected
    with engine.connect() as connection:
        snapshot = connection.scalar(select(UsageSnapshot.credit_limit))
    assert snapshot == expected
    # raw_json keeps the text as sent on every backend.
    assert str(parse_json(row.raw_json.encode())["limit"]) == str(Decimal(amount))


def test_a_limit_a_double_cannot_hold_writes_no_history_churn(engine: Engine) -> None:
    # SQLite keeps the nearest double of 123456789.0123456789; comparing that with the
    # exact amount the next time the key changes must not see a changed limit.
    from models import ApiKeyVersion

    simulator = make_simulator(workspaces=1, keys=1)
    key_hash = simulator.world.live_hashes(simulator.world.workspace_ids[0])[0]
    simulator.world.update_key(key_hash, limit=Decimal("123456789.0123456789"))
    sync(engine, simulator)
    snapshots, versions = count(engine, UsageSnapshot), count(engine, ApiKeyVersion)
    simulator.world.update_key(key_hash, name="renamed")  # a payload change, not a limit
    sync(engine, simulator)
    assert count(engine, UsageSnapshot) == snapshots
    assert count(engine, ApiKeyVersion) == versions + 1  # the rename, nothing else
    simulator.world.spend(key_hash, Decimal("0.5"))
    sync(engine, simulator)
    assert count(engine, UsageSnapshot) == snapshots + 1  # the spend
    assert count(engine, ApiKeyVersion) == versions + 1  # no limit change seen


@pytest.mark.parametrize(
    "name",
    [
        'it\'s a "quoted" name',
        "Robert'); DROP TABLE api_keys; --",
        "emoji 🚀🔑 and ünïcödé",
        "x" * 1000,
        "back\\slash % _ ${}",
    ],
)
def test_names_are_stored_verbatim(engine: Engine, name: str) -> None:
    simulator = make_simulator(workspaces=1, keys=1)
    key_hash = simulator.world.live_hashes(simulator.world.workspace_ids[0])[0]
    simulator.world.update_key(key_hash, name=name)
    sync(engine, simulator)
    row = stored_keys(engine)[key_hash]
    assert row.name == name
    assert parse_json(row.raw_json.encode())["name"] == name


def test_unknown_fields_are_kept_in_raw_json(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=3, schema_drift=True)
    sync(engine, simulator)
    for row in stored_keys(engine).values():
        assert "new_field_x" in parse_json(row.raw_json.encode())


def test_a_changed_unknown_field_rewrites_raw_json_but_writes_no_snapshot(
    engine: Engine,
) -> None:
    simulator = make_simulator(workspaces=1, keys=4)
    sync(engine, simulator)
    snapshots = count(engine, UsageSnapshot)
    simulator.faults.schema_drift = True  # every key gains a field keyledger does not know
    result = sync(engine, simulator)
    assert sum(w.counts.changed for w in result.workspaces) == 4
    assert count(engine, UsageSnapshot) == snapshots
    for row in stored_keys(engine).values():
        assert parse_json(row.raw_json)["new_field_x"]["score"] == Decimal("150")


def test_the_same_values_written_differently_are_unchanged(engine: Engine) -> None:
    simulator = make_simulator(workspaces=1, keys=2)
    sync(engine, simulator)
    # Store a payload whose numbers are written otherwise: 1.5 as 1.50, 0 as 0.0.
    key_hash = simulator.world.live_hashes(simulator.world.workspace_ids[0])[0]
    row = stored_keys(engine)[key_hash]
    payload = parse_json(row.raw_json)
    rewritten = dump_json(
        {
            **payload,
            "usage": Decimal(payload["usage"]).quantize(Decimal("0.0000000000000000000001")),
        }
    )
    assert rewritten != row.raw_json
    with engine.begin() as connection:
        connection.execute(update(ApiKey).where(ApiKey.hash == key_hash).values(raw_json=rewritten))
    result = sync(engine, simulator)
    assert sum(w.counts.changed for w in result.workspaces) == 0
    assert stored_keys(engine)[key_hash].raw_json == rewritten  # the row was not touched


def test_workspace_held_by_another_run_is_skipped(engine: Engine) -> None:
    from etl.store import locks

    simulator = make_simulator(workspaces=2, keys=5)
    held = simulator.world.workspace_ids[0]
    lock = locks.try_lock(engine, held)
    assert lock is not None
    try:
        result = sync(engine, simulator)
        everything_held = sync(engine, simulator, workspaces=(held,))
    finally:
        lock.release()
    assert result.status == "ok"  # nothing failed: the held workspace is another run's job
    assert {w.workspace_id: w.status for w in result.workspaces}[held] == "skipped"
    assert everything_held.status == "locked"
    assert count(engine, ApiKey, ApiKey.workspace_id == held) == 0


def test_a_run_whose_process_died_is_marked_abandoned(engine: Engine) -> None:
    from etl.store import locks, runs

    with engine.begin() as connection:
        dead = runs.start_run(connection, dry_run=False, lock_token="0" * 36)
        alive = runs.start_run(connection, dry_run=False, lock_token="1" * 36)
        stale = runs.open_workspace(connection, dead, account="a", requested_as="default")
    held = locks.try_lock(engine, runs.run_lock_name("1" * 36), ephemeral=True)
    assert held is not None
    try:
        sync(engine, make_simulator(workspaces=1, keys=3))
    finally:
        held.release()
    with engine.connect() as connection:
        status = dict(connection.execute(select(SyncRun.id, SyncRun.status)).all())
        stale_status = connection.scalar(
            select(SyncRunWorkspace.status).where(SyncRunWorkspace.id == stale)
        )
    assert status[dead] == "abandoned"  # nobody held its lock: its process is gone
    assert status[alive] == "running"  # its lock is held: still going
    assert stale_status == "abandoned"


def _bad_page(kind: str, body: bytes) -> bytes:
    """The second page of a listing, spoiled in one way."""
    if kind == "malformed JSON":
        return body[: len(body) // 2]
    page = parse_json(body)
    if kind == "item without hash":
        del page["data"][3]["hash"]
    elif kind == "string where a number belongs":
        page["data"][3]["usage"] = "12.5"
    from etl.core.exact_json import dump_json

    return dump_json(page).encode()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("malformed JSON", "not valid JSON"),
        ("item without hash", "'hash' is missing"),
        ("string where a number belongs", "'usage' should be a number"),
        ("server ignoring offset", "ignores offset"),
    ],
)
def test_bad_page_fails_its_workspace_only(engine: Engine, kind: str, expected: str) -> None:
    simulator = make_simulator(workspaces=3, keys=250)
    broken = simulator.world.workspace_ids[2]
    original = simulator.handle

    def spoil(method: str, path: str, query: str, *rest: Any) -> Any:
        if kind == "server ignoring offset" and broken in query:
            query = re.sub(r"offset=\d+", "offset=0", query)
        response = original(method, path, query, *rest)
        if kind != "server ignoring offset" and broken in query and "offset=99" in query:
            return type(response)(200, response.headers, _bad_page(kind, response.body))
        return response

    simulator.handle = spoil  # type: ignore[method-assign]
    result = sync(engine, simulator)
    assert result.status == "partial"  # the CLI exits 3
    failed = {w.workspace_id: w.error for w in result.workspaces if w.status == "failed"}
    assert list(failed) == [broken]
    error = failed[broken]
    assert error is not None and "\n" not in error
    # Paging stops where the page broke; a server ignoring offset shows only by the
    # listing not advancing, somewhere past it.
    where = (
        f"workspace {broken}, offset "
        if kind == "server ignoring offset"
        else (f"workspace {broken}, offset 99")
    )
    assert where in error and expected in error
    assert count(engine, ApiKey, ApiKey.workspace_id == broken) == 0
    for other in simulator.world.workspace_ids[:2]:
        assert count(engine, ApiKey, ApiKey.workspace_id == other) == 250
    with engine.connect() as connection:
        recorded = connection.scalar(
            select(SyncRunWorkspace.error).where(SyncRunWorkspace.status == "failed")
        )
    assert recorded == error


def test_rolled_back_workspace_counts_nothing(engine: Engine) -> None:
    """The database refuses a key on the third workspace's second page, after its first
    page was loaded: that work rolls back, so neither the result, the summary nor the
    ledger may count it (they counted the first page's 100 keys and snapshots)."""
    simulator = make_simulator(workspaces=3, keys=130)
    broken = simulator.world.workspace_ids[2]
    refuse_keys(engine, "hash", simulator.world.live_hashes(broken)[-1])  # listed last
    result = sync(engine, simulator)
    assert result.status == "partial"
    failed = result.workspaces[2]
    assert (failed.workspace_id, failed.status) == (broken, "failed")
    assert failed.error is not None and "refused by the test" in failed.error
    assert (failed.counts, failed.pages, failed.deleted) == (PageCounts(), 0, 0)
    stored_keys, stored_snapshots = count(engine, ApiKey), count(engine, UsageSnapshot)
    assert stored_keys == stored_snapshots == 260  # the two workspaces that committed
    assert f"new {stored_keys}," in result.summary()
    assert f"; {stored_snapshots} snapshot rows;" in result.summary()
    with engine.connect() as connection:
        rows = {w.workspace_id: w for w in connection.execute(select(SyncRunWorkspace))}
        run = connection.execute(select(SyncRun)).one()
    row = rows[broken]
    assert row.status == "failed" and "refused by the test" in row.error
    written = (row.pages, row.keys_seen, row.keys_new, row.keys_changed, row.keys_deleted)
    assert written == (0, 0, 0, 0, 0) and row.snapshots_written == 0
    assert sum(w.keys_new for w in rows.values()) == stored_keys
    assert sum(w.snapshots_written for w in rows.values()) == stored_snapshots
    assert (run.status, run.error) == ("partial", None)
    assert run.finished_at is not None


def test_workspaces_after_a_refused_key_are_recorded_skipped(engine: Engine) -> None:
    """The key is refused on the second of four workspaces; the run stops asking, and
    the last two still get a ledger row saying why they were not attempted."""
    simulator = make_simulator(workspaces=4, keys=5)
    ids = simulator.world.workspace_ids
    original = simulator.handle
    asked: list[str] = []

    def refuse_second(method: str, path: str, query: str, *rest: Any) -> Any:
        asked.append(query)
        if f"workspace_id={ids[1]}" in query:
            body = b'{"error": {"code": 401, "message": "No auth credentials found"}}'
            return type(original(method, path, query, *rest))(401, {}, body)
        return original(method, path, query, *rest)

    simulator.handle = refuse_second  # type: ignore[method-assign]
    result = sync(engine, simulator, workspaces=tuple(ids))
    assert [w.status for w in result.workspaces] == ["ok", "failed", "skipped", "skipped"]
    assert {w.error for w in result.workspaces[2:]} == {KEY_REFUSED}
    assert result.status == "partial"
    assert "1 workspaces ok, 1 failed, 2 skipped" in result.summary()
    assert not any(f"workspace_id={w}" in q for w in ids[2:] for q in asked)
    with engine.connect() as connection:
        rows = connection.execute(select(SyncRunWorkspace).order_by(SyncRunWorkspace.id)).all()
        run = connection.execute(select(SyncRun)).one()
    assert [(r.requested_as, r.status) for r in rows] == [
        (ids[0], "ok"),
        (ids[1], "failed"),
        (ids[2], "skipped"),
        (ids[3], "skipped"),
    ]
    assert {r.error for r in rows[2:]} == {"not attempted: the management key was refused"}
    assert all(r.finished_at is not None for r in rows)
    assert run.status == "partial"


def test_full_disk_fails_its_workspace_and_the_run_is_closed(engine: Engine) -> None:
    """SQLite's disk fills up (``PRAGMA max_page_count``: the file may not grow) when
    the third workspace's second page is asked for: its transaction fails with
    SQLITE_FULL and counts nothing of its first page; the ledger rows (rewritten in
    place) still record that, and the run is closed."""
    if engine.dialect.name != "sqlite":
        pytest.skip("max_page_count is SQLite's; other backends' disks are not ours")
    simulator = make_simulator(workspaces=3, keys=130)
    third = simulator.world.workspace_ids[2]
    original = simulator.handle
    full = False

    def fill_the_disk(method: str, path: str, query: str, *rest: Any) -> Any:
        nonlocal full
        asked = parse_qs(query)
        full = full or (asked.get("workspace_id") == [third] and asked["offset"] != ["0"])
        return original(method, path, query, *rest)

    def no_growth(connection: Any, *_: Any) -> None:
        if full:  # from now on the database file may not grow by a page
            dbapi = connection.connection.dbapi_connection
            pages = dbapi.execute("PRAGMA page_count").fetchone()[0]
            dbapi.execute(f"PRAGMA max_page_count = {pages}")

    simulator.handle = fill_the_disk  # type: ignore[method-assign]
    event.listen(engine, "before_cursor_execute", no_growth)
    try:
        result = sync(engine, simulator)
    finally:
        event.remove(engine, "before_cursor_execute", no_growth)
    assert result.error is None and result.status == "partial"
    assert [w.status for w in result.workspaces] == ["ok", "ok", "failed"]
    assert "database or disk is full" in (result.workspaces[2].error or "")
    assert result.workspaces[2].counts == PageCounts()
    assert count(engine, ApiKey) == count(engine, UsageSnapshot) == 260
    with engine.connect() as connection:
        run = connection.execute(select(SyncRun)).one()
        row = connection.execute(
            select(SyncRunWorkspace).where(SyncRunWorkspace.workspace_id == third)
        ).one()
    assert (run.status, row.status) == ("partial", "failed")
    assert (row.keys_seen, row.keys_new, row.snapshots_written) == (0, 0, 0)
    assert run.finished_at is not None and row.finished_at is not None
