"""Figure 1: the (β, γ) plane with both theories' regions and the sweep's points.

Level curves B_c = {C = c} (paper §3.1), normal curves γ³ + 2β³ = k (App. E), the paper's
stable region B+ shaded, the boundaries C = 0 (paper) and γ² = β (exact), and the sweep's
points colored by measured slope. Buttons switch between the unit square and the corner
near (1, 1), where the paper's experiments live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.errors import StabcliError
from stabcli.report._display import (
    C_COLORSCALE,
    SLOPE_COLORSCALE,
    colors_for,
    finite_mask,
    point_label,
    value_range,
)
from stabcli.theory import curves, exact, paper

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "The (β, γ) plane: β = torch beta2, γ = torch beta1"
#: Values of C drawn as level curves (denser near 0, where the corner near (1, 1) lives).
LEVELS = (-1.0, -0.5, -0.2, -0.1, -0.05, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
#: Points whose normal curves are drawn; (0.999, 0.9) and (0.95, 0.9) are the paper's.
NORMAL_THROUGH = ((0.999, 0.9), (0.95, 0.9), (0.8, 0.7), (0.6, 0.5), (0.4, 0.3))
FULL_VIEW = ((0.0, 1.005), (0.0, 1.005))  # (β range, γ range)
CORNER_VIEW = ((0.9, 1.002), (0.85, 1.002))


@dataclass(frozen=True)
class Curve:
    """A named curve of the plane, with the value that colors it (C for level curves)."""

    name: str
    beta: np.ndarray
    gamma: np.ndarray
    value: float = float("nan")


@dataclass(frozen=True)
class PlaneInfo:
    """What figure 1 draws."""

    level_curves: list[Curve]  # C = c for c in LEVELS, value = c
    normal_curves: list[Curve]  # through NORMAL_THROUGH and the region's own point
    b_plus: Curve  # polygon of the paper's B+ (C > 0) inside the unit square
    paper_boundary: Curve  # C = 0: γ = 2β/(1+β)
    exact_boundary: Curve  # γ² = β: γ = sqrt(β)
    point_beta: np.ndarray  # the sweep's points
    point_gamma: np.ndarray
    point_slope: np.ndarray  # measured slope (nan where none)
    point_labels: list[str]
    slope_range: tuple[float, float]
    initial_view: tuple[tuple[float, float], tuple[float, float]]


def _beta_grid() -> np.ndarray:
    # Uniform over (0, 1], plus geometric refinement towards β = 1 for the corner view.
    return np.unique(
        np.concatenate([np.linspace(1e-3, 1.0, 300), 1.0 - np.geomspace(1e-5, 0.1, 200)])
    )


def _inside(beta: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = finite_mask(beta, gamma) & (beta > 0) & (beta <= 1) & (gamma > 0) & (gamma <= 1)
    return beta[keep], gamma[keep]


def _normal_curve(beta0: float, gamma0: float) -> Curve | None:
    try:
        section = curves.normal_section(beta0, gamma0)
    except StabcliError:
        return None
    beta, gamma = section.trace(np.linspace(section.t_lo, section.t_hi, 300))
    beta, gamma = _inside(np.asarray(beta, float), np.asarray(gamma, float))
    return (
        Curve(f"normal curve through ({beta0:g}, {gamma0:g})", beta, gamma) if len(beta) else None
    )


def _get_plane_info(points: pd.DataFrame, through: tuple[float, float] | None = None) -> PlaneInfo:
    """Curves of the plane and the sweep's points (non-finite coordinates dropped)."""
    grid = _beta_grid()
    levels = []
    for c in LEVELS:
        beta, gamma = _inside(grid, np.asarray(curves.level_gamma(grid, c), float))
        levels.append(Curve(f"C = {c:g}", beta, gamma, c))
    normals = []
    seen = set()
    for b0, g0 in ((through,) if through else ()) + NORMAL_THROUGH:
        k = round(curves.normal_constant(b0, g0), 9)
        if k not in seen and (curve := _normal_curve(b0, g0)) is not None:
            seen.add(k)
            normals.append(curve)
    paper_gamma = np.asarray(paper.boundary_gamma(grid), float)
    b_plus = Curve(
        "B+ (paper: C > 0, bounded)",
        np.concatenate([[0.0], grid, [1.0, 0.0]]),
        np.concatenate([[0.0], paper_gamma, [0.0, 0.0]]),
    )
    beta = points["beta"].to_numpy(float) if len(points) else np.array([])
    gamma = points["gamma"].to_numpy(float) if len(points) else np.array([])
    slope = points["measured_slope"].to_numpy(float) if len(points) else np.array([])
    keep = finite_mask(beta, gamma)
    beta, gamma, slope = beta[keep], gamma[keep], slope[keep]
    (b_lo, b_hi), (g_lo, g_hi) = CORNER_VIEW
    in_corner = bool(len(beta)) and bool(
        ((beta >= b_lo) & (beta <= b_hi) & (gamma >= g_lo) & (gamma <= g_hi)).all()
    )
    return PlaneInfo(
        level_curves=levels,
        normal_curves=normals,
        b_plus=b_plus,
        paper_boundary=Curve("C = 0 (paper boundary)", grid, paper_gamma),
        exact_boundary=Curve(
            "γ² = β (exact boundary)", grid, np.asarray(exact.boundary_gamma(grid), float)
        ),
        point_beta=beta,
        point_gamma=gamma,
        point_slope=slope,
        point_labels=[point_label(b, g) for b, g in zip(beta, gamma, strict=True)],
        slope_range=value_range(slope),
        initial_view=CORNER_VIEW if in_corner else FULL_VIEW,
    )


