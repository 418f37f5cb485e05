"""Serve a simulated ``World`` as OpenRouter's management API, with injectable faults.

``Simulator.handle`` is the whole API as a pure function of a request;
``etl.simulator.server.SimulatorServer`` puts it on a real socket and
``Simulator.mock_transport`` hands it to httpx in-process.
Money is written as exact JSON numbers from the Decimal's digits, never through float.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from random import Random
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote

import httpx

from etl.core.exact_json import dump_json
from etl.simulator import activity
from etl.simulator.quota import QuotaAnswer, TokenBucket
from etl.simulator.world import PeriodSums, SimKey, World, iso_ms

API_PREFIX = "/api/v1"
RETRY_AFTER_MODES = ("seconds", "http-date", "none")
# How GET /activity disagrees with the key ledger (``Faults.activity_skew``).
ACTIVITY_SKEW_MODES = ("none", "missing", "doubled")
# How a leaky server (``Faults.echo_credentials``) quotes the credentials it was sent.
ECHO_MODES = ("", "exact", "url", "base64", "base64-bearer", "lower", "upper", "prefix")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DIGITS = re.compile(r"^[0-9]+$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MONEY = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,10})?$")
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# Statuses Faults.activity_status can make GET /activity answer, with the contract's
# example message for each.
ACTIVITY_STATUSES = {
    400: "Invalid request parameters",
    401: "Missing Authentication header",
    403: "Only management keys can perform this operation",
    404: "Resource not found",
    500: "Internal Server Error",
}
ACTIVITY_QUERIES_KEPT = 1000
_DRIFT_KEY_FIELD = b',"new_field_x":{"tier":"gold","tags":["a","b"],"score":1.5E+2,"on":true}'
_DRIFT_PAGE_FIELD = b',"new_top_level_field":{"api_revision":2,"notes":null}'
_FAULT_NAMES = (
    "rate_limited",
    "server_errors",
    "garbled_errors",
    "dropped",
    "malformed_json",
    "slow",
    "ignored_offset",
    "drift_deletes",
    "drift_creates",
    "duplicated_keys",
    "quota_limited",
    "activity_skewed",
)


@dataclass
class Faults:
    """Fault switches, all off by default; safe to change while the server runs."""

    rate_limit_rate: float = 0.0
    retry_after: str = "seconds"  # "seconds" | "http-date" | "none"
    retry_after_seconds: float = 1.0
    error_rate: float = 0.0
    error_burst: int = 1
    garbled_error_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_json_rate: float = 0.0
    schema_drift: bool = False
    drift_deletes_per_page: int = 0
    drift_creates_per_page: int = 0
    # After the n-th GET /keys since it was set, [deletes, creates] from this list; once
    # it is used up, drift_deletes_per_page and drift_creates_per_page apply.
    drift_schedule: list[list[int]] = field(default_factory=list)
    ignore_offset: bool = False
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    # Sizes of successive GET /keys pages, cycled (empty: the world's page size).
    page_sizes: list[int] = field(default_factory=list)
    # Chance that a page lists one of its keys twice, next to itself.
    duplicate_key_rate: float = 0.0
    # Not a fault of OpenRouter's: a careless server or proxy that quotes the presented
    # credentials (in an ECHO_MODES form) in every error message and in a response
    # header, so tests can show keyledger never repeats them.
    echo_credentials: str = ""
    # A wrong server clock: the Date header moves, the world's clock (and so the usage
    # counters) does not. Alternating sends +N and -N on successive responses.
    date_offset_seconds: float = 0.0
    date_alternate_seconds: float = 0.0
    # A request quota for the whole server (etl/simulator/quota.py): a token bucket of
    # quota_burst requests refilled at quota_rps per second; 0 turns it off.
    quota_rps: float = 0.0
    quota_burst: int = 10
    # Off: a quota that answers 429 and Retry-After only, with no X-RateLimit-* headers.
    quota_headers: bool = True
    # GET /activity made to disagree with the key ledger on one completed UTC day
    # (activity_skew_date, ISO; empty: the last completed day): the endpoint with the
    # most usage that day has its rows left out ("missing") or its usage, byok and
    # counts doubled ("doubled"). The keys and the truth endpoints are unchanged.
    activity_skew: str = "none"
    activity_skew_date: str = ""
    # Non-zero: every GET /activity is answered with this status (ACTIVITY_STATUSES),
    # the other endpoints as usual, so a client's activity part can fail on its own.
    activity_status: int = 0

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply changes by field name, rejecting unknown names and values of the wrong type."""
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown fault setting: {name}")
            current = getattr(self, name)
            # bool is an int subclass, so compare exact types; floats also take ints.
            ok = type(value) is type(current) or (type(current) is float and type(value) is int)
            bad_mode = (
                (name == "retry_after" and value not in RETRY_AFTER_MODES)
                or (name == "echo_credentials" and value not in ECHO_MODES)
                or (name == "activity_skew" and value not in ACTIVITY_SKEW_MODES)
            )
            if not ok or bad_mode:
                raise ValueError(f"bad value for fault setting: {name}")
            if name == "quota_burst" and value < 1:
                raise ValueError("quota_burst must be an integer >= 1")
            if name == "quota_rps" and value < 0:
                raise ValueError("quota_rps must be a number >= 0")
            if name == "activity_status" and value not in (0, *ACTIVITY_STATUSES):
                raise ValueError(f"activity_status must be 0 or one of {sorted(ACTIVITY_STATUSES)}")
            if name == "activity_skew_date" and value and _day_or_none(value) is None:
                raise ValueError("activity_skew_date must be a YYYY-MM-DD day or empty")
            if name == "page_sizes" and not all(_count_of(v, least=1) for v in value):
                raise ValueError("page_sizes must be a list of integers >= 1")
            if name == "drift_schedule" and not all(
                type(v) is list and len(v) == 2 and all(_count_of(n, least=0) for n in v)
                for v in value
            ):
                raise ValueError("drift_schedule must be a list of [deletes, creates] pairs")
            setattr(self, name, float(value) if type(current) is float else value)


