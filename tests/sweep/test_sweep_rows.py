"""points.csv rows of a batch: the sweep's traces measured by stabcli.measure, as columns.

The rows are checked against a second formulation: the same traces laid out by hand as
(P, S) arrays and measured with :func:`stabcli.measure.measure_points` directly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stabcli.errors import SettingError
from stabcli.measure import measure_points
from stabcli.probe import ProbeResult
from stabcli.store.schema import POINT_COLUMNS
from stabcli.sweep.rows import MeasureSetup, batch_rows, window_tensor
from stabcli.theory.exact import exact_bound
from stabcli.theory.path import first_unstable_step, path_bound

STEPS = 600
TENSORS = np.array(["a", "b", "c"], dtype=object)


def _probe(
    points: list[tuple[float, float]],
    u: np.ndarray,  # (P, S)
    *,
    wd: np.ndarray | None = None,
    diverged: list[int | None] | None = None,
    underflow: list[int | None] | None = None,
    tensors: np.ndarray | None = None,  # (P, S) object
    order: list[int] | None = None,  # the points' indices (a batch of a longer list)
) -> ProbeResult:
    p, s = u.shape
    index = order or list(range(p))
    wd = np.zeros((p, s)) if wd is None else wd
    tensors = TENSORS[np.arange(s) % 3][None, :].repeat(p, 0) if tensors is None else tensors
    traces = pd.concat(
        [
            pd.DataFrame(
                {
                    "point": index[i],
                    "step": np.arange(s),
                    "max_update": u[i],
                    "max_tensor": tensors[i],
                    "loss": 1.0,
                    "lr": 1e-3,
                    "wd_term": wd[i],
                }
            )
            for i in range(p)
        ],
        ignore_index=True,
    ).sample(frac=1.0, random_state=0)  # records in any order: the pivot must not care
    summary = pd.DataFrame(
        {
            "point": index,
            "beta": [b for b, _ in points],
            "gamma": [g for _, g in points],
            "diverged_step": pd.array(diverged or [None] * p, dtype="Int64"),
            "underflow_step": pd.array(underflow or [None] * p, dtype="Int64"),
            "final_loss": 1.0,
        }
    )
    evals = pd.DataFrame({"point": index, "step": 0, "test_loss": 2.0})
    return ProbeResult(summary, traces, evals, "cpu", "float32", p, 0.0)


def _bounded_and_growing() -> tuple[list[tuple[float, float]], np.ndarray]:
    """(0.999, 0.9): a flat noisy trace; (0.9, 0.99): a trace on its exact bound."""
    rng = np.random.default_rng(0)
    n = np.arange(STEPS)
    flat = 0.3 * np.exp(0.05 * rng.standard_normal(STEPS))
    on_bound = 0.7 * np.asarray(exact_bound(0.9, 0.99, n))
    return [(0.999, 0.9), (0.9, 0.99)], np.stack([flat, on_bound])


# ----------------------------------------------------------------------------- settings
def test_default_central_step_is_500_or_the_middle() -> None:
    assert MeasureSetup.for_run(400).slope_at == 200
    assert MeasureSetup.for_run(1500).slope_at == 500
    assert MeasureSetup.for_run(800, growth_tol=2e-3).settings.growth_tol == 2e-3


@pytest.mark.parametrize("at", [2, 395, 1000])
def test_central_step_out_of_range_names_the_setting(at: int) -> None:
    with pytest.raises(SettingError, match=r"^slope_at must be between 5 and 394") as err:
        MeasureSetup.for_run(400, slope_at=at)
    assert err.value.render({"slope_at": "--slope-at"}).startswith("--slope-at must be")


@pytest.mark.parametrize(
    ("option", "value"), [("growth_tol", -1.0), ("confidence", 1.5)], ids=["tol", "confidence"]
)
def test_bad_thresholds_name_their_setting(option: str, value: float) -> None:
    with pytest.raises(SettingError) as err:
        MeasureSetup.for_run(400, **{option: value})
    assert err.value.settings == (option,)


def test_the_setup_is_saved_whole() -> None:
    saved = MeasureSetup.for_run(800, slope_at=300, confidence=0.9).to_dict()
    assert saved["slope_at"] == 300 and saved["confidence"] == 0.9
    assert {"growth_tol", "settle_tol", "min_window", "profile_window"} <= set(saved)


# --------------------------------------------------------------------------------- rows
def test_rows_are_the_measurement_of_the_same_arrays() -> None:
    points, u = _bounded_and_growing()
    setup = MeasureSetup.for_run(STEPS)
    rows, traces, evals = batch_rows(_probe(points, u), ["p0", "p1"], [0.0, 1.0], setup)
    assert list(rows.columns) == list(POINT_COLUMNS)
    direct = measure_points(
        [b for b, _ in points],
        [g for _, g in points],
        u,
        settings=setup.settings,
        dtype="float32",
        wd_term=np.zeros_like(u),
        central_at=setup.slope_at,
    ).points
    for row, m in zip(rows.to_dict("records"), direct, strict=True):
        assert row["measured_class"] == m.measured_class.value
        assert row["rate"] == m.rate.rate and row["rate_low"] == m.rate.low
        assert (row["window_start"], row["window_stop"]) == (m.window.start, m.window.stop)
        assert row["exact_rate"] == m.exact.predicted_rate
        assert row["exact_verdict"] == m.exact.verdict.value
        assert row["central_at"] == setup.slope_at and row["central_slope"] == m.central_slope
        assert row["bound_ratio_max"] == m.bound.ratio_all
        assert row["closer_theory"] == m.closer_theory
    flat, growing = rows.to_dict("records")
    assert flat["measured_class"] == "bounded" and flat["exact_verdict"] == "bounded as predicted"
    assert growing["measured_class"] == "growing" and growing["closer_theory"] == "exact"
    assert growing["exact_rel_error"] < 0.01  # on its bound: the rate is ρ_n's
    assert (flat["torch_beta1"], flat["torch_beta2"]) == (0.9, 0.999)  # γ is torch's beta1
    assert set(traces["point_id"]) == {"p0", "p1"} and "point" not in traces
    assert list(evals["point_id"]) == ["p0", "p1"] and (rows["best_test_loss"] == 2.0).all()


def test_rows_of_a_later_batch_keep_their_ids() -> None:
    points, u = _bounded_and_growing()
    part = _probe(points, u, order=[3, 2])
    ids = ["a", "b", "c", "d"]
    rows, traces, _ = batch_rows(part, ids, [0.0, 0.25, 0.5, 0.75], MeasureSetup.for_run(STEPS))
    assert rows["point_id"].tolist() == ["d", "c"]
    assert rows["position"].tolist() == [0.75, 0.5]
    assert rows["beta"].tolist() == [0.999, 0.9]
    by_id = traces.set_index(["point_id", "step"])["max_update"]
    np.testing.assert_array_equal(by_id.loc["c"].sort_index().to_numpy(), u[1])


def test_an_underflowed_point_is_numerically_invalid_not_a_probe_bug() -> None:
    """Above the bound after the probe's underflow step: invalid, with the step; the same
    trace without the flag is above the bound, as a probe bug would be (docs/theory.md (9.6))."""
    n = np.arange(STEPS)
    u = 0.5 * np.asarray(exact_bound(0.999, 0.9, n))
    u[400:] = 1e27  # what float32 Adam computes once v has underflowed to 0
    setup = MeasureSetup.for_run(STEPS)
    flagged, _, _ = batch_rows(_probe([(0.999, 0.9)], u[None], underflow=[400]), ["p"], [0], setup)
    plain, _, _ = batch_rows(_probe([(0.999, 0.9)], u[None]), ["p"], [0], setup)
    assert flagged.loc[0, "bound_check"] == "numerically invalid"
    assert (
        "from n = 400" in flagged.loc[0, "bound_note"] and flagged.loc[0, "underflow_step"] == 400
    )
    assert plain.loc[0, "bound_check"] == "above the bound"
    assert flagged.loc[0, "bound_ratio_max"] == plain.loc[0, "bound_ratio_max"] > 1e20


def test_the_weight_decay_term_is_part_of_the_bound() -> None:
    n = np.arange(STEPS)
    u = np.asarray(exact_bound(0.999, 0.9, n)) + 0.5  # above Adam's bound, within + λ‖θ‖∞
    part = _probe([(0.999, 0.9)], u[None], wd=np.ones((1, STEPS)))
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(STEPS))
    assert (
        rows.loc[0, "bound_ratio_max"] <= 1.0 and rows.loc[0, "bound_check"] == "within the bound"
    )


def test_a_loss_that_diverges_first_ends_the_trace_there() -> None:
    points, u = _bounded_and_growing()
    part = _probe(points, u, diverged=[None, 450])
    rows, _, _ = batch_rows(part, ["p0", "p1"], [0.0, 1.0], MeasureSetup.for_run(STEPS))
    assert math.isnan(rows.loc[0, "diverged_step"])
    assert rows.loc[1, "diverged_step"] == 450 and rows.loc[1, "measured_class"] == "diverged"
    assert rows.loc[1, "window_stop"] <= 450  # the window is cut at the divergence


# ---------------------------------------------------------------------------- max tensor
@pytest.mark.parametrize(
    ("names", "start", "stop", "expected"),
    [
        (["a", "b", "b", "c", "c", "c"], 0, 3, "b"),  # the window only
        (["a", "b", "b", "c", "c", "c"], 0, 6, "c"),
        (["b", "a", "b", "a"], 0, 4, "a"),  # a tie: the first name in sorted order
        (["x", "x", "y"], 3, 3, "x"),  # an empty window: the whole run
        ([None, "", None], 0, 3, ""),  # nothing named
    ],
    ids=["window", "whole", "tie", "empty-window", "none"],
)
def test_window_tensor(names: list[str | None], start: int, stop: int, expected: str) -> None:
    assert window_tensor(np.array(names, dtype=object), start, stop) == expected


def test_max_tensor_is_the_most_frequent_in_the_valid_window() -> None:
    points, u = _bounded_and_growing()
    tensors = np.full((2, STEPS), "early", dtype=object)
    setup = MeasureSetup.for_run(STEPS)
    rows, _, _ = batch_rows(_probe(points, u), ["p0", "p1"], [0.0, 1.0], setup)
    start = int(rows.loc[1, "window_start"])
    tensors[1, start:] = "late"  # the growing point's window is late in the run
    tensors[1, start : start + 10] = "early"
    rows, _, _ = batch_rows(_probe(points, u, tensors=tensors), ["p0", "p1"], [0, 1], setup)
    assert start > STEPS // 2  # "early" holds most steps of the run, "late" most of the window
    assert rows["max_tensor"].tolist() == ["early", "late"]


@pytest.mark.parametrize("beta", [0.81, 0.95], ids=["0.81", "0.95"])
def test_sqrt_n_growth_on_the_boundary_is_predicted_not_a_falsification(beta: float) -> None:
    """On γ² = β the exact bound grows as sqrt(n + 1): a trace on it has a log-linear rate
    ≈ 1/(2n) over its window, which the exact theory predicts (docs/theory.md §4)."""
    gamma = math.sqrt(beta)
    u = 0.5 * np.asarray(exact_bound(beta, gamma, np.arange(STEPS)))
    rows, _, _ = batch_rows(
        _probe([(beta, gamma)], u[None]), ["p"], [0.0], MeasureSetup.for_run(STEPS)
    )
    row = rows.iloc[0]
    assert row["window_rule"] == "boundary"
    start, stop = int(row["window_start"]), int(row["window_stop"])
    log_bound = np.log(np.asarray(exact_bound(beta, gamma, np.array([start, stop]))))
    assert row["exact_rate"] == pytest.approx((log_bound[1] - log_bound[0]) / (stop - start))
    assert row["exact_rate"] == pytest.approx(0.5 / ((start + stop) / 2), rel=0.05)
    assert row["exact_verdict"] != "seen but not predicted"
    assert row["rate"] == pytest.approx(row["exact_rate"], rel=0.05)


# ------------------------------------------------------------------ other optimizers
def _with_columns(
    part: ProbeResult, traces: dict[str, np.ndarray], summary: dict[str, list[float]] | None = None
) -> ProbeResult:
    """``part`` with more (P, S) trace columns (laid out by point and step, as the engine
    records them) and more summary columns."""
    t = part.traces
    rows, steps = t["point"].to_numpy(), t["step"].to_numpy()
    new = t.assign(**{name: values[rows, steps] for name, values in traces.items()})
    extra = part.summary.assign(**(summary or {}))
    return ProbeResult(extra, new, part.evals, part.device, part.dtype, len(extra), 0.0)


#: k = 2, inverse-exp from (0.999, 0.9): every level's pair (paper App. P; docs/theory.md (6.2))
LEVEL = (1 - 0.001**0.5, 1 - 0.1**0.5)


def _kadam_probe(fractions: tuple[float, float], steps: int = STEPS) -> ProbeResult:
    """A k = 2 point at base (0.999, 0.9) whose level i sits at fractions[i] of its own bound
    (with a ripple), the update being level 2's."""
    n = np.arange(steps)
    bound = np.asarray(exact_bound(*LEVEL, n))
    ripple = 1.0 - 0.02 * (1 + np.sin(n / 7.0)) / 2
    levels = [f * bound * ripple for f in fractions]
    part = _probe([(0.999, 0.9)], levels[-1][None])
    columns = {f"max_update_l{i}": lv[None] for i, lv in enumerate(levels, start=1)}
    return _with_columns(part, columns, {"level_beta": [LEVEL[0]], "level_gamma": [LEVEL[1]]})


