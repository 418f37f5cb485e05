"""The usual slips in a database URL, each answered with what to write instead.

A wrong scheme or a missing driver otherwise ends deep inside SQLAlchemy (a
``NoSuchModuleError``, ``No module named 'MySQLdb'``) with a long traceback. Here each
slip becomes one line; ``etl.core.config`` puts in front of it where the URL came from.
No answer quotes a password: a server URL is named by its scheme only, and only SQLite
URLs and bare paths (which carry none) are quoted whole.
"""

from __future__ import annotations

import difflib

POSTGRES_URL = "postgresql+psycopg://USER@HOST/DATABASE"
MYSQL_URL = "mysql+pymysql://USER@HOST/DATABASE"
# The backends keyledger ships drivers for, as a new user would write each.
_SHIPPED = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
# What the pip extra installs, per driver keyledger knows.
_INSTALL = {
    "psycopg": 'pip install "keyledger[postgres]" (or pip install "psycopg[binary]")',
    "pymysql": 'pip install "keyledger[mysql]" (or pip install PyMySQL)',
}


def url_slip(url: str) -> str | None:
    """What is wrong with ``url`` and what to write instead; None when it looks right.

    Checks the text only (scheme, slashes); ``driver_slip`` checks the driver.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        if _looks_like_a_path(url):
            return f"{url!r} is a file path, not a database URL: write sqlite:///{url}"
        return None  # make_url refuses it, in config's words
    backend = scheme.lower().partition("+")[0]
    if backend in ("postgres", "pgsql", "psql", "pg"):
        return (
            f"'{scheme}://' is not a SQLAlchemy scheme: write postgresql+psycopg://... "
            "(the rest unchanged)"
        )
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        close = difflib.get_close_matches(backend, list(_SHIPPED), n=1, cutoff=0.6)
        if close:
            shown = rest if close[0] == "sqlite" else "..."  # a SQLite URL holds no password
            return f"unknown scheme '{scheme}://' (a typo?): write {_SHIPPED[close[0]]}://{shown}"
        return None  # another SQLAlchemy backend: driver_slip judges it
    if backend == "sqlite" and rest and not rest.startswith("/"):
        # sqlite://x.db reads "x.db" as a host: SQLAlchemy refuses it, or opens memory.
        return (
            f"sqlite://{rest} has two slashes: write sqlite:///{rest} "
            f"(three for a relative path, four for an absolute one: sqlite:////abs/{rest})"
        )
    return None


def _looks_like_a_path(text: str) -> bool:
    """A bare file name or path (``sim.db``, ``data/ledger.sqlite``), not any word: it
    may not hold what a server URL would (a password after ':' or before '@')."""
    if any(char.isspace() for char in text) or "@" in text or ":" in text:
        return False
    return "/" in text or text.lower().endswith((".db", ".sqlite", ".sqlite3"))


def driver_slip(scheme: str, missing_module: str | None) -> str:
    """The line for a URL whose driver cannot be loaded.

    ``missing_module`` is the module the import failed on (None when SQLAlchemy has no
    dialect of that name at all).
    """
    backend, _, driver = scheme.lower().partition("+")
    if missing_module is None:
        return (
            f"'{scheme}://' names no database driver SQLAlchemy knows: write "
            f"sqlite:///keyledger.db, {POSTGRES_URL} or {MYSQL_URL}"
        )
    if backend == "postgresql" and driver != "psycopg":
        return (
            f"'{scheme}://' needs the {missing_module} driver, which is not installed: "
            "write postgresql+psycopg://... (keyledger's PostgreSQL driver)"
        )
    if backend in ("mysql", "mariadb") and driver != "pymysql":
        return (
            f"'{scheme}://' needs the {missing_module} driver, which is not installed: "
            f"write {backend}+pymysql://... (keyledger's MySQL/MariaDB driver)"
        )
    install = _INSTALL.get(driver, f"install the Python package {missing_module}")
    return f"the {driver or backend} driver is not installed: {install}"
