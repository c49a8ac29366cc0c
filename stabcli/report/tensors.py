"""Figure 5: where the growth lives — which parameter tensors held the max-update.

For every point, the share of steps at which each parameter tensor held ‖u_n‖∞ (a stacked
bar per point, in region order). The tensor holding it at the slope step is in the hover and
in the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stabcli.report._display import empty_figure, point_label

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Where the growth lives: the parameter tensor holding ‖u_n‖∞"
#: Tensors shown by name; the rest are pooled as "other".
MAX_TENSORS = 12
OTHER = "other"


@dataclass(frozen=True)
class TensorInfo:
    """Share of steps each tensor held the max-update, per point."""

    labels: list[str]  # one per point, region order
    tensors: list[str]  # most frequent first; "other" last when tensors were pooled
    shares: np.ndarray  # (T, P): tensors, points; each column sums to 1
    at_slope_step: list[str]  # tensor holding the max at the slope step, per point


def _get_tensor_info(
    points: pd.DataFrame, traces: pd.DataFrame, max_tensors: int = MAX_TENSORS
) -> TensorInfo:
    """Counts of max_tensor over the steps with a finite max-update, as shares per point."""
    empty = TensorInfo([], [], np.zeros((0, 0)), [])
    if points.empty or traces.empty or "max_tensor" not in traces:
        return empty
    finite = traces[np.isfinite(traces["max_update"].to_numpy(float))]
    finite = finite[finite["max_tensor"] != ""]
    if finite.empty:
        return empty
    counts = pd.crosstab(finite["max_tensor"], finite["point_id"])  # (tensors, points)
    ids = [pid for pid in points["point_id"].astype(str) if pid in counts.columns]
    counts = counts[ids]
    totals = counts.sum(axis=1).sort_values(ascending=False, kind="stable")
    named = list(totals.index[:max_tensors])
    shown = counts.loc[named]
    if len(totals) > max_tensors:
        shown = pd.concat([shown, counts.loc[totals.index[max_tensors:]].sum().to_frame(OTHER).T])
    shares = shown.to_numpy(float) / np.maximum(counts.sum(axis=0).to_numpy(float), 1.0)
    rows = points.set_index(points["point_id"].astype(str)).loc[ids]
    return TensorInfo(
        labels=[  # numbered: two points may share (β, γ), a category axis must not merge them
            f"{i}: {point_label(b, g)}"
            for i, (b, g) in enumerate(zip(rows["beta"], rows["gamma"], strict=True), start=1)
        ],
        tensors=[str(t) for t in shown.index],
        shares=shares,
        at_slope_step=[str(t) for t in rows.get("max_tensor", pd.Series("", index=rows.index))],
    )


def plot_tensors(info: TensorInfo) -> go.Figure:
    """Figure 5 from its info: a stacked bar per point, one color per tensor."""
    import plotly.graph_objects as go

    if not info.labels:
        return empty_figure(TITLE, "no max-update tensors recorded")
    fig = go.Figure()
    at_slope = [f"at the slope step: {t or '?'}" for t in info.at_slope_step]
    for name, share in zip(info.tensors, info.shares, strict=True):
        fig.add_trace(
            go.Bar(
                x=info.labels,
                y=share,
                name=name,
                customdata=at_slope,
                hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.1%}} of steps<br>"
                "%{customdata}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": TITLE},
        barmode="stack",
        xaxis={"title": {"text": "point (region order)"}, "tickangle": -45, "type": "category"},
        yaxis={"title": {"text": "share of steps"}, "tickformat": ".0%", "range": [0, 1]},
        legend={"title": {"text": "parameter tensor"}},
    )
    return fig
