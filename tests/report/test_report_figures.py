"""The report's data (``_get_*_info``) and figures (``plot_*``) on a small synthetic run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_run import make_synthetic_run

from stabcli.report import get_summary, get_table, load_run
from stabcli.report._display import decimate_indices
from stabcli.report.load import RunData, normalize_points
from stabcli.report.plane import LEVELS, _get_plane_info, plot_plane
from stabcli.report.slopes import _get_slopes_info, plot_slopes
from stabcli.report.summary import table_markdown
from stabcli.report.tensors import OTHER, _get_tensor_info, plot_tensors
from stabcli.report.testloss import _get_test_loss_info, plot_test_loss
from stabcli.report.updates import _get_updates_info, plot_updates
from stabcli.theory import exact, paper

N_POINTS, STEPS = 8, 600


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """8 points along the normal curve through (0.999, 0.9); the last grows and diverges."""
    path = make_synthetic_run(
        tmp_path_factory.mktemp("report") / "run", N_POINTS, STEPS, eval_every=50, diverge_at=100
    )
    return load_run(path)


# ------------------------------------------------------------------------------- loading
def test_load_run_reads_every_point_in_region_order(run: RunData) -> None:
    assert run.finished == N_POINTS == run.planned
    assert not run.is_partial
    assert run.points["position"].is_monotonic_increasing
    assert run.slope_at == STEPS // 2
    assert run.points["exact_stable"].dtype == "boolean"
    assert set(run.traces["point_id"]) == set(run.points["point_id"])


def test_normalize_points_fills_theory_columns_from_beta_gamma() -> None:
    raw = pd.DataFrame({"point_id": ["a", "b"], "beta": [0.5, 0.999], "gamma": [0.9, 0.9]})
    points = normalize_points(raw, slope_at=100)
    a = points.iloc[0]
    assert a["c_value"] == pytest.approx(paper.c_value(0.5, 0.9))
    assert a["paper_region"] == "B-" and points.iloc[1]["paper_region"] == "B+"
    assert a["paper_rate"] == pytest.approx(0.389, abs=1e-3)  # docs/theory.md §3's example
    assert a["exact_rate"] == pytest.approx(float(exact.exact_rate_at(0.5, 0.9, 100)))
    assert not a["exact_stable"] and points.iloc[1]["exact_stable"]
    assert a["torch_beta1"] == 0.9 and a["torch_beta2"] == 0.5


# ----------------------------------------------------------------------------- summary
def test_summary_scores_both_theories(run: RunData) -> None:
    summary = get_summary(run)
    grows = run.points["measured_class"].isin(["growing", "diverged"])
    paper_says = run.points["paper_region"] == "B-"
    exact_says = ~run.points["exact_stable"].astype(bool)
    assert summary.agreement.paper_correct == int((paper_says == grows).sum())
    assert summary.agreement.exact_correct == int((exact_says == grows).sum())
    assert sum(summary.agrees_with.values()) == N_POINTS
    assert summary.max_bound_ratio <= 1
    assert not summary.partial and summary.partial_note == ""


def test_table_and_markdown(run: RunData) -> None:
    table = get_table(run.points)
    assert list(table.columns[:3]) == ["position", "β", "γ"]
    assert len(table) == N_POINTS
    text = table_markdown(table)
    assert text.count("\n") == N_POINTS + 2
    assert text.startswith("| position | β | γ |")


# ---------------------------------------------------------------------------- decimation
def test_decimation_keeps_extremes_ends_and_requested_steps() -> None:
    values = np.sin(np.arange(3000) / 50.0)
    values[1234] = 50.0  # a spike
    chosen = decimate_indices(values, max_points=300, keep=[2222])
    assert len(chosen) <= 300 + 3
    assert {0, 1234, 2222, 2999} <= set(chosen.tolist())
    assert np.all(np.diff(chosen) > 0)
    assert decimate_indices(values[:10], max_points=300).tolist() == list(range(10))


def test_updates_info_decimates_keeps_divergence_and_drops_non_finite(run: RunData) -> None:
    info = _get_updates_info(run.points, run.traces, max_points=40)
    assert [p.point_id for p in info.points] == run.points["point_id"].tolist()
    for p in info.points:
        assert len(p.measured.x) <= 40 + 4
        assert np.isfinite(p.measured.y).all() and (p.measured.y > 0).all()
        assert np.isfinite(p.paper_bound.y).all() and np.isfinite(p.exact_bound.y).all()
    diverged = [p for p in info.points if p.diverged_step is not None]
    assert diverged, "the synthetic run has a diverging point"
    for p in diverged:
        last = p.measured.x.max()
        assert last == p.diverged_step - 1  # the last finite step before the divergence
        assert p.diverged_value == pytest.approx(p.measured.y[-1])
    bounded = info.points[0]
    row = run.points.iloc[0]
    expected = exact.exact_bound(row["beta"], row["gamma"], bounded.exact_bound.x.astype(int))
    np.testing.assert_allclose(bounded.exact_bound.y, expected)
    steps = bounded.paper_bound.x.astype(int)
    expected_paper = paper.paper_bound(row["beta"], row["gamma"], steps)
    np.testing.assert_allclose(bounded.paper_bound.y, expected_paper)
    assert not np.allclose(bounded.paper_bound.y, expected[: len(steps)])  # two distinct lines


def test_updates_figure_colors_by_c_and_draws_bounds(run: RunData) -> None:
    info = _get_updates_info(run.points, run.traces)
    fig = plot_updates(info)
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "step n"
    names = [t.name for t in fig.data]
    measured = [t for t in fig.data if t.name and t.name.startswith("β=")]
    assert len(measured) == N_POINTS
    assert sum(n.startswith("paper bound") for n in names if n) == N_POINTS
    assert sum(n.startswith("exact bound") for n in names if n) == N_POINTS
    assert any(n.startswith("diverged") for n in names if n)
    bound_styles = {t.line.dash for t in fig.data if t.name and "bound" in t.name}
    assert bound_styles == {"dot", "dash"}
    # Colors follow C: distinct C, distinct colors; each bound shares its point's color.
    colors = [t.line.color for t in measured]
    assert len(set(colors)) == N_POINTS
    by_group = {t.legendgroup: t.line.color for t in measured}
    for t in fig.data:
        if t.name and "bound" in t.name:
            assert t.line.color == by_group[t.legendgroup]
    colorbar = [t for t in fig.data if t.marker and t.marker.showscale]
    assert colorbar and colorbar[0].marker.colorbar.title.text == "C(β, γ)"


def test_slopes_info_and_figure(run: RunData) -> None:
    points = run.points.copy()
    points.loc[0, "measured_slope"] = math.inf  # non-finite values are dropped
    info = _get_slopes_info(points, "a curve", slope_at=300)
    by = {s.column: s for s in info.series}
    assert len(by["measured_slope"].x) == N_POINTS - 1
    assert len(by["fit_slope"].x) == N_POINTS
    assert np.all(np.diff(by["paper_rate"].x) >= 0)
    np.testing.assert_allclose(by["exact_rate"].y, points["exact_rate"])
    fig = plot_slopes(info)
    assert fig.layout.title.text.endswith("at n = 300")
    assert fig.layout.xaxis.title.text.startswith("position along the region")
    modes = {t.name: t.mode for t in fig.data}
    assert modes["paper rate |C|/2"] == "lines" and modes["exact rate ρ_n"] == "lines"


def test_plane_info_and_figure(run: RunData) -> None:
    info = _get_plane_info(run.points, through=(0.999, 0.9))
    assert [c.value for c in info.level_curves] == list(LEVELS)
    for curve in info.level_curves:
        np.testing.assert_allclose(paper.c_value(curve.beta, curve.gamma), curve.value, atol=1e-9)
    assert info.normal_curves[0].name == "normal curve through (0.999, 0.9)"
    np.testing.assert_allclose(info.exact_boundary.gamma**2, info.exact_boundary.beta)
    assert len(info.point_beta) == N_POINTS
    assert info.initial_view[0][0] == 0.9  # every point lies near (1, 1)
    fig = plot_plane(info)
    names = [t.name for t in fig.data]
    assert "C = 0 (paper boundary)" in names and "γ² = β (exact boundary)" in names
    assert any(t.fill == "toself" for t in fig.data)  # B+ shaded
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["whole square", "near (1, 1)"]
    points = next(t for t in fig.data if t.name.startswith("sweep points"))
    assert points.marker.colorbar.title.text == "measured slope"
    assert fig.layout.xaxis.title.text == "β (torch beta2)"


def test_test_loss_info_and_figure(run: RunData) -> None:
    info = _get_test_loss_info(run.points, run.evals)
    assert len(info.points) == N_POINTS
    last = int(run.evals["step"].max())  # the engine evaluates θ_600 after the last step
    assert [b.step for b in info.best_by] == [last] == [STEPS]  # steps < 1000: only the last
    best = info.best_by[0]
    assert np.all(np.diff(best.c_value) >= 0)
    # each point's own best test loss, paired with its own C (not just the same values)
    by_c = dict(zip(run.points["c_value"], run.points["best_test_loss"], strict=True))
    np.testing.assert_allclose(best.best, [by_c[c] for c in best.c_value])
    assert len(set(np.round(best.best, 9))) > 1  # the pairing is observable
    fig = plot_test_loss(info)
    assert any(t.name == f"best test loss by n = {STEPS}" for t in fig.data)


def test_tensor_info_and_figure(run: RunData) -> None:
    info = _get_tensor_info(run.points, run.traces, max_tensors=2)
    assert info.tensors[-1] == OTHER and len(info.tensors) == 3
    assert info.shares.shape == (3, N_POINTS)
    np.testing.assert_allclose(info.shares.sum(axis=0), 1.0)
    fig = plot_tensors(info)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == info.tensors


@pytest.mark.parametrize(
    ("build", "draw"),
    [
        (lambda p, t, e: _get_updates_info(p, t), plot_updates),
        (lambda p, t, e: _get_slopes_info(p), plot_slopes),
        (lambda p, t, e: _get_plane_info(p), plot_plane),
        (lambda p, t, e: _get_test_loss_info(p, e), plot_test_loss),
        (lambda p, t, e: _get_tensor_info(p, t), plot_tensors),
    ],
    ids=["updates", "slopes", "plane", "testloss", "tensors"],
)
def test_empty_input_gives_an_empty_figure(build, draw, tmp_path: Path) -> None:
    run = load_run(make_synthetic_run(tmp_path / "run", 4, 50, finished=0))
    fig = draw(build(run.points, run.traces, run.evals))
    assert fig.layout.title.text