def _view_args(view: tuple[tuple[float, float], tuple[float, float]]) -> dict[str, list[float]]:
    return {"xaxis.range": list(view[0]), "yaxis.range": list(view[1])}


def plot_plane(info: PlaneInfo) -> go.Figure:
    """Figure 1 from its info, with "whole square" / "near (1, 1)" buttons."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=info.b_plus.beta,
            y=info.b_plus.gamma,
            name=info.b_plus.name,
            fill="toself",
            fillcolor="rgba(70,130,180,0.12)",
            line={"width": 0},
            hoverinfo="skip",
        )
    )
    lo, hi = value_range(c.value for c in info.level_curves)
    level_colors = colors_for([c.value for c in info.level_curves], lo, hi, C_COLORSCALE)
    level = {"legendgroup": "level", "legendgrouptitle": {"text": "level curves of C"}}
    normal = {"legendgroup": "normal", "legendgrouptitle": {"text": "normal curves"}}
    styled: list[tuple[Curve, dict[str, Any], dict[str, Any]]] = [
        *(
            (c, {"color": col, "width": 1.2}, level)
            for c, col in zip(info.level_curves, level_colors, strict=True)
        ),
        *(
            (c, {"color": "rgba(90,90,90,0.7)", "width": 1, "dash": "dot"}, normal)
            for c in info.normal_curves
        ),
        (info.paper_boundary, {"color": "black", "width": 2.5}, {}),
        (info.exact_boundary, {"color": "crimson", "width": 2.5, "dash": "dash"}, {}),
    ]
    for curve, line, group in styled:
        fig.add_trace(
            go.Scatter(
                x=curve.beta,
                y=curve.gamma,
                mode="lines",
                name=curve.name,
                line=line,
                hovertemplate=f"{curve.name}<br>β=%{{x:.5g}}<br>γ=%{{y:.5g}}<extra></extra>",
                **group,
            )
        )
    has_slope = np.isfinite(info.point_slope)
    s_lo, s_hi = info.slope_range
    fig.add_trace(
        go.Scatter(
            x=info.point_beta[has_slope],
            y=info.point_gamma[has_slope],
            mode="markers",
            name="sweep points (color: measured slope)",
            text=[s for s, k in zip(info.point_labels, has_slope, strict=True) if k],
            customdata=info.point_slope[has_slope],
            marker={
                "size": 9,
                "color": info.point_slope[has_slope],
                "colorscale": SLOPE_COLORSCALE,
                "cmin": s_lo,
                "cmax": s_hi,
                "showscale": True,
                "colorbar": {"title": {"text": "measured slope"}, "thickness": 14, "x": 1.02},
                "line": {"width": 0.5, "color": "black"},
            },
            hovertemplate="%{text}<br>measured slope %{customdata:.4g}<extra></extra>",
        )
    )
    if (~has_slope).any():
        fig.add_trace(
            go.Scatter(
                x=info.point_beta[~has_slope],
                y=info.point_gamma[~has_slope],
                mode="markers",
                name="sweep points without a finite slope",
                text=[s for s, k in zip(info.point_labels, has_slope, strict=True) if not k],
                marker={"size": 9, "color": "grey", "symbol": "x"},
                hovertemplate="%{text}<br>no finite slope<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": "β (torch beta2)"}, "range": list(info.initial_view[0])},
        yaxis={"title": {"text": "γ (torch beta1)"}, "range": list(info.initial_view[1])},
        legend={"x": 1.18, "font": {"size": 10}},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0.0,
                "y": 1.1,
                "xanchor": "left",
                "buttons": [
                    {
                        "label": "whole square",
                        "method": "relayout",
                        "args": [_view_args(FULL_VIEW)],
                    },
                    {
                        "label": "near (1, 1)",
                        "method": "relayout",
                        "args": [_view_args(CORNER_VIEW)],
                    },
                ],
            }
        ],
    )
    return fig
