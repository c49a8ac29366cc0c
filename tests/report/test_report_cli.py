"""``stabcli report`` through ``stabcli.cli.main``: outputs, partial runs and bad input."""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from synthetic_run import make_synthetic_run

import stabcli.cli as cli

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def stabcli_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Call ``stabcli.cli.main(args)``; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_run(tmp_path_factory.mktemp("cli") / "run", 6, 200, diverge_at=30)


@pytest.fixture(scope="module")
def partial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_run(
        tmp_path_factory.mktemp("cli") / "partial", 6, 200, finished=3, batch_size=3
    )


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stabcli: error: ")
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------ HTML
def test_html_is_written_self_contained_and_its_path_printed(
    stabcli_main: Run, run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    code, stdout, _ = stabcli_main("report", run_dir, "--html", "--out", out)
    assert code == 0
    assert stdout.strip() == str(out)
    text = out.read_text(encoding="utf-8")
    # plane, updates, rates, profiles, test loss, tensors (no point on a boundary)
    assert text.count("Plotly.newPlot(") == 6
    assert len(re.findall(r"\* plotly\.js v\d", text)) == 1  # the library is embedded once
    from plotly.offline import get_plotlyjs

    assert text.count(get_plotlyjs()) == 1
    page = text.replace(get_plotlyjs(), "").lower()  # the page around the library
    assert "<script src" not in page and "<link" not in page and "cdn.plot.ly" not in page
    assert "mathjax" not in page and "http://" not in page and "https://" not in page
    assert "partial run" not in text


def test_html_default_out_is_inside_the_run(stabcli_main: Run, run_dir: Path) -> None:
    code, stdout, _ = stabcli_main("report", run_dir, "--html")
    assert code == 0
    assert Path(stdout.strip()) == run_dir / "report.html"
    assert (run_dir / "report.html").stat().st_size > 1_000_000


def test_default_run_is_the_newest_under_runs(
    stabcli_main: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = make_synthetic_run(tmp_path / "runs" / "a", 3, 60)
    newer = make_synthetic_run(tmp_path / "runs" / "b", 3, 60)
    os.utime(older / "config.json", (time.time() - 100, time.time() - 100))
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = stabcli_main("report", "--html")
    assert code == 0
    assert Path(stdout.strip()).resolve() == (newer / "report.html").resolve()


# -------------------------------------------------------------------------- terminal
def test_terminal_summary_and_table(stabcli_main: Run, run_dir: Path) -> None:
    code, stdout, err = stabcli_main("report", run_dir)
    assert code == 0 and err == ""
    assert "6 points (complete)" in stdout
    assert "\npaper: " in stdout and "\nexact: " in stdout  # each theory's verdicts
    assert "rate ±95%" in stdout and "bounded" in stdout


def test_csv_and_markdown_exports(stabcli_main: Run, run_dir: Path, tmp_path: Path) -> None:
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    code, stdout, _ = stabcli_main("report", run_dir, "--csv", csv, "--markdown", md)
    assert code == 0 and stdout == ""
    table = pd.read_csv(csv)
    # CSV keeps points.csv's column names, for pipelines; Markdown is for people
    assert len(table) == 6
    assert {"beta", "gamma", "rate", "rate_low", "closer_theory"} <= set(table.columns)
    assert "| β | γ |" in md.read_text(encoding="utf-8")
    assert md.read_text(encoding="utf-8").count("\n") == 8
    code, stdout, _ = stabcli_main("report", run_dir, "--csv", "-")
    assert code == 0
    assert stdout.splitlines()[0].startswith("position,beta,gamma")


# --------------------------------------------------------------------------- partial
def test_partial_run_says_it_is_partial(
    stabcli_main: Run, partial_dir: Path, tmp_path: Path
) -> None:
    code, stdout, err = stabcli_main("report", partial_dir)
    assert code == 0
    assert "partial run: 3 of 6 points" in stdout
    assert "partial run: 3 of 6 points" in err  # also a note on stderr
    out = tmp_path / "p.html"
    code, stdout, _ = stabcli_main("report", partial_dir, "--html", "--out", out)
    assert code == 0
    text = out.read_text(encoding="utf-8")
    assert "id='partial'" in text and "partial run: 3 of 6 points finished" in text


def test_run_with_no_finished_point(stabcli_main: Run, tmp_path: Path) -> None:
    empty = make_synthetic_run(tmp_path / "empty", 4, 50, finished=0)
    code, _, _ = stabcli_main("report", empty, "--html")
    assert code == 0
    assert "partial run: 0 of 4" in (empty / "report.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------------- bad input
def _corrupt_points(run: Path) -> None:
    (run / "points.csv").write_bytes(b"\x00\xff garbage\n\x01,\x02\n")


def _corrupt_config(run: Path) -> None:
    (run / "config.json").write_text("{not json", encoding="utf-8")


def _truncate_parquet(run: Path) -> None:
    part = sorted((run / "traces").glob("*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])


def _non_numeric_beta(run: Path) -> None:
    points = pd.read_csv(run / "points.csv")
    points["beta"] = "x"
    points.to_csv(run / "points.csv", index=False)


def _state_is_a_list(run: Path) -> None:
    (run / "state.json").write_text(json.dumps([1, 2]), encoding="utf-8")


@pytest.mark.parametrize(
    "damage",
    [_corrupt_points, _corrupt_config, _truncate_parquet, _non_numeric_beta, _state_is_a_list],
    ids=["garbage-points", "garbage-config", "truncated-parquet", "bad-beta", "bad-state"],
)
def test_corrupt_run_is_one_line_exit_2(stabcli_main: Run, tmp_path: Path, damage) -> None:
    run = make_synthetic_run(tmp_path / "run", 3, 60)
    damage(run)
    for args in ((), ("--html",)):
        code, _, err = stabcli_main("report", run, *args)
        assert code == 2, err
        assert str(run) in _one_error_line(err) or "corrupt" in err
        assert not (run / "report.html").exists()


def test_no_run_found_and_not_a_run(
    stabcli_main: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = stabcli_main("report")
    assert code == 2 and "no run found" in _one_error_line(err)
    code, _, err = stabcli_main("report", tmp_path)
    assert code == 2 and "not a stabcli run directory" in _one_error_line(err)
    code, _, err = stabcli_main("report", tmp_path / "missing", "--html")
    assert code == 2 and "no run directory" in _one_error_line(err)


def test_unwritable_out_is_one_line_exit_2(stabcli_main: Run, run_dir: Path) -> None:
    code, _, err = stabcli_main("report", run_dir, "--out", "/proc/nope/r.html")
    assert code == 2 and "cannot write" in _one_error_line(err)


def test_report_help_is_registered_and_imports_no_pandas_or_plotly() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from stabcli.cli import main\n"
        "assert main(['report', '--help']) == 0\n"
        "assert not {'pandas', 'plotly', 'numpy'} & set(sys.modules), sorted(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: stabcli report" in proc.stdout and "--html" in proc.stdout


def test_two_tables_to_stdout_are_refused(stabcli_main: Run, run_dir: Path) -> None:
    code, stdout, err = stabcli_main("report", run_dir, "--csv", "-", "--markdown", "-")
    assert code == 2 and stdout == "" and "both write to stdout" in _one_error_line(err)


# ------------------------------------------------------------------ damaged but readable
def test_a_duplicated_row_counts_once(stabcli_main: Run, tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", 6, 60)
    lines = (run / "points.csv").read_text().splitlines()
    (run / "points.csv").write_text("\n".join([*lines, lines[2]]) + "\n")
    code, stdout, _ = stabcli_main("report", run)
    assert code == 0 and "6 points (complete)" in stdout
    code, stdout, _ = stabcli_main("report", run, "--csv", "-")
    assert len(pd.read_csv(io.StringIO(stdout))) == 6


def test_numerically_invalid_points_are_reported_as_such(stabcli_main: Run, tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", 6, 60)
    code, stdout, _ = stabcli_main("report", run)
    assert code == 0 and "numerically invalid" not in stdout and "invalid from" not in stdout
    points = pd.read_csv(run / "points.csv", dtype=str, keep_default_na=False)
    points.loc[5, "underflow_step"] = "20"  # as a float32 sweep records it
    points.to_csv(run / "points.csv", index=False)
    code, stdout, _ = stabcli_main("report", run)
    assert code == 0
    assert "numerically invalid: 1 point(s) from some step on" in stdout
    assert "float64's normal range" in stdout  # the synthetic run's dtype
    assert "invalid from" in stdout  # the column appears when a point has a value
    assert "above the bound" not in stdout


NEAR_ONE = [(0.999999, 0.9), (0.9999999, 0.9)]  # 5 or 6 significant digits read both as 1


@pytest.mark.parametrize("export", ["terminal", "markdown", "markdown-torch-order"])
def test_betas_near_one_stay_apart_from_one(stabcli_main: Run, tmp_path: Path, export: str) -> None:
    """Two points whose β differ only past the 6th digit are shown apart, and neither as 1."""
    order = "torch" if export.endswith("torch-order") else "paper"
    run = make_synthetic_run(
        tmp_path / "near1", 2, 120, kind="points", points=NEAR_ONE, order=order
    )
    if export == "terminal":
        code, out, _ = stabcli_main("report", run)
    else:
        code, out, _ = stabcli_main("report", run, "--markdown", "-")
    assert code == 0
    bars = r"[│┃]" if export == "terminal" else r"(?<!\\)\|"  # Markdown escapes |C|/2's bars
    rows = [[c.strip() for c in re.split(bars, line)] for line in out.splitlines()]
    header = next(r for r in rows if "β" in r or "torch beta2 (β)" in r)
    column = header.index("β" if "β" in header else "torch beta2 (β)")
    shown = [r[column] for r in rows if len(r) == len(header) and r is not header]
    shown = [cell for cell in shown if cell and not set(cell) <= set("-")]
    assert shown == [repr(beta) for beta, _ in NEAR_ONE], out


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("--csv", "points.csv"),
        ("--markdown", "config.json"),
        ("--out", "state.json"),
        ("--csv", "traces/extra.csv"),
    ],
    ids=["csv-over-points", "markdown-over-config", "html-over-state", "csv-into-traces"],
)
def test_an_export_never_replaces_a_file_the_run_keeps(
    stabcli_main: Run, tmp_path: Path, option: str, name: str
) -> None:
    """`report RUN --csv RUN/points.csv` replaced the run's results with the export's
    columns (the next sweep found them damaged and trained its points again)."""
    run = make_synthetic_run(tmp_path / "run", 3, 120)
    before = _tree(run)
    code, _, err = stabcli_main("report", run, option, run / name)
    assert code == 2
    assert "one of the run's own files" in _one_error_line(err)
    assert _tree(run) == before


@pytest.mark.parametrize(
    ("option", "name"),
    [("--csv", "notes.tex"), ("--markdown", "data.csv"), ("--out", "index.html")],
    ids=["csv-over-tex", "markdown-over-csv", "html-over-own-page"],
)
def test_an_export_never_replaces_a_users_file_of_another_kind(
    stabcli_main: Run, run_dir: Path, tmp_path: Path, option: str, name: str
) -> None:
    """`-o notes.tex` silently replaced a user's file with a page."""
    mine = tmp_path / name
    mine.write_text("precious")
    code, _, err = stabcli_main("report", run_dir, option, mine)
    assert code == 2
    assert "exists and is not" in _one_error_line(err)
    assert mine.read_text() == "precious"


@pytest.mark.parametrize(
    ("option", "name"),
    [("--csv", "points.csv"), ("--markdown", "points.md"), ("--out", "page.html")],
    ids=["csv", "markdown", "html"],
)
def test_the_same_export_twice_replaces_the_first(
    stabcli_main: Run, run_dir: Path, tmp_path: Path, option: str, name: str
) -> None:
    """README's `--csv points.csv` (in the working directory) run twice works both times."""
    target = tmp_path / name
    assert stabcli_main("report", run_dir, option, target)[0] == 0
    first = target.read_bytes()
    target.write_bytes(first)  # an earlier export, as left on disk
    assert stabcli_main("report", run_dir, option, target)[0] == 0
    assert target.read_bytes() == first
