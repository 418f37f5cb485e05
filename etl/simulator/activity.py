"""Usage events of the simulated account, as ``GET /activity`` reports them.

Every increment of a key's usage in ``etl.simulator.world`` is one usage event: the
key, its workspace at that moment, the UTC day, an endpoint of the small catalogue
below, the money (exact ``Decimal``, the very amounts added to the key) and requests
and tokens. Events are summed as they happen into cells per (day, workspace, endpoint),
per key and for the whole account, so serving a day never walks every key.

Exact on the wire: the API sends usage as doubles. An event's money has at most ten
decimals (the world's own draws, ``touch`` and ``/_sim/late_usage`` keep to that), so a
row's total keeps at most 15 significant digits while it is below 100,000 USD, and a
double of 15 significant digits prints back as exactly those digits:
``Decimal(repr(float(total))) == total``. Summing the emitted values as Decimal gives the
key ledger's totals exactly, which is what a reconciliation relies on. A test that
passes ``World.spend`` more digits gets rounded doubles, as the real API would send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
WINDOW_DAYS = 30
WINDOW_MESSAGE = "Date must be within the last 30 (completed) UTC days"
_NAMESPACE = uuid.UUID("6f1c2b0e-2d4a-4c55-9a61-0c7e3b9d8a11")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model served by one provider: what an activity row is attributed to."""

    model: str
    model_permaslug: str
    provider_name: str
    reasoning: bool
    weight: int  # how often events land here, relative to the others

    @property
    def endpoint_id(self) -> str:
        """A stable UUID per (permaslug, provider), as OpenRouter's endpoint ids are."""
        return str(uuid.uuid5(_NAMESPACE, f"{self.model_permaslug}@{self.provider_name}"))


# Small and fixed, so the same seed gives the same rows on every machine. Two providers
# for one model: rows are per endpoint, not per model.
CATALOGUE: tuple[Endpoint, ...] = (
    Endpoint("openai/gpt-4.1", "openai/gpt-4.1-2025-04-14", "OpenAI", False, 6),
    Endpoint("openai/gpt-4.1", "openai/gpt-4.1-2025-04-14", "Azure", False, 2),
    Endpoint("openai/o3", "openai/o3-2025-04-16", "OpenAI", True, 2),
    Endpoint(
        "anthropic/claude-sonnet-4", "anthropic/claude-4-sonnet-20250522", "Anthropic", True, 5
    ),
    Endpoint(
        "anthropic/claude-sonnet-4", "anthropic/claude-4-sonnet-20250522", "Amazon Bedrock", True, 2
    ),
    Endpoint("google/gemini-2.5-flash", "google/gemini-2.5-flash", "Google Vertex", True, 4),
    Endpoint(
        "meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct", "Groq", False, 2
    ),
    Endpoint("deepseek/deepseek-r1", "deepseek/deepseek-r1", "DeepInfra", True, 1),
)
ENDPOINT_IDS = tuple(endpoint.endpoint_id for endpoint in CATALOGUE)
# Cumulative weights for bisect: an event's endpoint from one uniform draw.
CUMULATIVE_WEIGHTS = tuple(
    sum(e.weight for e in CATALOGUE[: i + 1]) / sum(e.weight for e in CATALOGUE)
    for i in range(len(CATALOGUE))
)

CellKey = tuple[date, str, int]  # (UTC day, workspace id, index into CATALOGUE)


@dataclass(slots=True)
class Totals:
    """Summed usage events: money exact, counts as integers."""

    usage: Decimal = ZERO
    byok_usage_inference: Decimal = ZERO
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: Totals, factor: int = 1) -> None:
        """Add ``factor`` times ``other`` (2 doubles it: the activity_skew fault)."""
        self.usage += other.usage * factor
        self.byok_usage_inference += other.byok_usage_inference * factor
        self.requests += other.requests * factor
        self.prompt_tokens += other.prompt_tokens * factor
        self.completion_tokens += other.completion_tokens * factor
        self.reasoning_tokens += other.reasoning_tokens * factor

    def as_strings(self) -> dict[str, Any]:
        """JSON-ready with money as exact decimal strings (the truth endpoint's form)."""
        return {
            "usage": str(self.usage),
            "byok_usage_inference": str(self.byok_usage_inference),
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


def endpoint_fields(index: int) -> dict[str, str]:
    """The item fields that name endpoint ``index`` of the catalogue."""
    endpoint = CATALOGUE[index]
    return {
        "model": endpoint.model,
        "model_permaslug": endpoint.model_permaslug,
        "endpoint_id": ENDPOINT_IDS[index],
        "provider_name": endpoint.provider_name,
    }


def item(day: date, workspace_id: str | None, index: int, totals: Totals) -> dict[str, Any]:
    """One ``ActivityItem`` as the API sends it: usage as doubles, ``workspace_id`` only
    when the rows are split per workspace."""
    row: dict[str, Any] = {
        "date": day.isoformat(),
        **endpoint_fields(index),
        "usage": float(totals.usage),
        "byok_usage_inference": float(totals.byok_usage_inference),
        "requests": totals.requests,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
    }
    if workspace_id is not None:
        row["workspace_id"] = workspace_id
    return row
