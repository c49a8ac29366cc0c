"""Measuring along a moving path of (β_n, γ_n): HyperAdam, MADA, schedules.

When the betas change every step the fixed-point bound of docs/theory.md §3 no longer
applies; the update obeys the path bound c_n sqrt(𝒮_n) along the recorded path
(docs/theory.md §5, (5.2)-(5.4)), and on MADA's Adam-AVGrad-Lion face (β3 = 0, c = 1 at
every step) the bound of docs/theory.md (7.5). Off that face no bound of this form holds,
and the check says so instead of falsifying anything. This module holds the rules, used by
the sweep (:func:`stabcli.measure.optimizers.measure_learned`) and the live monitor:

- :func:`path_bounds`: the bound at every step of P recorded paths, and which bound it is;
- :func:`path_rate`: the exact theory's growth rate over a window, the mean of
  ln γ_n − ½ ln β_n there (docs/theory.md (5.7)), 0 where that mean is negative;
- :func:`along_path`: a point's measurement with the bound check, the exact verdict and
  the closer theory taken from its path;
- :func:`path_facts`: where the path first entered the exact-unstable region γ_n² > β_n
  (:func:`stabcli.theory.path.first_unstable_step`) and whether the max-update grew over
  the steps after it (the rate and class of docs/theory.md (9.4), (9.5) on those steps).

Paths are (P, S) arrays: points, steps; β_n is torch's beta2 at step n, γ_n its beta1.
NaN after a divergence, like the max-update.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from stabcli.measure.bounds import BoundCheck, BoundStatus
from stabcli.measure.classify import MeasuredClass, RateEstimate, classify, window_rates
from stabcli.measure.settings import MeasureSettings
from stabcli.measure.verdicts import (
    Prediction,
    Theory,
    TheoryVerdict,
    Verdict,
    closer_theory,
    verdict,
)
from stabcli.measure.window import Regime, Window
from stabcli.theory.path import first_unstable_step, mada_path_bound, path_bound

if TYPE_CHECKING:  # measure.points imports this module
    from stabcli.measure.points import PointMeasurement

#: MADA's coefficients that must stay at their Adam-AVGrad-Lion values for (7.5) to hold.
MADA_FACE = {"beta3": 0.0, "c": 1.0}
#: What ``unstable_class`` says when too few steps follow the first unstable one.
NO_WINDOW = "no valid window"


class BoundKind(StrEnum):
    """Which bound a moving point is checked against."""

    PATH = "path"  # c_n sqrt(𝒮_n), path-product bias correction (docs/theory.md (5.2), (5.4))
    MADA_FACE = "MADA face"  # docs/theory.md (7.5): MADA with β3 = 0 and c = 1 throughout
    NONE = "none"  # MADA off that face: no bound of this form (docs/theory.md (7.5))


@dataclass(frozen=True)
class PathFacts:
    """What a moving point's path did, and what its max-update did after it turned unstable."""

    final_beta: float  # β at the last finite step (torch beta2)
    final_gamma: float  # γ there (torch beta1)
    first_unstable_step: int | None  # first n with γ_n² > β_n; None if the path never entered
    after: RateEstimate | None  # rate of log‖u_n‖∞ over the steps from that n on
    after_class: str  # growing / bounded / undetermined / "no valid window"; "" if never entered
    after_reason: str  # why undetermined or no valid window; "" otherwise
    bound_kind: BoundKind
    off_face_step: int | None = None  # MADA: first step off the Adam-AVGrad-Lion face

    @property
    def entered(self) -> bool:
        return self.first_unstable_step is not None


def last_finite(path: np.ndarray) -> np.ndarray:
    """(P,) the index of each row's last finite value; −1 for a row with none."""
    ok = np.isfinite(path)  # (P, S)
    s = path.shape[1]
    return np.where(ok.any(axis=1), s - 1 - ok[:, ::-1].argmax(axis=1), -1)


