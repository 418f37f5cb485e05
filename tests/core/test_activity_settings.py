"""The activity settings of an account: defaults, both forms of activity_keys, and
one-line errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.core.activity_settings import ActivitySettings
from etl.core.config import load_settings
from etl.core.errors import ConfigError

ENV = {"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-activity-settings"}
HASH = "a" * 64


def settings_of(tmp_path: Path, text: str) -> ActivitySettings:
    path = tmp_path / "keyledger.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env=ENV).accounts[0].activity


def test_activity_is_on_with_two_refetch_days_and_no_per_key_by_default() -> None:
    activity = load_settings(env=ENV).accounts[0].activity
    assert activity == ActivitySettings(True, 2, (), 0, 100)
    assert not activity.per_key


def test_a_list_of_key_hashes_and_a_budget(tmp_path: Path) -> None:
    activity = settings_of(
        tmp_path,
        f'[openrouter]\nactivity_refetch_days = 3\nactivity_keys = ["{HASH}", "{HASH.upper()}"]\n'
        "activity_key_requests = 40\n",
    )
    assert activity == ActivitySettings(True, 3, (HASH,), 0, 40)  # the same key once
    assert activity.per_key


def test_top_n_keys(tmp_path: Path) -> None:
    activity = settings_of(tmp_path, "[openrouter]\nactivity_keys = { top = 5 }\n")
    assert (activity.key_hashes, activity.top_keys, activity.per_key) == ((), 5, True)


def test_each_account_has_its_own(tmp_path: Path) -> None:
    path = tmp_path / "keyledger.toml"
    path.write_text(
        '[[accounts]]\nname = "a"\nmanagement_key_env = "K"\nactivity = false\n'
        '[[accounts]]\nname = "b"\nmanagement_key_env = "K"\nactivity_keys = { top = 1 }\n',
        encoding="utf-8",
    )
    a, b = load_settings(path, env={"K": "sk-or-v1-x"}).accounts
    assert (a.activity.enabled, b.activity.enabled, b.activity.top_keys) == (False, True, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('activity = "yes"', "'[openrouter] activity' should be true or false, got 'yes'"),
        (
            "activity_refetch_days = 31",
            "'[openrouter] activity_refetch_days' should be a whole number from 0 to 30",
        ),
        (
            "activity_refetch_days = 1.5",
            "'[openrouter] activity_refetch_days' should be a whole number",
        ),
        (
            "activity_key_requests = 0",
            "'[openrouter] activity_key_requests' should be a positive whole number",
        ),
        (
            'activity_keys = ["not-a-hash"]',
            "'[openrouter] activity_keys' entry 'not-a-hash' is not a key hash",
        ),
        ("activity_keys = []", "'[openrouter] activity_keys' should be a non-empty list"),
        (
            "activity_keys = { top = 0 }",
            "'[openrouter] activity_keys' as a table should be { top = N }",
        ),
        (
            "activity_keys = { first = 3 }",
            "'[openrouter] activity_keys' as a table should be { top = N }",
        ),
        ("activity_key = 3", "unknown setting 'activity_key' (a typo?)"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, f"[openrouter]\n{line}\n")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
