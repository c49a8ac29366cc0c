"""Power-law growth on the boundary: is ‖u_n‖∞ growing like √n?

On γ² = β the exact bound is corr_n · (1−γ)/sqrt(1−β) · sqrt(n + 1) (docs/theory.md §4),
and on the paper's B0 its eq. 5 grows as sqrt(n) (arXiv 2411.05746, Section 3.1; App. F
reports such points bounded in practice). The signature of √n growth is a slope of ½ of
log‖u_n‖∞ against log(n + 1); an exponential e^{rn} has no constant log-log slope, and
fits a line in n better than a line in log n. So over the settled part of the run:

- exponent p: least-squares slope of log u against log(n + 1), with the same
  AR(1)-corrected interval as every rate (measure.fit);
- shape: bounded when p's interval lies below ``power_tol``; else power law when the
  residuals of the log-log line are smaller than those of the line in n, exponential
  otherwise; undetermined when p's interval straddles ``power_tol``;
- √n when the shape is a power law and |p − ½| is within max(interval, power_tol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from stabcli.measure.fit import window_fits
from stabcli.measure.settings import MeasureSettings
from stabcli.measure.window import Window


class GrowthShape(StrEnum):
    """How log‖u_n‖∞ grows over the settled part of a run."""

    BOUNDED = "bounded"
    POWER = "power law"
    EXPONENTIAL = "exponential"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class PowerLaw:
    """The log-log slope of a trace over [start, stop) and the growth shape it implies."""

    exponent: float  # slope of log u_n against log(n + 1); nan when not fitted
    halfwidth: float  # t·stderr at the settings' confidence
    start: int
    stop: int
    shape: GrowthShape
    sqrt_n: bool  # a power law with exponent ½ (module docstring)


def power_laws(
    log_u: np.ndarray,  # (P, S): points, steps
    windows: Sequence[Window],  # each point's valid window (its settle step opens the fit)
    ends: Sequence[int] | np.ndarray,  # (P,) one past the last finite step (divergence or S)
    settings: MeasureSettings,
) -> list[PowerLaw]:
    """The power-law fit of every point over [settle step, end): the whole settled part.

    Wider than the rate's window on purpose: a power law shows over a range of log n.
    """
    s = log_u.shape[1]
    steps = np.arange(s, dtype=float)
    starts = np.array([w.settle_step if w.settle_step is not None else s for w in windows])
    stops = np.maximum(np.asarray(ends, dtype=np.intp), starts)
    log_n = np.log(steps + 1.0)  # (S,)
    power = window_fits(log_u, log_n, starts[:, None], stops[:, None])
    linear = window_fits(log_u, steps, starts[:, None], stops[:, None])
    half = power.halfwidth(settings.confidence)[:, 0]
    out = []
    for i in range(len(windows)):
        p, h = float(power.slope[i, 0]), float(half[i])
        enough = stops[i] - starts[i] >= settings.min_window and np.isfinite(p)
        if not enough or not np.isfinite(h):
            shape = GrowthShape.UNDETERMINED
        elif p + h < settings.power_tol:
            shape = GrowthShape.BOUNDED
        elif p - h > settings.power_tol:
            smaller = power.ssr[i, 0] <= linear.ssr[i, 0]
            shape = GrowthShape.POWER if smaller else GrowthShape.EXPONENTIAL
        else:
            shape = GrowthShape.UNDETERMINED
        sqrt_n = shape is GrowthShape.POWER and abs(p - 0.5) <= max(h, settings.power_tol)
        out.append(PowerLaw(p, h, int(starts[i]), int(stops[i]), shape, sqrt_n))
    return out
