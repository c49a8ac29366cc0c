"""README's console examples are real output of the current code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```console\n\$ (.*?)\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
# Commands whose output is closed-form (training output varies with the machine's floats).
EXACT = [
    (cmd, out)
    for cmd, out in BLOCKS
    if cmd.split()[:2] in (["stabcli", "check"], ["stabcli", "presets"])
]


def test_readme_has_examples() -> None:
    assert len(EXACT) >= 3


@pytest.mark.parametrize(("command", "shown"), EXACT, ids=[c for c, _ in EXACT])
def test_readme_example_is_current_output(command: str, shown: str) -> None:
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    args = [sys.executable, "-m", "stabcli", *command.split()[1:]]
    got = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == shown.strip()
