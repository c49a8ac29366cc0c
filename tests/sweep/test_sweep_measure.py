"""Measurement of one point's trace, and which theory it agreed with."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stabcli.errors import SettingError
from stabcli.sweep.measure import MeasureSettings, fitted_slope, measure_point
from stabcli.sweep.table import prediction_columns
from stabcli.theory.agreement import PointOutcome, agrees_with, summarize
from stabcli.theory.exact import exact_bound

STEPS = 400
SETTINGS = MeasureSettings.for_run(STEPS)


def _trace(rate: float, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = np.arange(STEPS)
    return 0.5 * np.exp(rate * n + noise * rng.standard_normal(STEPS))


def test_default_slope_step_is_middle_or_500() -> None:
    assert MeasureSettings.for_run(400).slope_at == 200
    assert MeasureSettings.for_run(1500).slope_at == 500
    assert MeasureSettings.for_run(1500).fit_half_width == 50


@pytest.mark.parametrize("at", [2, 395, 1000])
def test_slope_step_out_of_range_names_the_setting(at: int) -> None:
    with pytest.raises(SettingError, match=r"^slope_at must be between 5 and 394") as err:
        MeasureSettings.for_run(400, slope_at=at)
    assert err.value.settings == ("slope_at",)
    assert err.value.render({"slope_at": "--slope-at"}).startswith("--slope-at must be")


def test_bound_ratio_stops_at_the_underflow_step() -> None:
    """After the step where v left the dtype's range the bound is not checked (docs/theory.md
    §9): a float artefact there must not read as a probe bug."""
    beta, gamma = 0.999, 0.9
    bound = exact_bound(beta, gamma, np.arange(STEPS))
    u = 0.5 * bound
    u[300:] = 1e27  # what float32 Adam computes once v has underflowed to 0
    args = (beta, gamma, u, np.zeros(STEPS), ["w"] * STEPS, None, SETTINGS)
    assert measure_point(*args).bound_ratio_max > 1e20
    assert measure_point(*args, underflow_step=300).bound_ratio_max == pytest.approx(0.5)


def test_growing_trace_measures_its_rate_and_stays_under_bound() -> None:
    # exactly the vanishing-gradient trajectory is the bound's shape; here a pure exponential
    # well below the exact bound of a strongly unstable point
    beta, gamma = 0.5, 0.9
    u = _trace(0.02)
    m = measure_point(beta, gamma, u, np.zeros(STEPS), ["w"] * STEPS, None, SETTINGS)
    assert m.measured_slope == pytest.approx(0.02, rel=1e-9)
    assert m.fit_slope == pytest.approx(0.02, rel=1e-9)
    assert m.measured_class == "growing"
    ratio = u / exact_bound(beta, gamma, np.arange(STEPS))
    assert m.bound_ratio_max == pytest.approx(ratio.max())
    assert m.max_tensor == "w"


def test_bounded_trace_is_bounded_and_nan_values_are_skipped_in_fit() -> None:
    u = _trace(0.0, noise=0.05)
    u[190] = np.nan
    m = measure_point(0.999, 0.9, u, np.zeros(STEPS), ["a"] * STEPS, None, SETTINGS)
    assert m.measured_class == "bounded"
    assert math.isfinite(m.fit_slope) and abs(m.fit_slope) < 1e-3


def test_fitted_slope_needs_three_finite_values() -> None:
    log_u = np.full(50, np.nan)
    log_u[20] = 1.0
    assert math.isnan(fitted_slope(log_u, 20, 5))


def test_diverged_point_is_diverged_and_bound_ratio_ignores_nan() -> None:
    u = _trace(0.05)
    u[300:] = np.nan
    m = measure_point(0.5, 0.9, u, np.zeros(STEPS), ["x"] * STEPS, 300, SETTINGS)
    assert m.measured_class == "diverged" and m.diverged_step == 300
    assert math.isfinite(m.bound_ratio_max)


def test_weight_decay_term_is_added_to_the_bound() -> None:
    bound = exact_bound(0.999, 0.9, np.arange(STEPS))
    u = bound + 0.5  # above the Adam bound, within bound + λ‖θ‖∞
    m = measure_point(0.999, 0.9, u, np.full(STEPS, 1.0), ["x"] * STEPS, None, SETTINGS)
    assert m.bound_ratio_max <= 1.0


def _outcome(**kw: object) -> PointOutcome:
    base = dict(
        paper_grows=True,
        exact_grows=True,
        paper_rate=0.4,
        exact_rate=0.24,
        measured_class="growing",
        measured_slope=0.24,
    )
    base.update(kw)
    return PointOutcome(**base)  # type: ignore[arg-type]


def test_agreement_rules() -> None:
    assert agrees_with(_outcome()) == "exact"  # both classify right, exact rate closer
    assert agrees_with(_outcome(measured_slope=0.4)) == "paper"
    assert agrees_with(_outcome(paper_rate=0.25)) == "both"  # rates within 10%
    # (0.4, 0.6): paper B−, exactly stable; bounded measurement agrees with exact only
    disagree = _outcome(exact_grows=False, exact_rate=0.0, measured_class="bounded")
    assert agrees_with(disagree) == "exact"
    assert (
        agrees_with(_outcome(paper_grows=False, exact_grows=False, measured_class="bounded"))
        == "both"
    )
    assert agrees_with(_outcome(paper_grows=False, exact_grows=False)) == "neither"


def test_summary_counts_and_median_errors() -> None:
    outcomes = [
        _outcome(measured_slope=0.24),  # paper err 0.667, exact 0
        _outcome(measured_slope=0.3),  # paper 0.333, exact 0.2
        _outcome(exact_grows=False, exact_rate=0.0, measured_class="bounded"),
    ]
    s = summarize(outcomes)
    assert (s.n_points, s.n_growing, s.paper_correct, s.exact_correct) == (3, 2, 2, 3)
    assert s.paper_median_rel_error == pytest.approx((0.4 / 0.24 - 1 + 1 / 3) / 2)
    assert s.exact_median_rel_error == pytest.approx(0.1)
    assert "paper 2/3" in s.sentence()


def test_prediction_columns_round_trip_through_csv_strings() -> None:
    row = prediction_columns(0.4, 0.6, 200)
    assert row["paper_region"] == "B-" and row["exact_stable"] is True
    assert row["torch_beta1"] == 0.6 and row["torch_beta2"] == 0.4
    row.update(measured_class="bounded", measured_slope=0.0, exact_stable="True")
    outcome = PointOutcome.from_row(row)
    assert outcome.paper_grows and not outcome.exact_grows


def test_max_tensor_is_the_one_at_the_slope_step() -> None:
    names = [f"t{i}" for i in range(STEPS)]
    m = measure_point(0.5, 0.9, _trace(0.02), np.zeros(STEPS), names, None, SETTINGS)
    assert m.max_tensor == f"t{SETTINGS.slope_at}"