def _count_of(value: object, *, least: int) -> bool:
    return type(value) is int and value >= least


def _day_or_none(raw: str) -> date | None:
    """A strict YYYY-MM-DD day, or None (fromisoformat alone also takes 20261101)."""
    if not _DAY.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class SimResponse:
    """A response, or with ``drop_connection`` none at all; ``delay_seconds`` stalls it."""

    status: int
    headers: dict[str, str]
    body: bytes
    drop_connection: bool = False
    delay_seconds: float = 0.0


@dataclass
class SimStats:
    """Requests seen, by path kind, and faults injected, by fault."""

    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_FAULT_NAMES, 0))
    # The query parameters of the last ACTIVITY_QUERIES_KEPT GET /activity requests that
    # got past auth and faults, oldest first: tests check a client asks as the contract says.
    activity_queries: list[dict[str, list[str]]] = field(default_factory=list)


class _Rendered(NamedTuple):
    version: int
    day: int
    sums: PeriodSums
    json: bytes


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def encode_json(value: object) -> bytes:
    """The API's wire form: exact Decimals, non-ASCII as raw UTF-8 (as a real server sends)."""
    return dump_json(value, ensure_ascii=False).encode()


def _param(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _int_param(params: dict[str, list[str]], name: str, default: int, top: int | None) -> int:
    raw = _param(params, name)
    if raw is None:
        return default
    low = 0 if top is None else 1
    if not _DIGITS.match(raw) or int(raw) < low or (top is not None and int(raw) > top):
        upper = "" if top is None else f" and at most {top}"
        raise _BadRequest(400, f"{name} must be an integer of at least {low}{upper}")
    return int(raw)


def _bool_param(params: dict[str, list[str]], name: str) -> bool:
    raw = _param(params, name)
    if raw not in (None, "true", "false"):
        raise _BadRequest(400, f"{name} must be 'true' or 'false'")
    return raw == "true"


def _route(path: str) -> tuple[str, str]:
    """Classify a decoded path as keys | key | workspaces | activity | control | other,
    plus its argument."""
    # Control endpoints live at /_sim/..., and are also accepted under the API prefix.
    rest = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
    rest = rest.rstrip("/")
    if rest.startswith("/_sim/"):
        return "control", rest[len("/_sim/") :]
    if rest == path.rstrip("/"):
        return "other", ""
    if rest in ("/keys", "/workspaces", "/activity"):
        return rest[1:], ""
    if rest.startswith("/keys/") and "/" not in rest[len("/keys/") :]:
        return "key", rest[len("/keys/") :]
    return "other", ""


class Simulator:
    """OpenRouter's management API over a ``World``: auth, validation, paging, faults."""

    def __init__(
        self,
        world: World,
        *,
        token: str,
        faults: Faults | None = None,
        latency_ms: float = 0,
        seed: int = 0,
    ) -> None:
        self.world = world
        self.faults = faults or Faults()
        self.latency_ms = latency_ms
        self.stats = SimStats()
        self._token = token
        self._rng = Random(seed)
        self._lock = threading.Lock()  # guards rng, stats and burst; taken before world.lock
        self._date_lock = threading.Lock()
        self._date_flips = 0
        self._burst_left = 0
        self._key_pages = 0  # GET /keys answered: drives page_sizes
        self._schedule: list[list[int]] = []  # the drift_schedule in use, and how far
        self._scheduled = 0
        self._key_json: dict[str, _Rendered] = {}
        self._quota: TokenBucket | None = None

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes = b""
    ) -> SimResponse:
        """Answer one request; ``path`` is percent-decoded, ``query`` is the raw query string."""
        response = self._answer(method, path, query, headers, body)
        if self.faults.echo_credentials and response.status >= 400:
            return self._echo_credentials(response, headers)
        return response

    def _answer(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> SimResponse:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
        kind, arg = _route(path)
        with self._lock:
            self.stats.requests += 1
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        denied = self._authenticate(headers)
        if denied is not None:
            return denied
        params = parse_qs(query, keep_blank_values=True)
        if kind == "control":
            try:
                return self._control(method, arg, params, body)
            except _BadRequest as exc:
                return self._error(exc.status, exc.message)
        quota = self._take_quota()
        if quota is None:
            return self._serve_api(kind, arg, method, params)
        extra = quota.headers if self.faults.quota_headers else {}
        if not quota.allowed:
            self._count("quota_limited")
            retry_after = {"Retry-After": quota.headers["Retry-After"]}
            return self._error(429, "Rate limit exceeded", {**extra, **retry_after})
        response = self._serve_api(kind, arg, method, params)
        return dataclasses.replace(response, headers={**response.headers, **extra})

    def _serve_api(
        self, kind: str, arg: str, method: str, params: dict[str, list[str]]
    ) -> SimResponse:
        try:
            if kind == "other":
                return self._error(404, "Not Found")
            if method != "GET":
                return self._error(405, "Method Not Allowed", {"Allow": "GET"})
            with self._lock:
                delay = self.faults.slow_seconds if self._chance("slow_rate", "slow") else 0.0
                fault = self._pre_fault()
            if fault is not None:
                return dataclasses.replace(fault, delay_seconds=delay)
            if kind == "keys":
                response = self._list_keys(params)
            elif kind == "key":
                response = self._get_key(arg)
            elif kind == "activity" and self.faults.activity_status:
                status = self.faults.activity_status
                response = self._error(status, ACTIVITY_STATUSES[status])
            elif kind == "activity":
                response = self._activity(params)
            else:
                response = self._list_workspaces(params)
        except _BadRequest as exc:
            return self._error(exc.status, exc.message)
        return dataclasses.replace(response, delay_seconds=delay)

    def mock_transport(self) -> httpx.MockTransport:
        """An httpx transport that calls ``handle`` in-process (a drop raises, slow times out)."""

        def respond(request: httpx.Request) -> httpx.Response:
            query = request.url.query.decode("ascii")
            result = self.handle(
                request.method, request.url.path, query, request.headers, request.read()
            )
            if result.delay_seconds > 0:
                read_timeout = request.extensions.get("timeout", {}).get("read")
                if read_timeout is not None and result.delay_seconds > read_timeout:
                    raise httpx.ReadTimeout("simulated slow response", request=request)
                time.sleep(result.delay_seconds)
            if result.drop_connection:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without a response", request=request
                )
            return httpx.Response(result.status, headers=result.headers, content=result.body)

        return httpx.MockTransport(respond)

    # -- endpoints -----------------------------------------------------------------------
    def _list_keys(self, params: dict[str, list[str]]) -> SimResponse:
        offset = _int_param(params, "offset", 0, None)
        include_disabled = _bool_param(params, "include_disabled")
        include_expired = _bool_param(params, "include_expired")
        ws_id = self._workspace(params)
        if self.faults.ignore_offset and offset:
            offset = 0
            self._count("ignored_offset")
        drift = self.faults.schema_drift
        with self._lock:
            sizes = self.faults.page_sizes
            size = sizes[self._key_pages % len(sizes)] if sizes else None
            duplicate = self._chance("duplicate_key_rate", "duplicated_keys")
            twin = self._rng.random()
        with self.world.lock:
            now = self.world.now
            keys = self.world.page(
                ws_id,
                offset,
                include_disabled=include_disabled,
                include_expired=include_expired,
                page_size=size,
            )
            frags = [self._render(key, drift) for key in keys]
        if duplicate and frags:
            at = int(twin * len(frags))
            frags.insert(at, frags[at])
        body = b'{"data":[' + b",".join(frags) + b"]" + (_DRIFT_PAGE_FIELD if drift else b"") + b"}"
        with self._lock:
            if self._chance("malformed_json_rate", "malformed_json"):
                # Any proper prefix of a JSON object is invalid JSON.
                body = body[: self._rng.randint(1, len(body) - 1)]
            self._drift_after_page(ws_id)
        return SimResponse(200, self._headers(now), body)

    def _get_key(self, key_hash: str) -> SimResponse:
        with self.world.lock:
            now = self.world.now
            key = self.world.find_key(key_hash)
            frag = None if key is None else self._render(key, self.faults.schema_drift)
        if frag is None:
            return self._error(404, "Resource not found")
        return SimResponse(200, self._headers(now), b'{"data":' + frag + b"}")

    def _list_workspaces(self, params: dict[str, list[str]]) -> SimResponse:
        offset = _int_param(params, "offset", 0, None)
        limit = _int_param(params, "limit", 50, 100)
        with self.world.lock:
            now = self.world.now
            data, total = self.world.workspaces_page(offset, limit)
        return SimResponse(
            200, self._headers(now), encode_json({"data": data, "total_count": total})
        )

    def _activity(self, params: dict[str, list[str]]) -> SimResponse:
        with self._lock:
            queries = self.stats.activity_queries
            queries.append({name: list(values) for name, values in params.items()})
            del queries[:-ACTIVITY_QUERIES_KEPT]
        group_by = _param(params, "group_by")
        if group_by not in (None, "workspace"):
            raise _BadRequest(400, "group_by must be 'workspace'")
        raw_day = _param(params, "date")
        ws_id = None if _param(params, "workspace_id") is None else self._workspace(params)
        with self.world.lock:
            now = self.world.now
            window = _window(now.date())
            if raw_day is None:
                days = window
            else:
                day = _day_or_none(raw_day)
                if day is None:
                    raise _BadRequest(400, "date must be a UTC day in YYYY-MM-DD format")
                if day not in window:
                    raise _BadRequest(400, activity.WINDOW_MESSAGE)
                days = [day]
            cells = self.world.activity(
                days,
                workspace_id=ws_id,
                key_hash=_param(params, "api_key_hash"),
                user_id=_param(params, "user_id"),
            )
            skew = self._activity_skew(window)
        if skew is not None and skew[0] in days:
            cells = self._skewed(cells, *skew)
        rows: dict[tuple[date, str, int], activity.Totals] = {}
        for (day, cell_ws, index), totals in cells.items():
            split = (day, cell_ws if group_by else "", index)
            rows.setdefault(split, activity.Totals()).add(totals)
        drift = self.faults.schema_drift
        data = [
            {
                **activity.item(day, row_ws or None, index, totals),
                **({"new_field_x": {"tier": "gold"}} if drift else {}),
            }
            for (day, row_ws, index), totals in sorted(
                rows.items(), key=lambda r: (r[0][0], activity.ENDPOINT_IDS[r[0][2]], r[0][1])
            )
        ]
        payload: dict[str, Any] = {"data": data}
        if drift:
            payload["new_top_level_field"] = {"api_revision": 2, "notes": None}
        body = encode_json(payload)
        with self._lock:
            if self._chance("malformed_json_rate", "malformed_json"):
                body = body[: self._rng.randint(1, len(body) - 1)]
        return SimResponse(200, self._headers(now), body)

    def _activity_skew(self, window: list[date]) -> tuple[date, int, int] | None:
        """(day, endpoint index, factor) of the activity_skew fault, or None when off."""
        mode, raw = self.faults.activity_skew, self.faults.activity_skew_date
        if mode == "none":
            return None
        day = _day_or_none(raw) if raw else window[-1]
        if day is None:
            return None
        by_endpoint: dict[int, Decimal] = {}
        for (_, _, index), totals in self.world.activity([day]).items():
            by_endpoint[index] = by_endpoint.get(index, Decimal(0)) + totals.usage
        if not by_endpoint:
            return None
        top = max(by_endpoint, key=lambda i: (by_endpoint[i], activity.ENDPOINT_IDS[i]))
        return day, top, 0 if mode == "missing" else 2

    def _skewed(
        self,
        cells: dict[tuple[date, str, int], activity.Totals],
        day: date,
        index: int,
        factor: int,
    ) -> dict[tuple[date, str, int], activity.Totals]:
        self._count("activity_skewed")
        out = {}
        for cell, totals in cells.items():
            if cell[0] == day and cell[2] == index:
                if factor == 0:
                    continue
                scaled = activity.Totals()
                scaled.add(totals, factor)
                totals = scaled
            out[cell] = totals
        return out

    def _control(
        self, method: str, action: str, params: dict[str, list[str]], body: bytes
    ) -> SimResponse:
        result: object
        if (method, action) == ("POST", "advance"):
            raw = _param(params, "seconds") or ""
            # Bounded (about 300 years) so the simulated clock cannot overflow datetime.
            if not re.fullmatch(r"[0-9]{1,10}(\.[0-9]+)?", raw):
                raise _BadRequest(400, "seconds must be a non-negative number below 1e10")
            self.world.advance(timedelta(seconds=float(raw)))
            result = {"now": iso_ms(self.world.now)}
        elif (method, action) == ("POST", "touch"):
            raw = _param(params, "fraction") or ""
            if not re.fullmatch(r"[01](\.[0-9]+)?", raw) or float(raw) > 1:
                raise _BadRequest(400, "fraction must be a number from 0 to 1")
            result = {"touched": self.world.touch(float(raw)), "now": iso_ms(self.world.now)}
        elif (method, action) == ("GET", "truth"):
            result = self.world.truth_json()
        elif (method, action) == ("GET", "activity_truth"):
            result = self._activity_truth(params)
        elif (method, action) == ("POST", "late_usage"):
            result = self._late_usage(params)
        elif (method, action) == ("GET", "stats"):
            with self._lock:
                result = dataclasses.asdict(self.stats)
        elif action == "faults" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    changes = json.loads(body or b"{}")
                    with self._lock:
                        self.faults.update(changes)
                except (ValueError, AttributeError) as exc:
                    raise _BadRequest(400, f"invalid faults body: {exc}") from None
            result = dataclasses.asdict(self.faults)
        else:
            return self._error(404, "Not Found")
        return SimResponse(200, self._headers(self.world.now), json.dumps(result).encode())

    def _activity_truth(self, params: dict[str, list[str]]) -> dict[str, Any]:
        """Exact usage per (day, workspace, endpoint), of one key with api_key_hash."""
        key_hash = _param(params, "api_key_hash")
        with self.world.lock:
            try:  # deleted keys too: their past activity stays
                truth = self.world.activity_truth(key_hash)
            except KeyError:
                raise _BadRequest(404, "Resource not found") from None
            now = self.world.now
        index = {endpoint_id: i for i, endpoint_id in enumerate(activity.ENDPOINT_IDS)}
        return {
            "now": iso_ms(now),
            "window": [day.isoformat() for day in _window(now.date())],
            "rows": [
                {
                    "date": day.isoformat(),
                    "workspace_id": ws_id,
                    **activity.endpoint_fields(index[endpoint_id]),
                    **totals.as_strings(),
                }
                for (day, ws_id, endpoint_id), totals in truth.items()
            ],
        }

    def _late_usage(self, params: dict[str, list[str]]) -> dict[str, Any]:
        """POST /_sim/late_usage?date=D&usage=U[&byok=B][&api_key_hash=H]: spend added now
        to completed day D (on key H, or on a key of the default workspace)."""
        day = _day_or_none(_param(params, "date") or "")
        if day is None:
            raise _BadRequest(400, "date must be a UTC day in YYYY-MM-DD format")
        amounts = []
        for name in ("usage", "byok"):
            raw = _param(params, name) or "0"
            if not _MONEY.match(raw):
                raise _BadRequest(400, f"{name} must be a decimal number of at most 10 decimals")
            amounts.append(Decimal(raw))  # the pattern admits only plain decimals
        with self.world.lock:
            key_hash = _param(params, "api_key_hash")
            if key_hash is None:
                live = self.world.live_hashes(self.world.default_workspace_id)
                if not live:
                    raise _BadRequest(404, "the default workspace has no live key")
                key_hash = live[-1]  # its oldest key: the same one every time
            try:
                self.world.late_usage(key_hash, day, amounts[0], amounts[1])
            except KeyError:
                raise _BadRequest(404, "Resource not found") from None
            except ValueError as exc:
                raise _BadRequest(400, str(exc)) from None
            return {
                "api_key_hash": key_hash,
                "date": day.isoformat(),
                "now": iso_ms(self.world.now),
            }

    # -- helpers -------------------------------------------------------------------------
    def _authenticate(self, headers: Mapping[str, str]) -> SimResponse | None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if value is None:
            return self._error(401, "Missing Authentication header")
        scheme, _, presented = value.strip().partition(" ")
        # Constant-time compare; the presented value never appears in any response.
        expected = self._token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected
        ):
            return self._error(401, "Invalid credentials")
        return None

    def _echo_credentials(self, response: SimResponse, headers: Mapping[str, str]) -> SimResponse:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = value.partition(" ")[2].strip()
        echo = {
            "exact": token,
            "url": quote(token, safe=""),
            "base64": base64.b64encode(token.encode()).decode(),
            "base64-bearer": base64.b64encode(value.encode()).decode(),
            "lower": token.lower(),
            "upper": token.upper(),
            "prefix": token[:14],
        }[self.faults.echo_credentials]
        message = f"request failed for credentials {echo} (HTTP {response.status})"
        body = _error_body(response.status, message)
        headers_out = {**response.headers, "X-Echoed-Credentials": echo}
        return dataclasses.replace(response, headers=headers_out, body=body)

    def _workspace(self, params: dict[str, list[str]]) -> str:
        raw = _param(params, "workspace_id")
        if raw is None:
            return self.world.default_workspace_id
        if not _UUID.match(raw):
            raise _BadRequest(400, "workspace_id must be a UUID")
        if not self.world.has_workspace(raw.lower()):
            raise _BadRequest(404, "Workspace not found")
        return raw.lower()

    def _render(self, key: SimKey, drift: bool) -> bytes:
        # A key's JSON depends only on its stored state (version) and its period counters.
        # Same version and UTC day: unchanged. A new day: unchanged unless a counter reset,
        # so idle keys stay cached across midnight.
        day = self.world.now.toordinal()
        cached = self._key_json.get(key.hash)
        if cached is None or cached.version != key.version:
            cached = None
        elif cached.day != day:
            sums = self.world.period_sums(key)
            cached = _Rendered(key.version, day, sums, cached.json) if sums == cached.sums else None
        if cached is None:
            payload = self.world.key_payload(key)
            sums = self.world.period_sums(key)
            cached = _Rendered(key.version, day, sums, encode_json(payload))
        self._key_json[key.hash] = cached
        return cached.json[:-1] + _DRIFT_KEY_FIELD + b"}" if drift else cached.json

    def _chance(self, rate_field: str, fault: str) -> bool:
        rate: float = getattr(self.faults, rate_field)
        hit = rate > 0 and self._rng.random() < rate
        if hit:
            self.stats.faults[fault] += 1
        return hit

    def _count(self, fault: str) -> None:
        with self._lock:
            self.stats.faults[fault] += 1

    def _take_quota(self) -> QuotaAnswer | None:
        """A token from the server's quota; None while the quota is off."""
        with self._lock:
            rate, burst = self.faults.quota_rps, self.faults.quota_burst
            if rate <= 0:
                self._quota = None
                return None
            bucket = self._quota
            if bucket is None or (bucket.rate, bucket.burst) != (rate, burst):
                bucket = self._quota = TokenBucket(rate, burst)  # a new quota starts full
        return bucket.take()

    def _pre_fault(self) -> SimResponse | None:
        if self._burst_left > 0:
            self._burst_left -= 1
            return self._server_error()
        if self._chance("drop_rate", "dropped"):
            return SimResponse(0, {}, b"", drop_connection=True)
        if self._chance("rate_limit_rate", "rate_limited"):
            return self._error(429, "Rate limit exceeded", self._retry_after())
        if self.faults.error_rate > 0 and self._rng.random() < self.faults.error_rate:
            self._burst_left = max(1, self.faults.error_burst) - 1
            return self._server_error()
        return None

    def _server_error(self) -> SimResponse:
        status = self._rng.choice(tuple(_REASONS))
        self.stats.faults["server_errors"] += 1
        response = self._error(status, _REASONS[status])
        if not self._chance("garbled_error_rate", "garbled_errors"):
            return response
        if self._rng.random() < 0.5:
            return dataclasses.replace(response, body=response.body[: len(response.body) // 2])
        html = f"<html><body><h1>{status} {_REASONS[status]}</h1></body></html>".encode()
        return SimResponse(status, {**response.headers, "Content-Type": "text/html"}, html)

    def _retry_after(self) -> dict[str, str]:
        seconds = self.faults.retry_after_seconds
        if self.faults.retry_after == "seconds":
            return {"Retry-After": str(int(seconds)) if seconds == int(seconds) else repr(seconds)}
        if self.faults.retry_after == "http-date":
            # Relative to the simulated clock, like Date; rounded up to a whole second.
            at = self.world.now + timedelta(seconds=seconds, microseconds=999_999)
            return {"Retry-After": format_datetime(at.replace(microsecond=0), usegmt=True)}
        return {}

    def _drift_after_page(self, ws_id: str) -> None:
        self._key_pages += 1
        schedule = self.faults.drift_schedule
        if schedule is not self._schedule:  # a new schedule starts with the next page
            self._schedule, self._scheduled = schedule, 0
        if self._scheduled < len(schedule):
            deletes, creates = schedule[self._scheduled]
            self._scheduled += 1
        else:
            deletes = self.faults.drift_deletes_per_page
            creates = self.faults.drift_creates_per_page
        if deletes > 0:
            live = self.world.live_hashes(ws_id)
            for key_hash in self._rng.sample(live, min(deletes, len(live))):
                self.world.delete_key(key_hash)
                self.stats.faults["drift_deletes"] += 1
        for _ in range(max(0, creates)):
            self.world.create_key(ws_id)
            self.stats.faults["drift_creates"] += 1

    def _headers(self, now: datetime) -> dict[str, str]:
        shift = self.faults.date_offset_seconds
        if self.faults.date_alternate_seconds:
            with self._date_lock:  # not self._lock: errors are built while it is held
                self._date_flips += 1
                sign = 1 if self._date_flips % 2 else -1
            shift += sign * self.faults.date_alternate_seconds
        date = format_datetime(now + timedelta(seconds=shift), usegmt=True)
        return {"Content-Type": "application/json", "Date": date}

    def _error(self, status: int, message: str, extra: dict[str, str] | None = None) -> SimResponse:
        body = _error_body(status, message)
        return SimResponse(status, {**self._headers(self.world.now), **(extra or {})}, body)


def _window(today: date) -> list[date]:
    """The completed UTC days /activity serves, oldest first: the 30 before today."""
    return [today - timedelta(days=n) for n in range(activity.WINDOW_DAYS, 0, -1)]


def _error_body(status: int, message: str) -> bytes:
    """An error response's body, in the shape the management API sends."""
    return json.dumps({"error": {"code": status, "message": message}}).encode()
