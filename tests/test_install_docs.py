"""The README's install commands work from a fresh checkout: keyledger is not on a
package index, so every `pip install` there installs the source tree (or a file)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_install_targets(text: str) -> list[str]:
    """What each `pip install` line of the sh blocks in ``text`` installs."""
    targets = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            for command in re.split(r"&&|;", line.split("  #")[0]):
                words = shlex.split(command)
                if "pip" in {Path(w).name for w in words[:1]} and words[1:2] == ["install"]:
                    targets += [w for w in words[2:] if not w.startswith("-")]
    return targets


def test_the_readme_installs_keyledger_from_the_source_tree() -> None:
    targets = pip_install_targets((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(targets) >= 4, targets  # Try it, Run the tests, Develop, Use it
    for target in targets:
        assert target.startswith((".", "/")), f"{target!r} would be looked up on an index"
