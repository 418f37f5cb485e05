"""The GET /activity settings of one account, read from its [openrouter] or [[accounts]]
table (etl.core.config calls ``activity_settings``). Pure: no environment, no I/O.

    activity = true                  # fetch GET /activity after the key sync (default)
    activity_refetch_days = 2        # the latest completed days fetched again every run
    activity_keys = ["<hash>", ...]  # per-key activity for these keys, or
    activity_keys = { top = 10 }     # for the 10 keys that spent most the previous day
    activity_key_requests = 100      # at most this many per-key requests per run

Per-key activity is off unless ``activity_keys`` is set. Every problem is one line
naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etl.core.errors import ConfigError

# The API serves the last 30 completed UTC days; re-fetching all of them is the most.
WINDOW_DAYS = 30
DEFAULT_REFETCH_DAYS = 2
DEFAULT_KEY_REQUESTS = 100
SETTINGS = frozenset(
    {"activity", "activity_refetch_days", "activity_keys", "activity_key_requests"}
)
# "SHA-256 hex string, as returned by the keys API"
_KEY_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ActivitySettings:
    """Whether and how one account's activity is fetched (etl/activity_sync.py)."""

    enabled: bool = True
    refetch_days: int = DEFAULT_REFETCH_DAYS
    key_hashes: tuple[str, ...] = ()  # per-key activity for these keys
    top_keys: int = 0  # ... or for the top N keys by the previous day's spend
    key_requests: int = DEFAULT_KEY_REQUESTS  # the per-key request budget of a run

    @property
    def per_key(self) -> bool:
        """Whether per-key activity is asked for at all."""
        return bool(self.key_hashes) or self.top_keys > 0


def activity_settings(table: Mapping[str, Any], where: str, section: str) -> ActivitySettings:
    """The activity settings of one account table, checked."""
    enabled = table.get("activity", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: '{section} activity' should be true or false, got {enabled!r}")
    refetch = table.get("activity_refetch_days", DEFAULT_REFETCH_DAYS)
    if not _whole(refetch) or not 0 <= refetch <= WINDOW_DAYS:
        raise ConfigError(
            f"{where}: '{section} activity_refetch_days' should be a whole number from 0 to "
            f"{WINDOW_DAYS} (the completed days the API still serves), got {refetch!r}"
        )
    budget = table.get("activity_key_requests", DEFAULT_KEY_REQUESTS)
    if not _whole(budget) or budget < 1:
        raise ConfigError(
            f"{where}: '{section} activity_key_requests' should be a positive whole number "
            f"(per-key GET /activity requests per run), got {budget!r}"
        )
    hashes, top = _keys(table.get("activity_keys"), where, f"{section} activity_keys")
    return ActivitySettings(enabled, refetch, hashes, top, budget)


def _keys(value: Any, where: str, name: str) -> tuple[tuple[str, ...], int]:
    if value is None:
        return (), 0
    if isinstance(value, dict):
        top: Any = value.get("top")
        if set(value) != {"top"} or not _whole(top) or top < 1:
            raise ConfigError(
                f"{where}: '{name}' as a table should be {{ top = N }} with N a positive "
                f"whole number, got {value!r}"[:300]
            )
        return (), int(top)
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}: '{name}' should be a non-empty list of key hashes or {{ top = N }}"
        )
    hashes: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _KEY_HASH.match(item.strip().lower()):
            shown = item[:20] + "..." if isinstance(item, str) and len(item) > 20 else item
            raise ConfigError(
                f"{where}: '{name}' entry {shown!r} is not a key hash (64 hex digits, as "
                "GET /keys gives it)"
            )
        if item.strip().lower() not in hashes:
            hashes.append(item.strip().lower())
    return tuple(hashes), 0


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
