"""The commands the README gives developers are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shell_lines(section: str) -> list[str]:
    """The lines of the sh blocks under a README heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [
        line for block in re.findall(r"```sh\n(.*?)```", body, re.S) for line in block.splitlines()
    ]


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    (command,) = shell_lines("Run the tests")
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_ci_runs_every_tool_the_readme_names() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in ci if not line.lstrip().startswith("#")]
    tools = [
        part.strip().removeprefix(".venv/bin/") for part in shell_lines("Develop")[-1].split("&&")
    ]
    assert len(tools) == 4, tools
    for tool in tools:
        assert any(command.endswith(tool) for command in commands), f".ci/run does not run {tool}"
