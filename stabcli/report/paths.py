"""Paths through the (β, γ) plane: where learned or scheduled betas went, step by step.

HyperAdam and MADA learn (β_n, γ_n) during training; a monitored run records the betas
of its param groups at every step (a schedule, or a learned optimizer). Each path (traces'
``beta`` and ``gamma``: the pair that made step n) is drawn over both boundaries, the
paper's C = 0 (γ = 2β/(1+β), paper Section 3.1) and the exact γ² = β (docs/theory.md §3),
colored by the step, with its start (○) and end (◆) marked and the step where it first
entered γ² > β (docs/theory.md (5.7): there the path bound starts to grow) marked ×.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.report._display import (
    EXACT_COLOR,
    PAPER_COLOR,
    both_orders,
    empty_figure,
    point_label,
)
from stabcli.theory import exact, paper
from stabcli.theory.path import first_unstable_step

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Paths through the (β, γ) plane: β = torch beta2, γ = torch beta1, colored by step"
#: Colorscale of the step along a path.
STEP_COLORSCALE = "Plasma"
#: Most points drawn per path (evenly spread; the first unstable step is always kept).
PATH_POINTS = 150
#: Margin around the paths, as a fraction of their span (at least MIN_SPAN wide).
VIEW_MARGIN = 0.1
MIN_SPAN = 0.01


@dataclass(frozen=True)
class Path:
    """One point's path, decimated for display; arrays of shape (K,): drawn steps."""

    point_id: str
    label: str  # the path's first recorded (β, γ), in the order the points were typed
    hover: str  # the same in both orders
    steps: np.ndarray  # (K,) n
    beta: np.ndarray  # (K,) β_n
    gamma: np.ndarray  # (K,) γ_n
    first_unstable: int | None  # first n with γ_n² > β_n (on the whole recorded path)
    entry: tuple[float, float] | None  # (β_n, γ_n) there


@dataclass(frozen=True)
class PathsInfo:
    """What the paths figure draws."""

    paths: list[Path]  # region order
    step_range: tuple[float, float]  # color range of n
    view: tuple[tuple[float, float], tuple[float, float]]  # (β range, γ range)
    boundary_beta: np.ndarray  # (B,) β of both boundary curves, across the view
    paper_gamma: np.ndarray  # (B,) C = 0: γ = 2β/(1+β)
    exact_gamma: np.ndarray  # (B,) γ² = β: γ = sqrt(β)


def _pick(n: int, max_points: int) -> np.ndarray:
    """At most about ``max_points`` indices of n, evenly spread, both ends kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).astype(int))


def _view(paths: list[Path]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The paths with a margin, widened in γ to show both boundaries across the paths' β
    (so that a path's distance to γ² = β and C = 0 is always in view)."""
    beta = np.concatenate([p.beta for p in paths])
    gamma = np.concatenate([p.gamma for p in paths])
    ends = np.array([beta.min(), beta.max()])
    edges = np.concatenate([np.sqrt(ends), 2 * ends / (1 + ends)])  # γ² = β and C = 0
    out = []
    for lo, hi in (
        (beta.min(), beta.max()),
        (min(gamma.min(), edges.min()), max(gamma.max(), edges.max())),
    ):
        pad = max((hi - lo) * VIEW_MARGIN, MIN_SPAN / 2)
        out.append((max(float(lo) - pad, 0.0), min(float(hi) + pad, 1.005)))
    return (out[0], out[1])


def _get_paths_info(
    points: pd.DataFrame,
    traces: pd.DataFrame,
    max_points: int = PATH_POINTS,
    order: str = "paper",
) -> PathsInfo:
    """Every point's recorded (β_n, γ_n) path (finite steps only), in region order; empty
    when the traces hold no path (module docstring)."""
    empty = np.array([], dtype=float)
    nothing = PathsInfo([], (0.0, 1.0), ((0.0, 1.005), (0.0, 1.005)), empty, empty, empty)
    if points.empty or traces.empty or "beta" not in traces or "gamma" not in traces:
        return nothing
    by_id = {pid: group for pid, group in traces.groupby("point_id", sort=False)}
    paths: list[Path] = []
    for _, row in points.iterrows():
        trace = by_id.get(str(row["point_id"]))
        if trace is None:
            continue
        beta, gamma = trace["beta"].to_numpy(float), trace["gamma"].to_numpy(float)
        ok = np.isfinite(beta) & np.isfinite(gamma) & (beta > 0) & (beta < 1)
        ok &= (gamma >= 0) & (gamma < 1)
        if not ok.any():
            continue
        steps = trace["step"].to_numpy(int)[ok]
        beta, gamma = beta[ok], gamma[ok]
        first = first_unstable_step(beta, gamma)
        pick = _pick(len(steps), max_points)
        if first is not None:
            pick = np.union1d(pick, [first])
        b0, g0 = float(beta[0]), float(gamma[0])  # where the recorded path starts
        paths.append(
            Path(
                point_id=str(row["point_id"]),
                label=point_label(b0, g0, order),
                hover=both_orders(b0, g0, order),
                steps=steps[pick],
                beta=beta[pick],
                gamma=gamma[pick],
                first_unstable=int(steps[first]) if first is not None else None,
                entry=(float(beta[first]), float(gamma[first])) if first is not None else None,
            )
        )
    if not paths:
        return nothing
    view = _view(paths)
    grid = np.linspace(max(view[0][0], 1e-6), min(view[0][1], 1.0), 200)
    all_steps = np.concatenate([p.steps for p in paths])
    return PathsInfo(
        paths=paths,
        step_range=(float(all_steps.min()), float(max(all_steps.max(), all_steps.min() + 1))),
        view=view,
        boundary_beta=grid,
        paper_gamma=np.asarray(paper.boundary_gamma(grid), dtype=float),
        exact_gamma=np.asarray(exact.boundary_gamma(grid), dtype=float),
    )