def forward_filled(path: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """(P, S) each row with its non-finite values replaced by the last finite value before
    them (by ``fallback[p]`` before the first): the path a bound can be evaluated on."""
    out = np.array(path, dtype=float)
    ok = np.isfinite(out)
    index = np.where(ok, np.arange(out.shape[1])[None, :], -1)
    last = np.maximum.accumulate(index, axis=1)  # (P, S) last finite column so far
    rows = np.arange(out.shape[0])[:, None]
    filled = out[rows, np.maximum(last, 0)]
    return np.where(last >= 0, filled, np.asarray(fallback, dtype=float)[:, None])


def off_face_steps(coefficients: Mapping[str, np.ndarray]) -> list[int | None]:
    """(P,) the first step at which MADA's β3 ≠ 0 or c ≠ 1 (docs/theory.md (7.5)); None
    for a point that stayed on its Adam-AVGrad-Lion face. NaN (after divergence) is not
    a step off the face."""
    off = None
    for name, value in MADA_FACE.items():
        x = np.asarray(coefficients[name], dtype=float)  # (P, S)
        here = np.isfinite(x) & (x != value)
        off = here if off is None else off | here
    assert off is not None
    return [int(np.argmax(row)) if row.any() else None for row in off]


def path_bounds(
    beta: np.ndarray,  # (P, S) β_n
    gamma: np.ndarray,  # (P, S) γ_n
    mada: Mapping[str, np.ndarray] | None = None,  # MADA's paths: beta3, rho, c, omega
) -> tuple[np.ndarray, list[BoundKind], list[int | None]]:
    """(P, S) the bound on ‖u_n‖∞ along every path, each point's kind of bound, and (MADA)
    the first step off the face.

    HyperAdam (``mada`` None): :func:`stabcli.theory.path.path_bound` with the path
    products of its kernel (docs/theory.md (5.4)). MADA: on its face
    :func:`stabcli.theory.path.mada_path_bound`, else nan (:attr:`BoundKind.NONE`). Steps
    after a divergence are nan.
    """
    b = np.asarray(beta, dtype=float)
    g = np.asarray(gamma, dtype=float)
    p = b.shape[0]
    ok = np.isfinite(b) & np.isfinite(g)  # (P, S)
    start_b = np.where(ok.any(axis=1), b[np.arange(p), ok.argmax(axis=1)], 0.5)
    start_g = np.where(ok.any(axis=1), g[np.arange(p), ok.argmax(axis=1)], 0.5)
    bf, gf = forward_filled(b, start_b).T, forward_filled(g, start_g).T  # (S, P), time first
    if mada is None:
        bound = path_bound(bf, gf).T  # (P, S)
        kinds = [BoundKind.PATH] * p
        off: list[int | None] = [None] * p
    else:
        off = off_face_steps(mada)
        rho = forward_filled(np.clip(mada["rho"], 0.0, 1.0), np.ones(p)).T
        omega = forward_filled(np.clip(mada["omega"], 0.0, 1.0), np.ones(p)).T
        bound = mada_path_bound(bf, gf, rho, omega).T
        kinds = [BoundKind.MADA_FACE if o is None else BoundKind.NONE for o in off]
        bound[[k is BoundKind.NONE for k in kinds]] = np.nan
    return np.where(ok, bound, np.nan), kinds, off


def path_rate(beta: np.ndarray, gamma: np.ndarray, start: int, stop: int) -> float:
    """The exact theory's growth rate of one path (S,) over steps [start, stop): the mean of
    ln γ_n − ½ ln β_n there (docs/theory.md (5.7)), 0 where that mean is negative (the
    bound then settles instead of growing); nan for an empty window or no finite step.

    Step 0 carries no growth factor (𝒮_{−1} = 0), so the window starts at 1 at the earliest.
    """
    b = np.asarray(beta, dtype=float)[max(start, 1) : stop]
    g = np.asarray(gamma, dtype=float)[max(start, 1) : stop]
    ok = np.isfinite(b) & np.isfinite(g) & (b > 0) & (g > 0)
    if not ok.any():
        return math.nan
    return max(0.0, float(np.mean(np.log(g[ok]) - 0.5 * np.log(b[ok]))))


def along_path(
    m: PointMeasurement,
    rate: float,  # path_rate over m's window
    check: BoundCheck,  # the bound check against the path's bound
    settings: MeasureSettings,
    kind: BoundKind = BoundKind.PATH,
) -> PointMeasurement:
    """``m`` (measured at one (β, γ) of the path) with the bound check, the exact theory's
    rate and verdict, and the closer theory of the path instead (module docstring).

    The paper's verdict stays that of ``m``'s (β, γ): the paper has no theory of a path.
    Off MADA's face (``kind`` NONE) neither theory bounds the update (both are about Adam's
    normalization, which Adan's and Yogi's terms leave): both verdicts are "no bound",
    never a falsification.
    """
    if kind is BoundKind.NONE:
        paper, exact = (
            TheoryVerdict(t, Verdict.NO_BOUND, math.nan, math.nan)
            for t in (Theory.PAPER, Theory.EXACT)
        )
        return replace(m, bound=check, paper=paper, exact=exact, closer_theory="")
    tol = settings.growth_tol
    at_point = Prediction(Theory.PAPER, m.paper.predicted_rate, m.paper.predicted_rate > tol)
    along = Prediction(Theory.EXACT, rate, rate > tol)
    return replace(
        m,
        bound=check,
        exact=verdict(along, m.measured_class, m.rate, settings),
        closer_theory=closer_theory(at_point, along, m.measured_class, m.rate, settings),
    )


def no_bound_check(off_step: int | None) -> BoundCheck:
    """The bound check of a MADA point off its Adam-AVGrad-Lion face (docs/theory.md (7.5))."""
    where = f" from n = {off_step}" if off_step is not None else ""
    return BoundCheck(
        ratio_all=math.nan,
        step_all=-1,
        ratio_window=math.nan,
        status=BoundStatus.NO_BOUND,
        note=f"β3 > 0 or c < 1{where}: no bound of the path bound's form holds there "
        "(docs/theory.md (7.5))",
    )


def after_window(first: int, end: int, settings: MeasureSettings) -> Window:
    """The steps [first, end) after a path entered γ² > β (up to a divergence at ``end``),
    as a window; too short below ``min_window`` steps."""
    needed = first + settings.min_window
    reason = ""
    if end - first < settings.min_window:
        reason = (
            f"only {max(end - first, 0)} steps after the path entered γ² > β at n = {first} "
            f"(a rate needs {settings.min_window})"
        )
    return Window(first, max(end, first), first, Regime.GROWTH, needed, reason)


def path_facts(
    beta: np.ndarray,  # (P, S) β_n
    gamma: np.ndarray,  # (P, S) γ_n
    log_u: np.ndarray,  # (P, S) log‖u_n‖∞
    ends: Sequence[int],  # (P,) first non-finite step of each trace (S if none)
    kinds: Sequence[BoundKind],
    off_steps: Sequence[int | None],
    settings: MeasureSettings,
) -> list[PathFacts]:
    """Where each path entered γ² > β and what the max-update did from there (module
    docstring). The steps after entering are measured like a valid window: the rate of
    log‖u_n‖∞ over [first, end) with its interval, and its class."""
    b = np.asarray(beta, dtype=float)
    g = np.asarray(gamma, dtype=float)
    p = b.shape[0]
    firsts: list[int | None] = []
    for i in range(p):
        last = int(last_finite(b[i : i + 1])[0])
        ok = slice(0, last + 1)
        firsts.append(first_unstable_step(b[i, ok], g[i, ok]) if last >= 0 else None)
    never = Window(0, 0, None, Regime.GROWTH, None, "")
    windows = [
        after_window(f, int(e), settings) if f is not None else never
        for f, e in zip(firsts, ends, strict=True)
    ]
    rates = window_rates(log_u, windows, settings)
    out = []
    for i in range(p):
        last = int(last_finite(b[i : i + 1])[0])
        final_b = float(b[i, last]) if last >= 0 else math.nan
        final_g = float(g[i, last]) if last >= 0 else math.nan
        first = firsts[i]
        if first is None:
            after, cls, why = None, "", ""
        elif not windows[i].ok:
            after, cls, why = None, NO_WINDOW, windows[i].reason
        else:
            measured, why = classify(rates[i], windows[i], None, settings)
            after, cls = rates[i], measured.value
            if measured is MeasuredClass.GROWING or measured is MeasuredClass.BOUNDED:
                why = ""
        out.append(PathFacts(final_b, final_g, first, after, cls, why, kinds[i], off_steps[i]))
    return out
