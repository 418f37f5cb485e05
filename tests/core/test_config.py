"""Settings from TOML and the environment: defaults, overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.core.config import (
    DEFAULT_BASE_URL,
    Secret,
    WorkspaceSpec,
    load_database_url,
    load_settings,
)
from etl.core.errors import ConfigError

KEY = {"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-config-test"}
UUID = "0df9e665-d932-5740-b2c7-b52af166bc11"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keyledger.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_environment_alone_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no keyledger.toml here
    settings = load_settings(env=KEY)
    assert settings.database_url == "sqlite:///keyledger.db"
    (account,) = settings.accounts
    assert account.management_key.reveal() == "sk-or-v1-config-test"
    assert account.workspaces is None  # every workspace the key can see
    assert account.client.base_url == DEFAULT_BASE_URL


def test_the_key_never_shows_in_repr() -> None:
    settings = load_settings(env=KEY)
    assert "sk-or-v1-config-test" not in repr(settings)
    assert "sk-or-v1-config-test" not in str(settings.accounts[0].management_key)


def test_defaults_have_no_rate_cap_and_an_adaptive_concurrency_ceiling() -> None:
    settings = load_settings(None, env=KEY)
    client = settings.accounts[0].client
    assert client.requests_per_second is None  # no cap: the pacer adapts to the server
    assert client.concurrency == 16  # the ceiling of the adaptive limit


def test_file_settings_and_environment_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
database_url = "sqlite:///from-file.db"
[openrouter]
base_url = "http://127.0.0.1:9/api/v1/"
workspaces = ["default", "{UUID}", {{id = "{UUID.upper()}", name = "prod"}}]
concurrency = 2
requests_per_second = 2.5
""",
    )
    settings = load_settings(path, env=KEY)
    (account,) = settings.accounts
    assert settings.database_url == "sqlite:///from-file.db"
    assert account.client.base_url == "http://127.0.0.1:9/api/v1"
    assert account.client.concurrency == 2 and account.client.requests_per_second == 2.5
    assert account.workspaces == (
        WorkspaceSpec("default"),
        WorkspaceSpec(UUID),
        WorkspaceSpec(UUID, "prod"),
    )
    env = KEY | {
        "KEYLEDGER_DATABASE_URL": "sqlite:///from-env.db",
        "OPENROUTER_BASE_URL": "https://x.test/api/v1",
    }
    overridden = load_settings(path, env=env)
    assert overridden.database_url == "sqlite:///from-env.db"
    assert overridden.accounts[0].client.base_url == "https://x.test/api/v1"
    assert (
        load_settings(path, env=env, database_url="sqlite:///cli.db").database_url
        == "sqlite:///cli.db"
    )


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "sqlite:///via-env.db"\n')
    assert load_database_url(env={"KEYLEDGER_CONFIG": str(path)}) == "sqlite:///via-env.db"