def test_kadam_rows_check_each_level_against_its_own_bound() -> None:
    """The update obeys the last level's bound, not the base pair's (docs/theory.md (6.3)):
    here it passes the base pair's bound early on, as k = 2 inverse-exp updates do."""
    part = _kadam_probe((0.9, 0.97))
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(STEPS))
    row = rows.iloc[0]
    n = np.arange(STEPS)
    u = part.traces.sort_values("step")["max_update"].to_numpy()
    assert np.max(u / np.asarray(exact_bound(0.999, 0.9, n))) > 1.05  # the base pair's: passed
    own = np.asarray(exact_bound(*LEVEL, n))
    for i in (1, 2):
        level = part.traces.sort_values("step")[f"max_update_l{i}"].to_numpy()
        assert row[f"level_ratio_l{i}"] == pytest.approx(np.max(level / own), rel=1e-12)
    assert row["bound_ratio_max"] == pytest.approx(np.max(u / own), rel=1e-12)
    assert row["bound_check"] == "within the bound" and row["level_check"] == "within the bound"
    assert row["level_worst"] == 2 and (row["level_beta"], row["level_gamma"]) == LEVEL
    # the theory columns are the levels', the point stays the base pair
    assert (row["beta"], row["gamma"]) == (0.999, 0.9)
    assert row["c_value"] == pytest.approx(2 / LEVEL[1] - 1 / LEVEL[0] - 1, rel=1e-12)
    assert row["exact_stable"] == (LEVEL[1] ** 2 < LEVEL[0])
    assert list(rows.columns[: len(POINT_COLUMNS)]) == list(POINT_COLUMNS)
    assert {"level_ratio_l1", "level_ratio_l2"} <= set(rows.columns)


