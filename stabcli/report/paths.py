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
    MAX_TRACE_POINTS,
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
    out = []
    for values in ([p.beta for p in paths], [p.gamma for p in paths]):
        joined = np.concatenate(values)
        lo, hi = float(joined.min()), float(joined.max())
        pad = max((hi - lo) * VIEW_MARGIN, MIN_SPAN / 2)
        out.append((max(lo - pad, 0.0), min(hi + pad, 1.005)))
    return (out[0], out[1])


def _get_paths_info(
    points: pd.DataFrame,
    traces: pd.DataFrame,
    max_points: int = MAX_TRACE_POINTS,
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
    for i, p in enumerate(info.paths):
        group = {"legendgroup": p.point_id}
        data.append(
            dict(
                type="scatter",
                x=p.beta,
                y=p.gamma,
                mode="lines+markers",
                name=f"from {p.label}",
                line={"color": "rgba(120,120,120,0.5)", "width": 1},
                marker={
                    "size": 5,
                    "color": p.steps,
                    "colorscale": STEP_COLORSCALE,
                    "cmin": lo,
                    "cmax": hi,
                    "showscale": i == 0,
                    "colorbar": {"title": {"text": "step n"}, "thickness": 14},
                },
                customdata=p.steps,
                hovertemplate=f"path from {p.hover}<br>n=%{{customdata}}<br>β=%{{x:.6g}}, "
                "γ=%{y:.6g}<extra></extra>",
                **group,
            )
        )
        ends = [
            ("start", 0, "circle-open", 13),
            ("end", len(p.steps) - 1, "diamond", 11),
        ]
        for what, at, symbol, size in ends:
            data.append(
                dict(
                    type="scatter",
                    x=[p.beta[at]],
                    y=[p.gamma[at]],
                    mode="markers",
                    name=f"{what} ({p.label})",
                    showlegend=False,
                    marker={"symbol": symbol, "size": size, "color": "black"},
                    hovertemplate=f"{what} of the path from {p.hover}<br>n={int(p.steps[at])}"
                    "<br>β=%{x:.6g}, γ=%{y:.6g}<extra></extra>",
                    **group,
                )
            )
        if p.entry is not None:
            data.append(
                dict(
                    type="scatter",
                    x=[p.entry[0]],
                    y=[p.entry[1]],
                    mode="markers",
                    name=f"entered γ² > β ({p.label})",
                    showlegend=False,
                    marker={"symbol": "x", "size": 11, "color": "red"},
                    hovertemplate=f"path from {p.hover}<br>entered γ² > β at "
                    f"n={p.first_unstable}<extra></extra>",
                    **group,
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
