"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's KEYLEDGER_* or OPENROUTER_* settings."""
    for name in list(os.environ):
        if name.startswith(("KEYLEDGER_", "OPENROUTER_")) and not name.startswith(
            "KEYLEDGER_TEST_"
        ):
            monkeypatch.delenv(name)
