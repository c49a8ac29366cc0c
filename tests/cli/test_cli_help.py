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


def _paragraphs(name: str) -> list[str]:
    """The command's docstring, paragraph by paragraph, each with its whitespace collapsed."""
    doc = _commands()[name].callback.__doc__ or ""  # type: ignore[union-attr]
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc.strip())]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_paragraphs_are_not_broken_where_the_source_wrapped(name: str) -> None:
    """On a wide terminal each paragraph of a command's help is one line, in its own
    --help and (its first paragraph) in the command list: the docstring's line breaks,
    made at the source's width, used to show as breaks in mid-sentence."""
    wide = {"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    own = CliRunner().invoke(app, [name, "--help"], env=wide)
    listing = CliRunner().invoke(app, ["--help"], env=wide)
    assert own.exit_code == 0 and listing.exit_code == 0
    own_lines = [line.strip() for line in own.output.splitlines()]
    for paragraph in _paragraphs(name):
        if len(paragraph) < 200:  # fits one line of the panel
            assert paragraph in own_lines, (paragraph, own.output)
    first = _paragraphs(name)[0]
    listed = [line.strip("│ ") for line in listing.output.splitlines()]
    assert f"{name} {first}".replace(" ", "") in [x.replace(" ", "") for x in listed]
