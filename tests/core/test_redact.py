"""Scrubbing a secret out of server text, in every form a server may echo it."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from urllib.parse import quote

import pytest

from etl.core.redact import MASK, RedactingFilter, echo_forms, scrub

KEY = "sk-or-v1-CANARY+7f3a/9c0d=1e2b%q"  # '+', '/', '=', '%' make encodings differ


def leaks(text: str, secret: str = KEY) -> list[str]:
    """Which echo forms (or their 8-character starts) are still in ``text``."""
    lowered = text.lower()
    return [form for form in echo_forms(secret) if form[:8].lower() in lowered]


def test_exact_echo_is_scrubbed() -> None:
    assert scrub(f"invalid key {KEY}.", KEY) == f"invalid key {MASK}."


def test_server_echo_of_key_url_encoded_is_scrubbed() -> None:
    echoed = f"GET /keys?api_key={quote(KEY, safe='')} refused"
    assert quote(KEY, safe="") != KEY
    assert scrub(echoed, KEY) == f"GET /keys?api_key={MASK} refused"


def test_echo_of_key_escaped_in_a_repr_or_json_string_is_scrubbed() -> None:
    secret = "sk-or-v1-back\\slash\"quote'-0123456789"
    for escaped in (repr(secret), repr(secret.encode()), json.dumps(secret)):
        assert escaped[1:-1] != secret and secret not in escaped
        assert scrub(f"Illegal header value {escaped}", secret) == "Illegal header value " + (
            escaped[0] + MASK + escaped[-1] if not escaped.startswith("b") else "b'***'"
        )


def test_server_echo_of_key_in_base64_is_scrubbed() -> None:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        echoed = encode(KEY.encode()).decode()
        cleaned = scrub(f"token={echoed};", KEY)
        assert cleaned.replace("=", "").replace("token", "") == f"{MASK};"


def test_server_echo_of_bearer_header_in_base64_is_scrubbed() -> None:
    echoed = base64.b64encode(f"Bearer {KEY}".encode()).decode()
    cleaned = scrub(f"auth header was {echoed}", KEY)
    assert cleaned.rstrip("=") == f"auth header was {MASK}"


@pytest.mark.parametrize("before", ["", "x", "xy", "Authorization: Bearer ", '{"key": "'])
def test_key_inside_a_longer_base64_blob_is_scrubbed(before: str) -> None:
    # Whatever precedes the key shifts its base64 by 0, 1 or 2 bytes.
    blob = base64.b64encode(f'{before}{KEY}", "more": 1}}'.encode()).decode()
    cleaned = scrub(blob, KEY)
    assert MASK in cleaned
    # At most the few characters that also carry bits of the neighbours survive.
    assert len(cleaned) < len(blob) - len(KEY)


@pytest.mark.parametrize("change", [str.lower, str.upper, str.swapcase])
def test_server_echo_of_key_in_another_case_is_scrubbed(change: Callable[[str], str]) -> None:
    cleaned = scrub(f"key {change(KEY)} unknown", KEY)
    assert cleaned == f"key {MASK} unknown"


@pytest.mark.parametrize("length", [8, 9, 20, len(KEY) - 1])
def test_server_echo_of_key_cut_short_is_scrubbed(length: int) -> None:
    cleaned = scrub(f"bad key '{KEY[:length]}...'", KEY)
    assert cleaned == f"bad key '{MASK}...'"


def test_base64_echo_cut_short_is_scrubbed() -> None:
    echoed = base64.b64encode(KEY.encode()).decode()[:12]
    assert scrub(f"[{echoed}]", KEY) == f"[{MASK}]"


def test_seven_characters_of_the_key_are_left_alone() -> None:
    # Shorter runs would blank out ordinary text; only the whole secret is that short.
    assert scrub(f"prefix {KEY[:7]} seen", KEY) == f"prefix {KEY[:7]} seen"


def test_the_public_key_prefix_counts_as_an_echo() -> None:
    # "sk-or-v1" is the first 8 characters of every key: masked like any other start
    # of the key, which costs nothing (it is also in every key's public label).
    assert scrub("label sk-or-v1-abc...xyz", KEY) == f"label {MASK}abc...xyz"


def test_a_short_secret_is_scrubbed_only_whole() -> None:
    assert scrub("the sim-token is sim-tok", "sim-token") == f"the {MASK} is sim-tok"


def test_echo_after_a_false_start_is_scrubbed() -> None:
    # A first partial match must not hide a full echo that starts inside it.
    secret = "aaaaaaaab-secret"
    assert scrub(f"aa{secret}", secret) == f"{MASK}"
    assert scrub(f"xx aaaaaaaa {secret}", secret) == f"xx {MASK} {MASK}"


def test_several_secrets_and_echoes_in_one_text() -> None:
    other = "sk-or-v1-OTHER-0123456789"
    text = f"{KEY} and {other.upper()} and {base64.b64encode(KEY.encode()).decode()}"
    cleaned = scrub(text, KEY, other)
    assert cleaned.replace(MASK, "").replace("=", "").split() == ["and", "and"]


def test_text_without_the_secret_is_unchanged() -> None:
    text = "Rate limit exceeded: try again in 2s (sk-or-v2 keys are limited per account)"
    assert scrub(text, KEY) == text
    assert scrub(text) == text
    assert scrub(text, "") == text


def test_log_filter_scrubs_message_arguments_and_tracebacks() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    redaction = RedactingFilter()
    redaction.protect(KEY)
    handler.addFilter(redaction)
    logger = logging.getLogger("test_redact.library")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("Illegal header value b'Bearer %s'", KEY)
        try:
            raise ValueError(f"Illegal header value {KEY.lower()!r}")
        except ValueError:
            logger.exception("send_request_headers.failed")
        logger.warning("stack", stack_info=True, extra={"unused": KEY})
    finally:
        logger.removeHandler(handler)
    output = "\n".join(records)
    assert "Illegal header value b'Bearer ***'" in output
    assert "ValueError: Illegal header value '***'" in output
    assert not leaks(output)


def test_log_filter_without_secrets_passes_records_untouched() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("a",), None)
    assert RedactingFilter().filter(record)
    assert record.msg == "value %s" and record.args == ("a",)
