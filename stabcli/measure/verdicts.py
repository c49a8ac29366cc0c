"""What a measurement says about each theory: verdicts that mean one thing each.

Both theories give UPPER bounds on ‖u_n‖∞ (paper eq. 5, arXiv 2411.05746 Section 3.1;
the exact bound, docs/theory.md §3). A bound is contradicted only when a measurement
exceeds it, and a growth rate is confirmed only where the bound is reached, which needs
a parameter whose gradients shrink faster than sqrt(β) per step. A bounded point in an
unstable region contradicts nothing: its bound was not reached.

A theory predicts growth when its rate over the window exceeds growth_tol, the threshold
the measurement uses: the paper in B− at |C|/2 (Section 3.2), the exact theory when
γ² > β at ρ_n, averaged over the window (docs/theory.md §3). On a boundary (γ² = β for
the exact theory, docs/theory.md §4; B0 for the paper, eq. 5) the bound grows as
sqrt(n + 1), and the rate a line fitted over the window sees is the bound's own mean
log-slope there, ≈ 1/(2n): growth the measurement can tell apart in short runs, and
predicted, not a contradiction. Per point and theory:

- seen but not predicted: measured growing where the theory predicts no growth; the one
  verdict that contradicts a theory's rate (with the bound check: its bound);
- seen faster than predicted: growing, interval above (1 + reach_tol) × predicted rate;
- growth predicted and seen: growing, the interval reaches the predicted rate's band;
  the relative rate error |predicted − measured|/measured is reported;
- predicted, bound not reached: predicted growth, measured bounded, or growing with an
  interval below (1 − reach_tol) × predicted rate (not a miss);
- bounded as predicted; diverged; undetermined;
- no bound off the Adam-AVGrad-Lion face: MADA's coefficients left the face on which the
  exact theory bounds its update (docs/theory.md (7.5)); set by the caller
  (:mod:`stabcli.measure.paths`), never a falsification.

``closer_theory`` names the theory whose rate is closer to a growing point's measured
rate, and is empty unless that rate is within closer_tol of the measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from stabcli.measure.classify import MeasuredClass, RateEstimate
from stabcli.measure.settings import MeasureSettings
from stabcli.measure.window import Regime, Window, log_bound_shape
from stabcli.theory.exact import exact_rate_at, exact_stable
from stabcli.theory.paper import Region, paper_bound, paper_rate, region


class Theory(StrEnum):
    PAPER = "paper"  # continuous-time, arXiv 2411.05746 eq. 5
    EXACT = "exact"  # discrete-time Cauchy-Schwarz bound, docs/theory.md §3


class Verdict(StrEnum):
    """One theory's verdict on one point, in the order a report shows them."""

    SEEN_NOT_PREDICTED = "seen but not predicted"
    FASTER = "seen faster than predicted"
    PREDICTED_AND_SEEN = "growth predicted and seen"
    NOT_REACHED = "predicted, bound not reached"
    BOUNDED_AS_PREDICTED = "bounded as predicted"
    DIVERGED = "diverged"
    UNDETERMINED = "undetermined"
    #: MADA off its Adam-AVGrad-Lion face: the exact theory has no bound there, so no
    #: prediction to meet or contradict (docs/theory.md (7.5))
    NO_BOUND = "no bound off the Adam-AVGrad-Lion face"


@dataclass(frozen=True)
class Prediction:
    """A theory's predicted growth rate of log‖u_n‖∞ over a point's window."""

    theory: Theory
    rate: float  # per step; 0 where the theory's bound does not grow exponentially
    grows: bool  # rate > growth_tol: growth the measurement could tell apart


@dataclass(frozen=True)
class TheoryVerdict:
    """One theory's verdict on one point."""

    theory: Theory
    verdict: Verdict
    predicted_rate: float
    rel_error: float  # |predicted − measured| / measured; nan unless growth predicted and seen


