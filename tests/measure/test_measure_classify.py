"""Rates and classes (measure.classify via measure_points) on synthetic traces of known slope."""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.measure import MeasuredClass, MeasureSettings, measure_points
from stabcli.measure.profile import central_slope, log_trace
from stabcli.theory.exact import exact_bound

S = 3000
GROWTH_POINT = (0.95, 0.99)  # γ² > β: window [2000, 3000) in a 3000-step run
STABLE_POINT = (0.999, 0.9)  # PyTorch's default: window opens after the bound's ramp


def _measure(point: tuple[float, float], log_u: np.ndarray, **kw):
    return measure_points([point[0]], [point[1]], np.exp(log_u)[None, :], dtype="float64", **kw)


def _noise(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return 0.1 * rng.normal(size=S)
    x = np.zeros(S)  # AR(1), φ = 0.7, marginal sd 0.1
    e = rng.normal(size=S) * 0.1 * np.sqrt(1 - 0.49)
    for t in range(1, S):
        x[t] = 0.7 * x[t - 1] + e[t]
    return x


@pytest.mark.parametrize("noise", ["iid", "ar1"])
@pytest.mark.parametrize(
    ("slope", "expected"),
    [
        (0.02, MeasuredClass.GROWING),
        (0.005, MeasuredClass.GROWING),
        (0.0, MeasuredClass.BOUNDED),
        (-0.003, MeasuredClass.BOUNDED),
    ],
    ids=["fast", "slow", "flat", "decaying"],
)
def test_known_slope_is_recovered_and_classified(
    slope: float, expected: MeasuredClass, noise: str
) -> None:
    n = np.arange(S)
    m = _measure(GROWTH_POINT, -1.0 + slope * n + _noise(noise, seed=11)).points[0]
    assert (m.rate.start, m.rate.stop) == (2000, 3000)
    assert abs(m.rate.rate - slope) <= max(m.rate.halfwidth, 1e-12)
    assert m.rate.halfwidth < 2e-4  # 1000 steps of sd 0.1 resolve a rate to 2e-4
    assert m.measured_class is expected and m.reason == ""


def test_bias_correction_ramp_does_not_fake_growth() -> None:
    """A trace riding the exact bound at (0.999, 0.9) ramps for ~400 steps, then is flat.

    The App. H difference read early (n = 50) calls it growing; the valid window does not.
    """
    n = np.arange(1000)
    log_u = np.log(exact_bound(*STABLE_POINT, n)) + 0.02 * np.random.default_rng(1).normal(
        size=1000
    )
    m = measure_points(
        [STABLE_POINT[0]], [STABLE_POINT[1]], np.exp(log_u)[None, :], dtype="float64"
    )
    assert m.points[0].measured_class is MeasuredClass.BOUNDED
    assert m.points[0].window.start >= 400
    early = central_slope(log_trace(np.exp(log_u)[None, :]), np.array([50]), 5)[0]
    assert early > 1e-3


def test_plateau_then_growth_is_measured_on_the_growth() -> None:
    n = np.arange(S)
    rate = 0.012
    log_u = np.where(n < 1500, 0.0, rate * (n - 1500)) + _noise("iid", seed=4)
    sweep = _measure(GROWTH_POINT, log_u)
    m, profile = sweep.points[0], sweep.profiles[0]
    assert m.measured_class is MeasuredClass.GROWING
    assert m.rate.rate == pytest.approx(rate, abs=m.rate.halfwidth)
    plateau = profile.centres < 1400
    growth = profile.centres > 1600
    assert np.all(np.abs(profile.slopes[plateau]) < 3e-3)
    assert np.all(np.abs(profile.slopes[growth] - rate) < 3e-3)


def test_too_short_run_is_undetermined_with_the_steps_needed() -> None:
    n = np.arange(300)
    m = _measure(STABLE_POINT, 0.01 * np.sin(n)).points[0]
    assert m.measured_class is MeasuredClass.UNDETERMINED
    assert m.reason.startswith("run too short")
    assert f"use steps ≥ {m.window.steps_needed}" in m.reason
    assert m.window.steps_needed > 300


def test_divergence_is_classified_diverged_and_the_rate_measured_before_it() -> None:
    n = np.arange(S)
    log_u = 0.02 * n + _noise("iid", seed=2)
    log_u[2500:] = np.nan
    m = _measure(GROWTH_POINT, log_u).points[0]
    assert m.measured_class is MeasuredClass.DIVERGED
    assert m.diverged_step == 2500
    assert (m.rate.start, m.rate.stop) == (1667, 2500)
    assert m.rate.rate == pytest.approx(0.02, abs=m.rate.halfwidth)


def test_infinite_update_counts_as_divergence_and_the_callers_step_wins_if_earlier() -> None:
    log_u = np.zeros(S)
    log_u[2900] = np.inf
    assert _measure(GROWTH_POINT, log_u).points[0].diverged_step == 2900
    m = _measure(GROWTH_POINT, np.zeros(S), diverged_steps=[2700]).points[0]
    assert m.measured_class is MeasuredClass.DIVERGED and m.diverged_step == 2700


def test_zero_updates_are_skipped_not_divergence() -> None:
    n = np.arange(S)
    u = np.exp(0.01 * n + _noise("iid", seed=5))
    u[2000::7] = 0.0  # a step that moved nothing: log is −inf, skipped by the fit
    m = measure_points([GROWTH_POINT[0]], [GROWTH_POINT[1]], u[None, :], dtype="float64").points[0]
    assert m.measured_class is MeasuredClass.GROWING and m.diverged_step is None
    assert m.rate.count == 1000 - len(range(2000, S, 7))
    assert m.rate.rate == pytest.approx(0.01, abs=m.rate.halfwidth)


def test_mostly_zero_window_is_undetermined() -> None:
    u = np.ones(S)
    u[2000::3] = 0.0
    u[2001::3] = 0.0
    m = measure_points([GROWTH_POINT[0]], [GROWTH_POINT[1]], u[None, :], dtype="float64").points[0]
    assert m.measured_class is MeasuredClass.UNDETERMINED and m.reason.startswith("only ")


def test_rate_at_the_growth_tolerance_is_undetermined() -> None:
    tol = MeasureSettings().growth_tol
    m = _measure(GROWTH_POINT, tol * np.arange(S) + _noise("ar1", seed=9)).points[0]
    assert m.measured_class is MeasuredClass.UNDETERMINED
    assert "straddles growth_tol" in m.reason
