"""GET /activity: one completed UTC day of usage per endpoint, as typed items. Pure.

The second resource beside keys (reference/openrouter-activity.openapi.yaml). keyledger
asks for one day at a time (``date``) and always with ``group_by=workspace``, so every
item names its workspace; ``workspace_id`` narrows it to one workspace and
``api_key_hash`` to one key. The request itself is sent by the client
(``OpenRouterClient.get_activity``: the same retries and pacing as keys).

Money is exact: the API sends ``usage`` and ``byok_usage_inference`` as doubles printed in
shortest round-trip form, and etl.core.exact_json reads those digits as a Decimal, never
through float, so summing items gives the key ledger's own totals. Anything the contract
does not promise (a missing field, a string for a number, another day, another workspace,
an endpoint twice) is refused with a PayloadError of one line naming the item and field.
Fields the API adds later are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from etl.core.activity_item import ActivityItem
from etl.core.column_limits import TextLimit, fits_money_column
from etl.core.errors import PayloadError

PATH = "activity"
GROUP_BY_WORKSPACE = "workspace"
# The columns' widths (models.activity); what no backend could store is refused here.
_TEXT_LIMITS = {
    "endpoint_id": TextLimit("daily_activity.endpoint_id", characters=64),
    "workspace_id": TextLimit("daily_activity.workspace_id", characters=64),
    "model": TextLimit("daily_activity.model", characters=255),
    "model_permaslug": TextLimit("daily_activity.model_permaslug", characters=255),
    "provider_name": TextLimit("daily_activity.provider_name", characters=255),
}
_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ActivityReport:
    """The answer of one ``GET /activity`` request: a whole UTC day (of the workspace or
    key asked for), and the server time (``Date``) it was served at."""

    day: date
    items: tuple[ActivityItem, ...]
    server_time: datetime


def activity_params(
    day: date, *, workspace_id: str | None = None, api_key_hash: str | None = None
) -> dict[str, str]:
    """The query of one day's request, as the contract names its parameters."""
    params = {"date": day.isoformat(), "group_by": GROUP_BY_WORKSPACE}
    if workspace_id is not None:
        params["workspace_id"] = workspace_id
    if api_key_hash is not None:
        params["api_key_hash"] = api_key_hash
    return params


def parse_activity(
    body: Any, *, day: date, workspace_id: str | None = None
) -> tuple[ActivityItem, ...]:
    """The items of a ``GET /activity`` body for ``day`` (and ``workspace_id``, when the
    request named one); PayloadError for anything the contract does not promise."""
    where = f"GET /activity for {day.isoformat()}"
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise PayloadError(f"{where}: the response has no 'data' list")
    items = []
    seen: set[tuple[str, str]] = set()
    for position, raw in enumerate(body["data"]):
        item = _item(raw, f"{where}: item {position}")
        if item.day != day:
            raise PayloadError(
                f"{where}: item {position} is for {item.day.isoformat()}, not the day asked for"
            )
        if workspace_id is not None and item.workspace_id != workspace_id:
            raise PayloadError(
                f"{where}: item {position} is of workspace {item.workspace_id!r}, not the "
                f"one asked for"
            )
        cell = (item.workspace_id, item.endpoint_id)
        if cell in seen:
            raise PayloadError(
                f"{where}: item {position} repeats endpoint {item.endpoint_id!r} of "
                f"workspace {item.workspace_id!r}"
            )
        seen.add(cell)
        items.append(item)
    return tuple(items)


def _item(raw: Any, where: str) -> ActivityItem:
    if not isinstance(raw, Mapping):
        raise PayloadError(f"{where} is not a JSON object")
    raw_day = _text(raw, "date", where)
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        raise PayloadError(f"{where}: 'date' is {raw_day[:40]!r}, not YYYY-MM-DD") from None
    if len(raw_day) != len("YYYY-MM-DD"):
        raise PayloadError(f"{where}: 'date' is {raw_day[:40]!r}, not YYYY-MM-DD")
    return ActivityItem(
        day=day,
        workspace_id=_text(raw, "workspace_id", where),
        endpoint_id=_text(raw, "endpoint_id", where),
        model=_text(raw, "model", where),
        model_permaslug=_text(raw, "model_permaslug", where),
        provider_name=_text(raw, "provider_name", where),
        usage=_money(raw, "usage", where),
        byok_usage_inference=_money(raw, "byok_usage_inference", where),
        requests=_count(raw, "requests", where),
        prompt_tokens=_count(raw, "prompt_tokens", where),
        completion_tokens=_count(raw, "completion_tokens", where),
        reasoning_tokens=_count(raw, "reasoning_tokens", where),
    )


def _field(raw: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in raw:
        if name == "workspace_id":
            raise PayloadError(f"{where} has no 'workspace_id' (asked for with group_by=workspace)")
        raise PayloadError(f"{where} has no '{name}'")
    return raw[name]


def _text(raw: Mapping[str, Any], name: str, where: str) -> str:
    value = _field(raw, name, where)
    if not isinstance(value, str):
        raise PayloadError(f"{where}: '{name}' is {_describe(value)}, not a string")
    limit = _TEXT_LIMITS.get(name)
    problem = limit.problem(value) if limit is not None else None
    if problem is None and not value and name != "provider_name":
        problem = "is empty"
    if problem is not None:
        raise PayloadError(f"{where}: '{name}' {problem}")
    return str(value)


def _money(raw: Mapping[str, Any], name: str, where: str) -> Decimal:
    value = _field(raw, name, where)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise PayloadError(f"{where}: '{name}' is {_describe(value)}, not a number")
    amount = Decimal(value)
    if not fits_money_column(amount):
        raise PayloadError(f"{where}: '{name}' is {str(amount)[:40]}, beyond the money columns")
    return amount


def _count(raw: Mapping[str, Any], name: str, where: str) -> int:
    value = _field(raw, name, where)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)  # 5.0 is still a whole number
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{where}: '{name}' is {_describe(value)}, not a whole number")
    if not 0 <= value <= _BIGINT_MAX:
        raise PayloadError(f"{where}: '{name}' is {value}, out of range (0 to 2**63 - 1)")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return f"the number {str(value)[:40]}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"a JSON {'object' if isinstance(value, Mapping) else 'array'}"
