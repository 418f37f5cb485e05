"""The simulator on a real socket: a threading HTTP server on loopback.

``SimulatorServer`` serves ``Simulator.handle`` over HTTP/1.1 keep-alive, with the
simulated clock in every ``Date`` header; ``run_simulator`` builds a world and serves it
for the length of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from etl.simulator.service import API_PREFIX, Faults, Simulator
from etl.simulator.world import World


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked so stop() can end keep-alive connections that would outlive the server.
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (timeouts, drop tests); report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, framed by Content-Length
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _SimHTTPServer
    _sim_date: str | None = None

    def do_GET(self) -> None:
        """Serve GET."""
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        raw_path, _, query = self.path.partition("?")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = dict(self.headers.items())
        result = self.server.simulator.handle(self.command, unquote(raw_path), query, headers, body)
        if result.delay_seconds > 0:
            time.sleep(result.delay_seconds)
        if result.drop_connection:
            self.close_connection = True  # the socket closes with nothing written
            return
        self._sim_date = result.headers.get("Date")
        try:
            self.send_response(result.status)
        finally:
            self._sim_date = None
        for name, value in result.headers.items():
            if name != "Date":  # send_response already wrote it via date_time_string
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The simulated clock, which is what clients must file usage under."""
        if self._sim_date is not None:
            return self._sim_date
        return format_datetime(self.server.simulator.world.now, usegmt=True)

    def version_string(self) -> str:
        """Server header value."""
        return "keyledger-simulator"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: one line per request would drown benchmarks."""


class SimulatorServer:
    """A ``Simulator`` on a real socket, served from a background thread."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self._httpd = _SimHTTPServer((host, port), simulator)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful after asking for port 0)."""
        return int(self._httpd.socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:41234/api/v1``."""
        host = str(self._httpd.socket.getsockname()[0])
        host = "127.0.0.1" if host == "0.0.0.0" else host
        return f"http://{host}:{self.port}{API_PREFIX}"

    def start(self) -> SimulatorServer:
        """Start serving in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="keyledger-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._httpd.connections_lock:
            open_connections = list(self._httpd.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # the peer may have closed it already
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def run_simulator(
    *,
    seed: int = 0,
    workspaces: int = 2,
    keys_per_workspace: int = 50,
    token: str = "sim-token",
    latency_ms: float = 0,
    faults: Faults | None = None,
    page_size: int = 100,
) -> Iterator[SimulatorServer]:
    """Build a world, serve it on a free loopback port, and stop when the block ends."""
    world = World(
        seed=seed, workspaces=workspaces, keys_per_workspace=keys_per_workspace, page_size=page_size
    )
    simulator = Simulator(world, token=token, faults=faults, latency_ms=latency_ms, seed=seed)
    with SimulatorServer(simulator) as server:
        yield server
