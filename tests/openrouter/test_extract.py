"""``extract_keys``: every key of every workspace as exact JSON lines, no database."""

from __future__ import annotations

import io

import pytest

from etl.core.config import Account, ClientSettings, Secret, Settings, WorkspaceSpec
from etl.core.errors import ApiStatusError, AuthError
from etl.core.exact_json import parse_json
from etl.openrouter.client import OpenRouterClient
from etl.openrouter.extract import ExtractResult, WorkspaceTally, extract_keys
from etl.simulator.service import Simulator
from etl.simulator.world import World

TOKEN = "sk-or-v1-extract-test"
UNKNOWN = "00000000-0000-4000-8000-000000000000"  # no such workspace: 404


def settings(workspaces: tuple[WorkspaceSpec, ...] | None = None, token: str = TOKEN) -> Settings:
    account = Account(
        name="test",
        management_key=Secret(token),
        workspaces=workspaces,
        client=ClientSettings(base_url="http://sim/api/v1", requests_per_second=1e6),
    )
    return Settings(database_url="sqlite://", accounts=(account,))


def extract(
    simulator: Simulator, settings: Settings, out: io.StringIO | None = None
) -> ExtractResult:
    def client_factory(account: Account) -> OpenRouterClient:
        return OpenRouterClient(
            account.client, account.management_key, transport=simulator.mock_transport()
        )

    return extract_keys(settings, out=out, client_factory=client_factory)


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(World(seed=5, workspaces=3, keys_per_workspace=130), token=TOKEN)


def test_every_key_of_every_workspace_is_one_exact_json_line(simulator: Simulator) -> None:
    out = io.StringIO()
    result = extract(simulator, settings(), out)
    lines = out.getvalue().splitlines()
    truth = {key["hash"]: key for key in simulator.world.truth_keys()}
    assert len(lines) == len(truth) == 390
    for line in lines:
        key = parse_json(line)
        assert all(value == truth[key["hash"]][name] for name, value in key.items())
    assert [t.workspace.id for t in result.workspaces] == simulator.world.workspace_ids
    assert [t.keys for t in result.workspaces] == [130, 130, 130]
    assert result.failed == []


def test_without_an_output_keys_are_only_counted(simulator: Simulator) -> None:
    result = extract(simulator, settings())
    assert sum(t.keys for t in result.workspaces) == 390
    assert all(t.pages >= 2 for t in result.workspaces)


def test_a_failing_workspace_is_kept_with_its_error_and_the_others_are_read(
    simulator: Simulator,
) -> None:
    good = simulator.world.workspace_ids[1]
    out = io.StringIO()
    result = extract(simulator, settings((WorkspaceSpec(UNKNOWN), WorkspaceSpec(good))), out)
    assert [t.workspace.id for t in result.failed] == [UNKNOWN]
    assert isinstance(result.failed[0].error, ApiStatusError)
    assert len(out.getvalue().splitlines()) == 130
    assert result.summary().startswith("extract: 1 workspaces ok, 1 failed; 130 keys in ")


def test_a_refused_key_raises_before_any_workspace(simulator: Simulator) -> None:
    with pytest.raises(AuthError):
        extract(simulator, settings(token="sk-or-v1-wrong"))


def test_summary_counts_workspaces_keys_pages_and_time() -> None:
    result = ExtractResult(
        [
            WorkspaceTally(WorkspaceSpec("a"), pages=3, keys=250),
            WorkspaceTally(
                WorkspaceSpec("b"), pages=1, keys=0, error=ApiStatusError("x", status=404)
            ),
        ],
        seconds=1.25,
    )
    assert result.summary() == "extract: 1 workspaces ok, 1 failed; 250 keys in 4 pages; 1.2s"
