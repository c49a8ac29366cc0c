"""The report of k-Adam, HyperAdam, MADA and monitored runs, of regions typed in PyTorch's
order, and the comparison of runs (``--compare``), tested on their info (Optuna style):
every value drawn against a second formulation computed here from the run's own files.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from synthetic_run import K, level_pair, make_synthetic_run, monitored_run

from stabcli.cli import main
from stabcli.errors import StabcliError
from stabcli.report import build_figures, get_summary, get_table, load_run, render_html
from stabcli.report.compare import (
    LAST_STEPS,
    _get_compare_info,
    compare_table,
    plot_compare,
)
from stabcli.report.levels import _get_levels_info, get_level_table, plot_levels
from stabcli.report.load import RunData
from stabcli.report.paths import _get_paths_info, plot_paths
from stabcli.report.plane import _get_plane_info
from stabcli.report.terminal import render_run
from stabcli.report.updates import _get_updates_info, plot_updates
from stabcli.theory.exact import exact_bound
from stabcli.theory.path import first_unstable_step, path_bound

STEPS = 600
#: Points of the listed regions: B+ defaults, one near γ² = β, one deep in γ² > β.
POINTS = [(0.999, 0.9), (0.99, 0.95), (0.95, 0.97), (0.9, 0.94)]


def _synthetic(tmp: Path, name: str, **kwargs: object) -> RunData:
    options: dict[str, object] = {"kind": "points", "points": POINTS, "eval_every": None}
    return load_run(make_synthetic_run(tmp / name, len(POINTS), STEPS, **(options | kwargs)))


@pytest.fixture(scope="module")
def kadam(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return _synthetic(tmp_path_factory.mktemp("report"), "kadam", optimizer="kadam")


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return _synthetic(tmp_path_factory.mktemp("report"), "hyperadam", optimizer="hyperadam")


def _trace(run: RunData, pid: str) -> pd.DataFrame:
    return run.traces[run.traces["point_id"] == pid].sort_values("step")


# ------------------------------------------------------------------------------ k-Adam
def test_levels_info_draws_each_level_against_its_own_bound(kadam: RunData) -> None:
    info = _get_levels_info(kadam.points, kadam.traces)
    assert len(info.levels) == K and all(len(level) == len(POINTS) for level in info.levels)
    for i, level in enumerate(info.levels, start=1):
        for line, (_, row) in zip(level, kadam.points.iterrows(), strict=True):
            lb, lg = level_pair(row["beta"], row["gamma"])  # App. P, computed here
            np.testing.assert_allclose(line.bound.y, exact_bound(lb, lg, line.bound.x.astype(int)))
            recorded = _trace(kadam, line.point_id).set_index("step")[f"max_update_l{i}"]
            np.testing.assert_array_equal(line.measured.y, recorded.loc[line.measured.x].to_numpy())
            assert line.ratio == row[f"level_ratio_l{i}"]
    fig = plot_levels(info)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [f"level {i}" for i in range(1, K + 1)]
    for i, button in enumerate(buttons, start=1):
        shown = [t.name for t, v in zip(fig.data, button.args[0]["visible"], strict=True) if v]
        levels = [n for n in shown if n and n.startswith("level ")]
        assert len(levels) == len(POINTS) and all(n.startswith(f"level {i}:") for n in levels)
        assert sum(bool(n) and n.startswith("exact bound") for n in shown) == len(POINTS)
    assert fig.layout.yaxis.type == "log"


def test_level_table_holds_every_level_ratio_recomputed_from_the_traces(kadam: RunData) -> None:
    table = get_level_table(kadam.points, kadam.dtype)
    assert len(table) == len(POINTS)
    for (_, row), (_, point) in zip(table.iterrows(), kadam.points.iterrows(), strict=True):
        lb, lg = level_pair(point["beta"], point["gamma"])
        assert (row["β_i"], row["γ_i"]) == pytest.approx((lb, lg), rel=1e-12)
        trace = _trace(kadam, point["point_id"])
        bound = np.asarray(exact_bound(lb, lg, trace["step"].to_numpy()))
        for i in range(1, K + 1):
            level = trace[f"max_update_l{i}"].to_numpy()
            ok = np.isfinite(level)
            assert row[f"u/bound l{i}"] == pytest.approx(np.max(level[ok] / bound[ok]), rel=1e-12)
        assert row["exact"] == ("γ² < β" if lg**2 < lb else "γ² ≥ β")
        assert row["level check"] == "within the bound"


def test_kadam_updates_are_drawn_against_the_last_levels_bound(kadam: RunData) -> None:
    info = _get_updates_info(kadam.points, kadam.traces, bounds="level")
    for p, (_, row) in zip(info.points, kadam.points.iterrows(), strict=True):
        lb, lg = level_pair(row["beta"], row["gamma"])
        np.testing.assert_allclose(
            p.exact_bound.y, exact_bound(lb, lg, p.exact_bound.x.astype(int))
        )
        base = np.asarray(exact_bound(row["beta"], row["gamma"], p.exact_bound.x.astype(int)))
        assert not np.allclose(p.exact_bound.y, base)  # not the base pair's bound
    assert "last level" in info.bound_name
    keys = [s.key for s in build_figures(kadam)]
    assert keys[:3] == ["plane", "updates", "levels"] and "paths" not in keys
    console = Console(file=io.StringIO(), width=100)
    render_run(kadam, console)
    text = console.file.getvalue()
    assert "k-Adam levels" in text and "every level within its bound" in text


# ------------------------------------------------------------------------ learned betas
def test_paths_info_holds_the_recorded_paths_and_their_entry(learned: RunData) -> None:
    info = _get_paths_info(learned.points, learned.traces)
    assert len(info.paths) == len(POINTS)
    for p in info.paths:
        trace = _trace(learned, p.point_id)
        beta, gamma = trace["beta"].to_numpy(), trace["gamma"].to_numpy()
        ok = np.isfinite(beta)
        steps = trace["step"].to_numpy()[ok]
        first = first_unstable_step(beta[ok], gamma[ok])
        assert p.first_unstable == (None if first is None else int(steps[first]))
        if first is not None:
            assert p.entry == (beta[ok][first], gamma[ok][first]) and p.entry[1] ** 2 > p.entry[0]
        by_step = trace.set_index("step")
        np.testing.assert_array_equal(p.beta, by_step.loc[p.steps, "beta"].to_numpy())
        np.testing.assert_array_equal(p.gamma, by_step.loc[p.steps, "gamma"].to_numpy())
        assert p.steps[0] == steps[0] and p.steps[-1] == steps[-1]  # start and end kept
        assert p.label == f"β={beta[0]:.6g}, γ={gamma[0]:.6g}"
    b = info.boundary_beta
    np.testing.assert_allclose(info.paper_gamma, 2 * b / (1 + b))  # C = 0 (paper Section 3.1)
    np.testing.assert_allclose(info.exact_gamma, np.sqrt(b))  # γ² = β
    assert sum(p.first_unstable is not None for p in info.paths) >= 1
    fig = plot_paths(info)
    assert {"C = 0 (paper boundary)", "γ² = β (exact boundary)"} <= {t.name for t in fig.data}


def test_learned_updates_are_drawn_against_the_path_bound(learned: RunData) -> None:
    info = _get_updates_info(learned.points, learned.traces, bounds="path")
    for p in info.points:
        trace = _trace(learned, p.point_id)
        ok = np.isfinite(trace["beta"].to_numpy())
        bound = pd.Series(
            np.asarray(path_bound(trace["beta"].to_numpy()[ok], trace["gamma"].to_numpy()[ok])),
            index=trace["step"].to_numpy()[ok],
        )
        np.testing.assert_allclose(p.exact_bound.y, bound.loc[p.exact_bound.x].to_numpy())
        assert len(p.paper_bound.x) == 0  # the paper has no theory of a path
    names = [t.name for t in plot_updates(info).data if t.name]
    assert not any(n.startswith("paper bound") for n in names)
    assert any(n.startswith("path bound") for n in names)


def test_the_summary_says_which_paths_entered_and_what_followed(learned: RunData) -> None:
    summary = get_summary(learned)
    entered = sorted(learned.points["first_unstable_step"].dropna().astype(int))
    line = next(x for x in summary.lines() if x.startswith("paths:"))
    assert f"{len(entered)} of {len(POINTS)} entered" in line
    assert ", ".join(map(str, entered)) in line
    after = learned.points["unstable_class"][learned.points["unstable_class"] != ""]
    for cls, count in after.value_counts().items():
        assert f"{count} {cls}" in line
    assert summary.to_json()["paths"]["entered"] == len(entered)
    assert "optimizer: hyperadam" in summary.lines()


# ------------------------------------------------------------------------- torch order
def test_a_region_typed_in_pytorchs_order_shows_beta1_beta2_first(tmp_path: Path) -> None:
    torch_run = _synthetic(tmp_path, "torch", order="torch")
    paper_run = _synthetic(tmp_path, "paper", order="paper")
    assert list(get_table(torch_run.points, order=torch_run.order).columns[1:5]) == [
        "torch beta1 (γ)",
        "torch beta2 (β)",
        "β",
        "γ",
    ]
    assert list(get_table(paper_run.points).columns[1:5]) == [
        "β",
        "γ",
        "torch beta1",
        "torch beta2",
    ]
    for run, first in (
        (torch_run, "betas=(0.9, 0.999) (β=0.999"),
        (paper_run, "β=0.999, γ=0.9 (torch betas=(0.9, 0.999))"),
    ):
        labels = _get_plane_info(run.points, order=run.order).points.labels
        assert labels[0].startswith(first)
    console = Console(file=io.StringIO(), width=120)
    render_run(torch_run, console)
    text = console.file.getvalue()
    header = next(line for line in text.splitlines() if "┃" in line and "beta1" in line)
    assert header.index("beta1") < header.index("beta2") < header.index("measured")
    assert "PyTorch's order: beta1 = γ, beta2 = β" in text
    page = render_html(torch_run)
    assert "shown as (beta1, beta2) = (γ, β)" in page
    assert page.index("torch beta1 (γ)</th>") < page.index(">β</th>")


def test_a_factorys_batching_is_in_the_header(tmp_path: Path) -> None:
    why = {
        "path": "sequential",
        "reason": "the model cannot be vmapped: data-dependent control flow",
    }
    run = _synthetic(tmp_path, "factory", batching=why)
    assert f"batching: sequential ({why['reason']})" in get_summary(run).lines()
    assert "<p id='batching'>Batching: sequential (the model cannot be vmapped" in render_html(run)
    native = _synthetic(tmp_path, "native", batching={"path": "native", "reason": ""})
    assert not any(line.startswith("batching") for line in get_summary(native).lines())


# ----------------------------------------------------------------------------- monitor
def test_a_monitor_run_renders_without_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = monitored_run(tmp_path / "mon")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = load_run(path)
        assert run.kind == "monitor" and run.learned
        info = _get_updates_info(run.points, run.traces, bounds="trace")
        (p,) = info.points
        trace = run.traces.set_index("step")
        assert trace.index.min() == 10 and (np.diff(trace.index) == 2).all()  # late, gaps
        expected = trace.loc[p.exact_bound.x, "bound"] + trace.loc[p.exact_bound.x, "wd_term"]
        np.testing.assert_allclose(p.exact_bound.y, expected.to_numpy())
        keys = [s.key for s in build_figures(run)]
        assert "paths" in keys and "testloss" not in keys
        (path_info,) = _get_paths_info(run.points, run.traces).paths
        assert path_info.first_unstable is not None  # the schedule crossed γ² = β
        assert main(["report", str(path), "--html"]) == 0
        assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path / "report.html") in out and "monitored training" in out
    page = (path / "report.html").read_text(encoding="utf-8")
    assert "Paths through the (β, γ) plane" in page and "recorded bound" in page


# ----------------------------------------------------------------------------- compare
@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> list[RunData]:
    """A 2 x 2 grid in PyTorch's order, run by three "optimizers" whose losses differ by a
    known offset (and one point of MADA's diverging)."""
    tmp = tmp_path_factory.mktemp("compare")
    grid = [(b2, b1) for b1 in (0.9, 0.95) for b2 in (0.99, 0.999)]
    runs = []
    for name, offset in (("mada", -0.1), ("hyperadam", 0.05), ("adam", 0.0)):
        runs.append(
            _synthetic(tmp, name, optimizer=name, points=grid, order="torch", loss_offset=offset)
        )
    return runs


def test_compare_info_is_the_mean_of_the_last_losses(compared: list[RunData]) -> None:
    info = _get_compare_info(compared)
    assert info.grid and [r.name for r in info.runs][2] == "adam"
    assert info.runs[0].name.startswith("mada") and info.steps == STEPS
    for run, data in zip(info.runs, compared, strict=True):
        for b1, b2, loss in zip(info.beta1, info.beta2, run.loss, strict=True):
            row = data.points[(data.points["beta"] == b2) & (data.points["gamma"] == b1)]
            trace = _trace(data, row["point_id"].item())
            assert loss == pytest.approx(trace["loss"].to_numpy()[-LAST_STEPS:].mean(), rel=1e-12)
    assert info.runs[0].best.all() and not info.runs[1].best.any()  # the lowest offset wins
    table = compare_table(info)
    assert (
        list(table.columns[:2]) == ["beta1", "beta2"]
        and (table["lowest"] == info.runs[0].name).all()
    )
    fig = plot_compare(info)
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}  # one shared scale
    z = np.array(fig.data[2].z, dtype=float)
    assert np.nanmin(z) == pytest.approx(info.runs[2].loss.min())


