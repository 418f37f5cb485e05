"""Paging against the simulator under random page sizes, duplicates, creations and
deletions, with the simulator's ground truth as the oracle (hypothesis)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.core.config import Secret
from etl.core.errors import PaginationError
from etl.openrouter.client import OpenRouterClient
from etl.simulator.service import Faults, Simulator
from etl.simulator.world import World
from tests.helpers import settings as client_settings

TOKEN = "sk-or-v1-pagination-token"

# Pages of one key never overlap the page before, so they prove nothing: see the
# second property for schedules that include them.
page_sizes = st.lists(st.integers(2, 160), min_size=1, max_size=6)
any_page_sizes = st.lists(st.integers(1, 160), min_size=1, max_size=6)
drift = st.lists(st.lists(st.integers(0, 6), min_size=2, max_size=2), max_size=40)


def list_workspace(
    simulator: Simulator, *, concurrency: int, expected_keys: int | None = None
) -> list[str]:
    client = OpenRouterClient(
        client_settings(concurrency=concurrency),
        Secret(TOKEN),
        transport=simulator.mock_transport(),
    )
    workspace = simulator.world.workspace_ids[0]
    with client:
        pages = client.iter_key_pages(workspace, expected_keys=expected_keys)
        return [r.hash for page in pages for r in page.records]


def simulator(keys: int, seed: int, **faults: Any) -> Simulator:
    world = World(seed=seed, workspaces=1, keys_per_workspace=keys)
    return Simulator(world, token=TOKEN, faults=Faults(**faults), seed=seed)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.integers(0, 450),
    sizes=page_sizes,
    duplicates=st.sampled_from([0.0, 0.3, 1.0]),
    schedule=drift,
    concurrency=st.sampled_from([1, 4]),
    seed=st.integers(0, 2**16),
)
def test_every_key_that_lived_throughout_the_listing_is_listed_once(
    keys: int,
    sizes: list[int],
    duplicates: float,
    schedule: list[list[int]],
    concurrency: int,
    seed: int,
) -> None:
    sim = simulator(
        keys, seed, page_sizes=sizes, duplicate_key_rate=duplicates, drift_schedule=schedule
    )
    workspace = sim.world.workspace_ids[0]
    before = set(sim.world.live_hashes(workspace))
    got = list_workspace(sim, concurrency=concurrency)
    after = set(sim.world.live_hashes(workspace))
    assert len(got) == len(set(got)), "a key was listed twice"
    assert not (before & after) - set(got), "a key that lived throughout was not listed"
    assert set(got) <= before | after


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.integers(0, 300),
    sizes=any_page_sizes,
    schedule=drift,
    seed=st.integers(0, 2**16),
)
def test_a_listing_is_complete_or_fails_never_silently_short(
    keys: int, sizes: list[int], schedule: list[list[int]], seed: int
) -> None:
    sim = simulator(keys, seed, page_sizes=sizes, drift_schedule=schedule)
    workspace = sim.world.workspace_ids[0]
    before = set(sim.world.live_hashes(workspace))
    try:
        got = list_workspace(sim, concurrency=1)
    except PaginationError:
        return  # said so: the sync fails this workspace and writes nothing for it
    after = set(sim.world.live_hashes(workspace))
    assert len(got) == len(set(got))
    assert not (before & after) - set(got)


@pytest.mark.parametrize("sizes", [[100, 150, 50, 101, 7], [150, 100], [7, 3, 2], [101]])
def test_page_sizes_that_change_from_page_to_page_lose_no_key(sizes: list[int]) -> None:
    sim = simulator(1_500, 1, page_sizes=sizes, drift_schedule=[[3, 0]] * 20)
    workspace = sim.world.workspace_ids[0]
    before = set(sim.world.live_hashes(workspace))
    got = list_workspace(sim, concurrency=4)
    assert before & set(sim.world.live_hashes(workspace)) <= set(got)
    assert len(got) == len(set(got))


def test_a_key_listed_twice_next_to_itself_is_one_key_and_the_listing_goes_on() -> None:
    sim = simulator(1_500, 2, duplicate_key_rate=1.0)
    got = list_workspace(sim, concurrency=4)
    assert sorted(got) == sorted(sim.world.live_hashes(sim.world.workspace_ids[0]))
    assert sim.stats.faults["duplicated_keys"] > 0


def test_listing_ends_only_on_an_empty_page_past_the_last_key() -> None:
    sim = simulator(250, 3, page_sizes=[100])
    got = list_workspace(sim, concurrency=1)
    assert len(got) == 250
    # 0, 99 and 198 bring keys; 249 holds only the last key again; 250 is empty; 249
    # re-read still ends with the last key, 250 is still empty: the end.
    requests = sim.stats.by_kind["keys"]
    assert requests == 7


# 10,000 keys in pages of 100 overlapping by one: 0, 99, ..., 9900 bring keys, 9999 only
# the last one again, 10000 is empty, and both once more: 105 requests at the least.
FEWEST_REQUESTS = 105


def test_the_length_a_listing_had_keeps_fetch_ahead_from_running_past_its_end() -> None:
    sim = simulator(10_000, 9, page_sizes=[100])
    unbounded = list_workspace(sim, concurrency=16)
    wasted_unbounded = sim.stats.by_kind["keys"] - FEWEST_REQUESTS
    sim = simulator(10_000, 9, page_sizes=[100])
    bounded = list_workspace(sim, concurrency=16, expected_keys=10_000)
    truth = sim.world.live_hashes(sim.world.workspace_ids[0])
    assert sorted(bounded) == sorted(unbounded) == sorted(truth)
    assert sim.stats.by_kind["keys"] == FEWEST_REQUESTS
    assert wasted_unbounded >= 2  # what the estimate saves: fetches ahead past the end


@pytest.mark.parametrize("expected_keys", [0, 1, 150, 1_999, 2_001, 50_000])
def test_a_wrong_length_estimate_costs_requests_never_keys(expected_keys: int) -> None:
    sim = simulator(2_000, 10, page_sizes=[100, 37, 100], duplicate_key_rate=0.3)
    got = list_workspace(sim, concurrency=16, expected_keys=expected_keys)
    assert sorted(got) == sorted(sim.world.live_hashes(sim.world.workspace_ids[0]))


def test_a_key_deleted_just_before_the_end_cannot_hide_the_one_after_it() -> None:
    # Hypothesis found it: pages of one key; after the first, a key is created (the
    # newest key's page is re-served: nothing new, "look right past it"); after the
    # second, that key is deleted, so the oldest key slips up to where the empty page
    # was asked for. The empty page there no longer proves the end.
    sim = simulator(2, 0, page_sizes=[1], drift_schedule=[[0, 1], [1, 0]])
    workspace = sim.world.workspace_ids[0]
    before = set(sim.world.live_hashes(workspace))
    try:
        got = list_workspace(sim, concurrency=1)
    except PaginationError:
        return  # said so: pages of one key cannot show what they skip
    after = set(sim.world.live_hashes(workspace))
    assert not (before & after) - set(got)


def test_pages_of_one_key_are_refused_not_trusted() -> None:
    # A page of one key cannot overlap the one before it, so nothing shows whether a key
    # was skipped: the listing fails rather than claim to be complete.
    sim = simulator(5, 4, page_sizes=[1])
    with pytest.raises(PaginationError, match="no new key and no end"):
        list_workspace(sim, concurrency=1)


def test_keys_created_between_every_two_requests_fail_the_listing_clearly() -> None:
    # The end is an empty page right past the oldest key; a list that grows between
    # every two requests never shows one, so the listing fails instead of guessing.
    sim = simulator(150, 5, drift_creates_per_page=1)
    with pytest.raises(PaginationError, match="keys change between every two requests"):
        list_workspace(sim, concurrency=1)


def test_first_page_empty_is_an_empty_listing() -> None:
    sim = simulator(0, 6)
    assert list_workspace(sim, concurrency=1) == []
    assert sim.stats.by_kind["keys"] == 1


def test_server_ignoring_offset_fails_the_listing() -> None:
    sim = simulator(250, 7, ignore_offset=True)
    with pytest.raises(PaginationError, match="no new key and no end: the server ignores offset"):
        list_workspace(sim, concurrency=1)


def test_mock_transport_is_the_simulator() -> None:
    # Guard for the helpers above: the transport answers as the socket server would.
    sim = simulator(3, 8)
    response = httpx.Client(transport=sim.mock_transport()).get(
        "https://x.test/api/v1/keys", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200 and len(response.json()["data"]) == 3
