"""Checks a GET /activity request and its answer against the published contract
(tests/data/openrouter-activity.openapi.yaml), for the client's unit tests and the
end-to-end tests alike."""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent / "data" / "openrouter-activity.openapi.yaml"
SPEC_URI = "urn:keyledger:openrouter-activity"
ACTIVITY_200 = "#/paths/~1activity/get/responses/200/content/application~1json/schema"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def _validate(instance: object, schema: dict[str, Any]) -> None:
    resource = Resource.from_contents(_spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    checker = Draft202012Validator.FORMAT_CHECKER
    Draft202012Validator(schema, registry=registry, format_checker=checker).validate(instance)


def check_request(request: httpx.Request) -> dict[str, str]:
    """Assert that ``request`` is a GET /activity the contract allows; its parameters."""
    assert request.method == "GET"
    assert request.url.path.endswith("/activity"), request.url.path
    assert request.headers["authorization"].startswith("Bearer ")
    operation = _spec()["paths"]["/activity"]["get"]
    declared = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    query = parse_qs(request.url.query.decode("ascii"), keep_blank_values=True)
    params: dict[str, str] = {}
    for name, values in query.items():
        assert name in declared, f"{name} is not a parameter of GET /activity"
        assert len(values) == 1, f"{name} given {len(values)} times"
        _validate(values[0], declared[name]["schema"])
        params[name] = values[0]
    if "date" in params:  # "a single UTC date ... (YYYY-MM-DD format)"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", params["date"]), params["date"]
        date.fromisoformat(params["date"])
    if "workspace_id" in params:  # "Filter by workspace ID (UUID)"
        assert _UUID.match(params["workspace_id"]), params["workspace_id"]
    return params


def check_response(response: httpx.Response) -> None:
    """Assert that a 200 of GET /activity has the body the contract describes."""
    if response.status_code == 200:
        _validate(json.loads(response.read()), {"$ref": SPEC_URI + ACTIVITY_200})
