"""points.csv rows of a finished batch: its traces measured by :mod:`stabcli.measure`.

A batch's traces (one record per point and step) are pivoted into (P, S) arrays and
measured in one call, :func:`stabcli.measure.measure_points` (docs/theory.md §9): valid
window, rate and class, the paper's central difference, the √n test, each theory's
verdict and the exact bound check. Each point's measurement becomes one row of
:data:`stabcli.store.schema.POINT_COLUMNS`. Nothing here computes a slope or a ratio.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from stabcli.errors import SettingError
from stabcli.measure import MeasureSettings, PointMeasurement, measure_points
from stabcli.probe import ProbeResult
from stabcli.store.schema import POINT_COLUMNS
from stabcli.theory import exact, paper


@dataclass(frozen=True)
class MeasureSetup:
    """How a sweep measures its points: saved in config.json, so part of the run's identity."""

    settings: MeasureSettings  # thresholds of the measurement (docs/theory.md §9)
    slope_at: int  # step n of the paper's central difference (App. H), the same for every point

    @classmethod
    def for_run(
        cls,
        steps: int,
        slope_at: int | None = None,
        growth_tol: float | None = None,
        confidence: float | None = None,
    ) -> MeasureSetup:
        """The measurement of a ``steps``-step run; unset values take their defaults.

        The central difference is read at n = 500 as in the paper (App. H), or in the
        middle of a run shorter than 1000 steps; it needs n ± 5 inside the run.
        """
        defaults = MeasureSettings()
        settings = replace(
            defaults,
            growth_tol=defaults.growth_tol if growth_tol is None else growth_tol,
            confidence=defaults.confidence if confidence is None else confidence,
        )
        half = settings.central_half
        at = slope_at if slope_at is not None else (500 if steps >= 1000 else steps // 2)
        if not half <= at <= steps - 1 - half:
            raise SettingError(
                "{slope_at} must be between {lo} and {hi} for a run of {steps} steps, got {at}",
                lo=half,
                hi=steps - 1 - half,
                steps=steps,
                at=at,
            )
        return cls(settings, at)

    def to_dict(self) -> dict[str, Any]:
        """config.json's "measurement": every threshold, and the App. H step."""
        return {**asdict(self.settings), "slope_at": self.slope_at}


@dataclass(frozen=True)
class BatchTraces:
    """A batch's traces as arrays, rows in the order of the batch's summary."""

    max_update: np.ndarray  # (P, S): points, steps; ‖u_n‖∞, nan after divergence
    wd_term: np.ndarray  # (P, S) λ‖θ_n‖∞ under decoupled weight decay, else 0
    max_tensor: np.ndarray  # (P, S) object: the tensor holding the max, None when not finite


def batch_traces(traces: pd.DataFrame, points: list[int], steps: int) -> BatchTraces:
    """Pivot records (point, step, max_update, wd_term, max_tensor) into (P, S) arrays."""

    def pivot(column: str, fill: object) -> np.ndarray:
        wide = traces.pivot(index="point", columns="step", values=column)
        return wide.reindex(index=points, columns=range(steps), fill_value=fill).to_numpy()

    return BatchTraces(
        max_update=pivot("max_update", np.nan).astype(float),
        wd_term=pivot("wd_term", 0.0).astype(float),
        max_tensor=pivot("max_tensor", None),
    )


def invalid_reason(underflow_step: int | None, dtype: str) -> str:
    """Why a point is numerically invalid (the probe's underflow step), or "" when it is not.

    From that step on the max-update came from a second moment below the dtype's normal
    range, so m/sqrt(v) is no longer Adam's real-arithmetic update that the exact bound is
    about (docs/theory.md (9.6)).
    """
    if underflow_step is None:
        return ""
    return (
        f"second moment v below {dtype}'s normal range from n = {underflow_step} "
        "(the update m/sqrt(v) overshoots there, as in torch.optim.Adam)"
    )


def window_tensor(tensors: np.ndarray, start: int, stop: int) -> str:
    """The tensor holding the max-update most often over steps [start, stop) (the valid
    window; the whole run when the window is empty), ties to the first name in sorted
    order; "" when no step there names one. The report's "where the growth lives" figure
    counts the same steps."""
    chosen = tensors[start:stop] if stop > start else tensors
    counts = Counter(t for t in chosen if isinstance(t, str) and t)
    return min(counts, key=lambda t: (-counts[t], t)) if counts else ""


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def measurement_columns(m: PointMeasurement) -> dict[str, Any]:
    """The measurement's points.csv columns (store.schema: window … bound check)."""
    w, r, b, p = m.window, m.rate, m.bound, m.power
    return {
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


def batch_rows(
    part: ProbeResult, ids: list[str], positions: list[float], measure: MeasureSetup
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """points.csv rows, traces and evals of one finished batch, keyed by point id.

    ``ids[i]`` and ``positions[i]`` belong to the point ``i`` of ``part.summary``.
    """
    summary = part.summary.reset_index(drop=True)
    order = summary["point"].astype(int).tolist()
    steps = int(part.traces["step"].max()) + 1 if len(part.traces) else 0
    arrays = batch_traces(part.traces, order, steps)
    diverged = [_int_or_none(d) for d in summary["diverged_step"]]
    underflow = [_int_or_none(u) for u in summary["underflow_step"]]
    measured = measure_points(
        summary["beta"].to_numpy(float),
        summary["gamma"].to_numpy(float),
        arrays.max_update,
        settings=measure.settings,
        dtype=part.dtype,
        wd_term=arrays.wd_term,
        diverged_steps=diverged,
        invalid=[invalid_reason(u, part.dtype) for u in underflow],
        central_at=measure.slope_at,
    )
    rows = []
    for i, (rec, m) in enumerate(
        zip(summary.itertuples(index=False), measured.points, strict=True)
    ):
        beta, gamma = float(rec.beta), float(rec.gamma)
        rows.append(
            {
                "point_id": ids[rec.point],
                "position": positions[rec.point],
                "beta": beta,
                "gamma": gamma,
                "torch_beta1": gamma,
                "torch_beta2": beta,
                "c_value": paper.c_value(beta, gamma),
                "paper_region": paper.region(beta, gamma).value,
                "exact_stable": exact.exact_stable(beta, gamma),
                **measurement_columns(m),  # diverged_step: the loss's or the update's, first
                "underflow_step": underflow[i],
                "max_tensor": window_tensor(arrays.max_tensor[i], m.window.start, m.window.stop),
                "final_loss": rec.final_loss,
                "best_test_loss": math.nan,
            }
        )
    points = pd.DataFrame(rows, columns=list(POINT_COLUMNS))
    evals = part.evals.copy()
    if len(evals):
        best = evals.groupby("point")["test_loss"].min()
        points["best_test_loss"] = [best.get(p, math.nan) for p in order]
    key = {p: ids[p] for p in order}
    traces = part.traces.sort_values(["point", "step"])
    traces = traces.assign(point_id=traces["point"].map(key)).drop(columns="point")
    evals = evals.assign(point_id=evals["point"].map(key)).drop(columns="point")
    return points, traces, evals
