"""points.csv rows of a finished batch: its traces measured by :mod:`stabcli.measure`.

A batch's traces (one record per point and step) are pivoted into (P, S) arrays and
measured in one call (docs/theory.md §9): valid window, rate and class, the paper's
central difference, the √n test, each theory's verdict and the bound check. The call
depends on the optimizer the batch trained (:class:`Optimizer`, read from the columns the
engine recorded): Adam's points by :func:`stabcli.measure.measure_points` at their own
(β, γ); k-Adam's by :func:`stabcli.measure.measure_kadam`, at their last level's pair and
every level against its own exact bound (docs/theory.md (6.3)); HyperAdam's and MADA's by
:func:`stabcli.measure.measure_learned`, against the bound of the path they recorded
(docs/theory.md §5, (7.5)). Each point's measurement becomes one row of
:data:`stabcli.store.schema.POINT_COLUMNS` (and the optimizer's own columns,
:attr:`Optimizer.point_columns`). Nothing here computes a slope or a ratio.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from stabcli.errors import SettingError
from stabcli.measure import (
    MeasureSettings,
    SweepMeasurement,
    measure_kadam,
    measure_learned,
    measure_points,
    measurement_columns,
)
from stabcli.probe import ProbeResult
from stabcli.store.schema import (
    KADAM_POINT_COLUMNS,
    KADAM_TRACE_PREFIX,
    MADA_TRACE_COLUMNS,
    PATH_POINT_COLUMNS,
    PATH_TRACE_COLUMNS,
    POINT_COLUMNS,
    level_ratio_column,
    level_trace_column,
)
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
    extra: dict[str, np.ndarray]  # (P, S) each: the optimizer's own columns (Optimizer.columns)


@dataclass(frozen=True)
class Optimizer:
    """Which optimizer a batch trained, read from the columns its ProbeResult carries
    (:class:`stabcli.probe.ProbeResult`: k-Adam's summary has ``level_beta``; HyperAdam's
    and MADA's traces have ``beta`` and ``gamma``, MADA's also its other coefficients)."""

    name: str  # adam, kadam, hyperadam or mada
    k: int = 1  # k-Adam's levels

    @classmethod
    def of(cls, part: ProbeResult) -> Optimizer:
        traces = set(part.traces.columns)
        if "level_beta" in part.summary:
            k = sum(1 for c in traces if c.startswith(KADAM_TRACE_PREFIX))
            return cls("kadam", k)
        if set(PATH_TRACE_COLUMNS) <= traces:
            return cls("mada" if set(MADA_TRACE_COLUMNS) <= traces else "hyperadam")
        return cls("adam")

    @property
    def columns(self) -> tuple[str, ...]:
        """The optimizer's trace columns the measurement reads."""
        if self.name == "kadam":
            return tuple(level_trace_column(i) for i in range(1, self.k + 1))
        if self.name == "hyperadam":
            return PATH_TRACE_COLUMNS
        if self.name == "mada":
            return PATH_TRACE_COLUMNS + MADA_TRACE_COLUMNS
        return ()

    @property
    def point_columns(self) -> tuple[str, ...]:
        """points.csv's columns for this optimizer (store.schema)."""
        if self.name == "kadam":
            levels = tuple(level_ratio_column(i) for i in range(1, self.k + 1))
            return POINT_COLUMNS + KADAM_POINT_COLUMNS + levels
        if self.name in ("hyperadam", "mada"):
            return POINT_COLUMNS + PATH_POINT_COLUMNS
        return POINT_COLUMNS


