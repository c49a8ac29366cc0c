"""The measurement of a whole monitored run: one points.csv row and the traces of each point.

Per point (:meth:`stabcli.monitor.history.History.points`), over every measured step:

- rate, class and valid window: a :class:`stabcli.measure.GrowthMonitor` at the last
  recorded (β, γ), given the trace (docs/theory.md §9; at the end of a run it equals the
  batch measurement of the same trace);
- predicted rates: the paper's |C|/2 at that point (arXiv 2411.05746, Section 3.1); the
  exact ρ_n at the slope step (docs/theory.md (3.9)) for constant betas, and for a moving
  path the mean of ln γ_n − ½ ln β_n over the window (docs/theory.md (5.7));
- the bound check max_n u_n/(bound_n + λ‖θ_n‖∞) (docs/theory.md (9.6)) by
  :func:`stabcli.measure.bounds.bound_checks`, against the bound of
  :mod:`stabcli.monitor.bounds` (the path bound when the betas moved); its words
  (``bound_status``) judge u_n less the rounding of a step read from parameters
  (``resolution``, :mod:`stabcli.monitor.history`), which low-precision parameters make
  large (bfloat16 at η = 1e-2: ~2);
- the paper's central difference at the window's centre (App. H), when the steps around
  it were all measured.

The row has every column of :data:`stabcli.store.schema.POINT_COLUMNS` and a few more
(:data:`EXTRA_POINT_COLUMNS`); the traces have :data:`stabcli.store.schema.TRACE_COLUMNS`
and :data:`EXTRA_TRACE_COLUMNS`. There is no loss: a monitor sees the optimizer only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from stabcli.measure import GrowthMonitor, MeasureSettings, rounding_tolerance
from stabcli.measure.bounds import bound_checks
from stabcli.measure.profile import central_slope, log_trace
from stabcli.monitor.bounds import path_rate, point_bound
from stabcli.monitor.groups import Correction, in_domain
from stabcli.monitor.history import History, PointTrace
from stabcli.monitor.live import fill
from stabcli.store import fingerprint, point_id
from stabcli.store.schema import POINT_COLUMNS, TRACE_COLUMNS
from stabcli.theory.agreement import PointOutcome, agrees_with, predict

#: points.csv columns a monitor run adds (proposed for store.schema).
EXTRA_POINT_COLUMNS = (
    "param_groups",  # the param groups the point covers, e.g. "0,1"
    "path",  # "constant" or "moving": whether (β, γ) changed during the run
    "measured_reason",  # why the class is undetermined or diverged; "" otherwise
    "fit_low",  # the fitted rate's interval (docs/theory.md (9.4))
    "fit_high",
    "bound_ratio_window",  # max measured/bound over the valid window (docs/theory.md (9.6))
    "bound_status",  # the bound check in words, for u_n less its resolution
)
#: traces columns a monitor run adds: the path, its bound, and the measurement's rounding.
EXTRA_TRACE_COLUMNS = ("beta", "gamma", "bound", "resolution")


@dataclass(frozen=True)
class PointResult:
    """One point of a monitored run, measured."""

    groups: tuple[int, ...]
    row: dict[str, Any]  # points.csv row
    traces: pd.DataFrame  # one row per measured step


def point_ids(settings_fingerprint: str, history: History) -> dict[tuple[int, ...], str]:
    """Content ids of the run's points: the settings, the groups, the first (β, γ)."""
    out = {}
    for groups in history.points():
        first = history.point(groups)
        key = settings_fingerprint
        if len(groups) < history.n_groups:  # one point per group: the group enters the id
            key = fingerprint({"settings": settings_fingerprint, "groups": list(groups)})
        out[groups] = point_id(key, float(first.beta[0]), float(first.gamma[0]))
    return out


def trace_frame(trace: PointTrace, bound: np.ndarray, pid: str) -> pd.DataFrame:
    """The measured steps of a point as traces rows (schema columns, then the extras)."""
    m = trace.measured
    frame = pd.DataFrame(
        {
            "point_id": pid,
            "step": trace.steps[m],
            "max_update": trace.max_update[m],
            "max_tensor": trace.max_tensor[m],
            "loss": np.nan,  # the monitor sees the optimizer, not the loss
            "lr": trace.settings["lr"][m],
            "wd_term": trace.wd_term[m],
            "beta": trace.beta[m],
            "gamma": trace.gamma[m],
            "bound": bound[m],
            "resolution": trace.resolution[m],
        }
    )
    return frame[list(TRACE_COLUMNS + EXTRA_TRACE_COLUMNS)]


