"""The wheel: built from this source tree, it holds every part and runs from anywhere.

`etl` and `models` are listed package by package in pyproject.toml (generic names, so
no `find`), which makes forgetting a new subpackage easy and silent: the source tree
still imports it, only the installed copy lacks it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import site
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# The migrations in alembic/ ship as this package (pyproject.toml's package-dir).
MIGRATIONS_PACKAGE = "keyledger_migrations"
MIGRATIONS_DATA = ("script.py.mako", "README")


def source_python_files() -> set[str]:
    """Every .py file the wheel must hold, as its path inside the wheel."""
    files = {
        path.relative_to(ROOT).as_posix()
        for part in ("etl", "models")
        for path in (ROOT / part).rglob("*.py")
    }
    files |= {
        f"{MIGRATIONS_PACKAGE}/{path.relative_to(ROOT / 'alembic').as_posix()}"
        for path in (ROOT / "alembic").rglob("*.py")
    }
    return files


def packages_in_source() -> set[str]:
    """The dotted name of every folder that holds Python code, as installed."""
    return {path.rsplit("/", 1)[0].replace("/", ".") for path in source_python_files()}


def listed_packages() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return set(tomllib.load(handle)["tool"]["setuptools"]["packages"])


def test_pyproject_lists_every_package_of_the_source_tree() -> None:
    source, listed = packages_in_source(), listed_packages()
    assert not source - listed, f"add to [tool.setuptools] packages: {sorted(source - listed)}"
    assert not listed - source, f"listed but not in the tree: {sorted(listed - source)}"


def build_wheel(into: Path) -> Path:
    """`pip wheel` of a fresh copy of the tree: building in place would leave build/
    behind, and setuptools packs whatever a stale build/lib still holds."""
    source = into / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "__pycache__", "*.db", "*.db-journal"
        ),
    )
    wheels = into / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", wheels],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("keyledger-*.whl")
    return wheel


def install_alone(wheel: Path, venv: Path) -> Path:
    """Install the wheel, and nothing else, into a new venv that borrows this test
    environment's dependencies (through a .pth file: no index, no downloads). Returns
    the venv's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Listed after the venv's own site-packages, so the wheel's etl and models come
    # first even where this environment has keyledger installed too.
    (Path(purelib) / "test-dependencies.pth").write_text("\n".join(site.getsitepackages()))
    return Path(purelib)


@pytest.mark.slow
def test_wheel_holds_every_part_and_runs_a_command_of_each(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = source_python_files() - shipped
    assert not missing, f"the wheel lacks {sorted(missing)}"
    for name in MIGRATIONS_DATA:
        assert f"{MIGRATIONS_PACKAGE}/{name}" in shipped

    venv = tmp_path / "venv"
    site_packages = install_alone(wheel, venv)
    elsewhere = tmp_path / "elsewhere"  # outside the source tree
    elsewhere.mkdir()
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done

    # Every package loads from the installed copy, not from the source tree (by its
    # folder). The migrations have no __init__.py: namespace packages, whose __path__
    # also lists a keyledger installed in the test environment (as CI installs it), after
    # the wheel's own copy; the first portion is the one imports use.
    packages = sorted(packages_in_source())
    loaded = run(
        venv / "bin" / "python",
        "-c",
        "import importlib, sys\n"
        "for name in sys.argv[1:]: print(list(importlib.import_module(name).__path__)[0])",
        *packages,
    ).stdout.split()
    assert len(loaded) == len(packages)
    assert all(Path(path).is_relative_to(site_packages) for path in loaded), loaded

    keyledger = venv / "bin" / "keyledger"
    assert "sync" in run(keyledger, "--help").stdout  # cli
    run(keyledger, "db", "upgrade", "--database-url", "sqlite:///upgraded.db")  # migrations
    with contextlib.closing(sqlite3.connect(elsewhere / "upgraded.db")) as upgraded:
        assert upgraded.execute("SELECT version_num FROM alembic_version").fetchone()
    demo = run(keyledger, "demo", "--database-url", "sqlite:///demo.db", "--nights", "2")
    # simulator, openrouter, sync and store: two simulated nights loaded
    assert demo.stdout.count("workspaces ok") == 2, demo.stdout
    report = run(keyledger, "report", "--database-url", "sqlite:///demo.db", "--days", "3")
    assert "Spend per workspace" in report.stdout  # reports
