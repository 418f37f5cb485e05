"""Settings: the TOML file plus the environment, validated once, then frozen.

This is the only module that reads the environment. Every problem is reported as one
line naming the file (or variable), the setting and what is expected.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from etl.core.activity_settings import SETTINGS as ACTIVITY_SETTINGS
from etl.core.activity_settings import ActivitySettings, activity_settings
from etl.core.database_urls import driver_slip, url_slip
from etl.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_DATABASE_URL = "sqlite:///keyledger.db"
DEFAULT_KEY_ENV = "OPENROUTER_MANAGEMENT_KEY"
DEFAULT_CONFIG_FILE = "keyledger.toml"
DEFAULT_WORKSPACE = "default"


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks.

    It must be sendable in an HTTP header: a value with a line break, another control
    character or a non-ASCII character is refused here, before any request, because
    httpx would fail on it later with the whole header value in its error (retried,
    and logged at DEBUG) or with a long UnicodeEncodeError traceback.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        problem = header_problem(value)
        if problem is not None:
            raise ValueError(problem)  # the message describes the value, never quotes it
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is sent to the API."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent in an HTTP header, without quoting it; None if it can."""
    for position, char in enumerate(value, start=1):
        if char in "\r\n":
            kind = "a line break"
        elif char == "\ufeff":
            kind = "a byte-order mark (saved by some editors)"
        elif not char.isascii():
            kind = "a non-ASCII character"
        elif not char.isprintable():  # ASCII: 0x00-0x1F and DEL
            kind = "a control character"
        else:
            continue
        return (
            f"holds {kind} at character {position} of {len(value)}, which cannot be sent "
            "in an HTTP header"
        )
    return None


@dataclass(frozen=True)
class ClientSettings:
    """How keyledger talks to the management API of one account."""

    base_url: str = DEFAULT_BASE_URL
    # No cap by default: the client's pacer adapts to the server (etl/openrouter/pacing.py);
    # an operator may still set a ceiling of request starts per second.
    requests_per_second: float | None = None
    # The ceiling of the adaptive concurrency limit (which starts at 4).
    concurrency: int = 16
    timeout_seconds: float = 30.0
    max_attempts: int = 6
    retry_deadline_seconds: float = 300.0
    max_retry_after_seconds: float = 120.0
    max_pages: int = 100_000
    # How far past a workspace's last successful sync the server's clock may be before
    # the run is refused (etl/server_clock.py): a monthly cadence plus a few days.
    max_clock_jump_days: float = 35.0
    # How many of the account's workspaces load at once, each in its own transaction
    # (etl/workspace_pool.py); SQLite and dry runs load one at a time whatever this says.
    workspace_concurrency: int = 4


# Each workspace in flight holds two database connections (its lock and its
# transaction); SQLAlchemy's default pool gives 15, one of them the run's lock.
MAX_WORKSPACE_CONCURRENCY = 6


@dataclass(frozen=True)
class WorkspaceSpec:
    """A workspace named in the configuration: "default" or a UUID, with an optional name."""

    id: str
    name: str | None = None
    slug: str | None = None  # known only when listed through /workspaces


