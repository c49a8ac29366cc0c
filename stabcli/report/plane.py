"""Figure 1: the (β, γ) plane with both theories' regions and the sweep's points.

Level curves B_c = {C = c} (paper §3.1, in greys), normal curves γ³ + 2β³ = k (App. E),
the paper's stable region B+ shaded, the boundaries C = 0 (paper) and γ² = β (exact), and
the sweep's points colored by their measured class (docs/theory.md (9.5)), with a marker
per exact verdict (9.7) and falsifications outlined in red. The view opens on the swept
points; buttons switch to the unit square, the corner near (1, 1), and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.errors import StabcliError
from stabcli.report._display import (
    CLASS_COLORS,
    EXACT_COLOR,
    LEVEL_COLORSCALE,
    PAPER_COLOR,
    both_orders,
    colors_for,
    finite_mask,
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
View = tuple[tuple[float, float], tuple[float, float]]  # (β range, γ range)
FULL_VIEW: View = ((0.0, 1.005), (0.0, 1.005))
CORNER_VIEW: View = ((0.9, 1.002), (0.85, 1.002))
#: Margin around the swept points, as a fraction of their span (at least MIN_SPAN wide).
VIEW_MARGIN = 0.08
MIN_SPAN = 0.01
#: Measured classes in legend order (docs/theory.md (9.5)).
CLASSES = ("growing", "bounded", "undetermined", "diverged")
#: Marker symbol per exact-theory verdict (docs/theory.md (9.7)).
VERDICT_SYMBOLS = {
    "growth predicted and seen": "circle",
    "seen faster than predicted": "star",
    "predicted, bound not reached": "diamond",
    "bounded as predicted": "circle",
    "seen but not predicted": "triangle-up",
    "diverged": "x",
    "undetermined": "circle-open",
}
#: Verdicts that contradict a theory (outlined in red).
FALSIFYING = ("seen but not predicted",)


@dataclass(frozen=True)
class Curve:
    """A named curve of the plane, with the value that colors it (C for level curves)."""

    name: str
    beta: np.ndarray
    gamma: np.ndarray
    value: float = float("nan")


@dataclass(frozen=True)
class PlanePoints:
    """The sweep's points as drawn: arrays of shape (P,) and lists of length P."""

    beta: np.ndarray
    gamma: np.ndarray
    measured_class: list[str]  # growing, bounded, undetermined, diverged ("" if unknown)
    symbol: list[str]  # marker per exact verdict
    falsified: np.ndarray  # (P,) bool: a theory contradicted (bound above, growth unpredicted)
    labels: list[str]  # hover text: the point, its class, rate and why


@dataclass(frozen=True)
class PlaneInfo:
    """What figure 1 draws."""

    level_curves: list[Curve]  # C = c for c in LEVELS, value = c
    normal_curves: list[Curve]  # through NORMAL_THROUGH and the region's own point
    b_plus: Curve  # polygon of the paper's B+ (C > 0) inside the unit square
    paper_boundary: Curve  # C = 0: γ = 2β/(1+β)
    exact_boundary: Curve  # γ² = β: γ = sqrt(β)
    points: PlanePoints
    points_view: View  # the swept points with a margin
    initial_view: View  # points_view, or the whole square without points


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


def _fit_view(beta: np.ndarray, gamma: np.ndarray) -> View:
    """The swept points' bounding box with a margin, inside the whole-square view."""
    if not len(beta):
        return FULL_VIEW
    out = []
    for values, (lo_all, hi_all) in ((beta, FULL_VIEW[0]), (gamma, FULL_VIEW[1])):
        lo, hi = float(values.min()), float(values.max())
        pad = max((hi - lo) * VIEW_MARGIN, MIN_SPAN / 2)
        out.append((max(lo - pad, lo_all), min(hi + pad, hi_all)))
    return (out[0], out[1])


def _text(values: pd.Series | None, n: int) -> list[str]:
    if values is None:
        return [""] * n
    return ["" if pd.isna(v) else str(v) for v in values]


def _plane_points(points: pd.DataFrame, order: str = "paper") -> PlanePoints:
    """The finite points of points.csv with their class, verdict marker and hover text
    (the point in both orders, the one it was typed in first)."""
    if points.empty:
        empty = np.array([])
        return PlanePoints(empty, empty, [], [], np.array([], dtype=bool), [])
    beta = points["beta"].to_numpy(float)
    gamma = points["gamma"].to_numpy(float)
    keep = finite_mask(beta, gamma)
    rows = points[keep]
    n = len(rows)
    classes = _text(rows.get("measured_class"), n)
    exact_verdicts = _text(rows.get("exact_verdict"), n)
    paper_verdicts = _text(rows.get("paper_verdict"), n)
    checks = _text(rows.get("bound_check"), n)
    reasons = _text(rows.get("class_reason"), n)
    rates = rows["rate"].to_numpy(float) if "rate" in rows else np.full(n, np.nan)
    falsified = np.array(
        [
            e in FALSIFYING or p in FALSIFYING or c == "above the bound"
            for e, p, c in zip(exact_verdicts, paper_verdicts, checks, strict=True)
        ],
        dtype=bool,
    )
    labels = []
    for b, g, cls, rate, why, e in zip(
        beta[keep], gamma[keep], classes, rates, reasons, exact_verdicts, strict=True
    ):
        rate_text = f"rate {rate:.4g} per step" if np.isfinite(rate) else "no rate"
        extra = f"<br>{why}" if why else ""
        head = both_orders(b, g, order)
        labels.append(f"{head}<br>{cls or '?'}: {rate_text}<br>exact: {e}{extra}")
    return PlanePoints(
        beta=beta[keep],
        gamma=gamma[keep],
        measured_class=classes,
        symbol=[VERDICT_SYMBOLS.get(v, "circle") for v in exact_verdicts],
        falsified=falsified,
        labels=labels,
    )


