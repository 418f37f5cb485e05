"""GET /activity through httpx.MockTransport: the request the contract allows, exact
money, one-line refusals, and the keys endpoint's retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from etl.core.activity_item import ActivityItem
from etl.core.errors import ApiStatusError, AuthError, PayloadError
from etl.openrouter.client import OpenRouterClient
from tests.activity_contract import check_request, check_response
from tests.helpers import SECRET, error_body, json_response, secret, settings

DAY = date(2026, 11, 1)
WORKSPACE = "0df9e665-d932-5740-b2c7-b52af166bc11"
KEY_HASH = "ab" * 32
SERVER_DATE = datetime(2026, 11, 2, 0, 0, 7, tzinfo=timezone.utc)


def item(**overrides: Any) -> dict[str, Any]:
    """One item as the contract's example has it, of ``WORKSPACE`` on ``DAY``."""
    base: dict[str, Any] = {
        "byok_usage_inference": Decimal("0.012"),
        "completion_tokens": 125,
        "date": DAY.isoformat(),
        "endpoint_id": "550e8400-e29b-41d4-a716-446655440000",
        "model": "openai/gpt-4.1",
        "model_permaslug": "openai/gpt-4.1-2025-04-14",
        "prompt_tokens": 50,
        "provider_name": "OpenAI",
        "reasoning_tokens": 25,
        "requests": 5,
        "usage": Decimal("0.015"),
        "workspace_id": WORKSPACE,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


class Api:
    """Answers each GET /activity with the next of ``answers`` (the last one repeats),
    after checking the request against the contract."""

    def __init__(
        self, *answers: httpx.Response | Callable[[], httpx.Response], valid: bool = True
    ) -> None:
        self.answers = list(answers)
        self.valid = valid  # the 200s are as the contract says (checked)
        self.requests: list[dict[str, str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(check_request(request))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        response = answer() if callable(answer) else answer
        if self.valid:
            check_response(response)
        return response

    def client(self, **overrides: Any) -> OpenRouterClient:
        return OpenRouterClient(
            settings(**overrides),
            secret(),
            transport=httpx.MockTransport(self.handler),
            sleep=lambda seconds: None,
        )


def ok(*items: dict[str, Any]) -> httpx.Response:
    return json_response(200, {"data": list(items)}, date=format_datetime(SERVER_DATE, usegmt=True))


def test_one_day_split_per_workspace_as_the_contract_names_it() -> None:
    api = Api(ok(item()))
    with api.client() as client:
        report = client.get_activity(DAY)
    assert api.requests == [{"date": "2026-11-01", "group_by": "workspace"}]
    assert report.day == DAY and report.server_time == SERVER_DATE
    assert report.items == (
        ActivityItem(
            day=DAY,
            workspace_id=WORKSPACE,
            endpoint_id="550e8400-e29b-41d4-a716-446655440000",
            model="openai/gpt-4.1",
            model_permaslug="openai/gpt-4.1-2025-04-14",
            provider_name="OpenAI",
            usage=Decimal("0.015"),
            byok_usage_inference=Decimal("0.012"),
            requests=5,
            prompt_tokens=50,
            completion_tokens=125,
            reasoning_tokens=25,
        ),
    )


def test_workspace_and_key_narrow_the_request() -> None:
    api = Api(ok(item()))
    with api.client() as client:
        client.get_activity(DAY, workspace_id=WORKSPACE)
        client.get_activity(DAY, api_key_hash=KEY_HASH)
    assert api.requests == [
        {"date": "2026-11-01", "group_by": "workspace", "workspace_id": WORKSPACE},
        {"date": "2026-11-01", "group_by": "workspace", "api_key_hash": KEY_HASH},
    ]


def test_money_is_the_exact_decimal_of_the_doubles_printed() -> None:
    # 0.1 + 0.2 as a double prints 0.30000000000000004: those digits, not 0.3, and
    # never float's binary expansion.
    api = Api(ok(item(usage=0.1 + 0.2, byok_usage_inference=Decimal("1234.5678901234"))))
    with api.client() as client:
        (only,) = client.get_activity(DAY).items
    assert only.usage == Decimal("0.30000000000000004")
    assert only.byok_usage_inference == Decimal("1234.5678901234")
    assert isinstance(only.usage, Decimal)


def test_an_empty_day_is_no_items_and_unknown_fields_are_ignored() -> None:
    api = Api(
        json_response(200, {"data": [], "new_top_level_field": 1}),
        ok(item(new_field_x={"tier": "gold"})),
    )
    with api.client() as client:
        assert client.get_activity(DAY).items == ()
        assert len(client.get_activity(DAY).items) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": []}, "GET /activity for 2026-11-01: the response has no 'data' list"),
        ({"data": [1]}, "GET /activity for 2026-11-01: item 0 is not a JSON object"),
        (
            {"data": [item(usage="0.015")]},
            "GET /activity for 2026-11-01: item 0: 'usage' is the string '0.015', not a number",
        ),
        (
            {"data": [item(requests=None)]},
            "GET /activity for 2026-11-01: item 0: 'requests' is null, not a whole number",
        ),
        (
            {"data": [item(prompt_tokens=-1)]},
            "GET /activity for 2026-11-01: item 0: 'prompt_tokens' is -1, out of range "
            "(0 to 2**63 - 1)",
        ),
        (
            {"data": [item(), item(model=...)]},
            "GET /activity for 2026-11-01: item 1 has no 'model'",
        ),
        (
            {"data": [item(workspace_id=...)]},
            "GET /activity for 2026-11-01: item 0 has no 'workspace_id' (asked for with "
            "group_by=workspace)",
        ),
        (
            {"data": [item(date="2026-10-31")]},
            "GET /activity for 2026-11-01: item 0 is for 2026-10-31, not the day asked for",
        ),
        (
            {"data": [item(date="1 Nov")]},
            "GET /activity for 2026-11-01: item 0: 'date' is '1 Nov', not YYYY-MM-DD",
        ),
        (
            {"data": [item(), item()]},
            "GET /activity for 2026-11-01: item 1 repeats endpoint "
            "'550e8400-e29b-41d4-a716-446655440000' of workspace "
            "'0df9e665-d932-5740-b2c7-b52af166bc11'",
        ),
        (
            {"data": [item(endpoint_id="e" * 65)]},
            "GET /activity for 2026-11-01: item 0: 'endpoint_id' is 65 characters long; "
            "daily_activity.endpoint_id holds at most 64",
        ),
    ],
)
def test_a_bad_payload_is_one_line_naming_the_item_and_field(body: Any, message: str) -> None:
    api = Api(json_response(200, body), valid=False)
    with api.client() as client, pytest.raises(PayloadError) as caught:
        client.get_activity(DAY)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_another_workspace_than_the_one_asked_for_is_refused() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    api = Api(ok(item(workspace_id=other)))
    with api.client() as client, pytest.raises(PayloadError, match="not the one asked for"):
        client.get_activity(DAY, workspace_id=WORKSPACE)


def test_not_json_is_a_payload_error() -> None:
    api = Api(json_response(200, '{"data": ['), valid=False)
    with api.client() as client, pytest.raises(PayloadError, match="not valid JSON"):
        client.get_activity(DAY)


def test_500_and_429_are_retried_as_for_keys() -> None:
    api = Api(
        json_response(500, error_body(500, "Internal Server Error")),
        json_response(429, error_body(429, "slow down"), **{"retry-after": "1"}),
        ok(item()),
    )
    with api.client() as client:
        assert len(client.get_activity(DAY).items) == 1
        assert (client.stats.requests, client.stats.retries) == (3, 2)
    assert len(api.requests) == 3


def test_a_lasting_500_gives_up_after_max_attempts() -> None:
    api = Api(json_response(500, error_body(500, "Internal Server Error")))
    with api.client(max_attempts=3) as client, pytest.raises(ApiStatusError) as caught:
        client.get_activity(DAY)
    assert caught.value.status == 500
    assert len(api.requests) == 3


def test_400_is_not_retried_and_quotes_the_server() -> None:
    window = "Date must be within the last 30 (completed) UTC days"
    api = Api(json_response(400, error_body(400, window)))
    with api.client() as client, pytest.raises(ApiStatusError) as caught:
        client.get_activity(DAY)
    assert str(caught.value) == f"GET /activity: HTTP 400: {window}"
    assert len(api.requests) == 1


def test_403_is_refused_at_once_and_never_shows_the_key() -> None:
    api = Api(json_response(403, error_body(403, f"key {SECRET} may not read activity")))
    with api.client() as client, pytest.raises(AuthError) as caught:
        client.get_activity(DAY)
    assert len(api.requests) == 1
    assert SECRET not in str(caught.value)


def test_a_payload_error_echoing_the_key_is_scrubbed() -> None:
    echoed = item(endpoint_id=SECRET)
    api = Api(ok(echoed, echoed), valid=False)
    with api.client() as client, pytest.raises(PayloadError) as caught:
        client.get_activity(DAY)
    assert "repeats endpoint" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_timeout_is_retried() -> None:
    calls = []

    def answer() -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow")
        return ok(item())

    api = Api(answer)
    with api.client() as client:
        assert len(client.get_activity(DAY).items) == 1
    assert len(api.requests) == 2
