"""The measurement of a sweep per optimizer: which (β, γ) and which bound each point answers to.

:func:`stabcli.measure.measure_points` measures Adam's points at their own (β, γ). The
other optimizers of the probe engine change what the theory bounds:

- k-Adam (:func:`measure_kadam`): level i obeys the exact bound of its own (β_i, γ_i)
  (docs/theory.md (6.3)), and the update is the last level's u^(k) (plus λθ_n under
  decoupled decay). A point is measured at its last level's pair: its window, both
  theories' rates and verdicts, and the update's bound check are that level's; every level
  is also checked against its own bound (:mod:`stabcli.measure.levels`), and a level above
  its bound is a falsification like the update above its own. The base pair the strategy
  starts from bounds nothing: at k = 2, inverse-exp from (0.999, 0.9), the levels are
  (0.968, 0.684), whose bound passes the base pair's over the first tens of steps (where
  β = 0.999's bias correction still ramps), so the update overshoots the base pair's bound
  at every point while obeying its own.
- HyperAdam and MADA (:func:`measure_learned`): (β_n, γ_n) move every step. A point is
  measured at the final pair of its path (the window and the paper's verdict), and checked
  against the bound of the path it recorded (docs/theory.md §5; MADA's on its
  Adam-AVGrad-Lion face, (7.5), and no bound off it), with the exact theory's rate the
  path's (5.7). :mod:`stabcli.measure.paths` adds where the path entered γ² > β and whether
  the max-update grew after that.

Both return a :class:`~stabcli.measure.SweepMeasurement` whose headline counts these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from stabcli.measure.bounds import bound_checks
from stabcli.measure.headline import summarize
from stabcli.measure.levels import level_bounds
from stabcli.measure.paths import (
    BoundKind,
    along_path,
    forward_filled,
    no_bound_check,
    path_bounds,
    path_facts,
    path_rate,
)
from stabcli.measure.points import SweepMeasurement, measure_points
from stabcli.measure.profile import first_nonfinite, log_trace
from stabcli.measure.settings import MeasureSettings, rounding_tolerance


def measure_kadam(
    base_beta: Sequence[float] | np.ndarray,  # (P,) the base pair each strategy started from
    base_gamma: Sequence[float] | np.ndarray,  # (P,)
    level_beta: np.ndarray,  # (K, P) β_i of every level and point (torch beta2)
    level_gamma: np.ndarray,  # (K, P) γ_i (torch beta1)
    max_update: np.ndarray,  # (P, S) ‖u^(k)_n + λθ_n‖∞: the measured step
    level_updates: np.ndarray,  # (K, P, S) ‖u^(i)_n‖∞ of every level, before λθ_n
    *,
    settings: MeasureSettings | None = None,
    dtype: str = "float32",
    wd_term: np.ndarray | None = None,  # (P, S) λ‖θ_n‖∞ under decoupled decay
    diverged_steps: Sequence[int | None] | None = None,
    invalid: Sequence[str] | None = None,
    central_at: int | None = None,
) -> SweepMeasurement:
    """k-Adam's points measured at their last level, every level checked (module docstring).

    The measurements' (β, γ) are the base pairs: the points as the region names them.
    """
    s = settings or MeasureSettings()
    beta = np.asarray(level_beta, dtype=float)
    gamma = np.asarray(level_gamma, dtype=float)
    base = measure_points(
        beta[-1],
        gamma[-1],
        max_update,
        settings=s,
        dtype=dtype,
        wd_term=wd_term,
        diverged_steps=diverged_steps,
        invalid=invalid,
        central_at=central_at,
    )
    windows = [m.window for m in base.points]
    levels = level_bounds(beta, gamma, level_updates, windows, rounding_tolerance(dtype), invalid)
    points = tuple(
        replace(m, beta=float(b), gamma=float(g), levels=lv)
        for m, lv, b, g in zip(base.points, levels, base_beta, base_gamma, strict=True)
    )
    return SweepMeasurement(points, base.profiles, summarize(points, s))


def measure_learned(
    start_beta: Sequence[float] | np.ndarray,  # (P,) β_0 each path started from
    start_gamma: Sequence[float] | np.ndarray,  # (P,) γ_0
    beta_path: np.ndarray,  # (P, S) β_n that made step n; nan after divergence
    gamma_path: np.ndarray,  # (P, S) γ_n
    max_update: np.ndarray,  # (P, S) ‖u_n (+λθ_n)‖∞
    *,
    mada: Mapping[str, np.ndarray] | None = None,  # MADA's (P, S) beta3, rho, c, omega
    settings: MeasureSettings | None = None,
    dtype: str = "float32",
    wd_term: np.ndarray | None = None,
    diverged_steps: Sequence[int | None] | None = None,
    invalid: Sequence[str] | None = None,
    central_at: int | None = None,
) -> SweepMeasurement:
    """Learned-beta points measured along their paths (module docstring).

    The measurements' (β, γ) are the starting pairs: the points as the region names them.
    """
    s = settings or MeasureSettings()
    b = np.asarray(beta_path, dtype=float)
    g = np.asarray(gamma_path, dtype=float)
    u = np.asarray(max_update, dtype=float)
    final_b = forward_filled(b, np.asarray(start_beta, dtype=float))[:, -1]
    final_g = forward_filled(g, np.asarray(start_gamma, dtype=float))[:, -1]
    base = measure_points(
        final_b,
        final_g,
        u,
        settings=s,
        dtype=dtype,
        wd_term=wd_term,
        diverged_steps=diverged_steps,
        invalid=invalid,
        central_at=central_at,
    )
    bounds, kinds, off = path_bounds(b, g, mada)
    windows = [m.window for m in base.points]
    checks = bound_checks(u, bounds, wd_term, windows, rounding_tolerance(dtype), invalid)
    ends = first_nonfinite(u)
    if diverged_steps is not None:
        given = np.array([u.shape[1] if d is None else d for d in diverged_steps])
        ends = np.minimum(ends, given)
    facts = path_facts(b, g, log_trace(u), ends.tolist(), kinds, off, s)
    points = []
    for i, m in enumerate(base.points):
        if kinds[i] is BoundKind.NONE:
            m = along_path(m, float("nan"), no_bound_check(off[i]), s, BoundKind.NONE)
        else:
            rate = path_rate(b[i], g[i], m.window.start, m.window.stop)
            m = along_path(m, rate, checks[i], s, kinds[i])
        start = (float(start_beta[i]), float(start_gamma[i]))
        points.append(replace(m, beta=start[0], gamma=start[1], path=facts[i]))
    return SweepMeasurement(tuple(points), base.profiles, summarize(points, s))