@dataclass(frozen=True)
class Account:
    """One management key and the workspaces it should sync (None = every workspace)."""

    name: str
    management_key: Secret = field(repr=False)
    workspaces: tuple[WorkspaceSpec, ...] | None
    client: ClientSettings
    # Where the key was read from ("environment variable X", "file P"): never the key.
    key_source: str = ""
    # GET /activity after the key sync (etl/activity_sync.py).
    activity: ActivitySettings = field(default_factory=ActivitySettings)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated."""

    database_url: str
    accounts: tuple[Account, ...]
    config_path: Path | None = None
    # Monitoring hooks of a sync run (etl/metrics.py, etl/deadman.py); the ping URL is
    # a secret (a healthchecks ping URL embeds its check's key).
    metrics_file: Path | None = None
    ping_url: Secret | None = field(default=None, repr=False)
    # Where database_url came from: "--database-url", an environment variable, the file.
    database_url_source: str = ""


# The ceiling an operator may give ``concurrency``: each place is a fetch thread and a
# connection, and no management API wants hundreds of requests at once from one key.
MAX_CONCURRENCY = 256

_CLIENT_NUMBERS: dict[str, type] = {
    "requests_per_second": float,
    "concurrency": int,
    "timeout_seconds": float,
    "max_attempts": int,
    "retry_deadline_seconds": float,
    "max_retry_after_seconds": float,
    "max_pages": int,
    "max_clock_jump_days": float,
    "workspace_concurrency": int,
}
_ACCOUNT_SETTINGS = frozenset(
    {"name", "base_url", "management_key_env", "management_key_file", "workspaces"}
    | set(_CLIENT_NUMBERS)
    | ACTIVITY_SETTINGS
)
_TOP_SETTINGS = frozenset({"database_url", "openrouter", "accounts", "metrics_file", "ping_url"})


def load_settings(
    config_path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
    workspaces: tuple[str, ...] = (),
    management_key: str | None = None,
    base_url: str | None = None,
    metrics_file: str | None = None,
    ping_url: str | None = None,
) -> Settings:
    """Build settings from the config file (if any), the environment and overrides
    (the command line's, or a Python caller's: ``management_key`` and ``base_url`` are
    for the one account of the short form and win over the file and the environment)."""
    env = os.environ if env is None else env
    path, data = _read_config(config_path, env)
    where = str(path) if path else "environment"
    url, url_source = _database_url(data, env, database_url, path)
    given = _Given(management_key, base_url)

    tables: list[tuple[str, Mapping[str, Any]]] = []
    if "openrouter" in data or "accounts" not in data:
        tables.append(("[openrouter]", _table(data.get("openrouter", {}), where, "[openrouter]")))
    accounts_data = data.get("accounts", [])
    if not isinstance(accounts_data, list):
        raise ConfigError(f"{where}: 'accounts' should be [[accounts]] tables")
    for index, table in enumerate(accounts_data):
        tables.append((f"[[accounts]] #{index + 1}", _table(table, where, "[[accounts]]")))
    if given.used() and len(tables) > 1:
        raise ConfigError(
            f"{where}: a management key or base URL given in code applies to one account, "
            f"but {len(tables)} are configured ([[accounts]]: set each one's in the file)"
        )
    accounts = []
    for position, (section, table) in enumerate(tables):
        accounts.append(_account(table, env, where, section, first=position == 0, given=given))
    if workspaces:
        chosen = tuple(_workspace(w, "--workspace", "workspace") for w in workspaces)
        accounts = [dataclasses.replace(a, workspaces=chosen) for a in accounts]
    return Settings(
        database_url=url,
        accounts=tuple(accounts),
        config_path=path,
        metrics_file=_metrics_file(data, env, metrics_file, where),
        ping_url=_ping_url(data, env, ping_url, where),
        database_url_source=url_source,
    )


def load_database_url(
    config_path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> str:
    """Only the database URL (for migrations: no management key needed)."""
    return load_database_url_and_source(config_path, env=env, database_url=database_url)[0]


def load_database_url_and_source(
    config_path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> tuple[str, str]:
    """The database URL and where it came from ("--database-url", a variable, the file)."""
    env = os.environ if env is None else env
    path, data = _read_config(config_path, env)
    return _database_url(data, env, database_url, path)


LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "KEYLEDGER_LOG_FORMAT"


def load_log_format(env: Mapping[str, str] | None = None) -> str | None:
    """The log format the environment asks for (``$KEYLEDGER_LOG_FORMAT``), None if unset."""
    env = os.environ if env is None else env
    value = env.get(LOG_FORMAT_ENV, "").strip().lower()
    if value and value not in LOG_FORMATS:
        raise ConfigError(
            f"environment: {LOG_FORMAT_ENV} is {env[LOG_FORMAT_ENV]!r}; use text or json"
        )
    return value or None


def _read_config(
    config_path: str | Path | None, env: Mapping[str, str]
) -> tuple[Path | None, dict[str, Any]]:
    path = _config_path(config_path, env)
    data = _read_toml(path) if path else {}
    for key in data:
        if key not in _TOP_SETTINGS:
            raise ConfigError(
                f"{path}: unknown setting '{key}' (a typo?); expected one of "
                f"{', '.join(sorted(_TOP_SETTINGS))}"
            )
    return path, data


def _database_url(
    data: Mapping[str, Any], env: Mapping[str, str], override: str | None, path: Path | None
) -> tuple[str, str]:
    """The URL, from the option, the environment, the file or the default (in that
    order), checked; an error names which of them it came from."""
    if override:
        url: Any = override
        source = "--database-url"
    elif env.get("KEYLEDGER_DATABASE_URL"):
        url, source = env["KEYLEDGER_DATABASE_URL"], "environment variable KEYLEDGER_DATABASE_URL"
    elif data.get("database_url") is not None:
        url, source = data["database_url"], f"{path}: 'database_url'"
    else:
        url, source = DEFAULT_DATABASE_URL, "the default database_url"
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{source} should be a non-empty string")
    _check_database_url(url.strip(), source)
    return url.strip(), source


def _config_path(explicit: str | Path | None, env: Mapping[str, str]) -> Path | None:
    chosen = explicit or env.get("KEYLEDGER_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _table(value: Any, where: str, section: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {section} should be a table")
    for key in value:
        if key not in _ACCOUNT_SETTINGS:
            raise ConfigError(
                f"{where}: {section} unknown setting '{key}' (a typo?); expected one of "
                f"{', '.join(sorted(_ACCOUNT_SETTINGS))}"
            )
    return value


def _string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{name}' should be a non-empty string")
    return value.strip()


def _check_database_url(url: str, source: str) -> None:
    from sqlalchemy.engine import make_url  # deferred: config stays cheap to import
    from sqlalchemy.exc import NoSuchModuleError

    slip = url_slip(url)
    if slip is not None:
        raise ConfigError(f"{source}: {slip}")
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError; the text may hold the URL
        raise ConfigError(
            f"{source} is not a database URL "
            "(expected e.g. sqlite:///keyledger.db or postgresql+psycopg://user@host/db)"
        ) from exc
    if parsed.host and "@" in parsed.host:
        # SQLAlchemy ends the password at its first '@' and takes the rest for the host:
        # the connection could only fail, and the driver's error would name that "host".
        raise ConfigError(
            f"{source} has an '@' in its password (or user name); write each '@' there as %40"
        )
    # Load the driver now: a missing one would otherwise end in a traceback at connect.
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigError(f"{source}: {driver_slip(parsed.drivername, None)}") from None
    except ImportError as exc:
        missing = exc.name or parsed.get_driver_name()
        raise ConfigError(f"{source}: {driver_slip(parsed.drivername, missing)}") from None


@dataclass(frozen=True)
class _Given:
    """Values a Python caller passed to load_settings (etl.api): they win over the file
    and the environment. Checked like the rest, and named as given in code."""

    management_key: str | None = None
    base_url: str | None = None

    def used(self) -> bool:
        return self.management_key is not None or self.base_url is not None


def _account(
    table: Mapping[str, Any],
    env: Mapping[str, str],
    where: str,
    section: str,
    *,
    first: bool,
    given: _Given = _Given(),
) -> Account:
    name = _string(table.get("name", "default"), where, f"{section} name")
    # Environment overrides belong to the short form: the first (usually only) account.
    overrides = env if first else {}
    if given.base_url is not None:
        base_url, base_where, base_name = given.base_url, "load_settings()", "base_url"
    else:
        base_url = overrides.get("OPENROUTER_BASE_URL") or table.get("base_url", DEFAULT_BASE_URL)
        base_where, base_name = where, f"{section} base_url"
    base_url = _string(base_url, base_where, base_name).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{base_where}: {base_name} should start with http:// or https://")
    numbers: dict[str, Any] = {}
    for key, kind in _CLIENT_NUMBERS.items():
        if key in table:
            numbers[key] = _positive(table[key], kind, where, f"{section} {key}")
    if numbers.get("concurrency", 0) > MAX_CONCURRENCY:
        raise ConfigError(
            f"{where}: '{section} concurrency' should be at most {MAX_CONCURRENCY} "
            f"(one thread and one connection each), got {numbers['concurrency']}"
        )
    jump = overrides.get("KEYLEDGER_MAX_CLOCK_JUMP_DAYS")
    if jump:
        numbers["max_clock_jump_days"] = _positive(
            _env_number(jump), float, "KEYLEDGER_MAX_CLOCK_JUMP_DAYS", "max_clock_jump_days"
        )
    if "workspace_concurrency" in numbers:
        _at_most(numbers["workspace_concurrency"], where, f"{section} workspace_concurrency")
    at_once = overrides.get("KEYLEDGER_WORKSPACE_CONCURRENCY")
    if at_once:
        name = "KEYLEDGER_WORKSPACE_CONCURRENCY"
        number = _positive(_env_whole_number(at_once), int, name, "workspace_concurrency")
        numbers["workspace_concurrency"] = _at_most(number, name, "workspace_concurrency")
    workspaces = _workspaces(table.get("workspaces", "all"), where, section)
    env_workspaces = overrides.get("KEYLEDGER_WORKSPACES")
    if env_workspaces:
        workspaces = tuple(
            _workspace(w.strip(), "KEYLEDGER_WORKSPACES", "workspace")
            for w in env_workspaces.split(",")
            if w.strip()
        )
    if given.management_key is not None:
        key = given.management_key.strip()
        if not key:
            raise ConfigError("load_settings(): management_key is empty")
        secret, key_source = _secret(key, "load_settings(): management_key"), "given in code"
    else:
        secret, key_source = _management_key(table, env, overrides, where, section)
    return Account(
        name=name,
        management_key=secret,
        workspaces=workspaces,
        client=ClientSettings(base_url=base_url, **numbers),
        key_source=key_source,
        activity=activity_settings(table, where, section),
    )


def _positive(value: Any, kind: type, where: str, name: str) -> float | int:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok or not value > 0:  # "not >" also refuses nan
        noun = "a positive whole number" if kind is int else "a positive number"
        hint = " (leave it out for no cap)" if name.endswith(" requests_per_second") else ""
        raise ConfigError(f"{where}: '{name}' should be {noun}{hint}, got {value!r}")
    return kind(value)  # type: ignore[no-any-return]


def _at_most(at_once: float | int, where: str, name: str) -> float | int:
    if at_once > MAX_WORKSPACE_CONCURRENCY:
        raise ConfigError(
            f"{where}: '{name}' should be at most {MAX_WORKSPACE_CONCURRENCY} (each "
            f"workspace in flight holds two database connections), got {at_once!r}"
        )
    return at_once


def _env_whole_number(value: str) -> int | str:
    """A whole number from an environment variable; the text itself when it is not one."""
    try:
        return int(value)
    except ValueError:
        return value


def _env_number(value: str) -> float | str:
    """A number from an environment variable; the text itself when it is not one (so
    the error names what was given)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def _workspaces(value: Any, where: str, section: str) -> tuple[WorkspaceSpec, ...] | None:
    if value == "all":
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f'{where}: {section} workspaces should be "all" or a non-empty list of '
            '"default", workspace UUIDs or {id = "<uuid>", name = "..."} tables'
        )
    specs = []
    for item in value:
        if isinstance(item, dict):
            unknown = set(item) - {"id", "name"}
            if unknown or "id" not in item:
                raise ConfigError(
                    f'{where}: {section} workspaces entries should be {{id = "<uuid>", '
                    'name = "..."}'
                )
            spec = _workspace(item["id"], where, f"{section} workspaces")
            label = item.get("name")
            specs.append(
                WorkspaceSpec(
                    spec.id, _string(label, where, "workspace name") if label is not None else None
                )
            )
        else:
            specs.append(_workspace(item, where, f"{section} workspaces"))
    return tuple(specs)


