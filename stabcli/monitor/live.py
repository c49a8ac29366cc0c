"""The streaming measurement while training runs: one GrowthMonitor per point.

:class:`stabcli.measure.GrowthMonitor` measures one fixed (β, γ) in O(window) memory, with
the same window, rate and class as a sweep's measurement (docs/theory.md §9). Betas that
move (a schedule, learned betas) are followed by starting a new GrowthMonitor at the
current (β, γ) whenever they have moved materially since the last one started, and
feeding it the last ``max_window`` measured values from the history: the rate and class
then always belong to the current point. "Materially" is a change of more than 1% in
1 − β or 1 − γ, the memories 1/(1 − β) and 1/(1 − γ) that set the window and the rate
(docs/theory.md (9.3), (9.4)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stabcli.measure import GrowthMonitor, MeasureSettings, MonitorStatus
from stabcli.monitor.groups import in_domain
from stabcli.monitor.history import History, PointTrace

#: Relative change of 1 − β or 1 − γ that starts a new GrowthMonitor.
MEMORY_TOL = 0.01


def moved(old: tuple[float, float], new: tuple[float, float]) -> bool:
    """Whether (β, γ) moved by more than MEMORY_TOL in 1 − β or 1 − γ."""
    return any(
        abs(math.log1p(-b) - math.log1p(-a)) > MEMORY_TOL for a, b in zip(old, new, strict=True)
    )


def feed(monitor: GrowthMonitor, steps: np.ndarray, values: np.ndarray) -> None:
    """Give ``monitor`` the measured values, in blocks of consecutive steps."""
    if not steps.size:
        return
    breaks = np.flatnonzero(np.diff(steps) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, steps.size], strict=True):
        monitor.update(int(steps[lo]), values[lo:hi])


def fill(monitor: GrowthMonitor, trace: PointTrace) -> None:
    """Start ``monitor`` from a point's records: its first non-finite value, if any, and the
    last ``max_window`` measured values (the only ones a reading can use)."""
    steps = trace.steps[trace.measured]
    values = trace.max_update[trace.measured]
    keep = monitor.settings.max_window
    bad = np.flatnonzero(~np.isfinite(values))
    first = max(steps.size - keep, 0)
    if bad.size and bad[0] < first:  # so that the monitor knows the trace diverged
        feed(monitor, steps[bad[:1]], values[bad[:1]])
        first = max(first, int(bad[0]) + 1)
    feed(monitor, steps[first:], values[first:])


@dataclass
class _Stream:
    monitor: GrowthMonitor
    point: tuple[float, float]  # the (β, γ) it measures
    fed: int  # history rows given to it so far


@dataclass(frozen=True)
class Reading:
    """The streaming measurement of one point after a host copy."""

    groups: tuple[int, ...]
    beta: float  # current β (torch beta2)
    gamma: float  # current γ (torch beta1)
    status: MonitorStatus


class LiveMeasurement:
    """Streams of the history's points (module docstring)."""

    def __init__(self, settings: MeasureSettings):
        self.settings = settings
        self._streams: dict[tuple[int, ...], _Stream] = {}

    def update(self, history: History) -> list[Reading]:
        """Feed the rows added since the last call; one reading per point in the domain."""
        readings = []
        points = history.points()
        self._streams = {k: v for k, v in self._streams.items() if k in points}
        rows = len(history)
        for groups in points:
            stream = self._streams.get(groups)
            tail = history.point(groups, since=stream.fed if stream else max(rows - 1, 0))
            if not tail.steps.size:
                continue
            now = (float(tail.beta[-1]), float(tail.gamma[-1]))
            if not in_domain(*now):
                continue
            if stream is None or moved(stream.point, now):
                monitor = GrowthMonitor(*now, settings=self.settings)
                fill(monitor, history.point(groups))
                if stream is not None and stream.monitor.diverged_step is not None:
                    monitor.diverged_step = stream.monitor.diverged_step
                stream = self._streams[groups] = _Stream(monitor, now, rows)
            else:
                feed(stream.monitor, tail.steps[tail.measured], tail.max_update[tail.measured])
                stream.fed = rows
            readings.append(Reading(groups, *now, stream.monitor.status()))
        return readings
