"""The report's data (``_get_*_info``) and figures (``plot_*``) on small synthetic runs.

Figures are tested on their info (values, shapes, what is dropped), against a second
formulation wherever one exists; the drawings only for titles, axes and trace names.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_run import make_synthetic_run

from stabcli.measure import measure_points
from stabcli.report import get_summary, get_table, load_run
from stabcli.report._display import CLASS_COLORS, LEVEL_COLORSCALE, decimate_indices
from stabcli.report.boundary import _get_boundary_info, plot_boundary
from stabcli.report.load import RunData, normalize_points, trace_matrix
from stabcli.report.plane import CORNER_VIEW, FULL_VIEW, LEVELS, _get_plane_info, plot_plane
from stabcli.report.profiles import _get_profiles_info, plot_profiles
from stabcli.report.rates import _get_rates_info, plot_rates
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


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """A list of 6 points (no curve), two growing ones that stay finite, and two points on
    the exact boundary γ² = β."""
    path = make_synthetic_run(
        tmp_path_factory.mktemp("report") / "listed",
        6,
        STEPS,
        eval_every=None,
        kind="points",
        boundary=(0.81, 0.95),
    )
    return load_run(path)


# ------------------------------------------------------------------------------- loading
def test_load_run_reads_every_point_in_region_order(run: RunData) -> None:
    assert run.finished == N_POINTS == run.planned
    assert not run.is_partial and run.is_curve
    assert run.points["position"].is_monotonic_increasing
    assert run.slope_at == STEPS // 2
    assert run.measure_settings.growth_tol == 1e-3 and run.measure_settings.confidence == 0.95
    assert run.points["exact_stable"].dtype == "boolean"
    assert run.points["sqrt_n"].dtype == "boolean"
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
    assert a["measured_class"] == "" and math.isnan(a["rate"])  # not measured: left empty


def test_trace_matrix_lays_records_out_by_point_and_step() -> None:
    traces = pd.DataFrame(
        {"point_id": ["b", "a", "a", "b"], "step": [1, 0, 2, 0], "max_update": [4.0, 1, 3, 2]}
    )
    got = trace_matrix(traces, ["a", "b", "c"])
    expected = [[1.0, np.nan, 3.0], [2.0, 4.0, np.nan], [np.nan] * 3]
    np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------------------- summary
def test_headline_from_the_rows_is_the_headline_of_the_traces(listed: RunData) -> None:
    """Two formulations: measure.headline over points.csv's rows (what the report shows),
    and over a fresh measurement of the same traces."""
    ids = listed.points["point_id"].tolist()
    u = trace_matrix(listed.traces, ids)
    direct = measure_points(
        listed.points["beta"].to_numpy(),
        listed.points["gamma"].to_numpy(),
        u,
        dtype=listed.dtype,
        wd_term=trace_matrix(listed.traces, ids, "wd_term"),
        central_at=listed.slope_at,
    )
    assert get_summary(listed).headline.lines() == direct.headline.lines()


def test_summary_counts_are_the_columns_counts(run: RunData) -> None:
    summary = get_summary(run)
    h = summary.headline
    classes = run.points["measured_class"].value_counts()
    assert {str(c): n for c, n in h.classes if n} == classes.to_dict()
    for tally, column in ((h.paper, "paper_verdict"), (h.exact, "exact_verdict")):
        counts = run.points[column].value_counts().to_dict()
        assert {str(v): n for v, n in tally.counts if n} == counts
    assert h.worst_ratio == run.points["bound_ratio_max"].max() <= 1
    assert not summary.partial and summary.partial_note == "" and summary.measured
    lines = summary.lines()
    assert lines[1] == f"{N_POINTS} points (complete)"
    assert not any(line.startswith("FALSIFIED") for line in lines)


def test_the_median_rate_error_is_over_predicted_and_seen_points_only(listed: RunData) -> None:
    points = listed.points
    seen = points[points["exact_verdict"] == "growth predicted and seen"]
    assert len(seen) >= 2, points[["beta", "gamma", "measured_class", "exact_verdict"]]
    h = get_summary(listed).headline
    assert h.exact.median_rel_error == pytest.approx(seen["exact_rel_error"].median())


def test_a_falsification_comes_first(tmp_path: Path) -> None:
    path = make_synthetic_run(tmp_path / "run", 4, 300, eval_every=None)
    points = pd.read_csv(path / "points.csv", dtype=str, keep_default_na=False)
    points.loc[1, ["measured_class", "paper_verdict"]] = ["growing", "seen but not predicted"]
    points.to_csv(path / "points.csv", index=False)
    lines = get_summary(load_run(path)).lines()
    assert lines[2].startswith("FALSIFIED (paper) at (β, γ) = (")


def test_table_and_markdown(run: RunData) -> None:
    table = get_table(run.points)
    assert list(table.columns[:3]) == ["position", "β", "γ"]
    assert {"measured", "rate", "exact rate ρ_n", "closer theory", "bound check"} <= set(table)
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


# --------------------------------------------------------------------------- figure 2a
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
    fig = plot_updates(_get_updates_info(run.points, run.traces))
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "step n"
    names = [t.name for t in fig.data if t.name]
    measured = [t for t in fig.data if t.name and t.name.startswith("β=")]
    assert len(measured) == N_POINTS
    assert sum(n.startswith("paper bound") for n in names) == N_POINTS
    assert sum(n.startswith("exact bound") for n in names) == N_POINTS
    assert len({t.line.color for t in measured}) == N_POINTS


# ------------------------------------------------------------------------- figure 1: plane
def test_plane_colours_points_by_class_and_fits_them(run: RunData) -> None:
    info = _get_plane_info(run.points, through=(0.999, 0.9))
    assert [c.value for c in info.level_curves] == list(LEVELS)
    for curve in info.level_curves:
        np.testing.assert_allclose(paper.c_value(curve.beta, curve.gamma), curve.value, atol=1e-9)
    np.testing.assert_allclose(info.exact_boundary.gamma**2, info.exact_boundary.beta)
    p = info.points
    assert p.measured_class == run.points["measured_class"].tolist()
    (b0, b1), (g0, g1) = info.initial_view
    assert (b0 <= p.beta.min()) and (p.beta.max() <= b1) and (g0 <= p.gamma.min())
    assert p.gamma.max() <= g1
    assert (b1 - b0) < (CORNER_VIEW[0][1] - CORNER_VIEW[0][0])  # tighter than the corner
    assert not p.falsified.any()
    fig = plot_plane(info)
    names = [t.name for t in fig.data]
    assert "C = 0 (paper boundary)" in names and "γ² = β (exact boundary)" in names
    assert any(t.fill == "toself" for t in fig.data)  # B+ shaded
    buttons = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert buttons == ["swept points", "whole square", "near (1, 1)"]
    assert list(fig.layout.xaxis.range) == list(info.initial_view[0])
    by_class = {t.name.split(" (")[0]: t for t in fig.data if t.legendgroup == "points"}
    assert set(by_class) == set(p.measured_class)
    level_colors = {t.line.color for t in fig.data if t.legendgroup == "level"}
    class_colors = {t.marker.color for t in by_class.values()}
    assert class_colors <= set(CLASS_COLORS.values())
    assert not class_colors & level_colors  # a palette that is not the level curves'
    assert all(c.startswith("rgb(") for c in level_colors)  # greys, from LEVEL_COLORSCALE
    assert LEVEL_COLORSCALE[0][1].startswith("rgb(")
    assert fig.layout.xaxis.title.text == "β (torch beta2)"


def test_plane_outlines_falsifications_and_opens_on_the_square_when_empty(run: RunData) -> None:
    points = run.points.copy()
    points.loc[2, "exact_verdict"] = "seen but not predicted"
    info = _get_plane_info(points)
    assert info.points.falsified.tolist() == [i == 2 for i in range(N_POINTS)]
    assert _get_plane_info(points.iloc[:0]).initial_view == FULL_VIEW


# ------------------------------------------------------------------------- figure 3: rates
def test_rates_against_predictions_for_a_point_list(listed: RunData) -> None:
    info = _get_rates_info(listed.points, curve=False)
    assert info.against_prediction and not info.crossings
    by = {s.column: s for s in info.series}
    assert set(by) == {"paper_rate", "exact_rate"}
    points = listed.points[np.isfinite(listed.points["rate"])]
    exact_series = by["exact_rate"]
    pairs = sorted(zip(points["exact_rate"], points["rate"], strict=True))
    np.testing.assert_allclose(sorted(zip(exact_series.x, exact_series.y, strict=True)), pairs)
    assert np.all(np.diff(exact_series.x) >= 0)
    low = dict(zip(points["rate"], points["rate_low"], strict=True))
    np.testing.assert_allclose(exact_series.err_minus, [y - low[y] for y in exact_series.y])
    assert info.diagonal is not None
    lo, hi = info.diagonal
    assert lo <= min(exact_series.x.min(), exact_series.y.min()) and hi >= exact_series.y.max()
    fig = plot_rates(info)
    names = [t.name for t in fig.data]
    assert "y = x (measured = predicted)" in names
    assert fig.layout.yaxis.title.text == "measured rate (per step)"


def test_rates_along_a_curve_mark_both_boundary_crossings(run: RunData) -> None:
    info = _get_rates_info(run.points, curve=True, description="a curve")
    assert not info.against_prediction and info.x_title.startswith("position along the region")
    points = run.points
    x = points["position"].to_numpy()
    for name, sign in (
        ("C = 0", np.sign(points["c_value"].to_numpy())),
        ("γ² = β", np.where(points["exact_stable"].astype(bool), 1, -1)),
    ):
        crossing = [c.x for c in info.crossings if c.name == name]
        flips = np.flatnonzero(np.diff(sign) != 0)
        assert len(crossing) == len(flips) == 1, (name, info.crossings)
        assert x[flips[0]] < crossing[0] < x[flips[0] + 1]
    measured = next(s for s in info.series if s.column == "rate")
    np.testing.assert_allclose(measured.y, points["rate"].dropna())
    fig = plot_rates(info)
    assert {t.name for t in fig.data} >= {"paper |C|/2", "exact ρ_n"}
    assert len(fig.layout.shapes) == 2  # the two crossings


# ---------------------------------------------------------------------- figure 4: profiles
def _polyfit_slopes(log_u: np.ndarray, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """An independent profile: np.polyfit over windows [k·stride, k·stride + width)."""
    starts = list(range(0, len(log_u) - width + 1, stride))
    if starts[-1] != len(log_u) - width:
        starts.append(len(log_u) - width)
    slopes = []
    for a in starts:
        x, y = np.arange(a, a + width), log_u[a : a + width]
        keep = np.isfinite(y)
        slopes.append(np.polyfit(x[keep], y[keep], 1)[0] if keep.sum() >= 3 else np.nan)
    return np.array(starts) + (width - 1) / 2, np.array(slopes)


def test_profiles_are_recomputed_slopes_with_the_window_and_rho(run: RunData) -> None:
    s = run.measure_settings
    info = _get_profiles_info(run.points, run.traces, s)
    assert len(info.points) == N_POINTS and info.growth_tol == s.growth_tol
    growing = run.points["measured_class"].tolist()
    assert info.first == (growing.index("growing") if "growing" in growing else 0)
    for p, (_, row) in zip(info.points, run.points.iterrows(), strict=True):
        trace = run.traces[run.traces["point_id"] == row["point_id"]].sort_values("step")
        log_u = np.log(trace["max_update"].to_numpy(float))
        if np.isfinite(row["diverged_step"]):
            log_u[int(row["diverged_step"]) :] = np.nan
        centres, slopes = _polyfit_slopes(log_u, s.profile_window, s.profile_stride)
        np.testing.assert_allclose(p.centres, centres)
        np.testing.assert_allclose(p.slopes, slopes, rtol=1e-7, atol=1e-10)
        assert np.all(p.low <= p.slopes) and np.all(p.slopes <= p.high)
        assert p.window == (int(row["window_start"]), int(row["window_stop"]))
        expected_rho = exact.exact_rate_at(row["beta"], row["gamma"], centres)
        np.testing.assert_allclose(p.rho, expected_rho)
    fig = plot_profiles(info)
    assert len(fig.layout.updatemenus[0].buttons) == N_POINTS
    assert fig.layout.shapes[0].type == "rect"  # the window of the point shown
    shown = [t for t in fig.data if t.visible is not False]
    assert {t.name for t in shown} >= {"exact ρ_n", "paper |C|/2", "growth tolerance 0.001"}


# ---------------------------------------------------------------------- figure 5: boundary
def test_boundary_info_holds_the_boundary_points_on_log_log_axes(listed: RunData) -> None:
    info = _get_boundary_info(listed.points, listed.traces)
    edge = listed.points[listed.points["window_rule"] == "boundary"]
    assert [p.point_id for p in info.points] == edge["point_id"].tolist() and len(edge) == 2
    for p, (_, row) in zip(info.points, edge.iterrows(), strict=True):
        assert "γ² = β" in p.label
        n = p.measured.x - 1
        np.testing.assert_allclose(p.bound.y, exact.exact_bound(row["beta"], row["gamma"], n))
        assert p.sqrt_guide.y[-1] == pytest.approx(p.measured.y[-1])
        ratio = p.sqrt_guide.y / np.sqrt(p.sqrt_guide.x)
        np.testing.assert_allclose(ratio, ratio[0])  # a √(n + 1) line
        assert (p.exponent, p.halfwidth) == (row["power_exponent"], row["power_halfwidth"])
        assert p.sqrt_n == bool(row["sqrt_n"]) and p.label.endswith(", √n") == p.sqrt_n
    assert (
        _get_boundary_info(
            listed.points[listed.points["window_rule"] != "boundary"], listed.traces
        ).points
        == []
    )
    fig = plot_boundary(info)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


# ----------------------------------------------------------------------- figure 6: tensors
def test_tensor_info_counts_the_valid_window_like_the_table(run: RunData) -> None:
    info = _get_tensor_info(run.points, run.traces)
    assert info.top == run.points["max_tensor"].tolist()  # the same definition
    np.testing.assert_allclose(info.shares.sum(axis=0), 1.0)
    assert len(set(info.colors)) == len(info.colors) == len(info.tensors)
    row = run.points.iloc[0]
    trace = run.traces[run.traces["point_id"] == row["point_id"]]
    inside = trace[(trace["step"] >= row["window_start"]) & (trace["step"] < row["window_stop"])]
    share = inside["max_tensor"].value_counts(normalize=True)
    for name, value in share.items():
        assert info.shares[info.tensors.index(name), 0] == pytest.approx(value)
    pooled = _get_tensor_info(run.points, run.traces, max_tensors=2)
    assert pooled.tensors[-1] == OTHER and len(pooled.tensors) == 3
    np.testing.assert_allclose(pooled.shares.sum(axis=0), 1.0)
    fig = plot_tensors(pooled)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == pooled.tensors
    assert len({t.marker.color for t in fig.data}) == 3


def test_test_loss_info_and_figure(run: RunData) -> None:
    info = _get_test_loss_info(run.points, run.evals)
    assert len(info.points) == N_POINTS
    last = int(run.evals["step"].max())  # the engine evaluates θ_600 after the last step
    assert [b.step for b in info.best_by] == [last] == [STEPS]  # steps < 1000: only the last
    best = info.best_by[0]
    by_c = dict(zip(run.points["c_value"], run.points["best_test_loss"], strict=True))
    np.testing.assert_allclose(best.best, [by_c[c] for c in best.c_value])
    fig = plot_test_loss(info)
    assert any(t.name == f"best test loss by n = {STEPS}" for t in fig.data)


@pytest.mark.parametrize(
    ("build", "draw"),
    [
        (lambda r: _get_updates_info(r.points, r.traces), plot_updates),
        (lambda r: _get_rates_info(r.points, curve=True), plot_rates),
        (lambda r: _get_rates_info(r.points, curve=False), plot_rates),
        (lambda r: _get_plane_info(r.points), plot_plane),
        (lambda r: _get_profiles_info(r.points, r.traces, r.measure_settings), plot_profiles),
        (lambda r: _get_boundary_info(r.points, r.traces), plot_boundary),
        (lambda r: _get_test_loss_info(r.points, r.evals), plot_test_loss),
        (lambda r: _get_tensor_info(r.points, r.traces), plot_tensors),
    ],
    ids=["updates", "rates-curve", "rates-points", "plane", "profiles", "boundary", "testloss",
         "tensors"],
)  # fmt: skip
def test_empty_input_gives_an_empty_figure(build, draw, tmp_path: Path) -> None:
    run = load_run(make_synthetic_run(tmp_path / "run", 4, 50, finished=0))
    fig = draw(build(run))
    assert fig.layout.title.text
