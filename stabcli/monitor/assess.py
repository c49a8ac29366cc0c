"""The measurement of a whole monitored run: one points.csv row and the traces of each point.

Each point (:meth:`stabcli.monitor.history.History.points`) is measured by the sweep's own
measurement, :func:`stabcli.measure.measure_points` (docs/theory.md §9: valid window, rate
and class, the paper's central difference, the √n test, both theories' verdicts, the
exact bound check), at its last recorded (β, γ), on its trace laid out by step from n = 0.
Steps the monitor did not measure (before ``watch``, or skipped by ``every``) are given a
max-update of 0: finite, so not a divergence, and left out of every fit (log 0 = −inf).
Two things differ from a sweep's point:

- a moving path (a schedule, learned betas) is checked against its own bound
  (:mod:`stabcli.monitor.bounds`: the path bound, docs/theory.md §5) and its exact rate
  is the mean of ln γ_n − ½ ln β_n over the window (docs/theory.md (5.7)), with the exact
  verdict and the closer theory taken again from those, by the sweep's rule
  (:func:`stabcli.measure.paths.along_path`); MADA off its Adam-AVGrad-Lion face has no
  bound, and says so (docs/theory.md (7.5));
- the words of the bound check (``bound_check``) judge u_n less the rounding of a step read
  from parameters (``resolution``, :mod:`stabcli.monitor.history`), which low-precision
  parameters make large (bfloat16 at η = 1e-2: ~2); the ratios are of u_n itself.

points.csv gets every column of :data:`stabcli.store.schema.POINT_COLUMNS` (those the
monitor cannot know, such as losses, are empty) and :data:`EXTRA_POINT_COLUMNS`; the traces
have :data:`stabcli.store.schema.TRACE_COLUMNS` and :data:`EXTRA_TRACE_COLUMNS`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stabcli.measure import (
    BoundKind,
    BoundStatus,
    MeasureSettings,
    PointMeasurement,
    measure_points,
    measurement_columns,
    rounding_tolerance,
)
from stabcli.measure.bounds import bound_checks
from stabcli.measure.paths import MADA_FACE, along_path, no_bound_check, off_face_steps
from stabcli.monitor.bounds import path_rate, point_bound
from stabcli.monitor.groups import Correction, in_domain
from stabcli.monitor.history import History, PointTrace
from stabcli.store import fingerprint, point_id
from stabcli.store.schema import (
    MONITOR_POINT_COLUMNS,
    MONITOR_TRACE_COLUMNS,
    POINT_COLUMNS,
    TRACE_COLUMNS,
)
from stabcli.theory import exact, paper

#: points.csv columns a monitor run adds (store.schema).
EXTRA_POINT_COLUMNS = MONITOR_POINT_COLUMNS
#: traces columns a monitor run adds: the path, its bound, and the measurement's rounding.
EXTRA_TRACE_COLUMNS = MONITOR_TRACE_COLUMNS


@dataclass(frozen=True)
class PointResult:
    """One point of a monitored run, measured."""

    groups: tuple[int, ...]
    row: dict[str, Any]  # points.csv's columns that are known, and a few more
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


def _legacy_columns(m: PointMeasurement) -> dict[str, Any]:
    """The names an older schema gave three of the measurement's columns."""
    return {
        "measured_slope": m.central_slope,
        "fit_slope": m.rate.rate,
        "slope_step": m.central_at,
    }


