"""The management key as a mounted secret file, laid out as docs/operations.md shows
it: a Kubernetes secret volume (the file a symlink into a timestamped folder) and a
systemd credential (a 0400 copy owned by the service user)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.core.config import load_settings
from etl.core.errors import ConfigError

KEY = "sk-or-v1-mounted-secret-0123456789"


def kubernetes_secret_volume(root: Path, mode: int) -> Path:
    """What the kubelet writes for a secret with ``defaultMode: mode``: the key file is
    ``management-key -> ..data/management-key``, ``..data -> ..<timestamp>``."""
    snapshot = root / "..2026_12_01_02_00_00.123456789"
    snapshot.mkdir()
    (snapshot / "management-key").write_text(KEY)  # kubectl create secret: no newline
    (snapshot / "management-key").chmod(mode)
    (root / "..data").symlink_to(snapshot.name)
    (root / "management-key").symlink_to("..data/management-key")
    return root / "management-key"


def test_a_kubernetes_secret_file_with_mode_0440_is_read(tmp_path: Path) -> None:
    key_file = kubernetes_secret_volume(tmp_path, 0o440)
    settings = load_settings(env={"OPENROUTER_MANAGEMENT_KEY_FILE": str(key_file)})
    assert settings.accounts[0].management_key.reveal() == KEY


def test_a_kubernetes_secret_file_with_the_default_mode_0644_is_refused(tmp_path: Path) -> None:
    key_file = kubernetes_secret_volume(tmp_path, 0o644)
    with pytest.raises(ConfigError, match="is readable by other users") as raised:
        load_settings(env={"OPENROUTER_MANAGEMENT_KEY_FILE": str(key_file)})
    assert KEY not in str(raised.value)


def test_a_systemd_credential_is_read(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials" / "keyledger.service"  # $CREDENTIALS_DIRECTORY
    credentials.mkdir(parents=True)
    (credentials / "openrouter-key").write_text(KEY + "\n")
    (credentials / "openrouter-key").chmod(0o400)
    env = {"OPENROUTER_MANAGEMENT_KEY_FILE": str(credentials / "openrouter-key")}
    assert load_settings(env=env).accounts[0].management_key.reveal() == KEY