def _central(steps: np.ndarray, u: np.ndarray, at: int, half: int) -> float:
    """App. H's (log u_{n+h} − log u_{n−h})/2h at n = ``at``, if n ± h were both measured
    with every step between them."""
    i = int(np.searchsorted(steps, at))
    lo, hi = i - half, i + half
    if lo < 0 or hi >= steps.size or steps[hi] - steps[lo] != 2 * half or steps[i] != at:
        return math.nan
    return float(central_slope(log_trace(u[None, lo : hi + 1]), np.array([half]), half)[0])


def assess(
    trace: PointTrace,
    pid: str,
    position: float,
    settings: MeasureSettings,
    dtype: str,
    correction: Correction,
    mada: bool,
) -> PointResult:
    """Measure one point's whole trace (module docstring)."""
    bound = point_bound(trace, correction, mada)
    traces = trace_frame(trace, bound, pid)
    m = trace.measured
    steps, u, wd = trace.steps[m], trace.max_update[m], trace.wd_term[m]
    least = np.maximum(u - trace.resolution[m], 0.0)  # what u_n is at least, given rounding
    beta, gamma = float(trace.beta[-1]), float(trace.gamma[-1])
    row: dict[str, Any] = dict.fromkeys(POINT_COLUMNS + EXTRA_POINT_COLUMNS, math.nan)
    row.update(
        point_id=pid,
        position=position,
        beta=beta,
        gamma=gamma,
        torch_beta1=gamma,
        torch_beta2=beta,
        param_groups=",".join(map(str, trace.groups)),
        path="moving" if trace.moving else "constant",
        max_tensor="",
        measured_class="undetermined",
        measured_reason="no measured step",
        agrees_with="",
        diverged_step=None,
        underflow_step=None,
        slope_step=None,
    )
    if not steps.size or not in_domain(beta, gamma):
        if steps.size:
            row["measured_reason"] = "(β, γ) outside the theory's domain"
        return PointResult(trace.groups, row, traces)

    monitor = GrowthMonitor(beta, gamma, settings)
    fill(monitor, trace)
    status = monitor.status()
    window = status.window
    at = (window.start + window.stop) // 2 if window.length else int(steps[-1])
    prediction = predict(beta, gamma, at)
    exact = path_rate(trace, window.start, window.stop) if trace.moving else prediction.exact_rate
    cols = np.searchsorted(steps, [window.start, window.stop])
    columns = [replace(window, start=int(cols[0]), stop=int(cols[1]))]
    tolerance = rounding_tolerance(dtype)
    check = bound_checks(u[None], bound[m][None], wd[None], columns, tolerance)[0]
    judged = bound_checks(least[None], bound[m][None], wd[None], columns, tolerance)[0]
    i = int(np.searchsorted(steps, at))
    row.update(
        {k: v for k, v in asdict(prediction).items() if k != "exact_rate"},
        exact_rate=exact,
        measured_slope=_central(steps, u, at, settings.central_half),
        fit_slope=status.rate.rate,
        fit_low=status.rate.low,
        fit_high=status.rate.high,
        measured_class=status.measured_class.value,
        measured_reason=status.reason,
        diverged_step=monitor.diverged_step,
        bound_ratio_max=check.ratio_all,
        bound_ratio_window=check.ratio_window,
        bound_status=judged.status.value,
        max_tensor=str(trace.max_tensor[m][i]) if i < steps.size and steps[i] == at else "",
        slope_step=at,
    )
    if row["measured_class"] in ("growing", "bounded", "diverged"):
        row["agrees_with"] = agrees_with(PointOutcome.from_row(row))
    return PointResult(trace.groups, row, traces)


def assess_run(
    history: History,
    settings_fingerprint: str,
    settings: MeasureSettings,
    dtype: str,
    correction: Correction,
    mada: bool,
) -> list[PointResult]:
    """Every point of the run, measured (points in group order)."""
    ids = point_ids(settings_fingerprint, history)
    points = history.points()
    results = []
    for k, groups in enumerate(points):
        position = k / (len(points) - 1) if len(points) > 1 else 0.0
        trace = history.point(groups)
        results.append(assess(trace, ids[groups], position, settings, dtype, correction, mada))
    return results


def points_frame(results: list[PointResult]) -> pd.DataFrame:
    """points.csv rows of a run's points (schema columns first)."""
    columns = list(POINT_COLUMNS + EXTRA_POINT_COLUMNS)
    return pd.DataFrame([r.row for r in results], columns=columns)
