"""Least-squares lines over many windows of many traces at once, with honest errors.

One function, :func:`window_fits`, fits y ≈ a + b·x over arbitrary half-open windows
[start, stop) of every row of a (P, S) array (points, steps), skipping non-finite values
(nan after divergence, −inf from a zero max-update). Every window sum is a difference of
cumulative sums, so a whole slope profile (thousands of windows per point) costs a few
passes over the array, with no Python loop per window (docs/theory.md §9).

The standard error of the slope accounts for autocorrelated residuals: consecutive steps
of training noise are correlated, and plain OLS errors are then too small. Modelling the
residuals as AR(1) with lag-1 autocorrelation φ, the variance of the OLS slope is inflated
by (1 + φ)/(1 − φ), i.e. the window holds n_eff = n (1 − φ)/(1 + φ) independent values
(Bartlett 1935; Bence 1995, Ecology 76:628, "Analysis of short time series: correcting for
autocorrelation"). φ is estimated from the residuals themselves; that estimate is biased
low by about (1 + 3φ)/n in a window of n values (Kendall 1954, Biometrika 41:403), which
is added back before use. The interval's half-width is Student's t quantile at n_eff − 2
degrees of freedom (Abramowitz & Stegun 26.7.5) times the standard error.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: Largest lag-1 autocorrelation used for the error inflation: at 0.95 the window already
#: counts as 1/39 of its length, and the estimate of φ itself is unreliable above.
MAX_LAG1 = 0.95
#: Fewest finite values for a slope (a line through 2 points has no error estimate).
MIN_COUNT = 3


@dataclass(frozen=True)
class LineFits:
    """Least-squares lines y ≈ intercept + slope·x, one per window; all arrays (P, K)."""

    slope: np.ndarray  # (P, K) b; nan where fewer than MIN_COUNT finite values
    stderr: np.ndarray  # (P, K) standard error of b, AR(1)-corrected
    count: np.ndarray  # (P, K) finite values in the window
    lag1: np.ndarray  # (P, K) residual lag-1 autocorrelation used (bias-corrected, clipped)
    n_eff: np.ndarray  # (P, K) effective sample size n (1 − φ)/(1 + φ)
    ssr: np.ndarray  # (P, K) residual sum of squares

    def halfwidth(self, confidence: float) -> np.ndarray:
        """Half-width of the two-sided interval at ``confidence``: t_{ν}·stderr, ν = n_eff − 2."""
        return t_quantile(0.5 + confidence / 2.0, self.n_eff - 2.0) * self.stderr


def t_quantile(p: float, dof: np.ndarray) -> np.ndarray:
    """Student's t quantile at probability p for ``dof`` degrees of freedom (array).

    Cornish-Fisher expansion in 1/ν around the normal quantile z (Abramowitz & Stegun
    26.7.5): t ≈ z + g1/ν + g2/ν² + g3/ν³ + g4/ν⁴. ν is clipped to >= 1; the expansion is
    within 1% of the exact quantile for ν >= 3 at p = 0.975, and errs low below.
    """
    z = NormalDist().inv_cdf(p)
    nu = np.maximum(np.asarray(dof, dtype=float), 1.0)
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4


def _window_sums(values: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Σ over t in [start, stop) of values[f, p, t], per field and window: (F, P, K).

    values: (F, P, T): fields, points, steps; start, stop: (P, K). With one window per
    point, a masked sum (one pass over the array); with many, differences of running
    sums, so the cost does not grow with the number of windows.
    """
    f, p, t = values.shape
    if start.shape[-1] == 1:
        steps = np.arange(t)
        inside = ((steps >= start) & (steps < stop)).astype(float)  # (P, T)
        return np.einsum("fpt,pt->fp", values, inside)[..., None]  # (F, P, 1)
    running = np.zeros((f, p, t + 1))
    np.cumsum(values, axis=-1, out=running[..., 1:])
    hi = np.take_along_axis(running, np.broadcast_to(stop, (f, *stop.shape)), axis=-1)
    lo = np.take_along_axis(running, np.broadcast_to(start, (f, *start.shape)), axis=-1)
    return hi - lo


