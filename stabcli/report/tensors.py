"""Figure 6: where the growth lives — which parameter tensors held the max-update.

For every point, the share of the steps of its valid window (docs/theory.md (9.3)) at
which each parameter tensor held ‖u_n‖∞: a stacked bar per point, in region order. The
window is where the rate was read, so this is where the measured growth lives; a point
whose window is empty (a run too short) counts its whole run. The tallest named share is
the table's ``max_tensor`` column, the same definition (the tensor holding the
max-update most often over the valid window). The tensors most often on top over all
points are named, each in its own color; the rest are pooled as "other".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stabcli.report._display import OTHER_COLOR, TENSOR_PALETTE, empty_figure, point_label

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Where the growth lives: the parameter tensor holding ‖u_n‖∞ over the valid window"
#: Tensors shown by name (each in a distinct color); the rest are pooled as "other".
MAX_TENSORS = 12
OTHER = "other"


@dataclass(frozen=True)
class TensorInfo:
    """Share of window steps each tensor held the max-update, per point."""

    labels: list[str]  # one per point, region order
    tensors: list[str]  # most frequent first; "other" last when tensors were pooled
    colors: list[str]  # one per tensor, all distinct ("other" grey)
    shares: np.ndarray  # (T, P): tensors, points; each column sums to 1
    top: list[str]  # per point, the tensor holding the max most often over its window
    spans: list[str]  # per point, the steps counted, e.g. "n = 533–799"


def _in_window(traces: pd.DataFrame, points: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The records of each point inside its valid window (its whole run if that is empty),
    and the steps counted per point, in words."""
    start = points["window_start"].to_numpy(float)  # (P,)
    stop = points["window_stop"].to_numpy(float)
    has = np.isfinite(start) & np.isfinite(stop) & (stop > start)  # (P,)
    ids = points["point_id"].astype(str).tolist()
    code = pd.Categorical(traces["point_id"], categories=ids).codes  # (R,) point of each record
    known = code >= 0
    steps = traces["step"].to_numpy(float)
    row = np.where(known, code, 0)
    inside = ~has[row] | ((steps >= start[row]) & (steps < stop[row]))
    spans = [
        f"n = {int(a)}–{int(b) - 1}" if ok else "the whole run"
        for a, b, ok in zip(start, stop, has, strict=True)
    ]
    return traces[known & inside], spans


def _get_tensor_info(
    points: pd.DataFrame,
    traces: pd.DataFrame,
    max_tensors: int = MAX_TENSORS,
    order: str = "paper",
) -> TensorInfo:
    """Counts of max_tensor over each point's window steps with a finite max-update, as
    shares per point; the top ``max_tensors`` tensors named, the rest "other"."""
    empty = TensorInfo([], [], [], np.zeros((0, 0)), [], [])
    if points.empty or traces.empty or "max_tensor" not in traces:
        return empty
    max_tensors = min(max_tensors, len(TENSOR_PALETTE))
    finite = traces[np.isfinite(traces["max_update"].to_numpy(float))]
    finite = finite[finite["max_tensor"] != ""]
    finite, spans = _in_window(finite, points)
    if finite.empty:
        return empty
    counts = pd.crosstab(finite["max_tensor"], finite["point_id"])  # (tensors, points)
    ids = [pid for pid in points["point_id"].astype(str) if pid in counts.columns]
    counts = counts[ids]
    per_point = counts / np.maximum(counts.sum(axis=0), 1)  # shares, (tensors, points)
    ranked = per_point.sum(axis=1).sort_values(ascending=False, kind="stable").index
    named = list(ranked[:max_tensors])
    shown = per_point.loc[named]
    if len(ranked) > max_tensors:
        shown = pd.concat([shown, per_point.loc[ranked[max_tensors:]].sum().to_frame(OTHER).T])
    top = [str(counts[pid].idxmax()) for pid in ids]  # ties: the first in name order
    rows = points.set_index(points["point_id"].astype(str)).loc[ids]
    span_of = dict(zip(points["point_id"].astype(str), spans, strict=True))
    return TensorInfo(
        labels=[  # numbered: two points may share (β, γ), a category axis must not merge them
            f"{i}: {point_label(b, g, order)}"
            for i, (b, g) in enumerate(zip(rows["beta"], rows["gamma"], strict=True), start=1)
        ],
        tensors=[str(t) for t in shown.index],
        colors=[*TENSOR_PALETTE[: len(named)], *([OTHER_COLOR] if len(shown) > len(named) else [])],
        shares=shown.to_numpy(float),
        top=top,
        spans=[span_of[pid] for pid in ids],
    )


def plot_tensors(info: TensorInfo) -> go.Figure:
    """Figure 6 from its info: a stacked bar per point, one distinct color per tensor."""
    import plotly.graph_objects as go

    if not info.labels:
        return empty_figure(TITLE, "no max-update tensors recorded")
    fig = go.Figure()
    hover = [f"most often: {t} ({s})" for t, s in zip(info.top, info.spans, strict=True)]
    for name, color, share in zip(info.tensors, info.colors, info.shares, strict=True):
        fig.add_trace(
            go.Bar(
                x=info.labels,
                y=share,
                name=name,
                marker={"color": color},
                customdata=hover,
                hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.1%}} of window steps<br>"
                "%{customdata}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": TITLE},
        barmode="stack",
        xaxis={"title": {"text": "point (region order)"}, "tickangle": -45, "type": "category"},
        yaxis={"title": {"text": "share of window steps"}, "tickformat": ".0%", "range": [0, 1]},
        legend={"title": {"text": "parameter tensor"}},
    )
    return fig