def test_a_kadam_level_above_its_bound_is_named_in_the_headline() -> None:
    from stabcli.report.measured import headline_of

    part = _kadam_probe((1.01, 0.9))  # level 1 above its bound by 1%: a probe bug
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(STEPS))
    row = rows.iloc[0]
    assert row["bound_check"] == "within the bound"  # the update (level 2) is fine
    assert row["level_check"] == "above the bound" and row["level_worst"] == 1
    lines = headline_of(rows.assign(underflow_step=np.nan), MeasureSetup.for_run(STEPS).settings)
    falsified = [line for line in lines.lines() if line.startswith("FALSIFIED")]
    assert len(falsified) == 1 and "level 1 of 2" in falsified[0]


def _learned_probe(
    gamma_path: np.ndarray, beta: float, fraction: float, mada: dict[str, np.ndarray] | None = None
) -> ProbeResult:
    """One learned point: β_n = beta, γ_n = gamma_path, its max-update at ``fraction`` of
    the path bound (path products, as HyperAdam's kernel; docs/theory.md (5.4))."""
    beta_path = np.full_like(gamma_path, beta)
    u = fraction * np.asarray(path_bound(beta_path, gamma_path))
    part = _probe([(beta, float(gamma_path[0]))], u[None])
    columns = {"beta": beta_path[None], "gamma": gamma_path[None]}
    columns |= {k: v[None] for k, v in (mada or {}).items()}
    return _with_columns(part, columns)


