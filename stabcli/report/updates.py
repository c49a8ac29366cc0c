"""Figure 2: ‖u_n‖∞ against n for every point, with the bounds it obeys (paper Fig. 2a).

Each point's measured max-update is a solid line colored by C; its paper bound (eq. 5,
dotted) and the bound the measurement checked it against (dashed, plus λ‖θ_n‖∞ under
decoupled decay) are lines of the same color; a divergence is marked with an ×. Long
traces are decimated for display (``_display.decimate_indices``). Which bound, by
``bounds`` (the run's optimizer or origin):

- ``"point"`` (Adam): the exact bound of the point's (β, γ) (docs/theory.md §3);
- ``"level"`` (k-Adam): the exact bound of its last level's (β_k, γ_k), which bounds the
  update (docs/theory.md (6.3)); the paper's bound there too;
- ``"path"`` (HyperAdam, MADA): the bound along the recorded (β_n, γ_n), by the
  measurement's own rule (:func:`stabcli.measure.paths.path_bounds`: docs/theory.md §5,
  MADA's (7.5) on its face and none off it); no paper bound (it has no theory of a path);
- ``"trace"`` (a monitor run): the ``bound`` column the monitor recorded at each step,
  whose steps may start late (watching began mid-training) and skip some (``every``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.measure.paths import path_bounds
from stabcli.report._display import (
    MAX_TRACE_POINTS,
    both_orders,
    colorbar_trace,
    colors_for,
    decimate_indices,
    empty_figure,
    finite_mask,
    point_label,
    value_range,
)
from stabcli.report.load import trace_matrices
from stabcli.store.schema import MADA_TRACE_COLUMNS
from stabcli.theory import exact, paper

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Max-update ‖u_n‖∞ against n, with the paper's and the exact bound"
#: Steps at which the (smooth) bounds are evaluated for display.
BOUND_POINTS = 120
#: The name of the checked bound, by source (module docstring).
BOUND_NAMES = {
    "point": "exact bound",
    "level": "exact bound of the last level",
    "path": "path bound",
    "trace": "recorded bound",
}


@dataclass(frozen=True)
class Line:
    """A drawable line: finite x and y of equal length."""

    x: np.ndarray  # steps n
    y: np.ndarray  # values (> 0: the axis is logarithmic)


@dataclass(frozen=True)
class PointUpdates:
    """What figure 2 draws for one point."""

    point_id: str
    label: str  # "β=…, γ=…" (or "beta1=…, beta2=…" when typed in PyTorch's order)
    hover: str  # the point in both orders
    c_value: float  # colors the lines
    measured: Line  # decimated ‖u_n‖∞
    paper_bound: Line  # paper eq. 5 (non-finite values dropped: it overflows in B−); empty
    # for a path (the paper has no theory of one)
    exact_bound: Line  # the checked bound (module docstring; + λ‖θ_n‖∞ with decoupled decay)
    diverged_step: int | None  # step at which the run diverged, if it did
    diverged_value: float | None  # last finite ‖u_n‖∞ at or before that step


@dataclass(frozen=True)
class UpdatesInfo:
    """Everything figure 2 draws."""

    points: list[PointUpdates]  # in region order
    c_range: tuple[float, float]  # color range of C
    y_range: tuple[float, float] | None  # log10 range framing the measurements
    weight_decay: bool  # the exact bound includes λ‖θ_n‖∞
    bound_name: str = BOUND_NAMES["point"]  # what the dashed lines are
    title: str = TITLE


def _bound_line(values: np.ndarray, steps: np.ndarray) -> Line:
    keep = finite_mask(values, positive=True)
    return Line(steps[keep].astype(float), np.asarray(values, dtype=float)[keep])


def _grid_bounds(row: pd.Series, trace: pd.DataFrame, source: str) -> tuple[Line, Line]:
    """(paper, checked) bounds of a fixed pair on a grid of BOUND_POINTS steps over the run:
    the point's (β, γ), or its last k-Adam level's (``source == "level"``)."""
    steps = trace["step"].to_numpy(int)
    beta, gamma = float(row["beta"]), float(row["gamma"])
    if source == "level":
        beta, gamma = float(row["level_beta"]), float(row["level_gamma"])
    span = int(steps.max()) if len(steps) else 0
    grid = np.unique(np.linspace(0, span, BOUND_POINTS).astype(int))
    exact_values = np.asarray(exact.exact_bound(beta, gamma, grid), dtype=float)
    if "wd_term" in trace:  # the measured step holds λθ_n too (docs/theory.md §1, AdamW)
        wd = pd.Series(trace["wd_term"].to_numpy(float), index=steps)
        exact_values = exact_values + wd.reindex(grid).fillna(0.0).to_numpy()
    paper_values = np.asarray(paper.paper_bound(beta, gamma, grid))
    return _bound_line(paper_values, grid), _bound_line(exact_values, grid)


def _step_bounds(trace: pd.DataFrame, values: np.ndarray) -> Line:
    """A bound known at the trace's own steps (``values``, (len(trace),)), plus λ‖θ_n‖∞,
    drawn at about BOUND_POINTS of them."""
    steps = trace["step"].to_numpy(int)
    wd = trace["wd_term"].to_numpy(float) if "wd_term" in trace else np.zeros(len(steps))
    pick = np.unique(np.linspace(0, max(len(steps) - 1, 0), BOUND_POINTS).astype(int))
    pick = pick[pick < len(steps)]
    return _bound_line((values + np.nan_to_num(wd))[pick], steps[pick])


def _one_point(
    row: pd.Series,
    trace: pd.DataFrame,
    max_points: int,
    source: str,
    order: str,
    along: np.ndarray | None,  # (len(trace),) the path's bound at the trace's steps
) -> PointUpdates:
    steps = trace["step"].to_numpy(int)
    values = trace["max_update"].to_numpy(float)
    diverged = row["diverged_step"]
    diverged_step = int(diverged) if np.isfinite(diverged) else None
    ok = finite_mask(values, positive=True)
    keep: list[int] = []
    diverged_value = None
    if ok.any():
        last = int(np.flatnonzero(ok)[-1])
        keep.append(last)
        if diverged_step is not None:
            before = np.flatnonzero(ok & (steps <= diverged_step))
            at = int(before[-1]) if len(before) else last
            keep.append(at)
            diverged_value = float(values[at])
    chosen = decimate_indices(np.where(ok, np.log(np.where(ok, values, 1.0)), np.nan), max_points)
    chosen = np.union1d(chosen, keep).astype(int)
    chosen = chosen[ok[chosen]]
    beta, gamma = float(row["beta"]), float(row["gamma"])
    if source in ("point", "level"):
        paper_line, checked = _grid_bounds(row, trace, source)
    else:
        empty = np.array([], dtype=float)
        paper_line = Line(empty, empty)
        if source == "trace" and "bound" in trace:
            checked = _step_bounds(trace, trace["bound"].to_numpy(float))
        elif along is not None:
            checked = _step_bounds(trace, along)
        else:
            checked = Line(empty, empty)
    return PointUpdates(
        point_id=str(row["point_id"]),
        label=point_label(beta, gamma, order),
        hover=both_orders(beta, gamma, order),
        c_value=float(row["c_value"]),
        measured=Line(steps[chosen].astype(float), values[chosen]),
        paper_bound=paper_line,
        exact_bound=checked,
        diverged_step=diverged_step,
        diverged_value=diverged_value,
    )


def _path_bounds(points: pd.DataFrame, traces: pd.DataFrame) -> dict[str, pd.Series]:
    """Each point's path bound at its recorded steps (docs/theory.md §5, (7.5)), by id."""
    ids = points["point_id"].astype(str).tolist()
    if not ids or traces.empty or "beta" not in traces or "gamma" not in traces:
        return {}
    wide = trace_matrices(traces, ids, ("beta", "gamma", *MADA_TRACE_COLUMNS))  # (P, S) each
    mada = None
    if all(c in wide for c in MADA_TRACE_COLUMNS):
        mada = {c: wide[c] for c in MADA_TRACE_COLUMNS}
    bound, _, _ = path_bounds(wide["beta"], wide["gamma"], mada)  # (P, S)
    return {pid: pd.Series(bound[i]) for i, pid in enumerate(ids)}


