"""Windowed least squares (measure.fit) against per-window numpy fits, and its error's coverage."""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.measure.fit import MAX_LAG1, t_quantile, window_fits

S = 400


def _trace(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(y (S,), x (S,)) test traces: the regressor is the step n unless named otherwise."""
    rng = np.random.default_rng(7)
    n = np.arange(S, dtype=float)
    y = 0.3 + 0.01 * n + 0.2 * rng.normal(size=S)
    if kind == "nan-tail":  # divergence: nan from step 300 on
        y[300:] = np.nan
    elif kind == "zeros":  # log of a zero max-update is −inf
        y[rng.choice(S, 40, replace=False)] = -np.inf
    elif kind == "log-x":
        return 1.0 + 0.5 * np.log(n + 1.0) + 0.05 * rng.normal(size=S), np.log(n + 1.0)
    elif kind == "late-and-large":  # big values late in the run: stresses the running sums
        y = 40.0 + 0.05 * (n + 5000.0) + 0.01 * rng.normal(size=S)
        return y, n + 5000.0
    return y, n


def _reference(y: np.ndarray, x: np.ndarray, a: int, b: int) -> tuple[float, float, float]:
    """np.polyfit over the finite values of [a, b): slope, SSR, bias-corrected residual lag-1."""
    keep = np.isfinite(y[a:b])
    xs, ys = x[a:b][keep], y[a:b][keep]
    slope, intercept = np.polyfit(xs, ys, 1)
    resid = np.full(b - a, np.nan)
    resid[keep] = ys - (intercept + slope * xs)
    ssr = float(np.nansum(resid**2))
    pairs = resid[:-1] * resid[1:]
    phi = np.nanmean(pairs) / (ssr / keep.sum())
    phi = float(np.clip(phi + (1 + 3 * phi) / keep.sum(), 0.0, MAX_LAG1))
    return float(slope), ssr, phi


@pytest.mark.parametrize("kind", ["iid", "nan-tail", "zeros", "log-x", "late-and-large"])
def test_window_fits_match_numpy_polyfit_window_by_window(kind: str) -> None:
    y, x = _trace(kind)
    starts = np.arange(0, S - 100 + 1, 37)
    fits = window_fits(y[None, :], x, starts[None, :], starts[None, :] + 100)
    for k, a in enumerate(starts):
        keep = np.isfinite(y[a : a + 100]).sum()
        if keep < 3:
            assert np.isnan(fits.slope[0, k])
            continue
        slope, ssr, phi = _reference(y, x, a, a + 100)
        assert fits.count[0, k] == keep
        assert fits.slope[0, k] == pytest.approx(slope, rel=1e-9, abs=1e-12)
        assert fits.ssr[0, k] == pytest.approx(ssr, rel=1e-7, abs=1e-9)
        assert fits.lag1[0, k] == pytest.approx(phi, rel=1e-6, abs=1e-9)


def test_window_fits_handle_many_points_and_per_point_windows() -> None:
    """(P, S) input with one window per row equals fitting each row on its own."""
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=(5, S)), axis=1) * 0.01 + rng.normal(size=(5, S))
    x = np.arange(S, dtype=float)
    starts = np.array([[0], [50], [120], [200], [390]])
    stops = np.array([[100], [400], [260], [210], [400]])
    batch = window_fits(y, x, starts, stops)
    for i in range(5):
        alone = window_fits(y[i : i + 1], x, starts[i : i + 1], stops[i : i + 1])
        assert batch.slope[i, 0] == pytest.approx(alone.slope[0, 0], rel=1e-9)
        assert batch.stderr[i, 0] == pytest.approx(alone.stderr[0, 0], rel=1e-7)


@pytest.mark.parametrize(
    ("dof", "table"),
    [(3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042), (1000, 1.962)],
    ids=["nu3", "nu5", "nu10", "nu30", "nu1000"],
)
def test_t_quantile_matches_the_t_table(dof: int, table: float) -> None:
    """Two-sided 95% points of Student's t from a printed table, within 1%."""
    assert float(t_quantile(0.975, np.array(dof))) == pytest.approx(table, rel=0.01)


TRIALS, WINDOW, TRUE_SLOPE = 500, 200, 0.01


def _coverage_trials(ar1, phi: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y (TRIALS, WINDOW), x): a known slope plus AR(1) noise of marginal sd 0.1."""
    x = np.arange(WINDOW, dtype=float) + 1000.0
    y = 2.0 + TRUE_SLOPE * x + 0.1 * ar1(np.random.default_rng(seed), (TRIALS, WINDOW), phi)
    return y, x


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.6, 0.8], ids=lambda p: f"phi{p}")
def test_stated_95_percent_interval_covers_the_true_slope(ar1, phi: float) -> None:
    """500 seeded trials with AR(1) noise: the 95% interval covers the slope >= 90% of the time."""
    y, x = _coverage_trials(ar1, phi, seed=int(phi * 10) + 1)
    fits = window_fits(y, x, np.array([[0]]), np.array([[WINDOW]]))
    half = fits.halfwidth(0.95)[:, 0]
    coverage = np.mean(np.abs(fits.slope[:, 0] - TRUE_SLOPE) <= half)
    assert coverage >= 0.90, coverage


def test_plain_ols_errors_would_fail_the_coverage_test(ar1) -> None:
    """The coverage test can fail: plain OLS errors, from np.polyfit's covariance, under-cover."""
    y, x = _coverage_trials(ar1, 0.6, seed=7)
    covered = 0
    for row in y:
        (slope, _), cov = np.polyfit(x, row, 1, cov="unscaled")
        resid = row - np.polyval([slope, _], x)
        ols_se = np.sqrt(cov[0, 0] * np.sum(resid**2) / (WINDOW - 2))
        covered += abs(slope - TRUE_SLOPE) <= 1.97 * ols_se
    assert covered / TRIALS < 0.85
    ours = window_fits(y, x, np.array([[0]]), np.array([[WINDOW]]))
    assert np.mean(np.abs(ours.slope[:, 0] - TRUE_SLOPE) <= ours.halfwidth(0.95)[:, 0]) >= 0.90


def test_noise_free_line_has_zero_error_and_no_autocorrelation() -> None:
    x = np.arange(S, dtype=float)
    fits = window_fits((0.5 + 0.02 * x)[None, :], x, np.array([[100]]), np.array([[300]]))
    assert fits.slope[0, 0] == pytest.approx(0.02, rel=1e-10)
    assert fits.stderr[0, 0] < 1e-9
    assert fits.lag1[0, 0] == 0.0


def test_too_few_finite_values_give_nan() -> None:
    y = np.full((1, S), np.nan)
    y[0, 10:12] = [1.0, 2.0]
    fits = window_fits(y, np.arange(S, dtype=float), np.array([[0]]), np.array([[S]]))
    assert np.isnan(fits.slope[0, 0]) and np.isnan(fits.stderr[0, 0])
    assert fits.count[0, 0] == 2
