"""Figure 3: measured slope against position, beside both predicted rates (paper Fig. 2b).

The measured slope is the paper's central difference (log u_{n+5} − log u_{n−5})/10 at the
slope step (App. H); the least-squares slope over a window is drawn beside it. The paper's
rate |C|/2 and the exact ρ_n at the same step are lines through the points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stabcli.report._display import empty_figure, finite_mask, point_label

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Growth rate of log‖u_n‖∞: measured against both theories"

#: (column of points.csv, legend name, drawn as a line?)
SERIES = (
    ("measured_slope", "measured slope (central difference, App. H)", False),
    ("fit_slope", "measured slope (least squares)", False),
    ("paper_rate", "paper rate |C|/2", True),
    ("exact_rate", "exact rate ρ_n", True),
)


@dataclass(frozen=True)
class Series:
    """One drawn series: finite (x, y) pairs sorted by x, with hover labels."""

    column: str  # the points.csv column it shows
    name: str
    line: bool  # a line (prediction) rather than markers (measurement)
    x: np.ndarray
    y: np.ndarray
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SlopesInfo:
    """What figure 3 draws."""

    x_title: str  # "position along …" or "C(β, γ)"
    series: list[Series]  # measured first, then the predictions
    slope_at: int | None  # the step the slopes and ρ_n are taken at


def _get_slopes_info(
    points: pd.DataFrame, description: str = "", slope_at: int | None = None
) -> SlopesInfo:
    """Measured slopes and predicted rates against position (or C when positions are absent)."""
    use_position = "position" in points and points["position"].notna().any()
    xcol = "position" if use_position else "c_value"
    x_title = f"position along the region ({description})" if use_position else "C(β, γ)"
    if points.empty:
        return SlopesInfo(x_title, [], slope_at)
    order = points.sort_values(xcol, kind="stable")
    x_all = order[xcol].to_numpy(float)
    labels = np.array(
        [point_label(b, g) for b, g in zip(order["beta"], order["gamma"], strict=True)],
        dtype=object,
    )
    series: list[Series] = []
    for column, name, line in SERIES:
        if column not in order:
            continue
        y_all = order[column].to_numpy(float)
        keep = finite_mask(x_all, y_all)
        series.append(Series(column, name, line, x_all[keep], y_all[keep], labels[keep].tolist()))
    return SlopesInfo(x_title, series, slope_at)


def plot_slopes(info: SlopesInfo) -> go.Figure:
    """Figure 3 from its info: markers for the measurements, lines for the predictions."""
    import plotly.graph_objects as go

    if not any(len(s.x) for s in info.series):
        return empty_figure(TITLE, "no slopes measured")
    styles = {
        "measured_slope": {"mode": "markers", "marker": {"size": 8, "color": "#1f77b4"}},
        "fit_slope": {
            "mode": "markers",
            "marker": {"size": 7, "symbol": "circle-open", "color": "#17becf"},
        },
        "paper_rate": {"mode": "lines", "line": {"color": "#d62728", "width": 2}},
        "exact_rate": {"mode": "lines", "line": {"color": "#2ca02c", "width": 2, "dash": "dash"}},
    }
    fig = go.Figure()
    for s in info.series:
        fig.add_trace(
            go.Scatter(
                x=s.x,
                y=s.y,
                name=s.name,
                text=s.labels,
                hovertemplate="%{text}<br>x=%{x:.4g}<br>%{y:.5g} per step<extra>"
                + s.name
                + "</extra>",
                **styles[s.column],
            )
        )
    at = f" at n = {info.slope_at}" if info.slope_at is not None else ""
    fig.update_layout(
        title={"text": f"{TITLE}{at}"},
        xaxis={"title": {"text": info.x_title}},
        yaxis={"title": {"text": "d log‖u_n‖∞ / dn (per step)"}},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