def _get_updates_info(
    points: pd.DataFrame,
    traces: pd.DataFrame,
    max_points: int = MAX_TRACE_POINTS,
    bounds: str = "point",
    order: str = "paper",
) -> UpdatesInfo:
    """Per-point measured lines (decimated, finite, > 0) and their bounds (module docstring:
    ``bounds`` is "point", "level", "path" or "trace"), in region order; labels in
    ``order`` ("paper" or "torch")."""
    if bounds not in BOUND_NAMES:
        raise ValueError(f"bounds must be one of {', '.join(BOUND_NAMES)}, got {bounds!r}")
    by_id = {pid: group for pid, group in traces.groupby("point_id", sort=False)}
    along = _path_bounds(points, traces) if bounds == "path" else {}
    out: list[PointUpdates] = []
    for _, row in points.iterrows():
        pid = str(row["point_id"])
        trace = by_id.get(pid)
        if trace is not None and len(trace):
            path = along.get(pid)
            at = path.reindex(trace["step"]).to_numpy(float) if path is not None else None
            out.append(_one_point(row, trace, max_points, bounds, order, at))
    measured = np.concatenate([p.measured.y for p in out]) if out else np.array([])
    y_range = None
    if len(measured):
        # Frame the measurements; bounds far above them stay reachable by zooming out.
        lo, hi = np.log10(measured.min()), np.log10(measured.max())
        y_range = (float(lo - 0.3), float(hi + 1.0))
    wd = "wd_term" in traces and bool((traces["wd_term"].fillna(0) != 0).any())
    name = BOUND_NAMES[bounds]
    title = (
        TITLE if bounds in ("point", "level") else f"Max-update ‖u_n‖∞ against n, with the {name}"
    )
    if bounds == "level":
        title = "Max-update ‖u_n‖∞ = ‖u^(k)_n‖∞ against n, with the last level's bounds"
    return UpdatesInfo(out, value_range(p.c_value for p in out), y_range, wd, name, title)


