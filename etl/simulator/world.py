"""The simulated OpenRouter account behind the bundled simulator: state, clock and truth.

Pure Python, no HTTP (``etl.simulator.service`` serves it). Every random choice comes from one
``random.Random(seed)``, so the same seed and the same call sequence give the same world.
Spend is kept per key as a ledger of UTC days; the per-period counters are summed from it
when a key is rendered, so they reset at day, Monday and month boundaries by construction.
Each increment of spend is also a usage event attributed to an endpoint
(``etl.simulator.activity``), drawn from a random source of its own so the keys are the
same with or without it; ``GET /activity`` is served from those events.
"""

from __future__ import annotations

import bisect
import itertools
import random
import string
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from etl.simulator.activity import CATALOGUE, CUMULATIVE_WEIGHTS, ENDPOINT_IDS, CellKey, Totals

ZERO = Decimal(0)
TENTH_NANO = Decimal("1e-10")
TINY_SPEND = Decimal("1E-9")
BYOK_FEE = Decimal("0.05")
TOUCH_SPEND = Decimal("0.0001")
DEFAULT_START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
LIMIT_RESETS = (None, "daily", "weekly", "monthly")
MS = timedelta(milliseconds=1)
# Usage events are kept from this many days before the world's start: enough for the
# 30-day activity window, without the cost of the years of history keys are built with.
ACTIVITY_HISTORY_DAYS = 40
_RESET_SLOT = {"daily": 0, "weekly": 1, "monthly": 2}
PeriodSums = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]
_LIMITS = tuple(Decimal(v) for v in ("0.75", "1", "5", "10", "25", "50", "100", "150.5", "1000"))
_NAMES = (
    "Production",
    "staging",
    "CI runner",
    'Key "alpha"',
    "Zoë's agent",
    "Ünïcødé — test",
    "数据管道",
    "Agent 🚀",
    'O\'Reilly "quoted"',
    "back\\slash",
    "Тестовый ключ",
    "eval harness",
)
_UPDATABLE = frozenset(
    {
        "name",
        "label",
        "disabled",
        "limit",
        "limit_reset",
        "include_byok_in_limit",
        "expires_at",
        "creator_user_id",
        "external_user",
    }
)
_EVENT_KINDS = ("spend", "create", "rename", "disable", "enable", "relimit", "delete")


def iso_ms(moment: datetime) -> str:
    """Render an aware datetime as the API does: UTC, milliseconds, trailing Z."""
    # isoformat is C code and this runs three times per key served.
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso_ms(moment)


def _stringify_money(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in payload.items()}


@dataclass
class ActivityRates:
    """How busy ``World.advance`` is: expected events per live key per simulated day."""

    active_fraction: float = 0.3
    creates: float = 0.01
    renames: float = 0.005
    disables: float = 0.004
    enables: float = 0.003
    relimits: float = 0.005
    deletes: float = 0.004


@dataclass(eq=False, slots=True)
class SimKey:
    """One key's full state; ``version`` changes whenever its payload could change."""

    hash: str
    name: str
    label: str
    workspace_id: str
    created_at: datetime
    updated_at: datetime
    creator_user_id: str | None
    disabled: bool = False
    limit: Decimal | None = None
    limit_reset: str | None = None
    include_byok_in_limit: bool = False
    expires_at: datetime | None = None
    external_user: str | None = None
    last_used_at: datetime | None = None
    deleted_at: datetime | None = None
    usage: Decimal = ZERO
    byok_usage: Decimal = ZERO
    ledger: dict[date, tuple[Decimal, Decimal]] = field(default_factory=dict)
    # Usage events summed per (day, workspace at the time, endpoint).
    activity: dict[CellKey, Totals] = field(default_factory=dict)
    version: int = 0


def _copy(totals: Totals) -> Totals:
    copied = Totals()
    copied.add(totals)
    return copied


def _order_key(key: SimKey) -> tuple[datetime, str]:
    return (key.created_at, key.hash)


