"""Figure 3: the measured growth rate against both theories' (the paper's Figure 2b).

The measured rate is each point's least-squares slope of log‖u_n‖∞ over its valid window,
with its interval as an error bar (docs/theory.md (9.3), (9.4)); the theories' rates are
taken over the same window: |C|/2 in B− (paper eq. 5) and the mean of ρ_n when γ² > β
(docs/theory.md (3.9)). Two layouts:

- grids and point lists: measured against predicted rate, one series per theory, with
  the line y = x where a prediction is met;
- curves: against the position along the curve (or C when positions are absent), the
  measured rate with its error bars and the paper's central difference (App. H) as points,
  both predictions as lines, and dotted lines where the curve crosses C = 0 and γ² = β.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stabcli.report._display import (
    EXACT_COLOR,
    PAPER_COLOR,
    both_orders,
    empty_figure,
    finite_mask,
)
from stabcli.theory.exact import log_ratio

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Growth rate of log‖u_n‖∞: measured against both theories"
PREDICTED = "predicted rate over the point's window (per step)"
#: The theories' rate columns and names.
THEORIES = (("paper_rate", "paper |C|/2"), ("exact_rate", "exact ρ_n"))


@dataclass(frozen=True)
class Series:
    """One drawn series: finite values in x order; error bars as distances (may be 0)."""

    column: str  # the points.csv column on the y-axis (or the prediction's, for lines)
    name: str
    line: bool  # a line (prediction) rather than markers (measurement)
    x: np.ndarray
    y: np.ndarray
    err_minus: np.ndarray  # y − low (0 without an interval)
    err_plus: np.ndarray  # high − y
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Crossing:
    """Where a curve of points crosses a boundary, on the figure's x-axis."""

    name: str  # "C = 0" or "γ² = β"
    x: float


@dataclass(frozen=True)
class RatesInfo:
    """What figure 3 draws."""

    against_prediction: bool  # True: measured vs predicted (y = x); False: along a curve
    x_title: str
    series: list[Series]
    crossings: list[Crossing]  # along a curve only
    diagonal: tuple[float, float] | None  # the y = x line's range (against_prediction only)


def _labels(rows: pd.DataFrame, order: str = "paper") -> list[str]:
    out = []
    for row in rows.itertuples(index=False):
        what = str(getattr(row, "measured_class", "") or "?")
        out.append(f"{both_orders(row.beta, row.gamma, order)}<br>{what}")  # type: ignore[arg-type]
    return out