def test_learned_rows_check_the_path_bound_and_the_entry_into_instability() -> None:
    gamma = np.linspace(0.9, 0.999, STEPS)  # crosses sqrt(0.99) ≈ 0.99499 at n ≈ 575 · 0.96
    part = _learned_probe(gamma, 0.99, 0.8)
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(STEPS))
    row = rows.iloc[0]
    beta = np.full(STEPS, 0.99)
    assert row["first_unstable_step"] == first_unstable_step(beta, gamma)
    assert row["bound_ratio_max"] == pytest.approx(0.8, rel=1e-12)
    assert row["bound_kind"] == "path" and row["bound_check"] == "within the bound"
    assert (row["final_beta"], row["final_gamma"]) == (0.99, gamma[-1])
    assert (row["beta"], row["gamma"]) == (0.99, 0.9)  # the point: where the path started
    first = int(row["first_unstable_step"])
    assert STEPS - first < 100 and row["unstable_class"] == "no valid window"
    assert f"n = {first}" in row["unstable_reason"]


def test_learned_rows_measure_the_growth_after_entering() -> None:
    steps = 900
    gamma = np.concatenate([np.linspace(0.9, 0.999, 300), np.full(steps - 300, 0.999)])
    part = _learned_probe(gamma, 0.99, 0.8)
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(steps))
    row = rows.iloc[0]
    first = int(row["first_unstable_step"])
    u = part.traces.sort_values("step")["max_update"].to_numpy()
    slope = np.polyfit(np.arange(first, steps), np.log(u[first:]), 1)[0]
    assert row["unstable_rate"] == pytest.approx(slope, rel=1e-9)
    assert slope > 2e-3 and row["unstable_class"] == "growing"  # on its growing bound