def plot_paths(info: PathsInfo) -> go.Figure:
    """The paths figure from its info (module docstring)."""
    import plotly.graph_objects as go

    if not info.paths:
        return empty_figure(TITLE, "no (β, γ) path recorded")
    lo, hi = info.step_range
    data: list[dict[str, Any]] = [
        dict(
            type="scatter",
            x=info.boundary_beta,
            y=info.paper_gamma,
            mode="lines",
            name="C = 0 (paper boundary)",
            line={"color": PAPER_COLOR, "width": 2.5},
            hoverinfo="skip",
        ),
        dict(
            type="scatter",
            x=info.boundary_beta,
            y=info.exact_gamma,
            mode="lines",
            name="γ² = β (exact boundary)",
            line={"color": EXACT_COLOR, "width": 2.5, "dash": "dash"},
            hoverinfo="skip",
        ),
    ]
    for p in info.paths:  # each path's line, named in the legend (click to hide)
        data.append(
            dict(
                type="scatter",
                x=p.beta,
                y=p.gamma,
                mode="lines",
                name=f"from {p.label}",
                line={"color": "rgba(120,120,120,0.55)", "width": 1},
                hovertemplate=f"path from {p.hover}<br>β=%{{x:.6g}}, γ=%{{y:.6g}}<extra></extra>",
                legendgroup=p.point_id,
            )
        )
    # every path's steps in one marker trace colored by n: one trace, not one per path
    data.append(
        dict(
            type="scatter",
            x=np.concatenate([p.beta for p in info.paths]),
            y=np.concatenate([p.gamma for p in info.paths]),
            mode="markers",
            name="step n",
            marker={
                "size": 5,
                "color": np.concatenate([p.steps for p in info.paths]),
                "colorscale": STEP_COLORSCALE,
                "cmin": lo,
                "cmax": hi,
                "showscale": True,
                "colorbar": {"title": {"text": "step n"}, "thickness": 14},
            },
            customdata=np.concatenate([p.steps for p in info.paths]),
            hovertemplate="n=%{customdata}<br>β=%{x:.6g}, γ=%{y:.6g}<extra></extra>",
        )
    )
    # the marks of all paths in one trace each: a figure of 128 paths stays light
    for what, symbol, size, color, at in (
        ("start", "circle-open", 13, "black", lambda p: 0),
        ("end", "diamond", 11, "black", lambda p: len(p.steps) - 1),
    ):
        data.append(
            dict(
                type="scatter",
                x=[p.beta[at(p)] for p in info.paths],
                y=[p.gamma[at(p)] for p in info.paths],
                mode="markers",
                name=what,
                marker={"symbol": symbol, "size": size, "color": color},
                text=[
                    f"{what} of the path from {p.hover}<br>n={int(p.steps[at(p)])}"
                    for p in info.paths
                ],
                hovertemplate="%{text}<br>β=%{x:.6g}, γ=%{y:.6g}<extra></extra>",
            )
        )
    entered = [p for p in info.paths if p.entry is not None]
    if entered:
        data.append(
            dict(
                type="scatter",
                x=[p.entry[0] for p in entered if p.entry is not None],
                y=[p.entry[1] for p in entered if p.entry is not None],
                mode="markers",
                name="entered γ² > β",
                marker={"symbol": "x", "size": 11, "color": "red"},
                text=[
                    f"path from {p.hover}<br>entered γ² > β at n={p.first_unstable}"
                    for p in entered
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig = go.Figure(data=data)
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": "β (torch beta2)"}, "range": list(info.view[0])},
        yaxis={"title": {"text": "γ (torch beta1)"}, "range": list(info.view[1])},
        legend={"x": 1.12, "font": {"size": 10}},
        annotations=[
            {
                "text": "○ start · ◆ end · red ×: first step in γ² > β",
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": -0.13,
                "showarrow": False,
                "font": {"size": 11},
            }
        ],
    )
    return fig