def _get_plane_info(
    points: pd.DataFrame, through: tuple[float, float] | None = None, order: str = "paper"
) -> PlaneInfo:
    """Curves of the plane and the sweep's points (non-finite coordinates dropped); hover
    texts name each point in ``order`` first ("paper" or "torch")."""
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
    swept = _plane_points(points, order)
    view = _fit_view(swept.beta, swept.gamma)
    return PlaneInfo(
        level_curves=levels,
        normal_curves=normals,
        b_plus=b_plus,
        paper_boundary=Curve("C = 0 (paper boundary)", grid, paper_gamma),
        exact_boundary=Curve(
            "γ² = β (exact boundary)", grid, np.asarray(exact.boundary_gamma(grid), float)
        ),
        points=swept,
        points_view=view,
        initial_view=view,
    )


def _view_args(view: View) -> dict[str, list[float]]:
    return {"xaxis.range": list(view[0]), "yaxis.range": list(view[1])}


def plot_plane(info: PlaneInfo) -> go.Figure:
    """Figure 1 from its info, with "swept points" / "whole square" / "near (1, 1)" buttons."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=info.b_plus.beta,
            y=info.b_plus.gamma,
            name=info.b_plus.name,
            fill="toself",
            fillcolor="rgba(70,130,180,0.10)",
            line={"width": 0},
            hoverinfo="skip",
        )
    )
    lo, hi = value_range(c.value for c in info.level_curves)
    level_colors = colors_for([c.value for c in info.level_curves], lo, hi, LEVEL_COLORSCALE)
    level = {"legendgroup": "level", "legendgrouptitle": {"text": "level curves of C"}}
    normal = {"legendgroup": "normal", "legendgrouptitle": {"text": "normal curves"}}
    styled: list[tuple[Curve, dict[str, Any], dict[str, Any]]] = [
        *(
            (c, {"color": col, "width": 1.1}, level)
            for c, col in zip(info.level_curves, level_colors, strict=True)
        ),
        *(
            (c, {"color": "rgba(90,90,90,0.7)", "width": 1, "dash": "dot"}, normal)
            for c in info.normal_curves
        ),
        (info.paper_boundary, {"color": PAPER_COLOR, "width": 2.5}, {}),
        (info.exact_boundary, {"color": EXACT_COLOR, "width": 2.5, "dash": "dash"}, {}),
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
    p = info.points
    classes = np.array(p.measured_class, dtype=object)
    for cls in (*CLASSES, ""):
        mine = classes == cls if len(classes) else np.array([], dtype=bool)
        if not mine.any():
            continue
        falsified = p.falsified[mine]
        fig.add_trace(
            go.Scatter(
                x=p.beta[mine],
                y=p.gamma[mine],
                mode="markers",
                name=f"{cls or 'not measured'} ({int(mine.sum())})",
                legendgroup="points",
                legendgrouptitle={"text": "swept points: measured class"},
                text=[t for t, k in zip(p.labels, mine, strict=True) if k],
                marker={
                    "size": 10,
                    "color": CLASS_COLORS.get(cls, "grey"),
                    "symbol": [s for s, k in zip(p.symbol, mine, strict=True) if k],
                    "line": {
                        "width": np.where(falsified, 3.0, 0.6),
                        "color": np.where(falsified, "red", "black").tolist(),
                    },
                },
                hovertemplate="%{text}<extra></extra>",
            )
        )
    views = (
        ("swept points", info.points_view),
        ("whole square", FULL_VIEW),
        ("near (1, 1)", CORNER_VIEW),
    )
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": "β (torch beta2)"}, "range": list(info.initial_view[0])},
        yaxis={"title": {"text": "γ (torch beta1)"}, "range": list(info.initial_view[1])},
        legend={"x": 1.02, "font": {"size": 10}, "groupclick": "toggleitem"},
        annotations=[
            {
                "text": "marker: exact verdict (○ as predicted or seen, ◇ bound not reached, "
                "☆ faster, △ not predicted, open: undetermined); red outline: falsified",
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": -0.13,
                "showarrow": False,
                "font": {"size": 11},
            }
        ],
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0.0,
                "y": 1.1,
                "xanchor": "left",
                "buttons": [
                    {"label": label, "method": "relayout", "args": [_view_args(view)]}
                    for label, view in views
                ],
            }
        ],
    )
    return fig
