"""``keyledger simulate``: the bundled OpenRouter simulator as a standalone server."""

from __future__ import annotations

import re
import signal
import sys
import threading
from datetime import date
from types import FrameType

import click

from etl.simulator.server import SimulatorServer
from etl.simulator.service import (
    ACTIVITY_SKEW_MODES,
    ACTIVITY_STATUSES,
    RETRY_AFTER_MODES,
    Faults,
    Simulator,
)
from etl.simulator.world import World

_RATE = click.FloatRange(0.0, 1.0)
_COUNT = click.IntRange(min=0)


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--token",
    default="sim-token",
    show_default=True,
    envvar="KEYLEDGER_SIMULATOR_TOKEN",
    help="The management key the simulator accepts as its bearer token.",
)
@click.option("--seed", default=0, show_default=True, help="Seed for the world and the faults.")
@click.option(
    "--workspaces",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of workspaces (the first is the default workspace).",
)
@click.option(
    "--keys-per-workspace",
    default=50,
    show_default=True,
    type=_COUNT,
    help="Keys each workspace starts with.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delay added to every request, in milliseconds.",
)
@click.option(
    "--page-size",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Keys per GET /keys page (the real API uses 100).",
)
@click.option(
    "--rate-limit-rate", default=0.0, type=_RATE, help="Probability of a 429 per request."
)
@click.option(
    "--retry-after",
    default="seconds",
    show_default=True,
    type=click.Choice(RETRY_AFTER_MODES),
    help="Form of the Retry-After header on 429s (http-date follows the simulated clock).",
)
@click.option(
    "--retry-after-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Wait that Retry-After asks for.",
)
@click.option(
    "--error-rate",
    default=0.0,
    type=_RATE,
    help="Probability that a burst of 500/502/503/504 responses starts.",
)
@click.option(
    "--error-burst",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Consecutive 5xx responses in one burst.",
)
@click.option(
    "--garbled-error-rate",
    default=0.0,
    type=_RATE,
    help="Fraction of 5xx whose body is truncated JSON or an HTML page.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    type=_RATE,
    help="Probability of closing the connection without a response.",
)
@click.option(
    "--malformed-json-rate",
    default=0.0,
    type=_RATE,
    help="Probability that a GET /keys page or a GET /activity answer has an invalid JSON body.",
)
@click.option(
    "--schema-drift/--no-schema-drift",
    default=False,
    show_default=True,
    help="Add unknown fields to every key and to each page, as newer servers might.",
)
@click.option(
    "--drift-deletes-per-page",
    default=0,
    type=_COUNT,
    help="Keys of the workspace deleted right after each GET /keys page.",
)
@click.option(
    "--drift-creates-per-page",
    default=0,
    type=_COUNT,
    help="Keys created in the workspace right after each GET /keys page.",
)
@click.option("--ignore-offset", is_flag=True, help="Serve page 0 whatever offset is asked.")
@click.option(
    "--page-sizes",
    default="",
    callback=lambda ctx, param, value: _sizes(value),
    help="Sizes of successive GET /keys pages, cycled, e.g. 100,150,50,101,7 "
    "(default: --page-size for every page).",
)
@click.option(
    "--duplicate-key-rate",
    default=0.0,
    type=_RATE,
    help="Probability that a GET /keys page lists one of its keys twice, next to itself.",
)
@click.option(
    "--slow-rate",
    default=0.0,
    type=_RATE,
    help="Probability that a response is held back for --slow-seconds.",
)
@click.option(
    "--slow-seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a slow response is held back (set it past the client's timeout).",
)
@click.option(
    "--quota-rps",
    default=0.0,
    type=click.FloatRange(min=0),
    help="A request quota for the whole server: a token bucket refilled at this many "
    "requests per second, answering 429 with Retry-After when empty (0: off).",
)
@click.option(
    "--quota-burst",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Size of the quota's token bucket: requests allowed at once.",
)
@click.option(
    "--activity-skew",
    default="none",
    show_default=True,
    type=click.Choice(ACTIVITY_SKEW_MODES),
    help="Make GET /activity disagree with the key ledger on one day: the endpoint with the "
    "most usage that day is left out (missing) or doubled (doubled).",
)
@click.option(
    "--activity-skew-date",
    default="",
    callback=lambda ctx, param, value: _day(value),
    help="The UTC day (YYYY-MM-DD) --activity-skew changes (default: the last completed day).",
)
@click.option(
    "--activity-status",
    default=0,
    type=click.Choice([str(s) for s in (0, *ACTIVITY_STATUSES)]),
    callback=lambda ctx, param, value: int(value),
    help="Answer every GET /activity with this status and the contract's error body "
    "(0: serve it); the other endpoints are unaffected.",
)
def simulate(
    host: str,
    port: int,
    token: str,
    seed: int,
    workspaces: int,
    keys_per_workspace: int,
    latency_ms: float,
    page_size: int,
    **fault_options: object,
) -> None:
    """Serve a simulated OpenRouter management API until SIGINT or SIGTERM."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed first so a signal at any later point shuts down cleanly, without a traceback;
    # restored at the end because click may run this inside a longer-lived process.
    signals = (signal.SIGINT, signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, request_stop) for s in signals} if in_main_thread else {}
    try:
        faults = Faults()
        faults.update(fault_options)
        world = World(
            seed=seed,
            workspaces=workspaces,
            keys_per_workspace=keys_per_workspace,
            page_size=page_size,
        )
        simulator = Simulator(world, token=token, faults=faults, latency_ms=latency_ms, seed=seed)
        _serve(simulator, host, port, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _day(value: str) -> str:
    if value and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise click.BadParameter("a UTC day as YYYY-MM-DD")
    try:
        return value and date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter("a UTC day as YYYY-MM-DD") from None


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of integers, e.g. 100,150,7") from None
    if any(size < 1 for size in sizes):
        raise click.BadParameter("page sizes must be at least 1")
    return sizes


def _serve(simulator: Simulator, host: str, port: int, stop: threading.Event) -> None:
    try:
        server = SimulatorServer(simulator, host=host, port=port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with server:
        click.echo(server.base_url)
        sys.stdout.flush()
        click.echo(
            "simulator: control endpoints (same bearer token) POST /_sim/advance?seconds=N, "
            "POST /_sim/touch?fraction=F, GET /_sim/truth, GET /_sim/activity_truth, "
            "POST /_sim/late_usage?date=D&usage=U, GET /_sim/stats, "
            "GET|POST /_sim/faults; stop with Ctrl-C",
            err=True,
        )
        while not stop.wait(0.2):
            pass
