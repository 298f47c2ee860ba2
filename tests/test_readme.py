"""README's two commands stay true: CI runs exactly the test command README gives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_gives_two_commands_and_ci_runs_them() -> None:
    run_cmd, test_cmd = _commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci
    assert "pytest" in test_cmd
    # the run command's orchestrator part is exercised by CI too
    assert run_cmd.split("&& ", 2)[2].removeprefix(".venv/bin/") in ci
