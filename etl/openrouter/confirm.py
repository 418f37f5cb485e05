"""Keys a complete listing did not show: ask for each before calling it deleted.

Offset paging can miss a key while others are deleted, so DESIGN.md has every key that
is missing from a listing confirmed with ``GET /keys/{hash}`` (404: deleted). When a
listing lacks a large share of a workspace's known keys, though, the likelier story is
a listing that went wrong (an empty first page, a server that lost its index): a sample
is asked first, and if sampled keys still exist in the workspace the listing is refused
in one line instead of thousands of single lookups. Otherwise every missing key is
asked, with the client's bounded concurrency.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from etl.core.errors import PaginationError
from etl.openrouter.client import KeyLookup

# A listing that lacks more than this share of the known keys, and more than SAMPLE
# keys, is checked on a sample first.
SUSPICIOUS_SHARE = 0.10
SAMPLE = 20


class KeyLookups(Protocol):
    """What confirming needs of a client: ``GET /keys/{hash}`` for many hashes."""

    def get_keys(self, hashes: list[str]) -> Iterator[tuple[str, KeyLookup | None]]: ...


@dataclass
class Confirmed:
    """What ``GET /keys/{hash}`` said of the missing keys."""

    found: list[KeyLookup] = field(default_factory=list)  # still exist (moved, or skipped)
    gone: list[str] = field(default_factory=list)  # 404: deleted


def confirm_missing(
    client: KeyLookups,
    missing: list[str],
    *,
    workspace_id: str,
    listed: int,
    rng: random.Random | None = None,
) -> Confirmed:
    """Ask the API about each key of ``workspace_id`` its listing of ``listed`` known
    keys did not show; refuse the listing when a sample shows it lost keys."""
    result = Confirmed()
    if not missing:
        return result
    known = listed + len(missing)
    order = list(missing)
    if len(missing) > SAMPLE and len(missing) > SUSPICIOUS_SHARE * known:
        (rng or random.Random()).shuffle(order)
        sample, order = order[:SAMPLE], order[SAMPLE:]
        _ask(client, sample, result)
        still_here = [f for f in result.found if f.record.workspace_id == workspace_id]
        if still_here:
            raise PaginationError(
                f"the listing lacks {len(missing):,} of {known:,} known keys, yet "
                f"{len(still_here)} of {len(sample)} sampled still exist here (e.g. "
                f"{still_here[0].record.hash}): the listing is incomplete",
                workspace=workspace_id,
            )
    _ask(client, order, result)
    return result


def confirm_each(client: KeyLookups, hashes: list[str]) -> Confirmed:
    """Ask the API about every key in ``hashes``, no sample first."""
    result = Confirmed()
    _ask(client, hashes, result)
    return result


def _ask(client: KeyLookups, hashes: list[str], into: Confirmed) -> None:
    for key_hash, lookup in client.get_keys(hashes):
        if lookup is None:
            into.gone.append(key_hash)
        else:
            into.found.append(lookup)
