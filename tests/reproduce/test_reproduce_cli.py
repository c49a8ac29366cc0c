"""`stabcli reproduce`: the list, one figure into its directory (assessment.json and
figure.html), resume without recomputing, --overwrite, `all` past a failing figure with
its summary, the paper scale refused without a GPU, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import stabcli.reproduce.figures as figures
import stabcli.reproduce.runner as runner
from stabcli.cli import main
from stabcli.reproduce.assessment import Assessment
from stabcli.reproduce.figures import Figure, FigureContext, FigureOutcome

FAKE = "stabcli_test_fake_figures"


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["reproduce", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Three registered figures of a fake module: one that holds (counting its runs), one
    that raises a bug, one that does not hold; the real registry is set aside."""
    calls = {"good": 0}

    def good(ctx: FigureContext) -> FigureOutcome:
        calls["good"] += 1
        (ctx.out / "data").mkdir(parents=True, exist_ok=True)
        return FigureOutcome(Assessment("claim g.", f"measured at {ctx.scale}", True), ())

    def broken(ctx: FigureContext) -> FigureOutcome:
        raise RuntimeError("injected failure")

    def fails(ctx: FigureContext) -> FigureOutcome:
        return FigureOutcome(Assessment("claim f.", "measured f", False), ())

    module = types.ModuleType(FAKE)
    module.good, module.broken, module.fails = good, broken, fails  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, FAKE, module)
    registry = (
        Figure("good", "Good", "arXiv 1 §1", "holds.", 0.1, False, FAKE, "good"),
        Figure("broken", "Broken", "arXiv 1 §2", "breaks.", 0.1, False, FAKE, "broken"),
        Figure("fails", "Fails", "arXiv 1 §3", "fails.", 0.1, True, FAKE, "fails"),
    )
    monkeypatch.setattr(figures, "FIGURES", registry)
    monkeypatch.setattr(figures, "BY_NAME", {f.name: f for f in registry})
    return calls


def test_list_shows_every_figure_with_its_minutes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # a plain terminal: names and minutes stay whole
    code, out, err = _cli(["--list"], capsys)
    assert code == 0 and err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    rows = [line.split("│") for line in out.splitlines() if line.startswith("│ ")]
    firsts = [cells[1].strip() for cells in rows if cells[1].strip()]
    for f in figures.FIGURES:
        assert f.name in firsts  # on one line, never wrapped
        assert f"{f.cpu_minutes:g}" in [cells[2].strip() for cells in rows]
        if len(f.paper_ref) <= 40:  # the source has most of the width: short ones stay whole
            assert f.paper_ref in out
    assert "all --scale cpu: about" in out


def test_a_figure_writes_its_record_and_page_then_resumes(
    fake: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(["good", "--scale", "test", "--out", str(tmp_path)], capsys)
    assert code == 0 and fake["good"] == 1
    record = json.loads((tmp_path / "good" / "assessment.json").read_text())
    assert record["held"] is True and record["verdict"] == "held"
    assert record["scale"] == "test" and record["measured"] == "measured at test"
    assert record["claim"] == "claim g." and record["seconds"] >= 0
    assert {"stabcli", "python"} <= set(record["versions"])
    page = (tmp_path / "good" / "figure.html").read_text()
    assert "claim g." in page and "measured at test" in page
    first = (tmp_path / "good" / "assessment.json").stat().st_mtime_ns
    code, out, _ = _cli(["good", "--scale", "test", "--out", str(tmp_path)], capsys)
    assert code == 0 and fake["good"] == 1  # not run again
    assert "not run again" in out
    assert (tmp_path / "good" / "assessment.json").stat().st_mtime_ns == first


def test_overwrite_runs_a_finished_figure_again_and_keeps_other_data(
    fake: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli(["good", "--scale", "test", "--out", str(tmp_path)], capsys)
    keep = tmp_path / "mine.txt"
    keep.write_text("user data")
    code, _, _ = _cli(["good", "--scale", "test", "--out", str(tmp_path), "--overwrite"], capsys)
    assert code == 0 and fake["good"] == 2
    assert keep.read_text() == "user data" and (tmp_path / "good" / "data").is_dir()


def test_another_scale_in_a_finished_directory_is_refused(
    fake: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli(["good", "--scale", "test", "--out", str(tmp_path)], capsys)
    code, _, err = _cli(["good", "--scale", "cpu", "--out", str(tmp_path)], capsys)
    assert code == 2 and fake["good"] == 1
    assert err.count("\n") == 1 and "at --scale test" in err


def test_all_continues_past_a_failing_figure_and_writes_the_summary(
    fake: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(["all", "--scale", "test", "--out", str(tmp_path)], capsys)
    assert code == 1  # a figure failed
    assert "Traceback" not in out + err
    summary = json.loads((tmp_path / "summary.json").read_text())
    verdicts = {row["figure"]: row["verdict"] for row in summary["figures"]}
    assert verdicts == {"good": "held", "broken": "failed", "fails": "not held"}
    broken = next(r for r in summary["figures"] if r["figure"] == "broken")
    assert "RuntimeError: injected failure" in broken["measured"]
    table = (tmp_path / "summary.md").read_text()
    assert "| good |" in table and "| broken |" in table and "| fails |" in table
    assert (tmp_path / "fails" / "assessment.json").is_file()
    assert not (tmp_path / "broken" / "assessment.json").exists()


def test_paper_scale_is_refused_without_a_gpu_unless_cpu_is_forced(
    fake: dict[str, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "has_gpu", lambda: False)
    code, out, err = _cli(["fails", "--scale", "paper", "--out", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "needs a GPU" in err and "--device cpu" in err
    code, _, _ = _cli(
        ["fails", "--scale", "paper", "--device", "cpu", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    record = json.loads((tmp_path / "fails" / "assessment.json").read_text())
    assert record["scale"] == "paper"
    # a figure that trains no nanoGPT runs at paper scale on a CPU
    code, _, _ = _cli(["good", "--scale", "paper", "--out", str(tmp_path)], capsys)
    assert code == 0


def test_a_figure_without_a_paper_setup_refuses_the_paper_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(["fig5", "--scale", "paper", "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "has no paper scale here" in err
    assert not (tmp_path / "fig5").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fig99"], "unknown figure 'fig99'; expected one of: fig1, fig2"),
        (["fig1", "--scale", "huge"], "unknown scale 'huge'"),
        ([], "give a figure"),
    ],
    ids=["unknown-figure", "unknown-scale", "no-figure"],
)
def test_bad_input_is_one_line_with_exit_code_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli([*args, "--out", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err
