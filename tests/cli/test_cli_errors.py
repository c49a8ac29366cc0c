"""What the command line does with input it cannot use and with its own bugs: one line on
stderr and a non-zero exit code, never a traceback (unless STABCLI_DEBUG asks for one)."""

from __future__ import annotations

from pathlib import Path

import pytest

import stabcli.theory.analysis
from stabcli.cli import main


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stabcli: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        pytest.param(["-0.5", "0.5"], "-0.5", id="negative-beta"),
        pytest.param(["0.5", "-0.5"], "-0.5", id="negative-gamma"),
        pytest.param(["0.5", "-inf"], "-inf", id="minus-inf"),
        pytest.param(["--", "0.5", "-1e-3"], "got -0.001", id="after-double-dash"),
    ],
)
def test_a_negative_beta_or_gamma_is_named_as_such(
    args: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Click reads "-0.5" as an option and says "No such option: -0"; the error names the
    value and the range instead."""
    code = main(["check", *args])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert "No such option" not in line
    assert shown in line
    assert "out of range" in line or "must be in" in line


def test_an_unknown_option_is_still_called_one(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "0.5", "0.5", "--bogus"])
    assert code == 2
    assert "No such option: --bogus" in _one_line(capsys.readouterr().err)


def _broken(*args: object, **kwargs: object) -> object:
    raise OverflowError("math range error")


def test_a_bug_is_one_line_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception that is not a user error (here an overflow inside the theory, as
    `check 1e-320 0.5` raised) ends in one line saying it is a bug, exit code 1."""
    monkeypatch.delenv("STABCLI_DEBUG", raising=False)
    monkeypatch.setattr(stabcli.theory.analysis, "analyze_point", _broken)
    code = main(["check", "0.5", "0.5"])
    line = _one_line(capsys.readouterr().err)
    assert code == 1
    assert "internal error (OverflowError: math range error)" in line
    assert "STABCLI_DEBUG=1" in line


def test_stabcli_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STABCLI_DEBUG", "1")
    monkeypatch.setattr(stabcli.theory.analysis, "analyze_point", _broken)
    with pytest.raises(OverflowError, match="math range error"):
        main(["check", "0.5", "0.5"])


def test_subnormal_beta_is_never_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """β = 1e-320 (subnormal) overflowed inside the exact bound: whatever the theory makes
    of it, the command ends in one line or in a normal output."""
    code = main(["check", "1e-320", "0.5"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code != 0:
        _one_line(captured.err)


def _ctrl_c(*args: object, **kwargs: object) -> object:
    raise KeyboardInterrupt


def test_ctrl_c_anywhere_is_one_line_with_exit_code_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typer turns a Ctrl-C into exit code 130 silently: the command said nothing."""
    monkeypatch.setattr(stabcli.theory.analysis, "analyze_point", _ctrl_c)
    code = main(["check", "0.5", "0.5"])
    assert code == 130
    assert _one_line(capsys.readouterr().err) == "stabcli: error: interrupted"


@pytest.mark.parametrize("figure", ["fig1", "all"])
def test_ctrl_c_in_reproduce_says_what_is_saved(
    figure: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """reproduce ended a Ctrl-C with exit code 130 and no word; sweep and kstudy say
    what is saved and that re-running resumes, and so does reproduce now."""
    import stabcli.reproduce.runner as runner

    monkeypatch.setattr(runner, "run_figure", _ctrl_c)
    monkeypatch.setattr(runner, "run_all", _ctrl_c)
    code = main(["reproduce", figure, "--scale", "test", "--out", str(tmp_path / "out")])
    line = _one_line(capsys.readouterr().err)
    assert code == 130
    assert f"saved in {tmp_path / 'out'}" in line and "re-run the same command" in line
