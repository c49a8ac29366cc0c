"""The full measurement of a sweep: every point's window, rate, class, bound check, verdicts.

One call, :func:`measure_points`, on the (P, S) max-update traces of a sweep, computes in
this order (docs/theory.md §9): the log trace and where it went non-finite; the valid
window of each point from (β, γ) and the run length (measure.window); the slope profile
across the run (measure.profile); the rate over the window and its class
(measure.classify); the paper's central difference at a step (App. H); the power-law fit
(measure.power); the exact bound check (measure.bounds); each theory's verdict and the
closer theory (measure.verdicts); the headline (measure.headline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stabcli.errors import StabcliError
from stabcli.measure.bounds import BoundCheck, bound_checks, exact_bounds
from stabcli.measure.classify import MeasuredClass, RateEstimate, classify, window_rates
from stabcli.measure.headline import Headline, summarize
from stabcli.measure.levels import LevelBounds
from stabcli.measure.paths import PathFacts
from stabcli.measure.power import PowerLaw, power_laws
from stabcli.measure.profile import (
    SlopeProfile,
    central_slope,
    first_nonfinite,
    log_trace,
    slope_profiles,
)
from stabcli.measure.settings import MeasureSettings, rounding_tolerance
from stabcli.measure.verdicts import TheoryVerdict, closer_theory, predictions, verdict
from stabcli.measure.window import Window, plan_window


@dataclass(frozen=True)
class PointMeasurement:
    """Everything measured at one point (β, γ): β is torch's beta2, γ torch's beta1.

    For k-Adam (β, γ) is the base pair, the window, rates, verdicts and bound check are its
    last level's and ``levels`` checks every level; for learned betas (β, γ) is the start
    of the path, the window and the paper's verdict are its final pair's, ``bound`` and
    ``exact`` are the path's and ``path`` says what it did (:mod:`stabcli.measure.optimizers`).
    """

    beta: float
    gamma: float
    window: Window  # the valid window and why
    rate: RateEstimate  # least-squares rate over the window, with its interval
    measured_class: MeasuredClass
    reason: str  # why undetermined or diverged; "" otherwise
    central_slope: float  # (log u_{n+5} − log u_{n−5})/10 at n = central_at (App. H)
    central_at: int
    diverged_step: int | None  # first step whose max-update (or the caller's loss) was not finite
    bound: BoundCheck
    power: PowerLaw
    paper: TheoryVerdict
    exact: TheoryVerdict
    closer_theory: str  # "paper", "exact", "both" or ""
    levels: LevelBounds | None = None  # k-Adam: every level against its own bound
    path: PathFacts | None = None  # learned betas: the path and what followed its entry


@dataclass(frozen=True)
class SweepMeasurement:
    """A sweep's measurement: per point, its slope profile, and the headline."""

    points: tuple[PointMeasurement, ...]
    profiles: tuple[SlopeProfile, ...]  # same order as points
    headline: Headline


def measure_points(
    betas: Sequence[float] | np.ndarray,  # (P,) β = torch beta2
    gammas: Sequence[float] | np.ndarray,  # (P,) γ = torch beta1
    max_update: np.ndarray,  # (P, S): points, steps; ‖u_n‖∞, nan after divergence
    *,
    settings: MeasureSettings | None = None,
    dtype: str = "float32",  # the training dtype: sets the bound check's rounding tolerance
    wd_term: np.ndarray | None = None,  # (P, S) λ‖θ_n‖∞ under decoupled weight decay
    diverged_steps: Sequence[int | None] | None = None,  # (P,) e.g. first non-finite loss
    invalid: Sequence[str] | None = None,  # (P,) reason a point is numerically invalid, or ""
    central_at: int | None = None,  # step of the App. H difference; default window centre
    recorded: np.ndarray | None = None,  # (P, S) bool: steps measured (a monitor's every k-th)
) -> SweepMeasurement:
    """Measure every point of a sweep at once (module docstring)."""
    s = settings or MeasureSettings()
    u = np.asarray(max_update, dtype=float)
    if u.ndim != 2 or u.shape[0] != len(betas) or len(betas) != len(gammas):
        raise StabcliError(
            f"max_update must be (points, steps) with one row per (β, γ); got {u.shape} "
            f"for {len(betas)} β and {len(gammas)} γ"
        )
    p, steps = u.shape
    if steps < 1:
        raise StabcliError("no steps recorded: max_update has no columns")
    tolerance = rounding_tolerance(dtype)
    log_u = log_trace(u)  # (P, S)
    ends = first_nonfinite(u)  # (P,)
    if diverged_steps is not None:
        given = np.array([steps if d is None else d for d in diverged_steps])
        ends = np.minimum(ends, given)

    windows = [
        plan_window(b, g, steps, s).cut_at(int(e), s)
        for b, g, e in zip(betas, gammas, ends, strict=True)
    ]
    profiles = slope_profiles(np.where(np.arange(steps) < ends[:, None], log_u, np.nan), s)
    rates = window_rates(log_u, windows, s)
    at = np.array([central_at if central_at is not None else _centre(w, steps) for w in windows])
    central = central_slope(log_u, at, s.central_half)
    powers = power_laws(log_u, windows, ends, s)
    checks = bound_checks(
        u, exact_bounds(betas, gammas, steps), wd_term, windows, tolerance, invalid
    )

    points = []
    for i in range(p):
        diverged = int(ends[i]) if ends[i] < steps else None
        w = windows[i]
        counted = None if recorded is None else int(np.count_nonzero(recorded[i, w.start : w.stop]))
        cls, reason = classify(rates[i], w, diverged, s, counted)
        paper, exact = predictions(betas[i], gammas[i], windows[i], s)
        points.append(
            PointMeasurement(
                beta=float(betas[i]),
                gamma=float(gammas[i]),
                window=windows[i],
                rate=rates[i],
                measured_class=cls,
                reason=reason,
                central_slope=float(central[i]),
                central_at=int(at[i]),
                diverged_step=diverged,
                bound=checks[i],
                power=powers[i],
                paper=verdict(paper, cls, rates[i], s),
                exact=verdict(exact, cls, rates[i], s),
                closer_theory=closer_theory(paper, exact, cls, rates[i], s),
            )
        )
    return SweepMeasurement(tuple(points), tuple(profiles), summarize(points, s))


def _centre(window: Window, steps: int) -> int:
    """The middle of a non-empty window, else the middle of the run."""
    return (window.start + window.stop) // 2 if window.length else steps // 2