class World:
    """Workspaces and keys of one simulated account, with a simulated UTC clock."""

    def __init__(
        self,
        *,
        seed: int = 0,
        workspaces: int = 2,
        keys_per_workspace: int = 50,
        start: datetime | None = None,
        page_size: int = 100,
        rates: ActivityRates | None = None,
    ) -> None:
        if workspaces < 1 or keys_per_workspace < 0 or page_size < 1:
            raise ValueError("need >= 1 workspace, >= 0 keys and a page size >= 1")
        start = (start or DEFAULT_START).astimezone(timezone.utc)
        self.lock = threading.RLock()
        self.page_size = page_size
        self.rates = rates or ActivityRates()
        self._rng = random.Random(seed)
        self._activity_rng = random.Random(f"activity:{seed}")
        self._activity_floor = start.date() - timedelta(days=ACTIVITY_HISTORY_DAYS)
        self._activity: dict[CellKey, Totals] = {}  # the whole account's cells
        # Millisecond-aligned so every instant survives the API's timestamp format.
        self._now = start.replace(microsecond=start.microsecond // 1000 * 1000)
        self._keys: dict[str, SimKey] = {}
        self._workspaces: dict[str, dict[str, Any]] = {}
        self._creators: dict[str, list[str | None]] = {}
        self._ws_born: dict[str, datetime] = {}
        # Live keys per workspace, oldest first, so new keys append and pages slice.
        self._order: dict[str, list[SimKey]] = {}
        self._ws_version: dict[str, int] = {}
        self._views: dict[tuple[str, bool, bool], tuple[object, list[SimKey]]] = {}
        for index in range(workspaces):
            ws_id = self._new_workspace(index)
            keys = [self._new_key(ws_id, history=True) for _ in range(keys_per_workspace)]
            self._order[ws_id] = sorted(keys, key=_order_key)

    # -- reading -------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The simulated current time (aware, UTC)."""
        with self.lock:  # never an event instant from the middle of an advance()
            return self._now

    @property
    def workspace_ids(self) -> list[str]:
        """Workspace ids, the default workspace first."""
        return list(self._workspaces)

    @property
    def default_workspace_id(self) -> str:
        """The workspace served when a request names none."""
        return next(iter(self._workspaces))

    def has_workspace(self, workspace_id: str) -> bool:
        """Whether the workspace exists."""
        return workspace_id in self._workspaces

    def live_key_count(self, workspace_id: str) -> int:
        """Keys of the workspace not deleted (disabled and expired ones included)."""
        with self.lock:
            return len(self._order[workspace_id])

    def live_hashes(self, workspace_id: str) -> list[str]:
        """Hashes of the workspace's undeleted keys, newest first."""
        with self.lock:
            return [key.hash for key in reversed(self._order[workspace_id])]

    def find_key(self, key_hash: str) -> SimKey | None:
        """The live key with this hash, or None when unknown or deleted."""
        key = self._keys.get(key_hash)
        return None if key is None or key.deleted_at is not None else key

    def page(
        self,
        workspace_id: str | None,
        offset: int,
        *,
        include_disabled: bool,
        include_expired: bool,
        page_size: int | None = None,
    ) -> list[SimKey]:
        """One page of a workspace's keys, newest first, as ``GET /keys`` lists them
        (``page_size`` keys, the world's own page size by default)."""
        with self.lock:
            keys = self._view(
                workspace_id or self.default_workspace_id, include_disabled, include_expired
            )
            end = len(keys) - offset
            size = page_size or self.page_size
            return keys[max(0, end - size) : max(0, end)][::-1]

    def key_payload(self, key: SimKey) -> dict[str, Any]:
        """The key as the API renders it at the current time (money as Decimal)."""
        with self.lock:
            sums = self.period_sums(key)
            remaining = None
            if key.limit is not None:
                period = _RESET_SLOT.get(key.limit_reset or "")
                used, byok_used = (
                    (key.usage, key.byok_usage)
                    if period is None
                    else (sums[period], sums[period + 3])
                )
                used += byok_used if key.include_byok_in_limit else ZERO
                remaining = max(ZERO, key.limit - used)
            return {
                "hash": key.hash,
                "name": key.name,
                "label": key.label,
                "disabled": key.disabled,
                "limit": key.limit,
                "limit_remaining": remaining,
                "limit_reset": key.limit_reset,
                "include_byok_in_limit": key.include_byok_in_limit,
                "usage": key.usage,
                "usage_daily": sums[0],
                "usage_weekly": sums[1],
                "usage_monthly": sums[2],
                "byok_usage": key.byok_usage,
                "byok_usage_daily": sums[3],
                "byok_usage_weekly": sums[4],
                "byok_usage_monthly": sums[5],
                "created_at": iso_ms(key.created_at),
                "updated_at": iso_ms(key.updated_at),
                "creator_user_id": key.creator_user_id,
                "workspace_id": key.workspace_id,
                "expires_at": _iso_or_none(key.expires_at),
                "last_used_at": _iso_or_none(key.last_used_at),
                "external_user": key.external_user,
            }

    def period_sums(self, key: SimKey) -> PeriodSums:
        """(daily, weekly, monthly) usage, then the same for byok, as of now."""
        today = self._now.date()
        monday = today - timedelta(days=today.weekday())
        first = today.replace(day=1)
        cutoff = min(monday, first)
        du = wu = mu = db = wb = mb = ZERO
        # Newest first, stopping at the older of the week and month starts: <= 37 entries.
        for day, (usage, byok) in reversed(key.ledger.items()):
            if day < cutoff:
                break
            if day >= first:
                mu, mb = mu + usage, mb + byok
            if day >= monday:
                wu, wb = wu + usage, wb + byok
            if day == today:
                du, db = du + usage, db + byok
        return du, wu, mu, db, wb, mb

    def workspaces_page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Workspace payloads ``offset``..``offset+limit`` and the total count."""
        with self.lock:
            every = list(self._workspaces.values())
            return [dict(ws) for ws in every[offset : offset + limit]], len(every)

    def activity(
        self,
        days: list[date],
        *,
        workspace_id: str | None = None,
        key_hash: str | None = None,
        user_id: str | None = None,
    ) -> dict[CellKey, Totals]:
        """Usage events summed per (day, workspace, endpoint index) on ``days``, only those
        of one workspace, one key (deleted ones too: their past spend stays) or the keys one
        org member created, when asked. Fresh ``Totals``: the caller may change them."""
        wanted = set(days)
        with self.lock:
            if key_hash is None and user_id is None:
                sources = [self._activity]
            else:
                keys = [self._keys[key_hash]] if key_hash in self._keys else []
                if key_hash is None:
                    keys = list(self._keys.values())
                sources = [k.activity for k in keys if user_id in (None, k.creator_user_id)]
            out: dict[CellKey, Totals] = {}
            for cells in sources:
                for cell, totals in cells.items():
                    if cell[0] in wanted and workspace_id in (None, cell[1]):
                        out.setdefault(cell, Totals()).add(totals)
            return out

    # -- ground truth --------------------------------------------------------------------
    def truth_keys(self) -> list[dict[str, Any]]:
        """Every key ever created, oldest first, as its payload plus ``deleted_at``."""
        with self.lock:
            return [
                {**self.key_payload(key), "deleted_at": _iso_or_none(key.deleted_at)}
                for key in sorted(self._keys.values(), key=_order_key)
            ]

    def daily_spend(self) -> dict[tuple[str, date], tuple[Decimal, Decimal]]:
        """Spend per (key hash, UTC day) as (usage, byok_usage), only days with spend."""
        with self.lock:
            return {(k.hash, day): v for k in self._keys.values() for day, v in k.ledger.items()}

    def activity_truth(self, key_hash: str | None = None) -> dict[tuple[date, str, str], Totals]:
        """Exact usage per (UTC day, workspace id, endpoint id), of one key when asked,
        over every day with events (from ``ACTIVITY_HISTORY_DAYS`` before the start)."""
        with self.lock:
            cells = self._activity if key_hash is None else self._keys[key_hash].activity
            return {
                (day, ws_id, ENDPOINT_IDS[index]): _copy(totals)
                for (day, ws_id, index), totals in sorted(cells.items())
            }

    def activity_daily_spend(self) -> dict[tuple[str, date], tuple[Decimal, Decimal]]:
        """Usage events summed per (key hash, UTC day) as (usage, byok): equal to
        ``daily_spend`` on every day since events are kept."""
        with self.lock:
            out: dict[tuple[str, date], tuple[Decimal, Decimal]] = {}
            for key in self._keys.values():
                for (day, _, _), totals in key.activity.items():
                    usage, byok = out.get((key.hash, day), (ZERO, ZERO))
                    out[(key.hash, day)] = (
                        usage + totals.usage,
                        byok + totals.byok_usage_inference,
                    )
            return out

    @property
    def activity_since(self) -> date:
        """The first UTC day whose usage events are kept."""
        return self._activity_floor

    def truth_json(self) -> dict[str, Any]:
        """Workspaces, keys and daily spend, JSON-ready with money as strings."""
        with self.lock:
            return {
                "now": iso_ms(self._now),
                "workspaces": [_stringify_money(ws) for ws in self._workspaces.values()],
                "keys": [_stringify_money(k) for k in self.truth_keys()],
                "daily_spend": [
                    {"hash": h, "day": day.isoformat(), "usage": str(u), "byok_usage": str(b)}
                    for (h, day), (u, b) in self.daily_spend().items()
                ],
            }

    # -- changing the world --------------------------------------------------------------
    def create_key(self, workspace_id: str | None = None, *, key_hash: str | None = None) -> str:
        """Create a key at the current time and return its hash (``key_hash`` when given:
        tests serve hashes the API might one day send, of any length)."""
        with self.lock:
            ws_id = workspace_id or self.default_workspace_id
            if ws_id not in self._workspaces:
                raise KeyError(ws_id)
            if key_hash is not None and key_hash in self._keys:
                raise ValueError("a key with that hash exists")
            key = self._new_key(ws_id, history=False, key_hash=key_hash)
            bisect.insort(self._order[ws_id], key, key=_order_key)
            self._ws_version[ws_id] += 1
            return key.hash

    def delete_key(self, key_hash: str) -> None:
        """Delete a live key at the current time."""
        with self.lock:
            key = self._live(key_hash)
            keys = self._order[key.workspace_id]
            del keys[bisect.bisect_left(keys, _order_key(key), key=_order_key)]
            key.deleted_at = self._now
            key.version += 1
            self._ws_version[key.workspace_id] += 1

    def move_key(self, key_hash: str, workspace_id: str) -> None:
        """Move a live key to another workspace at the current time."""
        with self.lock:
            key = self._live(key_hash)
            if workspace_id not in self._workspaces:
                raise KeyError(workspace_id)
            source = self._order[key.workspace_id]
            del source[bisect.bisect_left(source, _order_key(key), key=_order_key)]
            self._ws_version[key.workspace_id] += 1
            key.workspace_id = workspace_id
            bisect.insort(self._order[workspace_id], key, key=_order_key)
            self._ws_version[workspace_id] += 1
            key.version += 1

    def delete_workspace(self, workspace_id: str) -> None:
        """Delete a workspace and its keys: ``GET /workspaces`` stops listing it."""
        with self.lock:
            if workspace_id == self.default_workspace_id:
                raise ValueError("the default workspace cannot be deleted")
            for key in list(self._order[workspace_id]):
                self.delete_key(key.hash)
            del self._workspaces[workspace_id]

    def spend(self, key_hash: str, usage: Decimal, byok: Decimal = ZERO) -> None:
        """Record spend on a live key at the current time."""
        with self.lock:
            self._record(self._live(key_hash), usage, byok)

    def late_usage(self, key_hash: str, day: date, usage: Decimal, byok: Decimal = ZERO) -> None:
        """Spend booked now on an already completed UTC day, as the real API can still add
        to the last day or two: that day's ledger and activity grow, and the key's total
        (what a snapshot sees) grows now; its daily counter does not."""
        if not usage >= ZERO or not byok >= ZERO or not (usage or byok):
            raise ValueError("late usage must be positive")
        with self.lock:
            key = self._live(key_hash)
            if not self._activity_floor <= day < self._now.date():
                raise ValueError("late usage goes on a completed day since events are kept")
            if day not in key.ledger:
                before = dict(key.ledger)
                before[day] = (ZERO, ZERO)
                # period_sums reads the ledger newest first: keep it in day order.
                key.ledger = dict(sorted(before.items()))
            spent = key.ledger[day]
            key.ledger[day] = (spent[0] + usage, spent[1] + byok)
            key.usage += usage
            key.byok_usage += byok
            key.version += 1
            self._usage_event(key, day, usage, byok)

    def update_key(self, key_hash: str, **fields: Any) -> None:
        """Change a live key's attributes (name, disabled, limit, ...) at the current time."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"not updatable: {sorted(unknown)}")
        if fields.get("limit_reset") not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        if isinstance(fields.get("limit"), float):
            raise TypeError("limit must be exact: pass a Decimal, int or str, never a float")
        if fields.get("limit") is not None:
            fields["limit"] = Decimal(fields["limit"])
        if fields.get("expires_at") is not None:
            if fields["expires_at"].tzinfo is None:
                raise ValueError("expires_at must be timezone-aware")
            fields["expires_at"] = fields["expires_at"].astimezone(timezone.utc)
        with self.lock:
            self._touch(self._live(key_hash), **fields)

    def touch(self, fraction: float, amount: Decimal = TOUCH_SPEND) -> int:
        """Spend ``amount`` now on ``fraction`` of each workspace's live keys; how many.

        Exactly ``round(live * fraction)`` keys per workspace, drawn with the world's rng
        (same seed and call sequence, same keys), so a benchmark can change a known share.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        if not amount > ZERO:
            raise ValueError("amount must be positive")
        with self.lock:
            touched = 0
            for keys in self._order.values():
                chosen = self._rng.sample(keys, round(len(keys) * fraction))
                for key in chosen:
                    self._record(key, amount, ZERO)
                touched += len(chosen)
            return touched

    def advance(self, delta: timedelta, *, activity: bool = True) -> None:
        """Move the clock forward; with activity, spend and lifecycle events happen on the way."""
        if delta < timedelta(0):
            raise ValueError("simulated time only moves forward")
        with self.lock:
            start, end = self._now, self._now + delta
            if activity:
                for offset_ms, _, kind, ws_id in self._plan(delta):
                    self._now = start + offset_ms * MS
                    self._apply(kind, ws_id)
            self._now = end

    # -- internals -----------------------------------------------------------------------
    def _live(self, key_hash: str) -> SimKey:
        key = self.find_key(key_hash)
        if key is None:
            raise KeyError(key_hash)
        return key

    def _view(self, ws_id: str, include_disabled: bool, include_expired: bool) -> list[SimKey]:
        keys = self._order[ws_id]
        if include_disabled and include_expired:
            return keys
        # Cached per workspace version, and per instant when expiry matters.
        stamp = (self._ws_version[ws_id], None if include_expired else self._now)
        cached = self._views.get((ws_id, include_disabled, include_expired))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        view = [
            k
            for k in keys
            if (include_disabled or not k.disabled) and (include_expired or not self._expired(k))
        ]
        self._views[(ws_id, include_disabled, include_expired)] = (stamp, view)
        return view

    def _expired(self, key: SimKey) -> bool:
        return key.expires_at is not None and key.expires_at <= self._now

    def _between(self, low: datetime, high: datetime) -> datetime:
        # random() rather than randint(): this runs ~400k times while a big world is built.
        return low + int(self._rng.random() * (max(0, (high - low) // MS) + 1)) * MS

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"

    def _new_workspace(self, index: int) -> str:
        rng = self._rng
        ws_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        name = "Default" if index == 0 else f"Workspace {index}"
        creators: list[str | None] = [
            "user_" + "".join(rng.choices(string.ascii_letters + string.digits, k=27))
            for _ in range(6)
        ]
        self._creators[ws_id] = [*creators, None]
        created = self._now - timedelta(days=rng.randint(400, 900))
        self._workspaces[ws_id] = {
            "id": ws_id,
            "name": name,
            "slug": name.lower().replace(" ", "-"),
            "description": None if index == 0 else f"Simulated workspace number {index}",
            "default_guardrail_id": str(uuid.uuid5(uuid.UUID(ws_id), "default-guardrail")),
            "default_text_model": rng.choice((None, "openai/gpt-4o", "anthropic/claude-sonnet-4")),
            "default_image_model": rng.choice((None, "openai/dall-e-3")),
            "default_provider_sort": rng.choice((None, "price", "throughput", "latency")),
            "include_byok_in_budgets": rng.random() < 0.3,
            "is_observability_io_logging_enabled": rng.random() < 0.2,
            "is_observability_broadcast_enabled": rng.random() < 0.2,
            "is_data_discount_logging_enabled": rng.random() < 0.5,
            "io_logging_sampling_rate": rng.choice((Decimal(1), Decimal("0.25"))),
            "io_logging_api_key_ids": None,
            "created_at": iso_ms(created),
            "updated_at": iso_ms(self._between(created, self._now)),
            "created_by": creators[0],
        }
        self._ws_version[ws_id] = 0
        self._ws_born[ws_id] = created
        return ws_id

    def _new_key(self, ws_id: str, *, history: bool, key_hash: str | None = None) -> SimKey:
        rng, now = self._rng, self._now
        created = now
        if history:
            created = self._between(self._ws_born[ws_id], now - timedelta(minutes=1))
        limit, reset = self._limit()
        drawn = self._hex(64)  # drawn even when unused: the rest of the world stays the same
        key = SimKey(
            hash=drawn if key_hash is None else key_hash,
            name=f"{rng.choice(_NAMES)} #{rng.randint(1, 9999)}",
            label=f"sk-or-v1-{self._hex(3)}...{self._hex(4)}",
            workspace_id=ws_id,
            created_at=created,
            updated_at=created,
            creator_user_id=rng.choice(self._creators[ws_id]),
            limit=limit,
            limit_reset=reset,
            include_byok_in_limit=rng.random() < 0.25,
            external_user=f"customer-{rng.randint(1, 9999)}" if rng.random() < 0.15 else None,
        )
        self._keys[key.hash] = key
        active_until = now
        if rng.random() < 0.12:
            expired = history and rng.random() < 0.4
            lifetime = timedelta(seconds=rng.randint(3600, 200 * 86400))
            key.expires_at = self._between(created, now) if expired else now + lifetime
            active_until = min(now, key.expires_at)
        if history:
            moments = [self._between(created, active_until) for _ in range(rng.randint(0, 4))]
            if rng.random() < 0.6:
                moments.append(
                    self._between(max(created, active_until - timedelta(days=6)), active_until)
                )
            for moment in sorted(moments):
                self._now = moment
                self._record(key, *self._amount())
            self._now = now
            key.disabled = rng.random() < 0.08
            if key.disabled or rng.random() < 0.3:
                key.updated_at = self._between(max(created, key.last_used_at or created), now)
        return key

    def _limit(self) -> tuple[Decimal | None, str | None]:
        if self._rng.random() < 0.45:
            return None, None
        return self._rng.choice(_LIMITS), self._rng.choice(LIMIT_RESETS)

    def _amount(self) -> tuple[Decimal, Decimal]:
        draw = self._rng.random()
        if draw < 0.02:
            return TINY_SPEND, ZERO
        value = Decimal(min(self._rng.lognormvariate(-3.0, 1.6), 250.0)).quantize(TENTH_NANO)
        if draw < 0.22:  # a BYOK request: the provider bills the value, OpenRouter a fee
            return (value * BYOK_FEE).quantize(TENTH_NANO), value
        return value, ZERO

    def _record(self, key: SimKey, usage: Decimal, byok: Decimal) -> None:
        if not usage and not byok:
            return
        day = self._now.date()
        before = key.ledger.get(day, (ZERO, ZERO))
        key.ledger[day] = (before[0] + usage, before[1] + byok)
        key.usage += usage
        key.byok_usage += byok
        key.last_used_at = self._now
        key.version += 1
        if day >= self._activity_floor:
            self._usage_event(key, day, usage, byok)

    def _usage_event(self, key: SimKey, day: date, usage: Decimal, byok: Decimal) -> None:
        """One usage event: its endpoint, requests and tokens from the activity rng."""
        rng = self._activity_rng
        index = bisect.bisect_left(CUMULATIVE_WEIGHTS, rng.random())
        index = min(index, len(CATALOGUE) - 1)  # a draw of exactly the last bound
        requests = 1 + int(rng.random() * 4)
        completion = requests * (20 + int(rng.random() * 800))
        event = Totals(
            usage=usage,
            byok_usage_inference=byok,
            requests=requests,
            prompt_tokens=requests * (50 + int(rng.random() * 4000)),
            completion_tokens=completion,
            reasoning_tokens=completion // 3 if CATALOGUE[index].reasoning else 0,
        )
        cell = (day, key.workspace_id, index)
        for cells in (key.activity, self._activity):
            totals = cells.get(cell)
            if totals is None:
                cells[cell] = _copy(event)
            else:
                totals.add(event)

    def _touch(self, key: SimKey, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(key, name, value)
        key.updated_at = self._now
        key.version += 1
        self._ws_version[key.workspace_id] += 1

    def _plan(self, delta: timedelta) -> list[tuple[int, int, str, str]]:
        span_ms = delta // MS
        if span_ms < 1:
            return []
        days = delta / timedelta(days=1)
        r = self.rates
        rates = (
            r.active_fraction,
            r.creates,
            r.renames,
            r.disables,
            r.enables,
            r.relimits,
            r.deletes,
        )
        events: list[tuple[int, int, str, str]] = []
        seq = itertools.count()  # unique tie-breaker: equal instants keep their planned order
        for ws_id, keys in self._order.items():
            for kind, rate in zip(_EVENT_KINDS, rates, strict=True):
                expected = rate * max(len(keys), 1) * days
                count = int(expected) + (self._rng.random() < expected % 1)
                events.extend(
                    (self._rng.randint(1, span_ms), next(seq), kind, ws_id) for _ in range(count)
                )
        events.sort()
        return events

    def _apply(self, kind: str, ws_id: str) -> None:
        if kind == "create":
            self.create_key(ws_id)
            return
        keys = self._order[ws_id]
        if not keys:
            return
        key = self._rng.choice(keys)
        if kind == "spend":
            if not key.disabled and not self._expired(key):
                self._record(key, *self._amount())
        elif kind == "rename":
            self._touch(key, name=f"{self._rng.choice(_NAMES)} #{self._rng.randint(1, 9999)}")
        elif kind == "disable" and not key.disabled:
            self._touch(key, disabled=True)
        elif kind == "enable":
            # Disabled keys are rare, so look at a few before giving up.
            found = next((k for k in self._rng.choices(keys, k=8) if k.disabled), None)
            if found is not None:
                self._touch(found, disabled=False)
        elif kind == "relimit":
            limit, reset = self._limit()
            self._touch(key, limit=limit, limit_reset=reset)
        elif kind == "delete":
            self.delete_key(key.hash)
