"""The monitoring settings: metrics_file and ping_url from option, environment or file,
and the ping URL kept secret (never in repr, errors or the outline logs show)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.core.config import load_settings
from etl.core.errors import ConfigError
from etl.core.redact import scrub, url_outline, url_secret

KEY = {"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-config-test"}
PING = "https://hc-ping.com/4f7c1e2a-9b3d-4c8e-a1f0-5d6b7e8f9a0b"


def test_neither_is_set_by_default() -> None:
    settings = load_settings(env=KEY)
    assert settings.metrics_file is None and settings.ping_url is None


def test_the_option_beats_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(
        f'metrics_file = "{tmp_path}/file.prom"\nping_url = "{PING}/file"\n', encoding="utf-8"
    )
    from_file = load_settings(config, env=KEY)
    assert from_file.metrics_file == tmp_path / "file.prom"
    assert from_file.ping_url is not None and from_file.ping_url.reveal() == f"{PING}/file"
    env = KEY | {"KEYLEDGER_METRICS_FILE": f"{tmp_path}/env.prom", "KEYLEDGER_PING_URL": PING}
    from_env = load_settings(config, env=env)
    assert from_env.metrics_file == tmp_path / "env.prom"
    assert from_env.ping_url is not None and from_env.ping_url.reveal() == PING
    chosen = load_settings(
        config, env=env, metrics_file=f"{tmp_path}/opt.prom", ping_url=f"{PING}/opt/"
    )
    assert chosen.metrics_file == tmp_path / "opt.prom"
    assert chosen.ping_url is not None and chosen.ping_url.reveal() == f"{PING}/opt"


def test_the_ping_url_never_shows_in_repr() -> None:
    settings = load_settings(env=KEY | {"KEYLEDGER_PING_URL": PING})
    assert "4f7c1e2a" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "hc-ping.com/4f7c1e2a-9b3d",
        "ftp://hc-ping.com/4f7c1e2a",
        "https:///4f7c1e2a",
        "https://h/4f7c1e2a#x",
    ],
)
def test_a_bad_ping_url_is_one_line_that_does_not_quote_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=KEY | {"KEYLEDGER_PING_URL": url})
    assert str(caught.value).startswith("KEYLEDGER_PING_URL: 'ping_url' should be an http://")
    assert "4f7c1e2a" not in str(caught.value)


def test_a_metrics_file_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"directory .*nowhere does not exist"):
        load_settings(env=KEY | {"KEYLEDGER_METRICS_FILE": f"{tmp_path}/nowhere/k.prom"})


def test_the_outline_shows_scheme_host_and_port_only() -> None:
    assert url_outline(PING) == "https://hc-ping.com/..."
    assert url_outline("http://user:pw@127.0.0.1:8000/ping/key/slug?x=1") == (
        "http://127.0.0.1:8000/..."
    )
    assert url_outline("not a url") == "***"


def test_scrubbing_the_secret_part_keeps_other_urls_readable() -> None:
    secret = url_secret(PING + "?create=1")
    assert secret == "4f7c1e2a-9b3d-4c8e-a1f0-5d6b7e8f9a0b?create=1"
    line = f"GET {PING}/start?rid=1 and GET https://openrouter.ai/api/v1/keys"
    assert scrub(line, secret) == (
        "GET https://hc-ping.com/***/start?rid=1 and GET https://openrouter.ai/api/v1/keys"
    )