def plot_updates(info: UpdatesInfo) -> go.Figure:
    """Figure 2 from its info: log-y lines colored by C; bounds dotted; divergence marked."""
    import plotly.graph_objects as go

    if not info.points:
        return empty_figure(info.title, "no traces recorded")
    lo, hi = info.c_range
    colors = colors_for([p.c_value for p in info.points], lo, hi)
    exact_name = f"{info.bound_name} + λ‖θ‖∞" if info.weight_decay else info.bound_name
    # Plain dicts: the figure validates each trace once (go.Scatter objects would be
    # validated twice, which is most of the time of a 128-point report).
    traces: list[dict[str, Any]] = []
    for p, color in zip(info.points, colors, strict=True):
        common = {"legendgroup": p.point_id, "line": {"color": color}}
        traces.append(
            dict(
                type="scatter",
                x=p.measured.x,
                y=p.measured.y,
                mode="lines",
                name=p.label,
                hovertemplate=f"{p.hover}<br>C={p.c_value:.4g}<br>n=%{{x}}<br>"
                "‖u_n‖∞=%{y:.4g}<extra></extra>",
                **common,
            )
        )
        for name, line, dash in (
            ("paper bound", p.paper_bound, "dot"),
            (exact_name, p.exact_bound, "dash"),
        ):
            if not len(line.x):
                continue
            traces.append(
                dict(
                    type="scatter",
                    x=line.x,
                    y=line.y,
                    mode="lines",
                    name=f"{name} ({p.label})",
                    showlegend=False,
                    legendgroup=p.point_id,
                    line={"color": color, "dash": dash, "width": 1},
                    opacity=0.6,
                    hovertemplate=f"{name}<br>{p.hover}<br>n=%{{x}}<br>%{{y:.4g}}<extra></extra>",
                )
            )
        if p.diverged_step is not None and p.diverged_value is not None:
            traces.append(
                dict(
                    type="scatter",
                    x=[p.diverged_step],
                    y=[p.diverged_value],
                    mode="markers",
                    name=f"diverged ({p.label})",
                    showlegend=False,
                    legendgroup=p.point_id,
                    marker={"symbol": "x", "size": 11, "color": color, "line": {"width": 1}},
                    hovertemplate=f"{p.hover}<br>diverged at n={p.diverged_step}<extra></extra>",
                )
            )
    fig = go.Figure(data=[*traces, colorbar_trace(lo, hi, "C(β, γ)")])
    fig.update_layout(
        title={"text": info.title},
        xaxis={"title": {"text": "step n"}},
        yaxis={"title": {"text": "‖u_n‖∞"}, "type": "log"},
        legend={"title": {"text": "point (click to hide)"}, "font": {"size": 10}, "x": 1.14},
        annotations=[
            {
                "text": "solid: measured · "
                + (
                    "dotted: paper bound (eq. 5) · "
                    if any(len(p.paper_bound.x) for p in info.points)
                    else ""
                )
                + f"dashed: {info.bound_name} · ×: divergence",
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1.06,
                "showarrow": False,
                "font": {"size": 11},
            }
        ],
    )
    if info.y_range is not None:
        fig.update_yaxes(range=list(info.y_range))
    return fig
