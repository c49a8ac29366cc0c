"""What one probe point measured: slopes of log‖u_n‖∞, its class, and the bound check.

The slope at step n is measured as the paper does (App. H: from the values at n−5 and n+5),
plus a least-squares slope over a wider window that skips non-finite values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stabcli.errors import SettingError
from stabcli.theory.agreement import BOUNDED, DIVERGED, GROWING
from stabcli.theory.exact import exact_bound


@dataclass(frozen=True)
class MeasureSettings:
    """How slopes are measured and points classified (saved with every run)."""

    slope_at: int  # step n of the slope (the paper uses n = 500)
    slope_half_width: int = 5  # central difference from n − 5 to n + 5 (paper App. H)
    fit_half_width: int = 50  # least-squares window n ± 50
    growth_tol: float = 1e-3  # fitted slopes above this (per step) count as growth

    @classmethod
    def for_run(
        cls, steps: int, slope_at: int | None = None, growth_tol: float = 1e-3
    ) -> MeasureSettings:
        """Settings for a run of ``steps`` steps; default slope step 500 or the middle."""
        at = slope_at if slope_at is not None else (500 if steps >= 1000 else steps // 2)
        half = 5
        if not half <= at <= steps - 1 - half:
            raise SettingError(
                "{slope_at} must be between {lo} and {hi} for a run of {steps} steps, got {at}",
                lo=half,
                hi=steps - 1 - half,
                steps=steps,
                at=at,
            )
        if not (math.isfinite(growth_tol) and growth_tol >= 0):
            raise SettingError("{growth_tol} must be a number >= 0, got {got}", got=growth_tol)
        fit = min(50, at, steps - 1 - at)
        return cls(slope_at=at, slope_half_width=half, fit_half_width=fit, growth_tol=growth_tol)


@dataclass(frozen=True)
class PointMeasurement:
    """What the probe measured at one point."""

    measured_slope: float  # (log u_{n+h} − log u_{n−h}) / 2h at n = slope_at
    fit_slope: float  # least-squares slope of log u over n ± fit_half_width
    measured_class: str  # "growing", "bounded" or "diverged"
    diverged_step: int | None  # first step whose loss or update was not finite
    bound_ratio_max: float  # max_n u_n / (exact bound_n + λ‖θ_n‖∞); ≤ 1 up to float rounding
    # (over the steps before ``underflow_step``, where the dtype still represents v)
    max_tensor: str  # parameter tensor holding the max-update at the slope step


def central_slope(log_u: np.ndarray, at: int, half: int) -> float:
    """(log u[at + half] − log u[at − half]) / (2 half), nan when either is not finite."""
    slope = (log_u[at + half] - log_u[at - half]) / (2 * half)
    return float(slope) if np.isfinite(slope) else math.nan


def fitted_slope(log_u: np.ndarray, at: int, half: int) -> float:
    """Least-squares slope of log u over steps at ± half, skipping non-finite values."""
    steps = np.arange(at - half, at + half + 1)
    values = log_u[steps]
    keep = np.isfinite(values)
    if keep.sum() < 3:
        return math.nan
    return float(np.polyfit(steps[keep], values[keep], 1)[0])


def measure_point(
    beta: float,
    gamma: float,
    max_update: np.ndarray,  # (steps,) ‖u_n‖∞, nan after divergence
    wd_term: np.ndarray,  # (steps,) λ‖θ_n‖∞ for decoupled weight decay, else 0
    max_tensor: list[str],  # (steps,) name of the tensor holding the max
    diverged_step: int | None,
    settings: MeasureSettings,
    underflow_step: int | None = None,
) -> PointMeasurement:
    """Slopes, class and bound ratio of one point's trace.

    The bound ratio is taken over the steps before ``underflow_step`` (the first step whose
    max-update came from a second moment below the dtype's normal range): the exact bound
    assumes real arithmetic, which the dtype no longer approximates there.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_u = np.log(max_update)
        bound = exact_bound(beta, gamma, np.arange(len(max_update))) + wd_term
        ratio = max_update / bound
    at = settings.slope_at
    measured = central_slope(log_u, at, settings.slope_half_width)
    fitted = fitted_slope(log_u, at, settings.fit_half_width)
    if diverged_step is not None:
        cls = DIVERGED
    else:
        slope = fitted if math.isfinite(fitted) else measured
        cls = GROWING if slope > settings.growth_tol else BOUNDED
    checked = ratio[:underflow_step] if underflow_step is not None else ratio
    finite = checked[np.isfinite(checked)]
    return PointMeasurement(
        measured_slope=measured,
        fit_slope=fitted,
        measured_class=cls,
        diverged_step=diverged_step,
        bound_ratio_max=float(finite.max()) if finite.size else math.nan,
        max_tensor=str(max_tensor[at]) if at < len(max_tensor) else "",
    )
