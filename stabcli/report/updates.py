"""Figure 2: ‖u_n‖∞ against n for every point, with both theories' bounds (paper Fig. 2a).

Each point's measured max-update is a solid line colored by C; its paper bound (eq. 5) and
exact bound (docs/theory.md §3) are dotted lines of the same color; a divergence is marked with an
×. Long traces are decimated for display (``_display.decimate_indices``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.report._display import (
    MAX_TRACE_POINTS,
    colorbar_trace,
    colors_for,
    decimate_indices,
    empty_figure,
    finite_mask,
    point_label,
    value_range,
)
from stabcli.theory import exact, paper

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Max-update ‖u_n‖∞ against n, with the paper's and the exact bound"
#: Steps at which the (smooth) bounds are evaluated for display.
BOUND_POINTS = 120


@dataclass(frozen=True)
class Line:
    """A drawable line: finite x and y of equal length."""

    x: np.ndarray  # steps n
    y: np.ndarray  # values (> 0: the axis is logarithmic)


@dataclass(frozen=True)
class PointUpdates:
    """What figure 2 draws for one point."""

    point_id: str
    label: str  # "β=…, γ=…"
    c_value: float  # colors the lines
    measured: Line  # decimated ‖u_n‖∞
    paper_bound: Line  # paper eq. 5 (non-finite values dropped: it overflows in B−)
    exact_bound: Line  # exact bound (+ λ‖θ_n‖∞ with decoupled weight decay)
    diverged_step: int | None  # step at which the run diverged, if it did
    diverged_value: float | None  # last finite ‖u_n‖∞ at or before that step


@dataclass(frozen=True)
class UpdatesInfo:
    """Everything figure 2 draws."""

    points: list[PointUpdates]  # in region order
    c_range: tuple[float, float]  # color range of C
    y_range: tuple[float, float] | None  # log10 range framing the measurements
    weight_decay: bool  # the exact bound includes λ‖θ_n‖∞


def _bound_line(values: np.ndarray, steps: np.ndarray) -> Line:
    keep = finite_mask(values, positive=True)
    return Line(steps[keep].astype(float), np.asarray(values, dtype=float)[keep])


def _one_point(row: pd.Series, trace: pd.DataFrame, max_points: int) -> PointUpdates:
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
    span = int(steps.max()) if len(steps) else 0
    grid = np.unique(np.linspace(0, span, BOUND_POINTS).astype(int))
    exact_values = np.asarray(exact.exact_bound(beta, gamma, grid), dtype=float)
    if "wd_term" in trace:  # the measured step holds λθ_n too (docs/theory.md §1, AdamW)
        wd = pd.Series(trace["wd_term"].to_numpy(float), index=steps)
        exact_values = exact_values + wd.reindex(grid).fillna(0.0).to_numpy()
    return PointUpdates(
        point_id=str(row["point_id"]),
        label=point_label(beta, gamma),
        c_value=float(row["c_value"]),
        measured=Line(steps[chosen].astype(float), values[chosen]),
        paper_bound=_bound_line(np.asarray(paper.paper_bound(beta, gamma, grid)), grid),
        exact_bound=_bound_line(exact_values, grid),
        diverged_step=diverged_step,
        diverged_value=diverged_value,
    )


def _get_updates_info(
    points: pd.DataFrame, traces: pd.DataFrame, max_points: int = MAX_TRACE_POINTS
) -> UpdatesInfo:
    """Per-point measured lines (decimated, finite, > 0) and both bounds, in region order."""
    by_id = {pid: group for pid, group in traces.groupby("point_id", sort=False)}
    out: list[PointUpdates] = []
    for _, row in points.iterrows():
        trace = by_id.get(str(row["point_id"]))
        if trace is not None and len(trace):
            out.append(_one_point(row, trace, max_points))
    measured = np.concatenate([p.measured.y for p in out]) if out else np.array([])
    y_range = None
    if len(measured):
        # Frame the measurements; bounds far above them stay reachable by zooming out.
        lo, hi = np.log10(measured.min()), np.log10(measured.max())
        y_range = (float(lo - 0.3), float(hi + 1.0))
    wd = "wd_term" in traces and bool((traces["wd_term"].fillna(0) != 0).any())
    return UpdatesInfo(out, value_range(p.c_value for p in out), y_range, wd)


def plot_updates(info: UpdatesInfo) -> go.Figure:
    """Figure 2 from its info: log-y lines colored by C; bounds dotted; divergence marked."""
    import plotly.graph_objects as go

    if not info.points:
        return empty_figure(TITLE, "no traces recorded")
    lo, hi = info.c_range
    colors = colors_for([p.c_value for p in info.points], lo, hi)
    exact_name = "exact bound + λ‖θ‖∞" if info.weight_decay else "exact bound"
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
                hovertemplate=f"{p.label}<br>C={p.c_value:.4g}<br>n=%{{x}}<br>"
                "‖u_n‖∞=%{y:.4g}<extra></extra>",
                **common,
            )
        )
        for name, line, dash in (
            ("paper bound", p.paper_bound, "dot"),
            (exact_name, p.exact_bound, "dash"),
        ):
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
                    hovertemplate=f"{name}<br>{p.label}<br>n=%{{x}}<br>%{{y:.4g}}<extra></extra>",
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
                    hovertemplate=f"{p.label}<br>diverged at n={p.diverged_step}<extra></extra>",
                )
            )
    fig = go.Figure(data=[*traces, colorbar_trace(lo, hi, "C(β, γ)")])
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": "step n"}},
        yaxis={"title": {"text": "‖u_n‖∞"}, "type": "log"},
        legend={"title": {"text": "point (click to hide)"}, "font": {"size": 10}, "x": 1.14},
        annotations=[
            {
                "text": "solid: measured · dotted: paper bound (eq. 5) · dashed: exact bound"
                " · ×: divergence",
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
