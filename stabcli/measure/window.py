"""The valid window: the steps of a run where a measured rate can be compared with theory.

Early in training the exact bound itself is still moving: its bias correction ramps (at
PyTorch's default (0.999, 0.9) the bound's log-slope is 0.005 per step at n = 100), and
its Cauchy-Schwarz sum S_n has not reached its geometric regime. A slope read there can
call a bounded point growing. So the window is chosen from (β, γ) before looking at the
data (docs/theory.md §3, §4, §9), by one of three rules:

- growth (γ² > β with log γ − ½ log β > growth_tol): once ρ_n and the exact bound's own
  log-slope are both within ``settle_tol`` of their limit log γ − ½ log β;
- bounded (γ² < β, or growth too slow to tell from growth_tol): once the exact bound's
  log-slope Δ log bound_n has fallen below growth_tol and stays there, so the bound's
  transient cannot fake growth;
- boundary (γ² = β): once the bound's log-log slope Δ log bound_n / Δ log(n + 1) is within
  ``settle_tol`` of ½, its √n law (docs/theory.md §4).

The window is then the last third of the run (``window_fraction``, between ``min_window``
and ``max_window`` steps), cut to start no earlier than that step: late enough to skip
plateaus of early training, long enough for a tight interval. Fewer than ``min_window``
settled steps and the run is too short, with the steps that would suffice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from stabcli.measure.settings import MeasureSettings
from stabcli.theory.exact import exact_slope, log_geometric_sum, log_ratio
from stabcli.theory.update import bias_correction

#: γ² = β when |2 ln γ − ln β| <= BOUNDARY_TOL · (2|ln γ| + |ln β|): the rounding of a
#: γ computed as sqrt(β), and no more.
BOUNDARY_TOL = 1e-12
#: Longest run the settle search looks at; beyond it a point "does not settle".
MAX_HORIZON = 1 << 23


class Regime(StrEnum):
    """Which rule opens a point's window (module docstring)."""

    GROWTH = "growth"  # exact rate log γ − ½ log β > growth_tol
    BOUNDED = "bounded"  # γ² < β, or exponential growth below growth_tol
    BOUNDARY = "boundary"  # γ² = β: the bound grows as sqrt(n + 1)


@dataclass(frozen=True)
class Window:
    """The steps [start, stop) whose slope is compared with theory, and why they were chosen."""

    start: int  # first step of the window
    stop: int  # one past its last step
    settle_step: int | None  # first settled step; None if not within MAX_HORIZON steps
    regime: Regime  # which rule chose settle_step
    steps_needed: int | None  # shortest run whose window holds min_window steps
    reason: str  # why there is no valid window; "" when there is one

    @property
    def ok(self) -> bool:
        """Whether the window holds at least ``min_window`` settled steps."""
        return not self.reason

    @property
    def length(self) -> int:
        return max(self.stop - self.start, 0)

    def cut_at(self, end: int, settings: MeasureSettings) -> Window:
        """The window of the same trace cut at step ``end`` (the first non-finite value)."""
        if end >= self.stop or self.settle_step is None:
            return self
        start = max(self.settle_step, end - settings.window_length(end))
        if end - start >= settings.min_window:
            return replace(self, start=start, stop=end)
        settled = max(end - self.settle_step, 0)
        return replace(
            self,
            start=min(start, end),
            stop=end,
            reason=(
                f"trace diverged at n = {end}, {settled} settled steps after n ≈ "
                f"{self.settle_step} (a rate needs {settings.min_window})"
            ),
        )


def regime(beta: float, gamma: float, settings: MeasureSettings) -> Regime:
    """The rule for (β, γ): boundary if γ² = β (to rounding), growth if the exact rate > tol."""
    lr = log_ratio(beta, gamma)  # 2 ln γ − ln β
    if math.isfinite(lr) and abs(lr) <= BOUNDARY_TOL * (2 * abs(math.log(gamma)) - math.log(beta)):
        return Regime.BOUNDARY
    return Regime.GROWTH if 0.5 * lr > settings.growth_tol else Regime.BOUNDED


def log_bound_shape(beta: float, gamma: float, n: np.ndarray) -> np.ndarray:
    """log of the exact bound up to its constant: log corr_n + ½ log S_n (docs/theory.md §3).

    The bound is corr_n · (1−γ)/sqrt(1−β) · sqrt(S_n) (theory.exact.exact_bound); in log
    space it stays finite where the bound itself overflows.
    """
    return np.log(bias_correction(beta, gamma, n)) + 0.5 * log_geometric_sum(beta, gamma, n)