def test_mada_off_its_face_has_no_bound_and_falsifies_nothing() -> None:
    from stabcli.report.measured import headline_of

    n = np.arange(STEPS)
    gamma = np.full(STEPS, 0.9)
    coefficients = {
        "beta3": np.where(n >= 5, 0.01, 0.0),  # Adan's term switched on at n = 5
        "rho": np.ones(STEPS),
        "c": np.ones(STEPS),
        "omega": np.ones(STEPS),
    }
    part = _learned_probe(gamma, 0.999, 1.0, coefficients)
    t = part.traces
    part = ProbeResult(  # growing fast, far above any bound of (0.999, 0.9)
        part.summary,
        t.assign(max_update=np.exp(0.02 * t["step"])),
        part.evals,
        "cpu",
        "float32",
        1,
        0.0,
    )
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(STEPS))
    row = rows.iloc[0]
    assert row["bound_kind"] == "none" and row["off_face_step"] == 5
    assert row["bound_check"] == "no bound off the Adam-AVGrad-Lion face"
    assert math.isnan(row["bound_ratio_max"]) and row["measured_class"] == "growing"
    assert row["exact_verdict"] == row["paper_verdict"] == "no bound off the Adam-AVGrad-Lion face"
    headline = headline_of(rows, MeasureSetup.for_run(STEPS).settings)
    assert not headline.falsifications
    assert any("left the Adam-AVGrad-Lion face" in line for line in headline.lines())


def test_mada_on_its_face_at_adams_vertex_is_checked_like_adam() -> None:
    """β3 = 0, c = ρ = ω = 1 and constant betas: (7.5) is the exact bound (docs/theory.md
    (5.6), (7.5)), so the path check and Adam's agree."""
    gamma = np.full(STEPS, 0.99)
    ones = np.ones(STEPS)
    vertex = {"beta3": 0 * ones, "rho": ones, "c": ones, "omega": ones}
    part = _learned_probe(gamma, 0.95, 0.7, vertex)
    rows, _, _ = batch_rows(part, ["p"], [0.0], MeasureSetup.for_run(STEPS))
    u = part.traces.sort_values("step")["max_update"].to_numpy()
    adam = np.max(u / np.asarray(exact_bound(0.95, 0.99, np.arange(STEPS))))
    assert rows.loc[0, "bound_kind"] == "MADA face"
    assert rows.loc[0, "bound_ratio_max"] == pytest.approx(adam, rel=1e-9)
    assert rows.loc[0, "first_unstable_step"] == 0  # 0.99² > 0.95 from the start


@pytest.mark.parametrize("every", [1, 3, 5], ids=["every-1", "every-3", "every-5"])
def test_a_trace_measured_every_kth_step_is_classified_on_its_measured_steps(every: int) -> None:
    """A monitor measuring every k-th step leaves the others at 0 (left out of every fit):
    the half-the-window rule counts the steps it measured, not all of the window's."""
    rng = np.random.default_rng(1)
    u = 0.3 * np.exp(0.05 * rng.standard_normal(STEPS))  # flat: bounded
    recorded = np.arange(STEPS) % every == 0
    u = np.where(recorded, u, 0.0)[None]
    counted = measure_points([0.999], [0.9], u, recorded=recorded[None]).points[0]
    assert counted.measured_class.value == "bounded"
    plain = measure_points([0.999], [0.9], u).points[0]  # every step expected
    assert plain.measured_class.value == ("bounded" if every == 1 else "undetermined")
