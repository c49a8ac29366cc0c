"""The live monitor: sustained growth of ‖u_n‖∞ while a model trains, in O(window) memory.

A training loop calls ``monitor.update(step, max_update)`` every step (or with a block of
consecutive steps) and ``monitor.status()`` when it wants a reading. The monitor keeps the
last ``max_window`` values only, and computes its reading with the same functions as a
sweep (measure.window, measure.classify, measure.verdicts): at the end of a run its rate
and class equal the batch measurement of the same trace (docs/theory.md §9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from stabcli.measure.classify import MeasuredClass, RateEstimate, classify, window_rates
from stabcli.measure.profile import log_trace
from stabcli.measure.settings import MeasureSettings
from stabcli.measure.verdicts import predictions
from stabcli.measure.window import Window, regime, settle_step, window_after


@dataclass(frozen=True)
class MonitorStatus:
    """A reading of the monitor after the last step it was given."""

    step: int  # last step seen (−1 before any)
    window: Window  # the valid window of a run that ended at this step
    rate: RateEstimate  # rate over that window (the part still held in memory)
    measured_class: MeasuredClass
    reason: str  # why not growing or bounded; "" otherwise
    paper_rate: float  # the paper's predicted rate |C|/2 (0 outside B−)
    exact_rate: float  # the exact rate ρ_n over the window (0 when γ² < β)

    @property
    def growing(self) -> bool:
        """Sustained growth: the rate's whole interval is above growth_tol."""
        return self.measured_class is MeasuredClass.GROWING

    def line(self) -> str:
        """One line for a training log."""
        if self.measured_class in (MeasuredClass.GROWING, MeasuredClass.BOUNDED):
            rate = f"{self.rate.rate:.3g} ± {self.rate.halfwidth:.2g}/step"
            return (
                f"n = {self.step}: max-update {self.measured_class} ({rate} over "
                f"[{self.rate.start}, {self.rate.stop}); predicted: exact "
                f"{self.exact_rate:.3g}, paper {self.paper_rate:.3g})"
            )
        return f"n = {self.step}: {self.measured_class}: {self.reason}"


class GrowthMonitor:
    """Streaming measurement of one (β, γ) point (module docstring)."""

    def __init__(self, beta: float, gamma: float, settings: MeasureSettings | None = None):
        self.beta, self.gamma = beta, gamma
        self.settings = settings or MeasureSettings()
        self._regime = regime(beta, gamma, self.settings)
        self._settled = settle_step(beta, gamma, self.settings)  # searched once
        size = self.settings.max_window
        self._steps = np.full(size, -1, dtype=np.int64)  # ring buffer of step numbers
        self._values = np.full(size, np.nan)  # and of ‖u_n‖∞
        self._next = 0  # ring position of the next value
        self._last = -1
        self.diverged_step: int | None = None

    @property
    def held(self) -> int:
        """How many values the monitor holds: at most settings.max_window, however long the run."""
        return int(np.count_nonzero(self._steps >= 0))

    def update(self, step: int, max_update: float | np.ndarray) -> None:
        """Record ‖u_n‖∞ at ``step``, or a block of consecutive steps starting there."""
        block = np.atleast_1d(np.asarray(max_update, dtype=float))
        steps = step + np.arange(block.size)
        if block.size and steps[0] <= self._last:
            raise ValueError(f"steps must increase: got {steps[0]} after {self._last}")
        bad = np.flatnonzero(~np.isfinite(block))
        if self.diverged_step is None and bad.size:
            self.diverged_step = int(steps[bad[0]])
        size = self._values.size
        block, steps = block[-size:], steps[-size:]  # only the last window can matter
        where = (self._next + np.arange(block.size)) % size
        self._values[where], self._steps[where] = block, steps
        self._next = (self._next + block.size) % size
        if block.size:
            self._last = int(steps[-1])

    def status(self) -> MonitorStatus:
        """Rate, class and predicted rates over the current valid window."""
        s = self.settings
        window = window_after(self._regime, self._settled, self._last + 1, s)
        order = np.argsort(self._steps)
        held = order[self._steps[order] >= 0]
        steps, values = self._steps[held], self._values[held]  # chronological
        start = max(window.start, int(steps[0])) if steps.size else window.start
        window = replace(window, start=min(start, window.stop))
        if steps.size:
            rate = window_rates(log_trace(values[None, :]), [window], s, x=steps)[0]
        else:
            rate = RateEstimate(math.nan, math.nan, math.nan, math.nan, 0, math.nan, 0, 0)
        recorded = int(np.count_nonzero((steps >= window.start) & (steps < window.stop)))
        cls, reason = classify(rate, window, self.diverged_step, s, recorded)
        paper, exact = predictions(self.beta, self.gamma, window, s)
        return MonitorStatus(self._last, window, rate, cls, reason, paper.rate, exact.rate)