def window_fits(
    y: np.ndarray,  # (P, S): points, steps; non-finite values are skipped
    x: np.ndarray,  # (S,) the regressor: step numbers n, or log(n + 1) for a power law
    start: np.ndarray,  # (P, K) first index of each window
    stop: np.ndarray,  # (P, K) one past the last index of each window
) -> LineFits:
    """Least-squares slope of y on x over every window [start, stop), with AR(1) errors.

    With centred sums s_xx, s_xy, s_yy over the n finite values of a window, the slope is
    b = s_xy / s_xx and the residual sum of squares SSR = s_yy − b·s_xy. The lag-1
    autocorrelation of the residuals r_t = y_t − a − b x_t is φ̂ = (Σ r_t r_{t+1} / n_p) /
    (SSR / n) over the n_p consecutive finite pairs; Σ r_t r_{t+1} expands into sums of
    y_t y_{t+1}, y_t + y_{t+1}, x_t y_{t+1} + x_{t+1} y_t, x_t + x_{t+1} and x_t x_{t+1},
    all window sums too. Then φ = clip(φ̂ + (1 + 3φ̂)/n, 0, MAX_LAG1) and
    stderr² = SSR/(n − 2) / s_xx · (1 + φ)/(1 − φ) (module docstring).
    """
    y = np.asarray(y, dtype=float)
    p, s = y.shape
    start, stop = np.broadcast_arrays(np.atleast_2d(start), np.atleast_2d(stop))
    shape = (p, start.shape[-1])
    start = np.broadcast_to(np.clip(start, 0, s).astype(np.intp), shape)
    stop = np.broadcast_to(np.clip(stop, 0, s).astype(np.intp), shape)
    stop = np.maximum(stop, start)

    finite = np.isfinite(y)  # (P, S)
    w = finite.astype(float)
    # Centre y per row and x globally: the window sums are differences of running sums,
    # and small running sums keep that subtraction exact to ~1e-16 of their size.
    count_all = w.sum(axis=1, keepdims=True)
    y_mean = np.where(finite, y, 0.0).sum(axis=1, keepdims=True) / np.maximum(count_all, 1.0)
    yc = np.where(finite, y - y_mean, 0.0)  # (P, S)
    xc = np.asarray(x, dtype=float) - float(np.mean(x))  # (S,)

    n, sx, sy, sxx, sxy, syy = _window_sums(
        np.stack([w, w * xc, yc, w * xc * xc, yc * xc, yc * yc]), start, stop
    )
    # Consecutive pairs (t, t + 1) inside [start, stop): pair index t runs over [start, stop − 1).
    pair = finite[:, :-1] & finite[:, 1:]  # (P, S − 1)
    y0, y1, x0, x1 = yc[:, :-1], yc[:, 1:], xc[:-1], xc[1:]
    pstart = np.minimum(start, s - 1)
    pstop = np.clip(stop - 1, pstart, s - 1)
    n_pairs, p_yy, p_y, p_xy, p_x, p_xx = _window_sums(
        np.where(
            pair,
            np.stack(
                np.broadcast_arrays(1.0, y0 * y1, y0 + y1, x0 * y1 + x1 * y0, x0 + x1, x0 * x1)
            ),
            0.0,
        ),
        pstart,
        pstop,
    )

    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sx / n, sy / n
        cxx = sxx - n * mx * mx
        cxy = sxy - n * mx * my
        cyy = syy - n * my * my
        slope = cxy / cxx
        intercept = my - slope * mx
        ssr = cyy - slope * cxy
        # cyy − b·cxy cancels to ~eps·cyy on an exact line: below 1e-12·cyy it is rounding.
        ssr = np.where(ssr > 1e-12 * cyy, ssr, 0.0)
        r_pairs = (
            p_yy
            - intercept * p_y
            - slope * p_xy
            + intercept * intercept * n_pairs
            + intercept * slope * p_x
            + slope * slope * p_xx
        )
        lag1_raw = (r_pairs / n_pairs) / (ssr / n)
        lag1 = lag1_raw + (1.0 + 3.0 * lag1_raw) / n
        lag1 = np.where(np.isfinite(lag1) & (ssr > 0), np.clip(lag1, 0.0, MAX_LAG1), 0.0)
        inflation = (1.0 + lag1) / (1.0 - lag1)
        stderr = np.sqrt(ssr / (n - 2.0) / cxx * inflation)
    usable = (n >= MIN_COUNT) & (cxx > 0)
    nan = np.nan
    return LineFits(
        slope=np.where(usable, slope, nan),
        stderr=np.where(usable, stderr, nan),
        count=n.astype(np.int64),
        lag1=np.where(usable, lag1, nan),
        n_eff=np.where(usable, n / inflation, nan),
        ssr=np.where(usable, ssr, nan),
    )
