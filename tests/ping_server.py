"""A healthchecks.io stand-in on a real loopback socket: records every ping it gets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The shape of a real ping URL: the check's UUID is the secret part.
CHECK = "4f7c1e2a-9b3d-4c8e-a1f0-5d6b7e8f9a0b"


@dataclass(frozen=True)
class Ping:
    method: str
    path: str
    query: dict[str, list[str]]
    body: str


class PingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.pings: list[Ping] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{CHECK}"


class _Handler(BaseHTTPRequestHandler):
    server: PingServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        parts = urlsplit(self.path)
        self.server.pings.append(Ping(self.command, parts.path, parse_qs(parts.query), body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads self.server.pings


@contextmanager
def ping_server(status: int = 200) -> Iterator[PingServer]:
    """A recording ping server answering every ping with ``status``."""
    server = PingServer(status)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def refused_url() -> str:
    """A ping URL on a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{CHECK}"


@contextmanager
def silent_url() -> Iterator[str]:
    """A ping URL whose server takes the connection and never answers (a timeout)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the kernel completes the handshake alone
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/{CHECK}"
