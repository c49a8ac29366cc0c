"""Slopes of log‖u_n‖∞ along a whole run: the sliding-window profile and App. H's difference.

A slope read at one step can land in the early transient or on a plateau; the profile
shows the slope of every window of ``profile_window`` steps across the run, with its
AR(1)-corrected standard error (measure.fit), for all points at once (docs/theory.md §9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stabcli.measure.fit import window_fits
from stabcli.measure.settings import MeasureSettings


def log_trace(max_update: np.ndarray) -> np.ndarray:
    """log‖u_n‖∞ of a (P, S) trace: −inf where the update is 0, nan where it is nan or < 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(max_update, dtype=float))


def first_nonfinite(max_update: np.ndarray) -> np.ndarray:
    """(P,) first step whose max-update is nan or ±inf (divergence); S when there is none.

    A zero update is finite: a step that moved nothing, not a divergence.
    """
    bad = ~np.isfinite(np.asarray(max_update, dtype=float))  # (P, S)
    return np.where(bad.any(axis=1), bad.argmax(axis=1), bad.shape[1])


@dataclass(frozen=True)
class SlopeProfile:
    """One point's slope of log‖u_n‖∞ over sliding windows; arrays of shape (K,): windows."""

    centres: np.ndarray  # (K,) middle step of each window, (start + stop − 1)/2
    slopes: np.ndarray  # (K,) least-squares slope per step; nan with < 3 finite values
    stderr: np.ndarray  # (K,) its standard error (AR(1)-corrected)
    halfwidth: np.ndarray  # (K,) half-width of the interval at the settings' confidence
    window: int  # steps per window


def slope_profiles(log_u: np.ndarray, settings: MeasureSettings) -> list[SlopeProfile]:
    """Sliding-window slopes of every row of a (P, S) log trace, one profile per point.

    Windows of w = min(profile_window, S) steps start every ``profile_stride`` steps;
    the last window always ends at the last step.
    """
    p, s = log_u.shape
    w = min(settings.profile_window, s)
    starts = np.arange(0, s - w + 1, settings.profile_stride)
    if starts.size == 0 or starts[-1] != s - w:
        starts = np.append(starts, s - w)
    fits = window_fits(log_u, np.arange(s, dtype=float), starts[None, :], starts[None, :] + w)
    halfwidth = fits.halfwidth(settings.confidence)  # (P, K)
    centres = starts + (w - 1) / 2.0  # (K,)
    return [SlopeProfile(centres, fits.slope[i], fits.stderr[i], halfwidth[i], w) for i in range(p)]


def central_slope(log_u: np.ndarray, at: np.ndarray, half: int) -> np.ndarray:
    """(log u_{n+h} − log u_{n−h}) / 2h at n = ``at`` per row (paper App. H: h = 5, n = 500).

    log_u: (P, S); at: (P,) steps. nan where n ± h falls outside the run or either value
    is not finite.
    """
    p, s = log_u.shape
    at = np.asarray(at, dtype=np.intp)
    inside = (at - half >= 0) & (at + half < s)
    rows = np.arange(p)
    hi = log_u[rows, np.clip(at + half, 0, s - 1)]
    lo = log_u[rows, np.clip(at - half, 0, s - 1)]
    with np.errstate(invalid="ignore"):
        slope = (hi - lo) / (2.0 * half)
    return np.where(inside & np.isfinite(slope), slope, np.nan)