def _unsettled(
    beta: float, gamma: float, n: np.ndarray, rule: Regime, s: MeasureSettings
) -> np.ndarray:
    """Boolean (len(n),): steps where the rule's criterion does not hold yet."""
    log_b = log_bound_shape(beta, gamma, np.append(n, n[-1] + 1))
    step_slope = np.diff(log_b)  # Δ log bound_n, from n to n + 1
    if rule is Regime.GROWTH:
        limit = 0.5 * log_ratio(beta, gamma)
        rho = exact_slope(beta, gamma, n)
        return (np.abs(rho - limit) > s.settle_tol * limit) | (
            np.abs(step_slope - limit) > s.settle_tol * limit
        )
    if rule is Regime.BOUNDARY:
        log_log_slope = step_slope / np.diff(np.log(np.append(n, n[-1] + 1) + 1.0))
        return np.abs(log_log_slope - 0.5) > s.settle_tol * 0.5
    return step_slope >= s.growth_tol


def settle_step(beta: float, gamma: float, settings: MeasureSettings) -> int | None:
    """First step from which the rule of (β, γ) holds for good; None beyond MAX_HORIZON.

    Searched on a horizon that grows 4× until the last failing step lies in its first half
    (the criteria are monotone once the bias corrections have decayed).
    """
    rule = regime(beta, gamma, settings)
    horizon = 1024
    while horizon <= MAX_HORIZON:
        failing = np.flatnonzero(_unsettled(beta, gamma, np.arange(horizon), rule, settings))
        if failing.size == 0:
            return 0
        if failing[-1] < horizon // 2:
            return int(failing[-1]) + 1
        horizon *= 4
    return None


def _what_settles(rule: Regime, settings: MeasureSettings) -> str:
    if rule is Regime.GROWTH:
        return "ρ_n settles"
    if rule is Regime.BOUNDARY:
        return "the bound's √n law settles"
    return f"the bound's log-slope falls below {settings.growth_tol:g}"


def plan_window(beta: float, gamma: float, steps: int, settings: MeasureSettings) -> Window:
    """The valid window of a run of ``steps`` steps at (β, γ) (module docstring)."""
    rule = regime(beta, gamma, settings)
    return window_after(rule, settle_step(beta, gamma, settings), steps, settings)


def window_after(
    rule: Regime, settled: int | None, steps: int, settings: MeasureSettings
) -> Window:
    """The window of a ``steps``-step run whose rule settled at step ``settled``.

    The last ``settings.window_length(steps)`` steps from ``settled`` on; too short below
    ``min_window``.
    Split from plan_window so that the live monitor searches the settle step once.
    """
    if settled is None:
        return Window(
            0, 0, None, rule, None, f"{_what_settles(rule, settings)} only after n > {MAX_HORIZON}"
        )
    needed = settled + settings.min_window
    start = max(settled, steps - settings.window_length(steps))
    if steps >= needed:
        return Window(start, steps, settled, rule, needed, "")
    reason = (
        f"run too short: {_what_settles(rule, settings)} after n ≈ {settled}; use steps ≥ {needed}"
    )
    return Window(min(start, steps), steps, settled, rule, needed, reason)


@dataclass(frozen=True)
class ShortPoint:
    """A planned point whose valid window does not fit in the planned steps."""

    beta: float
    gamma: float
    window: Window


@dataclass(frozen=True)
class SweepPlan:
    """Which planned points a run of ``steps`` steps cannot measure, before training."""

    steps: int
    n_points: int
    short: tuple[ShortPoint, ...]  # points whose window does not fit, in input order
    steps_needed: int | None  # smallest steps fitting every point; None if one never settles

    def lines(self) -> list[str]:
        """Plain-text lines for the sweep to print before training (none when all fit)."""
        if not self.short:
            return []
        head = (
            f"{len(self.short)} of {self.n_points} points cannot be measured in "
            f"{self.steps} steps (their valid window opens too late)"
        )
        fix = (
            f"use --steps {self.steps_needed} to measure them all"
            if self.steps_needed is not None
            else "some never settle within the search horizon"
        )
        shown = [
            f"  (β, γ) = ({p.beta:.6g}, {p.gamma:.6g}): {p.window.reason}" for p in self.short[:5]
        ]
        more = [f"  … and {len(self.short) - 5} more"] if len(self.short) > 5 else []
        return [f"{head}; {fix}", *shown, *more]


def plan_sweep(
    points: Iterable[tuple[float, float]], steps: int, settings: MeasureSettings
) -> SweepPlan:
    """Planned (β, γ) points whose window does not fit in ``steps``, and the steps that would."""
    windows = [(b, g, plan_window(b, g, steps, settings)) for b, g in points]
    short = tuple(ShortPoint(b, g, w) for b, g, w in windows if not w.ok)
    needs = [w.steps_needed for _, _, w in windows]
    needed = None if any(n is None for n in needs) else max([steps, *(n or 0 for n in needs)])
    return SweepPlan(steps, len(windows), short, needed)
