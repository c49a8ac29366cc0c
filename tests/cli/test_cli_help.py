"""Every command's --help shows its options' help text whole: rich markup must not swallow
a bracketed word such as the install hint ``pip install 'stabcli[ray]'``."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from stabcli.cli import app

BRACKETED = re.compile(r"(?<!\\)\[[^\]\s]+\]")  # [word] not escaped as \[word]


def _commands() -> dict[str, typer.main.click.Command]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_bracketed_words_in_option_help_survive_rendering(name: str) -> None:
    command = _commands()[name]
    wanted = [
        (param.name, word.replace("\\[", "["))
        for param in command.params
        for word in re.findall(r"\\?\[[^\]\s]+\]", getattr(param, "help", None) or "")
    ]
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    for param_name, word in wanted:
        assert word in flat, f"--help of {name} lost {word!r} from {param_name}'s help"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_no_unescaped_markup_like_brackets_in_option_help(name: str) -> None:
    """A bracketed word must be written \\[word] so rich prints it (it drops [word] tags)."""
    for param in _commands()[name].params:
        text = getattr(param, "help", None) or ""
        assert not BRACKETED.findall(text), f"{name} --{param.name}: escape {text!r}"