def _secant(log_bound: np.ndarray, ends: np.ndarray) -> float:
    """Mean one-step increase of a log bound from step ends[0] to ends[1]."""
    return float((log_bound[1] - log_bound[0]) / (ends[1] - ends[0]))


def predictions(
    beta: float, gamma: float, window: Window, settings: MeasureSettings
) -> tuple[Prediction, Prediction]:
    """(paper, exact): |C|/2 in B− (else 0), and the mean of ρ_n over [start, stop) when γ² > β;
    on a boundary, the bound's mean log-slope over the window (module docstring).

    With an empty window the rates are taken at the window's last step (the run's end).
    """
    last = max(window.stop - 1, 0)
    steps = np.arange(window.start, window.stop) if window.length else np.array([last])
    ends = np.array([steps[0], steps[-1] + 1])  # the window's first step and one past its last
    p_rate = paper_rate(beta, gamma)
    if region(beta, gamma) is Region.B_ZERO and gamma > 0:
        ends = np.maximum(ends, [1, 2])  # the paper's sqrt(n) is 0 at n = 0
        p_rate = _secant(np.log(np.asarray(paper_bound(beta, gamma, ends))), ends)
    if window.regime is Regime.BOUNDARY:
        e_rate = _secant(log_bound_shape(beta, gamma, ends), ends)
    elif exact_stable(beta, gamma):
        e_rate = 0.0
    else:
        e_rate = float(np.mean(exact_rate_at(beta, gamma, steps)))
    tol = settings.growth_tol
    return (
        Prediction(Theory.PAPER, p_rate, p_rate > tol),
        Prediction(Theory.EXACT, e_rate, e_rate > tol),
    )


def relative_error(predicted: float, measured: float) -> float:
    """|predicted − measured| / |measured|; nan when either is not finite or measured is 0."""
    if not (math.isfinite(predicted) and math.isfinite(measured)) or measured == 0:
        return math.nan
    return abs(predicted - measured) / abs(measured)


def verdict(
    prediction: Prediction,
    measured: MeasuredClass,
    estimate: RateEstimate,
    settings: MeasureSettings,
) -> TheoryVerdict:
    """The verdict of one theory on one point (module docstring)."""
    rate, reach = prediction.rate, settings.reach_tol

    def done(v: Verdict, error: float = math.nan) -> TheoryVerdict:
        return TheoryVerdict(prediction.theory, v, rate, error)

    if measured is MeasuredClass.DIVERGED:
        return done(Verdict.DIVERGED)
    if measured is MeasuredClass.UNDETERMINED:
        return done(Verdict.UNDETERMINED)
    if measured is MeasuredClass.BOUNDED:
        return done(Verdict.NOT_REACHED if prediction.grows else Verdict.BOUNDED_AS_PREDICTED)
    if not prediction.grows:
        return done(Verdict.SEEN_NOT_PREDICTED)
    if estimate.high < (1.0 - reach) * rate:
        return done(Verdict.NOT_REACHED)
    if estimate.low > (1.0 + reach) * rate:
        return done(Verdict.FASTER)
    return done(Verdict.PREDICTED_AND_SEEN, relative_error(rate, estimate.rate))


def closer_theory(
    paper: Prediction,
    exact: Prediction,
    measured: MeasuredClass,
    estimate: RateEstimate,
    settings: MeasureSettings,
) -> str:
    """'paper', 'exact', 'both' (equally close) or '': whose rate matches a growing point.

    Empty for a point not measured growing, and when the closer rate is more than
    closer_tol (relative) away from the measured one.
    """
    if measured is not MeasuredClass.GROWING:
        return ""
    errors = {
        Theory.PAPER: relative_error(paper.rate, estimate.rate),
        Theory.EXACT: relative_error(exact.rate, estimate.rate),
    }
    finite = {t: e for t, e in errors.items() if math.isfinite(e)}
    if not finite or min(finite.values()) > settings.closer_tol:
        return ""
    best = min(finite.values())
    winners = [t for t, e in finite.items() if e == best]
    return "both" if len(winners) == 2 else winners[0].value