def _errors(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rate = rows["rate"].to_numpy(float)
    minus = rate - rows["rate_low"].to_numpy(float)
    plus = rows["rate_high"].to_numpy(float) - rate
    return np.nan_to_num(minus, nan=0.0), np.nan_to_num(plus, nan=0.0)


def _crossings(x: np.ndarray, values: np.ndarray, name: str) -> list[Crossing]:
    """x where ``values`` changes sign between neighbours (linear interpolation), or hits 0."""
    out = []
    for i in range(len(x) - 1):
        a, b = values[i], values[i + 1]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        if a == 0:
            out.append(Crossing(name, float(x[i])))
        elif a * b < 0:
            out.append(Crossing(name, float(x[i] + (x[i + 1] - x[i]) * a / (a - b))))
    if len(x) and values[-1] == 0:
        out.append(Crossing(name, float(x[-1])))
    return out


def _against_prediction(points: pd.DataFrame, point_order: str) -> RatesInfo:
    series = []
    ends: list[float] = []
    for column, name in THEORIES:
        x_all = points[column].to_numpy(float)
        y_all = points["rate"].to_numpy(float)
        keep = finite_mask(x_all, y_all)
        rows = points[keep]
        minus, plus = _errors(rows)
        order = np.argsort(x_all[keep], kind="stable")
        series.append(
            Series(
                column,
                f"measured rate vs {name}",
                False,
                x_all[keep][order],
                y_all[keep][order],
                minus[order],
                plus[order],
                [_labels(rows, point_order)[i] for i in order],
            )
        )
        ends += [*x_all[keep], *(y_all[keep] - minus), *(y_all[keep] + plus)]
    diagonal = (min(ends), max(ends)) if ends else None
    return RatesInfo(
        True, "predicted rate over the point's window (per step)", series, [], diagonal
    )


def _along_curve(points: pd.DataFrame, description: str, point_order: str) -> RatesInfo:
    use_position = points["position"].notna().any()
    xcol = "position" if use_position else "c_value"
    x_title = f"position along the region ({description})" if use_position else "C(β, γ)"
    order = points.sort_values(xcol, kind="stable")
    x_all = order[xcol].to_numpy(float)
    labels = np.array(_labels(order, point_order), dtype=object)
    series = []
    measured = (
        ("rate", "measured rate over the valid window (± interval)", True),
        ("central_slope", "central difference (App. H)", False),
    )
    for column, name, with_errors in measured:
        y_all = order[column].to_numpy(float)
        keep = finite_mask(x_all, y_all)
        minus, plus = _errors(order[keep]) if with_errors else (np.zeros(keep.sum()),) * 2
        series.append(
            Series(column, name, False, x_all[keep], y_all[keep], minus, plus, list(labels[keep]))
        )
    for column, name in THEORIES:
        y_all = order[column].to_numpy(float)
        keep = finite_mask(x_all, y_all)
        zeros = np.zeros(keep.sum())
        series.append(
            Series(column, name, True, x_all[keep], y_all[keep], zeros, zeros, list(labels[keep]))
        )
    beta, gamma = order["beta"].to_numpy(float), order["gamma"].to_numpy(float)
    crossings = _crossings(x_all, order["c_value"].to_numpy(float), "C = 0") + _crossings(
        x_all,
        np.array([log_ratio(b, g) for b, g in zip(beta, gamma, strict=True)]),
        "γ² = β",
    )
    return RatesInfo(False, x_title, series, crossings, None)


def _get_rates_info(
    points: pd.DataFrame, curve: bool, description: str = "", order: str = "paper"
) -> RatesInfo:
    """Measured rates with their intervals and both predicted rates (module docstring);
    hover texts name each point in ``order`` first ("paper" or "torch")."""
    if points.empty:
        return RatesInfo(not curve, "" if curve else PREDICTED, [], [], None)
    if curve:
        return _along_curve(points, description, order)
    return _against_prediction(points, order)


def plot_rates(info: RatesInfo) -> go.Figure:
    """Figure 3 from its info: markers with error bars for measurements, lines for
    predictions (or the line y = x), dotted lines at a curve's boundary crossings."""
    import plotly.graph_objects as go

    if not any(len(s.x) for s in info.series):
        return empty_figure(TITLE, "no rates measured")
    colors = {"paper_rate": PAPER_COLOR, "exact_rate": EXACT_COLOR, "rate": "#1f77b4"}
    fig = go.Figure()
    for s in info.series:
        style: dict[str, object]
        if s.line:
            dash = "dash" if s.column == "exact_rate" else "solid"
            style = {"mode": "lines", "line": {"color": colors[s.column], "width": 2, "dash": dash}}
        else:
            color = colors.get(s.column, "#17becf")
            symbol = "circle-open" if s.column == "central_slope" else "circle"
            style = {
                "mode": "markers",
                "marker": {"size": 8, "color": color, "symbol": symbol},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": s.err_plus,
                    "arrayminus": s.err_minus,
                    "visible": bool(np.any(s.err_plus + s.err_minus > 0)),
                },
            }
        fig.add_trace(
            go.Scatter(
                x=s.x,
                y=s.y,
                name=s.name,
                text=s.labels,
                hovertemplate="%{text}<br>x=%{x:.4g}<br>%{y:.5g} per step<extra>"
                + s.name
                + "</extra>",
                **style,  # type: ignore[arg-type]
            )
        )
    if info.diagonal is not None:
        lo, hi = info.diagonal
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                name="y = x (measured = predicted)",
                line={"color": "black", "width": 1, "dash": "dot"},
                hoverinfo="skip",
            )
        )
    for c in info.crossings:
        fig.add_vline(
            x=c.x,
            line={"color": PAPER_COLOR if c.name == "C = 0" else EXACT_COLOR, "dash": "dot"},
            annotation={"text": c.name, "font": {"size": 11}},
            # the two boundaries lie close together: C = 0's label left, γ² = β's right
            annotation_position="top left" if c.name == "C = 0" else "top right",
        )
    y_title = "measured rate (per step)" if info.against_prediction else "rate (per step)"
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": info.x_title}},
        yaxis={"title": {"text": y_title}},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