def _along_path(
    m: PointMeasurement,
    trace: PointTrace,
    u: np.ndarray,  # (S,) by step from n = 0, as measured
    wd: np.ndarray,  # (S,)
    bound: np.ndarray,  # (S,) the path's bound (nan before the monitor started)
    settings: MeasureSettings,
    tolerance: float,
    mada: bool,
) -> PointMeasurement:
    """``m`` with the bound check and the exact theory's rate, verdict and the closer
    theory of the recorded path (docs/theory.md §5) instead of its last point's: the
    sweep's rule for learned betas (:func:`stabcli.measure.paths.along_path`). MADA off its
    Adam-AVGrad-Lion face has no bound (docs/theory.md (7.5)): nothing to check there."""
    s = m.window
    if mada:
        face = {name: trace.settings[name][None] for name in MADA_FACE}
        (off,) = off_face_steps(face)
        if off is not None:
            return along_path(
                m, np.nan, no_bound_check(int(trace.steps[off])), settings, BoundKind.NONE
            )
    check = bound_checks(u[None], bound[None], wd[None], [s], tolerance)[0]
    rate = path_rate(trace, s.start, s.stop)
    return along_path(m, rate, check, settings, BoundKind.MADA_FACE if mada else BoundKind.PATH)


def window_tensor(tensors: np.ndarray, start: int, stop: int) -> str:
    """The tensor holding the max-update most often over steps [start, stop) (the valid
    window), or over the whole run when the window holds no named step; "" when none."""
    for chosen in (tensors[start:stop], tensors):
        names = [t for t in chosen if isinstance(t, str) and t]
        if names:
            return Counter(names).most_common(1)[0][0]
    return ""


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
    beta, gamma = float(trace.beta[-1]), float(trace.gamma[-1])
    row: dict[str, Any] = {
        "point_id": pid,
        "position": position,
        "beta": beta,
        "gamma": gamma,
        "torch_beta1": gamma,
        "torch_beta2": beta,
        "param_groups": ",".join(map(str, trace.groups)),
        "path": "moving" if trace.moving else "constant",
        "measured_class": "undetermined",
        "class_reason": "no measured step",
    }
    m = trace.measured
    if m.any() and in_domain(beta, gamma):
        # the trace laid out by step from n = 0; unmeasured steps read 0 (module docstring)
        size = int(trace.steps[-1]) + 1
        at = trace.steps[m]
        u, wd, least, limit = (np.zeros(size) for _ in range(4))
        tensors = np.full(size, None, dtype=object)
        u[at], wd[at], tensors[at] = trace.max_update[m], trace.wd_term[m], trace.max_tensor[m]
        least[at] = np.maximum(trace.max_update[m] - trace.resolution[m], 0.0)
        limit[:] = np.nan
        limit[trace.steps] = bound
        tolerance = rounding_tolerance(dtype)
        recorded = np.zeros(size, dtype=bool)
        recorded[at] = True  # the half-the-window rule counts measured steps (``every``)
        (measured,) = measure_points(
            [beta],
            [gamma],
            u[None],
            settings=settings,
            dtype=dtype,
            wd_term=wd[None],
            recorded=recorded[None],
        ).points
        if trace.moving or mada:  # MADA's bound is its own even at constant coefficients
            measured = _along_path(measured, trace, u, wd, limit, settings, tolerance, mada)
        w = measured.window
        row |= measurement_columns(measured) | _legacy_columns(measured)
        row |= {
            "c_value": paper.c_value(beta, gamma),
            "paper_region": paper.region(beta, gamma).value,
            "exact_stable": exact.exact_stable(beta, gamma),
            "max_tensor": window_tensor(tensors, w.start, w.stop),
        }
        if measured.bound.status is not BoundStatus.NO_BOUND:
            judged = bound_checks(least[None], limit[None], wd[None], [w], tolerance)[0]
            row |= {
                "bound_check": judged.status.value,
                "bound_note": f"{judged.note}; judged on u_n less its resolution 2ε‖θ_n‖∞/η_n",
            }
    elif m.any():
        row["class_reason"] = "(β, γ) outside the theory's domain"
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


def points_frame(results: list[PointResult], everything: bool = False) -> pd.DataFrame:
    """points.csv rows of a run's points: the schema's columns and EXTRA_POINT_COLUMNS
    (empty where unknown), then with ``everything`` the other columns computed."""
    columns = list(POINT_COLUMNS + EXTRA_POINT_COLUMNS)
    if everything:
        columns += [c for r in results for c in r.row if c not in columns]
        columns = list(dict.fromkeys(columns))
    return pd.DataFrame([r.row for r in results], columns=columns)
