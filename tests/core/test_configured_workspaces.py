"""The workspaces the settings name, read without any management key (for `status`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.core.config import load_configured_workspaces
from etl.core.errors import ConfigError

UUID_A = "6f1c6a2e-0d55-4b8e-9a43-5d6f9b1f2c01"
UUID_B = "0b7e0a52-3c1d-4e8f-8a27-2f9c4d6e1b02"


def test_no_settings_name_no_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./keyledger.toml: the environment alone
    assert load_configured_workspaces(None, env={}) == {"default": None}


def test_accounts_and_their_lists_without_any_key(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(
        "[[accounts]]\n"
        'name = "prod"\n'
        'management_key_env = "PROD_KEY_NOT_SET"\n'
        f'workspaces = ["default", {{id = "{UUID_A.upper()}", name = "a"}}]\n'
        "[[accounts]]\n"
        'name = "lab"\n'
        'workspaces = "all"\n'
    )
    assert load_configured_workspaces(config, env={}) == {
        "prod": ("default", UUID_A),
        "lab": None,
    }


def test_the_environment_overrides_the_first_account_as_for_sync() -> None:
    env = {"KEYLEDGER_WORKSPACES": f" {UUID_B} ,default,"}
    assert load_configured_workspaces(None, env=env) == {"default": (UUID_B, "default")}


def test_a_bad_workspace_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text('[openrouter]\nworkspaces = ["prod"]\n')
    with pytest.raises(ConfigError, match="'prod' is not \"default\" or a workspace UUID"):
        load_configured_workspaces(config, env={})
