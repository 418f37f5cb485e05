"""The dead-man's switch: pings a healthchecks.io-style URL when a run starts and ends
(``--ping-url``, ``ping_url``, ``KEYLEDGER_PING_URL``).

The protocol (https://healthchecks.io/docs/http_api/): ``<url>/start`` at launch, then
``<url>/<exit status>`` at the end (0 is success) with the run's summary as the body;
both carry ``rid=<uuid>`` so the service tells overlapping runs apart and times each.
The monitor's job is to notice when the pings stop, so a ping is one short try: a
failing one (refused, timed out, an error status) is a warning, never a failed run,
and never changes the exit status.

The URL is a secret (it embeds the check's UUID or ping key): logs and errors show
``scheme://host/...`` only, and the CLI's log filter scrubs the whole URL from the
records of the HTTP library too.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from etl import __version__
from etl.core.config import Secret
from etl.core.redact import scrub, url_outline, url_secret

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
# healthchecks.io keeps the first 100 kB of a ping's body.
MAX_BODY_BYTES = 100_000


class Pinger:
    """The pings of one run, all sharing its run id."""

    def __init__(
        self,
        url: Secret,
        *,
        run_id: str | None = None,
        timeout_seconds: float = TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self._url = url
        self._shown = url_outline(url.reveal())
        self._timeout = timeout_seconds
        self._http = httpx.Client(
            timeout=timeout_seconds,
            headers={"User-Agent": f"keyledger/{__version__}"},
            transport=transport,
        )

    def __enter__(self) -> Pinger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._http.close()

    def start(self) -> bool:
        """Say the run has started; True when the service took the ping."""
        return self._ping("start", None)

    def finish(self, exit_code: int, summary: str) -> bool:
        """Say how the run ended, with its summary; True when the service took the ping."""
        body = summary.encode("utf-8")[:MAX_BODY_BYTES]
        return self._ping(str(exit_code), body)

    def _ping(self, signal: str, body: bytes | None) -> bool:
        url = _child(self._url.reveal(), signal, self.run_id)
        try:
            if body is None:
                response = self._http.get(url)
            else:
                response = self._http.post(
                    url,
                    content=body,
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
        except httpx.TimeoutException:
            self._warn(signal, f"no answer within {self._timeout:g}s")
            return False
        except httpx.HTTPError as exc:
            # httpx's messages may quote the URL: scrubbed, then the outline shown instead.
            self._warn(
                signal, scrub(f"{type(exc).__name__}: {exc}", url_secret(self._url.reveal()))
            )
            return False
        if response.status_code >= 400:
            self._warn(signal, f"HTTP {response.status_code}")
            return False
        return True

    def _warn(self, signal: str, problem: str) -> None:
        log.warning("ping %s (%s) failed: %s; the run goes on", self._shown, signal, problem)


def _child(url: str, signal: str, run_id: str) -> str:
    """``url`` with ``/signal`` added to its path and ``rid`` to its query, which keeps
    what it had (e.g. ``?create=1``: httpx's ``params`` would replace it)."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("rid", run_id)])
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + signal, query=query))
