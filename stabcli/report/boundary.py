"""Figure 5 (when the sweep has points on a boundary): ‖u_n‖∞ on log-log axes, and the √n law.

On γ² = β the exact bound grows as sqrt(n + 1) (docs/theory.md §4), and on the paper's B0
its eq. 5 grows as sqrt(n) (arXiv 2411.05746, Section 3.1). On log-log axes a power law
is a straight line, and √n one of slope ½. Each boundary point's trace is drawn beside
its exact bound and a √n guide through its last value; the legend gives the log-log
exponent the measurement fitted after the settle step, with its interval, and whether it
is √n (points.csv's power_exponent, power_halfwidth and sqrt_n; :mod:`stabcli.measure.power`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.report._display import (
    MAX_TRACE_POINTS,
    TENSOR_PALETTE,
    decimate_indices,
    empty_figure,
    finite_mask,
    point_label,
)
from stabcli.report.updates import Line
from stabcli.theory.exact import exact_bound

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "On the boundary: ‖u_n‖∞ against n + 1 on log-log axes, with the √n law"


@dataclass(frozen=True)
class BoundaryPoint:
    """What figure 5 draws for one point on γ² = β or on B0."""

    point_id: str
    label: str  # "β=…, γ=… (γ² = β): exponent 0.49 ± 0.03, √n"
    measured: Line  # x = n + 1, y = ‖u_n‖∞ (finite, > 0, decimated)
    bound: Line  # the exact bound at the same x
    sqrt_guide: Line  # u_last · sqrt((n + 1)/(n_last + 1)) over the run
    exponent: float  # fitted log-log slope (nan if not fitted)
    halfwidth: float
    sqrt_n: bool


@dataclass(frozen=True)
class BoundaryInfo:
    """The sweep's boundary points (empty when there are none: the figure is left out)."""

    points: list[BoundaryPoint]


def on_boundary(points: pd.DataFrame) -> pd.Series:
    """(P,) bool: the points on γ² = β (their window opens by the √n rule) or on B0."""
    if points.empty:
        return pd.Series(dtype=bool)
    rule = points.get("window_rule", pd.Series("", index=points.index)) == "boundary"
    return rule | (points["paper_region"] == "B0")


def _is_true(value: object) -> bool:
    """A points.csv boolean (True, False or missing) as a bool; missing is False."""
    return value is not None and not pd.isna(value) and bool(value)


def _label(row: pd.Series, order: str = "paper") -> str:
    where = " and ".join(
        name
        for name, yes in (
            ("γ² = β", row.get("window_rule") == "boundary"),
            ("C = 0", row.get("paper_region") == "B0"),
        )
        if yes
    )
    p, h = float(row.get("power_exponent", np.nan)), float(row.get("power_halfwidth", np.nan))
    fit = f"exponent {p:.3f} ± {h:.2g}" if np.isfinite(p) and np.isfinite(h) else "no exponent"
    verdict = ", √n" if _is_true(row.get("sqrt_n")) else ""
    return f"{point_label(row['beta'], row['gamma'], order)} ({where}): {fit}{verdict}"


def _get_boundary_info(
    points: pd.DataFrame,
    traces: pd.DataFrame,
    max_points: int = MAX_TRACE_POINTS,
    order: str = "paper",
) -> BoundaryInfo:
    """Log-log traces of the points on a boundary, with their bound and a √n guide."""
    if points.empty or traces.empty:
        return BoundaryInfo([])
    by_id = {pid: g for pid, g in traces.groupby("point_id", sort=False)}
    out = []
    for _, row in points[on_boundary(points)].iterrows():
        trace = by_id.get(str(row["point_id"]))
        if trace is None:
            continue
        steps = trace["step"].to_numpy(int)
        values = trace["max_update"].to_numpy(float)
        ok = finite_mask(values, positive=True)
        if not ok.any():
            continue
        steps, values = steps[ok], values[ok]
        chosen = decimate_indices(np.log(values), max_points)
        x = steps[chosen] + 1.0
        bound = np.asarray(exact_bound(float(row["beta"]), float(row["gamma"]), steps[chosen]))
        guide = values[-1] * np.sqrt(x / (steps[-1] + 1.0))
        out.append(
            BoundaryPoint(
                point_id=str(row["point_id"]),
                label=_label(row, order),
                measured=Line(x, values[chosen]),
                bound=Line(x, bound.astype(float)),
                sqrt_guide=Line(x, guide),
                exponent=float(row.get("power_exponent", np.nan)),
                halfwidth=float(row.get("power_halfwidth", np.nan)),
                sqrt_n=_is_true(row.get("sqrt_n")),
            )
        )
    return BoundaryInfo(out)


def plot_boundary(info: BoundaryInfo) -> go.Figure:
    """Figure 5 from its info: measured (solid), exact bound (dashed), √n guide (dotted)."""
    import plotly.graph_objects as go

    if not info.points:
        return empty_figure(TITLE, "no point on a boundary")
    traces: list[dict[str, Any]] = []
    for k, p in enumerate(info.points):
        color = TENSOR_PALETTE[k % len(TENSOR_PALETTE)]
        group = {"legendgroup": p.point_id}
        traces += [
            dict(
                type="scatter",
                x=p.measured.x,
                y=p.measured.y,
                mode="lines",
                name=p.label,
                line={"color": color, "width": 2},
                hovertemplate="n+1=%{x:.0f}<br>‖u_n‖∞=%{y:.4g}<extra></extra>",
                **group,
            ),
            dict(
                type="scatter",
                x=p.bound.x,
                y=p.bound.y,
                mode="lines",
                name=f"exact bound ({p.label})",
                showlegend=False,
                line={"color": color, "dash": "dash", "width": 1},
                hovertemplate="n+1=%{x:.0f}<br>bound %{y:.4g}<extra></extra>",
                **group,
            ),
            dict(
                type="scatter",
                x=p.sqrt_guide.x,
                y=p.sqrt_guide.y,
                mode="lines",
                name=f"√n law ({p.label})",
                showlegend=False,
                line={"color": color, "dash": "dot", "width": 1},
                hoverinfo="skip",
                **group,
            ),
        ]
    fig = go.Figure(data=traces)
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": "n + 1"}, "type": "log"},
        yaxis={"title": {"text": "‖u_n‖∞"}, "type": "log"},
        legend={"title": {"text": "point: fitted log-log exponent"}, "font": {"size": 10}},
        annotations=[
            {
                "text": "solid: measured · dashed: exact bound · dotted: √n through the last value",
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1.06,
                "showarrow": False,
                "font": {"size": 11},
            }
        ],
    )
    return fig