def test_several_accounts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[accounts]]
name = "team-a"
management_key_env = "KEY_A"
[[accounts]]
name = "team-b"
management_key_env = "KEY_B"
workspaces = ["{UUID}"]
""",
    )
    settings = load_settings(path, env={"KEY_A": "a", "KEY_B": "b"})
    assert [(a.name, a.management_key.reveal()) for a in settings.accounts] == [
        ("team-a", "a"),
        ("team-b", "b"),
    ]


def test_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-or-v1-from-file\n")
    key_file.chmod(0o600)
    path = write(tmp_path, f'[openrouter]\nmanagement_key_file = "{key_file}"\n')
    assert load_settings(path, env={}).accounts[0].management_key.reveal() == "sk-or-v1-from-file"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ('databse_url = "x"', KEY, "unknown setting 'databse_url' (a typo?)"),
        ('[openrouter]\nbase_ulr = "x"', KEY, "[openrouter] unknown setting 'base_ulr'"),
        ("database_url = 5", KEY, "'database_url' should be a non-empty string"),
        ('database_url = "not a url"', KEY, "'database_url' is not a database URL"),
        (
            '[openrouter]\nbase_url = "ftp://x"',
            KEY,
            "base_url should start with http:// or https://",
        ),
        (
            '[openrouter]\nconcurrency = "4"',
            KEY,
            "'[openrouter] concurrency' should be a positive whole number",
        ),
        ("[openrouter]\nconcurrency = 0", KEY, "should be a positive whole number, got 0"),
        ("[openrouter]\nrequests_per_second = -1", KEY, "should be a positive number"),
        (
            "[openrouter]\nrequests_per_second = 0",
            KEY,
            "'[openrouter] requests_per_second' should be a positive number (leave it out "
            "for no cap), got 0",
        ),
        ("[openrouter]\nrequests_per_second = nan", KEY, "should be a positive number"),
        (
            "[openrouter]\nconcurrency = 1000",
            KEY,
            "'[openrouter] concurrency' should be at most 256 (one thread and one "
            "connection each), got 1000",
        ),
        (
            '[openrouter]\nworkspaces = ["prod"]',
            KEY,
            "'prod' is not \"default\" or a workspace UUID",
        ),
        (
            '[openrouter]\nworkspaces = "some"',
            KEY,
            'workspaces should be "all" or a non-empty list',
        ),
        ("[openrouter]\nworkspaces = []", KEY, 'workspaces should be "all" or a non-empty list'),
        ('[openrouter]\nmanagement_key_env = "NOPE"', KEY, "environment variable NOPE is not set"),
        ("", {}, "environment variable OPENROUTER_MANAGEMENT_KEY is not set"),
        ("[openrouter", KEY, "not valid TOML"),
        ('[openrouter]\nmanagement_key_file = "/nonexistent/key"', {}, "cannot be read"),
    ],
)
def test_invalid_settings_are_one_line_naming_file_and_setting(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert "sk-or-v1-config-test" not in message


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-or-v1-from-file\n")
    key_file.chmod(0o644)
    path = write(tmp_path, f'[openrouter]\nmanagement_key_file = "{key_file}"\n')
    with pytest.raises(ConfigError, match="readable by other users; run: chmod o-r") as caught:
        load_settings(path, env={})
    assert "sk-or-v1-from-file" not in str(caught.value)


def test_missing_config_file_named_explicitly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env=KEY)


def test_bad_workspace_option() -> None:
    with pytest.raises(ConfigError, match="--workspace: workspace 'x' is not"):
        load_settings(env=KEY, workspaces=("x",))


BAD_KEY_CHARACTERS = {
    "line feed": ("\n", "a line break"),
    "carriage return": ("\r", "a line break"),
    "tab": ("\t", "a control character"),
    "NUL": ("\x00", "a control character"),
    "DEL": ("\x7f", "a control character"),
    "non-ASCII": ("é", "a non-ASCII character"),
    "no-break space": ("\u00a0", "a non-ASCII character"),
}


@pytest.mark.parametrize("name", list(BAD_KEY_CHARACTERS))
def test_key_that_cannot_be_sent_in_a_header_is_refused_naming_the_variable(name: str) -> None:
    char, kind = BAD_KEY_CHARACTERS[name]
    key = f"sk-or-v1-config{char}test-secret"
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"OPENROUTER_MANAGEMENT_KEY": key})
    message = str(caught.value)
    assert "environment variable OPENROUTER_MANAGEMENT_KEY holds " + kind in message
    assert "at character 16 of" in message
    assert "\n" not in message and "\r" not in message
    assert "sk-or-v1" not in message and "test-secret" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_key_file_with_a_second_line_is_refused_naming_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-or-v1-from-file\nsk-or-v1-old-key\n")
    key_file.chmod(0o600)
    path = write(tmp_path, f'[openrouter]\nmanagement_key_file = "{key_file}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    message = str(caught.value)
    assert message == (
        f"{path}: [openrouter] management_key_file {key_file} holds a line break at "
        "character 19 of 35, which cannot be sent in an HTTP header"
    )


def test_key_file_saved_with_a_byte_order_mark_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\ufeffsk-or-v1-from-file\n", encoding="utf-8")
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match=r"holds a byte-order mark .* at character 1 of"):
        load_settings(env={"OPENROUTER_MANAGEMENT_KEY_FILE": str(key_file)})


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\n\n", "  \n", ""])
def test_key_file_line_ending_and_surrounding_blanks_are_stripped(
    tmp_path: Path, ending: str
) -> None:
    # As before: editors add a final newline (CRLF on Windows); it is not part of the key.
    key_file = tmp_path / "key"
    key_file.write_bytes(f"  sk-or-v1-from-file{ending}".encode())
    key_file.chmod(0o600)
    settings = load_settings(env={"OPENROUTER_MANAGEMENT_KEY_FILE": str(key_file)})
    assert settings.accounts[0].management_key.reveal() == "sk-or-v1-from-file"


def test_key_with_an_inner_space_is_accepted() -> None:
    # A space can be sent in a header; whether the key is right is the API's to say.
    settings = load_settings(env={"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1 with space"})
    assert settings.accounts[0].management_key.reveal() == "sk-or-v1 with space"


def test_secret_refuses_a_value_it_could_not_send() -> None:
    with pytest.raises(ValueError, match="line break at character 3 of 5") as caught:
        Secret("xq\nzw")
    assert "xq" not in str(caught.value) and "zw" not in str(caught.value)


def test_clock_jump_limit_from_file_and_environment(tmp_path: Path) -> None:
    assert load_settings(env=KEY).accounts[0].client.max_clock_jump_days == 35
    path = write(tmp_path, "[openrouter]\nmax_clock_jump_days = 60\n")
    assert load_settings(path, env=KEY).accounts[0].client.max_clock_jump_days == 60
    env = {**KEY, "KEYLEDGER_MAX_CLOCK_JUMP_DAYS": "4000"}
    assert load_settings(path, env=env).accounts[0].client.max_clock_jump_days == 4000


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf", "nan"])
def test_bad_clock_jump_limit_in_the_environment_is_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={**KEY, "KEYLEDGER_MAX_CLOCK_JUMP_DAYS": value})
    message = str(caught.value)
    assert message.startswith("KEYLEDGER_MAX_CLOCK_JUMP_DAYS: 'max_clock_jump_days' should be")
    assert "\n" not in message


def test_workspace_concurrency_from_file_and_environment(tmp_path: Path) -> None:
    assert load_settings(env=KEY).accounts[0].client.workspace_concurrency == 4
    path = write(tmp_path, "[openrouter]\nworkspace_concurrency = 2\n")
    assert load_settings(path, env=KEY).accounts[0].client.workspace_concurrency == 2
    env = {**KEY, "KEYLEDGER_WORKSPACE_CONCURRENCY": "1"}
    assert load_settings(path, env=env).accounts[0].client.workspace_concurrency == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workspace_concurrency = 0", "should be a positive whole number, got 0"),
        ("workspace_concurrency = 2.5", "should be a positive whole number, got 2.5"),
        ("workspace_concurrency = 7", "should be at most 6 (each workspace in flight"),
    ],
)
def test_bad_workspace_concurrency_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, f"[openrouter]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=KEY)
    message = str(caught.value)
    assert message.startswith(f"{path}: '[openrouter] workspace_concurrency' ")
    assert expected in message and "\n" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("many", "a positive whole number, got 'many'"), ("0", "a positive"), ("9", "at most 6")],
)
def test_bad_workspace_concurrency_in_the_environment_is_one_line(
    value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={**KEY, "KEYLEDGER_WORKSPACE_CONCURRENCY": value})
    message = str(caught.value)
    assert message.startswith("KEYLEDGER_WORKSPACE_CONCURRENCY: 'workspace_concurrency' should be")
    assert expected in message and "\n" not in message


def test_settings_say_where_the_database_url_and_the_key_come_from(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "sqlite:///from-file.db"\n')
    assert load_settings(path, env=KEY).database_url_source == f"{path}: 'database_url'"
    from_env = load_settings(path, env={**KEY, "KEYLEDGER_DATABASE_URL": "sqlite:///e.db"})
    assert from_env.database_url_source == "environment variable KEYLEDGER_DATABASE_URL"
    from_option = load_settings(path, env=KEY, database_url="sqlite:///o.db")
    assert from_option.database_url_source == "--database-url"
    assert load_settings(env=KEY).database_url_source == "the default database_url"
    assert from_option.accounts[0].key_source == "environment variable OPENROUTER_MANAGEMENT_KEY"
