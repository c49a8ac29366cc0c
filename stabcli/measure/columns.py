"""A point's measurement as points.csv columns: the one mapping the sweep and the monitor use.

The names and their meaning are :mod:`stabcli.store.schema`'s (``POINT_COLUMNS`` from the
window to the bound check, and, when the measurement has them, ``KADAM_POINT_COLUMNS`` with
one ``level_ratio_l<i>`` per level, and ``PATH_POINT_COLUMNS``). The names are written here
as strings, since :mod:`stabcli.measure` sits below the store; the schema's tests hold them
equal.
"""

from __future__ import annotations

import math
from typing import Any

from stabcli.measure.levels import LevelBounds
from stabcli.measure.paths import PathFacts
from stabcli.measure.points import PointMeasurement


def measurement_columns(m: PointMeasurement) -> dict[str, Any]:
    """The measurement's points.csv columns (module docstring), in the schema's order."""
    w, r, b, p = m.window, m.rate, m.bound, m.power
    out: dict[str, Any] = {
        "settle_step": w.settle_step,
        "window_rule": w.regime.value,
        "window_start": w.start,
        "window_stop": w.stop,
        "steps_needed": w.steps_needed,
        "rate": r.rate,
        "rate_stderr": r.stderr,
        "rate_low": r.low,
        "rate_high": r.high,
        "rate_lag1": r.lag1,
        "measured_class": m.measured_class.value,
        "class_reason": m.reason,
        "central_slope": m.central_slope,
        "central_at": m.central_at,
        "power_exponent": p.exponent,
        "power_halfwidth": p.halfwidth,
        "growth_shape": p.shape.value,
        "sqrt_n": p.sqrt_n,
        "paper_rate": m.paper.predicted_rate,
        "paper_verdict": m.paper.verdict.value,
        "paper_rel_error": m.paper.rel_error,
        "exact_rate": m.exact.predicted_rate,
        "exact_verdict": m.exact.verdict.value,
        "exact_rel_error": m.exact.rel_error,
        "closer_theory": m.closer_theory,
        "bound_ratio_max": b.ratio_all,
        "bound_ratio_step": b.step_all if b.step_all >= 0 else None,
        "bound_ratio_settled": b.ratio_window,
        "bound_check": b.status.value,
        "bound_note": b.note,
        "diverged_step": m.diverged_step,
    }
    if m.levels is not None:
        out |= level_columns(m.levels)
    if m.path is not None:
        out |= path_columns(m.path)
    return out


def _shared(values: tuple[float, ...]) -> float:
    """The value every level shares (paper App. P), or nan when the levels differ."""
    return values[0] if values and all(v == values[0] for v in values) else math.nan


def level_columns(levels: LevelBounds) -> dict[str, Any]:
    """k-Adam's columns: the levels' pair, the worst level's check, every level's ratio."""
    check = levels.check
    return {
        "level_beta": _shared(levels.beta),
        "level_gamma": _shared(levels.gamma),
        "level_worst": levels.worst or None,
        "level_ratio_max": check.ratio_all,
        "level_ratio_step": check.step_all if check.step_all >= 0 else None,
        "level_check": check.status.value,
        **{f"level_ratio_l{i}": ratio for i, ratio in enumerate(levels.ratios, start=1)},
    }


def path_columns(path: PathFacts) -> dict[str, Any]:
    """Learned betas' columns: the final pair, the entry into γ² > β and what followed."""
    after = path.after
    return {
        "final_beta": path.final_beta,
        "final_gamma": path.final_gamma,
        "first_unstable_step": path.first_unstable_step,
        "unstable_class": path.after_class,
        "unstable_rate": after.rate if after is not None else math.nan,
        "unstable_rate_low": after.low if after is not None else math.nan,
        "unstable_rate_high": after.high if after is not None else math.nan,
        "unstable_reason": path.after_reason,
        "bound_kind": path.bound_kind.value,
        "off_face_step": path.off_face_step,
    }
