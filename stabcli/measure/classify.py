"""The measured rate of a point over its valid window, and the class it puts the point in.

The rate is the least-squares slope of log‖u_n‖∞ over the valid window (measure.window)
with its AR(1)-corrected standard error (measure.fit). The class compares the whole
interval rate ± t·stderr with growth_tol, so noise alone cannot call a point growing
(docs/theory.md §9):

- diverged: the trace went non-finite (nan or inf) at some step;
- growing: the interval lies above growth_tol;
- bounded: the interval lies below growth_tol;
- undetermined: no valid window, too few finite values, or an interval that straddles
  growth_tol; the reason says which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from stabcli.measure.fit import LineFits, window_fits
from stabcli.measure.settings import MeasureSettings
from stabcli.measure.window import Window


class MeasuredClass(StrEnum):
    """What the measurement says about a point's max-update."""

    GROWING = "growing"
    BOUNDED = "bounded"
    DIVERGED = "diverged"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class RateEstimate:
    """Least-squares rate of log‖u_n‖∞ over [start, stop), per step, with its interval."""

    rate: float  # slope per step; nan when it could not be fitted
    stderr: float  # AR(1)-corrected standard error
    low: float  # rate − t·stderr at the settings' confidence
    high: float  # rate + t·stderr
    count: int  # finite values used
    lag1: float  # residual lag-1 autocorrelation used for the error
    start: int
    stop: int

    @property
    def halfwidth(self) -> float:
        return (self.high - self.low) / 2.0


def estimates_from_fits(
    fits: LineFits, starts: Sequence[int], stops: Sequence[int], confidence: float
) -> list[RateEstimate]:
    """One RateEstimate per row of (P, 1) fits."""
    half = fits.halfwidth(confidence)[:, 0]
    return [
        RateEstimate(
            rate=float(fits.slope[i, 0]),
            stderr=float(fits.stderr[i, 0]),
            low=float(fits.slope[i, 0] - half[i]),
            high=float(fits.slope[i, 0] + half[i]),
            count=int(fits.count[i, 0]),
            lag1=float(fits.lag1[i, 0]),
            start=int(starts[i]),
            stop=int(stops[i]),
        )
        for i in range(len(starts))
    ]


def window_rates(
    log_u: np.ndarray,  # (P, S): points, steps
    windows: Sequence[Window],  # one per point
    settings: MeasureSettings,
    x: np.ndarray | None = None,  # (S,) step numbers of the columns; default 0..S−1
) -> list[RateEstimate]:
    """The rate of every point over its own window, in one vectorized fit."""
    s = log_u.shape[1]
    steps = np.arange(s, dtype=float) if x is None else np.asarray(x, dtype=float)
    starts = [w.start for w in windows]
    stops = [w.stop for w in windows]
    columns = _columns(steps, starts, stops)
    fits = window_fits(log_u, steps, columns[0][:, None], columns[1][:, None])
    return estimates_from_fits(fits, starts, stops, settings.confidence)


def _columns(steps: np.ndarray, starts: list[int], stops: list[int]) -> np.ndarray:
    """(2, P) column indices of the windows' step ranges (steps sorted ascending)."""
    return np.array(
        [np.searchsorted(steps, starts, "left"), np.searchsorted(steps, stops, "left")],
        dtype=np.intp,
    )


def classify(
    estimate: RateEstimate,
    window: Window,
    diverged_step: int | None,
    settings: MeasureSettings,
    recorded: int | None = None,
) -> tuple[MeasuredClass, str]:
    """The class of a point and, unless growing or bounded, the reason (module docstring).

    A rate needs a finite, non-zero max-update at half the window's recorded steps at
    least: ``recorded`` of them (every step of the window by default; a monitor measuring
    every k-th step records a k-th of them).
    """
    if diverged_step is not None:
        return MeasuredClass.DIVERGED, f"max-update not finite from n = {diverged_step}"
    if not window.ok:
        return MeasuredClass.UNDETERMINED, window.reason
    expected = window.length if recorded is None else recorded
    if not math.isfinite(estimate.rate) or estimate.count < expected / 2:
        return MeasuredClass.UNDETERMINED, (
            f"only {estimate.count} of {expected} recorded steps in the window "
            f"[{window.start}, {window.stop}) have a finite, non-zero max-update"
        )
    tol = settings.growth_tol
    if estimate.low > tol:
        return MeasuredClass.GROWING, ""
    if estimate.high < tol:
        return MeasuredClass.BOUNDED, ""
    return MeasuredClass.UNDETERMINED, (
        f"rate {estimate.rate:.3g} ± {estimate.halfwidth:.2g} per step over "
        f"[{window.start}, {window.stop}) straddles growth_tol {tol:g}"
    )
