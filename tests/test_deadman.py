"""The dead-man's pings against a real loopback server: the protocol, and failures that
stay warnings without the URL."""

from __future__ import annotations

import logging

import pytest

from etl.core.config import Secret
from etl.deadman import Pinger
from tests.ping_server import CHECK, ping_server, refused_url, silent_url


def test_start_and_finish_share_the_run_id_and_send_the_summary() -> None:
    with ping_server() as server, Pinger(Secret(server.url)) as pinger:
        assert pinger.start()
        assert pinger.finish(0, "sync: 2 workspaces ok\n")
    start, end = server.pings
    assert (start.method, start.path, start.body) == ("GET", f"/{CHECK}/start", "")
    assert (end.method, end.path, end.body) == ("POST", f"/{CHECK}/0", "sync: 2 workspaces ok\n")
    assert start.query["rid"] == end.query["rid"] == [pinger.run_id]


def test_the_exit_status_is_the_last_path_segment_and_a_query_is_kept() -> None:
    with ping_server() as server, Pinger(Secret(server.url + "?create=1")) as pinger:
        pinger.finish(3, "partial")
    (end,) = server.pings
    assert end.path == f"/{CHECK}/3"
    assert end.query == {"create": ["1"], "rid": [pinger.run_id]}


def test_overlapping_runs_get_different_run_ids() -> None:
    with ping_server() as server:
        first, second = Pinger(Secret(server.url)), Pinger(Secret(server.url))
        first.close()
        second.close()
    assert first.run_id != second.run_id


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_an_error_status_is_a_warning_naming_only_scheme_and_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ping_server(status=503) as server, Pinger(Secret(server.url)) as pinger:
        assert not pinger.start()
        port = server.server_address[1]
    (warning,) = _warnings(caplog)
    assert warning == f"ping http://127.0.0.1:{port}/... (start) failed: HTTP 503; the run goes on"


def test_a_refused_connection_is_a_warning_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = refused_url()
    with Pinger(Secret(url)) as pinger:
        assert not pinger.finish(1, "failed")
    (warning,) = _warnings(caplog)
    assert "ConnectError" in warning and "(1) failed" in warning
    assert CHECK not in caplog.text


def test_a_server_that_never_answers_times_out(caplog: pytest.LogCaptureFixture) -> None:
    with silent_url() as url, Pinger(Secret(url), timeout_seconds=0.2) as pinger:
        assert not pinger.start()
    (warning,) = _warnings(caplog)
    assert warning.endswith("(start) failed: no answer within 0.2s; the run goes on")
    assert CHECK not in caplog.text
