"""One day's usage of one endpoint, as GET /activity reports it: the record both sides
share (etl.openrouter.activity parses it, etl.store.activity stores it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ActivityItem:
    """One ``ActivityItem``: a day's usage of one endpoint in one workspace."""

    day: date
    workspace_id: str
    endpoint_id: str
    model: str
    model_permaslug: str
    provider_name: str
    usage: Decimal
    byok_usage_inference: Decimal
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
