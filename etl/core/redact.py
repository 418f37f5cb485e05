"""Scrub a secret out of text a server sent us, in every form it may be echoed.

A server (or a proxy in front of it) that quotes the request back may do so exactly,
URL-encoded, escaped in a repr or JSON string, base64-encoded (the key alone, or the
whole ``Bearer <key>`` header value, possibly inside a longer base64 blob), upper- or
lower-cased, or cut short.
``scrub`` replaces any run of text that is the start of one of those forms, at least
``MIN_ECHO`` characters long, with ``***``. It is pure: no logging, no state.

``RedactingFilter`` applies the same scrub to every log record a handler emits, so a
library logging at DEBUG (httpx, httpcore) cannot print the key either.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"
# Shorter echoes are not scrubbed (except the whole secret): eight characters of a key
# cut short tell an attacker little, and shorter needles would blank out ordinary words.
MIN_ECHO = 8


def echo_forms(secret: str) -> tuple[str, ...]:
    """The forms in which ``secret`` may come back (matched ignoring case)."""
    raw = secret.encode("utf-8")
    encoded: set[str] = {quote(secret, safe=""), quote_plus(secret)}
    # Quoted inside a repr (of the str, or of the header's bytes, as h11 errors do) or a
    # JSON string, a backslash or quote in the secret comes back escaped.
    encoded.update({repr(secret)[1:-1], repr(raw)[2:-1], json.dumps(secret)[1:-1]})
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded.add(encode(b"Bearer " + raw).decode("ascii").rstrip("="))
        # Inside a longer base64 text the secret starts at one of three byte
        # alignments; the leading characters that also carry bits of the unknown
        # bytes before it (2 for one byte, 3 for two) are dropped from the needle.
        for shift in range(3):
            text = encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
            encoded.add(text[shift + 1 :] if shift else text)
    encoded.discard(secret)
    # The secret itself is always a needle, however short; derived forms only when long
    # enough not to match by chance.
    return (secret, *sorted(form for form in encoded if len(form) >= MIN_ECHO))


def scrub(text: str, *secrets: str) -> str:
    """``text`` with every echo of each secret (see ``echo_forms``) replaced by ``***``."""
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        if secret:
            for form in echo_forms(secret):
                spans.extend(_echo_spans(text, form))
    if not spans:
        return text
    pieces, position = [], 0
    for start, end in _merged(spans):
        pieces.append(text[position:start])
        pieces.append(MASK)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _echo_spans(text: str, form: str) -> Iterable[tuple[int, int]]:
    """Where ``text`` holds a prefix of ``form`` of at least ``MIN_ECHO`` characters
    (the whole form when it is shorter), case ignored; each as long as it goes."""
    head_length = min(MIN_ECHO, len(form))
    head = re.compile(re.escape(form[:head_length]), re.IGNORECASE | re.ASCII)
    # Searching again from one past each hit's start, not from its end, finds an echo
    # that begins inside a shorter false start ("aaaaaaaa" before "aaaaaaaab").
    found = head.search(text)
    while found is not None:
        end, matched = found.end(), head_length
        while (
            matched < len(form) and end < len(text) and text[end].lower() == form[matched].lower()
        ):
            end, matched = end + 1, matched + 1
        yield found.start(), end
        found = head.search(text, found.start() + 1)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs the secrets it is given from every record it passes.

    Installed on a handler (not a logger), it also sees the records of library loggers
    that propagate to that handler. Records are rewritten in place and never dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []

    def protect(self, secret: str) -> None:
        """Scrub ``secret`` from every record from now on."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, traceback and stack without the secrets."""
        if not self._secrets:
            return True
        message = record.getMessage()
        cleaned = scrub(message, *self._secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatted here, as the handler's formatter would, so the traceback text
            # (exception messages hold header values) can be scrubbed before output.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, *self._secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, *self._secrets)
        return True


def url_outline(url: str) -> str:
    """``scheme://host/...``: all of a secret URL that may be shown (its path and query
    hold the key of a healthchecks check, say); the port is kept, user info never."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{f':{port}' if port else ''}/..."


def url_secret(url: str) -> str:
    """The part of a secret URL to scrub from logs: its path and query (where a ping
    URL keeps its key), not the scheme and host, which other URLs share."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    secret = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    return secret or url