def test_compare_refuses_runs_of_other_regions(compared: list[RunData], tmp_path: Path) -> None:
    other = _synthetic(tmp_path, "other", points=[(0.999, 0.9), (0.99, 0.9)])
    with pytest.raises(StabcliError, match="cover different regions") as err:
        _get_compare_info([compared[0], other])
    assert "\n" not in str(err.value)
    with pytest.raises(StabcliError, match="at least two"):
        _get_compare_info(compared[:1])


def test_compare_cli(
    compared: list[RunData], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(r.path) for r in compared]
    assert main(["report", *paths, "--compare"]) == 0
    out = capsys.readouterr().out
    assert "final training loss" in out and "lowest at 4 of 4 points" in out
    page = tmp_path / "cmp.html"
    assert main(["report", *paths, "--compare", "--out", str(page)]) == 0
    assert page.exists() and "fig-compare" in page.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["report", *paths]) == 2  # several runs without --compare
    assert "--compare" in capsys.readouterr().err
    other = make_synthetic_run(tmp_path / "other", 2, STEPS, eval_every=None)
    assert main(["report", paths[0], str(other), "--compare"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "different regions" in err


def test_compare_refuses_a_run_given_twice(
    compared: list[RunData], capsys: pytest.CaptureFixture[str]
) -> None:
    """`report A A --compare` compared a run with itself, one panel per copy."""
    first = compared[0].path
    again = first.parent / "." / first.name  # the same directory, written differently
    capsys.readouterr()
    assert main(["report", str(first), str(again), "--compare"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is given twice" in err


def test_an_empty_text_column_reads_as_text_without_warnings() -> None:
    """A text column empty in every row reads back as float NaN (CSV, or Parquet written
    from NaN): it must become "" without pandas' warning about filling floats with text."""
    from stabcli.report.load import _normalize_records, normalize_points

    raw = pd.DataFrame(
        {"point_id": ["a", "a"], "step": [3, 5], "max_update": [1.0, 2.0], "max_tensor": np.nan}
    )
    points = pd.DataFrame(
        {"point_id": ["a"], "beta": [0.95], "gamma": [0.9], "closer_theory": [np.nan]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = _normalize_records(raw, Path("traces"), "max_update", ("max_tensor",))
        normalized = normalize_points(points)
    assert records["max_tensor"].tolist() == ["", ""]
    assert normalized.loc[0, "closer_theory"] == ""


def test_learned_profiles_compare_with_the_paths_rate(learned: RunData) -> None:
    """ρ_n of a moving point is its path's ln γ_n − ½ ln β_n (docs/theory.md (5.7)), not
    the starting pair's ρ_n."""
    from stabcli.report.profiles import _get_profiles_info

    info = _get_profiles_info(learned.points, learned.traces, learned.measure_settings)
    for p in info.points:
        trace = _trace(learned, p.point_id).set_index("step")
        at = np.rint(p.centres).astype(int)
        beta, gamma = trace.loc[at, "beta"].to_numpy(), trace.loc[at, "gamma"].to_numpy()
        expected = np.maximum(np.log(gamma) - 0.5 * np.log(beta), 0.0)
        np.testing.assert_allclose(p.rho, expected, rtol=1e-12)
    assert any((p.rho > 0).any() for p in info.points)  # a path crossed into γ² > β