def _workspace(value: Any, where: str, name: str) -> WorkspaceSpec:
    if value == DEFAULT_WORKSPACE:
        return WorkspaceSpec(DEFAULT_WORKSPACE)
    try:
        return WorkspaceSpec(str(uuid.UUID(str(value))))
    except ValueError:
        raise ConfigError(
            f'{where}: {name} {str(value)[:60]!r} is not "default" or a workspace UUID'
        ) from None


def load_configured_workspaces(
    config_path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> dict[str, tuple[str, ...] | None]:
    """Per account name, the workspaces ("default" or UUIDs) its settings name, or None
    for ``workspaces = "all"``; read without any management key, for ``keyledger
    status``, which must tell a configured workspace that never synced."""
    env = os.environ if env is None else env
    path, data = _read_config(config_path, env)
    where = str(path) if path else "environment"
    tables: list[tuple[str, Any]] = []
    if "openrouter" in data or "accounts" not in data:
        tables.append(("[openrouter]", data.get("openrouter", {})))
    accounts = data.get("accounts", [])
    if not isinstance(accounts, list):
        raise ConfigError(f"{where}: 'accounts' should be [[accounts]] tables")
    tables.extend((f"[[accounts]] #{i + 1}", t) for i, t in enumerate(accounts))
    named: dict[str, tuple[str, ...] | None] = {}
    for position, (section, raw) in enumerate(tables):
        table = _table(raw, where, section)
        name = _string(table.get("name", "default"), where, f"{section} name")
        specs = _workspaces(table.get("workspaces", "all"), where, section)
        listed = env.get("KEYLEDGER_WORKSPACES") if position == 0 else None
        if listed:  # as for sync: the environment overrides the first account's list
            specs = tuple(
                _workspace(w.strip(), "KEYLEDGER_WORKSPACES", "workspace")
                for w in listed.split(",")
                if w.strip()
            )
        named[name] = None if specs is None else tuple(spec.id for spec in specs)
    return named


def _management_key(
    table: Mapping[str, Any],
    env: Mapping[str, str],
    overrides: Mapping[str, str],
    where: str,
    section: str,
) -> tuple[Secret, str]:
    """The key and where it was read from."""
    key_file = table.get("management_key_file") or overrides.get("OPENROUTER_MANAGEMENT_KEY_FILE")
    if key_file:
        path = Path(_string(key_file, where, f"{section} management_key_file"))
        return _read_key_file(path, where, section), f"file {path}"
    var = _string(
        table.get("management_key_env", DEFAULT_KEY_ENV), where, f"{section} management_key_env"
    )
    value = env.get(var, "").strip()
    if not value:
        raise ConfigError(
            f"{where}: {section} management key: environment variable {var} is not set "
            "(set it, or point management_key_file at a file holding the key)"
        )
    source = f"environment variable {var}"
    return _secret(value, f"{where}: {section} management key: {source}"), source


def _read_key_file(path: Path, where: str, section: str) -> Secret:
    try:
        mode = path.stat().st_mode
        if mode & stat.S_IROTH:
            raise ConfigError(
                f"{where}: {section} management_key_file {path} is readable by other users; "
                f"run: chmod o-r {path}"
            )
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{where}: {section} management_key_file {path} cannot be read: {exc.strerror}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: {section} management_key_file {path} is not text") from exc
    if not value:
        raise ConfigError(f"{where}: {section} management_key_file {path} is empty")
    return _secret(value, f"{where}: {section} management_key_file {path}")


def _secret(value: str, source: str) -> Secret:
    try:
        return Secret(value)
    except ValueError as exc:
        # from None: the chained ValueError adds nothing, and a traceback of it would
        # show the line that built the Secret, not the source to fix.
        raise ConfigError(f"{source} {exc}") from None


def _metrics_file(
    data: Mapping[str, Any], env: Mapping[str, str], override: str | None, where: str
) -> Path | None:
    source, value = _chosen(
        ("--metrics-file", override),
        ("KEYLEDGER_METRICS_FILE", env.get("KEYLEDGER_METRICS_FILE")),
        (where, data.get("metrics_file")),
    )
    if source is None:
        return None
    path = Path(_string(value, source, "metrics_file"))
    # Checked now, not after a long run: the file is written at its end.
    if not path.parent.is_dir():
        raise ConfigError(
            f"{source}: 'metrics_file' {path}: directory {path.parent} does not exist"
        )
    return path


def _ping_url(
    data: Mapping[str, Any], env: Mapping[str, str], override: str | None, where: str
) -> Secret | None:
    source, value = _chosen(
        ("--ping-url", override),
        ("KEYLEDGER_PING_URL", env.get("KEYLEDGER_PING_URL")),
        (where, data.get("ping_url")),
    )
    if source is None:
        return None
    # Never quoted in an error: the URL embeds the check's key.
    url = _string(value, source, "ping_url").rstrip("/")
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment
    except ValueError:
        ok = False
    if not ok or header_problem(url) is not None or " " in url:
        raise ConfigError(
            f"{source}: 'ping_url' should be an http:// or https:// URL such as "
            "https://hc-ping.com/<uuid> (without spaces or a #fragment)"
        )
    return Secret(url)


def _chosen(*candidates: tuple[str, Any]) -> tuple[str | None, Any]:
    """The first candidate given (an option, a variable, then the file), with its source."""
    for source, value in candidates:
        if value is not None and value != "":
            return source, value
    return None, None