def batch_traces(
    traces: pd.DataFrame, points: list[int], steps: int, extra: tuple[str, ...] = ()
) -> BatchTraces:
    """Pivot records (point, step, max_update, wd_term, max_tensor and ``extra``) into
    (P, S) arrays."""

    def pivot(column: str, fill: object) -> np.ndarray:
        wide = traces.pivot(index="point", columns="step", values=column)
        return wide.reindex(index=points, columns=range(steps), fill_value=fill).to_numpy()

    return BatchTraces(
        max_update=pivot("max_update", np.nan).astype(float),
        wd_term=pivot("wd_term", 0.0).astype(float),
        max_tensor=pivot("max_tensor", None),
        extra={c: pivot(c, np.nan).astype(float) for c in extra},
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


def measure_batch(
    part: ProbeResult, optimizer: Optimizer, arrays: BatchTraces, measure: MeasureSetup
) -> tuple[SweepMeasurement, np.ndarray, np.ndarray]:
    """The batch's measurement by its optimizer (:mod:`stabcli.measure.optimizers`), and the
    (P,) (β, γ) its theory columns (C, regions, exact stability) describe: Adam's and a
    learned point's own (the region's, where a learned path starts), a k-Adam point's
    last level's, which bounds its update (docs/theory.md (6.3))."""
    summary = part.summary.reset_index(drop=True)
    beta = summary["beta"].to_numpy(float)
    gamma = summary["gamma"].to_numpy(float)
    underflow = [_int_or_none(u) for u in summary["underflow_step"]]
    common: dict[str, Any] = {
        "settings": measure.settings,
        "dtype": part.dtype,
        "wd_term": arrays.wd_term,
        "diverged_steps": [_int_or_none(d) for d in summary["diverged_step"]],
        "invalid": [invalid_reason(u, part.dtype) for u in underflow],
        "central_at": measure.slope_at,
    }
    if optimizer.name == "kadam":
        # the engine records one pair per point: every strategy gives all levels the same
        # (β_i, γ_i) (paper App. P; docs/theory.md (6.2))
        level_beta = np.tile(summary["level_beta"].to_numpy(float), (optimizer.k, 1))  # (K, P)
        level_gamma = np.tile(summary["level_gamma"].to_numpy(float), (optimizer.k, 1))
        levels = np.stack([arrays.extra[c] for c in optimizer.columns])  # (K, P, S)
        measured = measure_kadam(
            beta, gamma, level_beta, level_gamma, arrays.max_update, levels, **common
        )
        return measured, level_beta[-1], level_gamma[-1]
    if optimizer.name in ("hyperadam", "mada"):
        mada = (
            {c: arrays.extra[c] for c in MADA_TRACE_COLUMNS} if optimizer.name == "mada" else None
        )
        measured = measure_learned(
            beta,
            gamma,
            arrays.extra["beta"],
            arrays.extra["gamma"],
            arrays.max_update,
            mada=mada,
            **common,
        )
        return measured, beta, gamma
    return measure_points(beta, gamma, arrays.max_update, **common), beta, gamma


def batch_rows(
    part: ProbeResult, ids: list[str], positions: list[float], measure: MeasureSetup
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """points.csv rows, traces and evals of one finished batch, keyed by point id.

    ``ids[i]`` and ``positions[i]`` belong to the point ``i`` of ``part.summary``.
    """
    summary = part.summary.reset_index(drop=True)
    order = summary["point"].astype(int).tolist()
    steps = int(part.traces["step"].max()) + 1 if len(part.traces) else 0
    optimizer = Optimizer.of(part)
    arrays = batch_traces(part.traces, order, steps, optimizer.columns)
    underflow = [_int_or_none(u) for u in summary["underflow_step"]]
    measured, theory_beta, theory_gamma = measure_batch(part, optimizer, arrays, measure)
    rows = []
    for i, (rec, m) in enumerate(
        zip(summary.itertuples(index=False), measured.points, strict=True)
    ):
        beta, gamma = float(rec.beta), float(rec.gamma)
        at_beta, at_gamma = float(theory_beta[i]), float(theory_gamma[i])
        rows.append(
            {
                "point_id": ids[rec.point],
                "position": positions[rec.point],
                "beta": beta,
                "gamma": gamma,
                "torch_beta1": gamma,
                "torch_beta2": beta,
                "c_value": paper.c_value(at_beta, at_gamma),
                "paper_region": paper.region(at_beta, at_gamma).value,
                "exact_stable": exact.exact_stable(at_beta, at_gamma),
                **measurement_columns(m),  # diverged_step: the loss's or the update's, first
                "underflow_step": underflow[i],
                "max_tensor": window_tensor(arrays.max_tensor[i], m.window.start, m.window.stop),
                "final_loss": rec.final_loss,
                "best_test_loss": math.nan,
            }
        )
    points = pd.DataFrame(rows, columns=list(optimizer.point_columns))
    evals = part.evals.copy()
    if len(evals):
        best = evals.groupby("point")["test_loss"].min()
        points["best_test_loss"] = [best.get(p, math.nan) for p in order]
    key = {p: ids[p] for p in order}
    traces = part.traces.sort_values(["point", "step"])
    traces = traces.assign(point_id=traces["point"].map(key)).drop(columns="point")
    evals = evals.assign(point_id=evals["point"].map(key)).drop(columns="point")
    return points, traces, evals
