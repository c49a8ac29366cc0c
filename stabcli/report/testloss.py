"""Figure 4 (when the preset records test loss): generalization, as in the paper's Fig. 3.

Left: test loss against n for every point, colored by C. Right: the best test loss reached
by chosen steps (1000 and the last, as in App. H) against C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stabcli.report._display import (
    colorbar_trace,
    colors_for,
    empty_figure,
    finite_mask,
    point_label,
    value_range,
)
from stabcli.report.updates import Line

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Test loss (paper Fig. 3)"
#: Steps "best test loss by" is reported at, besides the last recorded step.
BEST_BY = (1000,)


@dataclass(frozen=True)
class PointLoss:
    """One point's test-loss curve."""

    point_id: str
    label: str
    c_value: float
    curve: Line  # finite test losses against n


@dataclass(frozen=True)
class BestBy:
    """Best test loss reached by step ``step``, per point, against C."""

    step: int
    c_value: np.ndarray
    best: np.ndarray
    labels: list[str]


@dataclass(frozen=True)
class TestLossInfo:
    """What figure 4 draws (empty lists when no test loss was recorded)."""

    points: list[PointLoss]
    best_by: list[BestBy]
    c_range: tuple[float, float]


def _chosen_steps(last: int) -> list[int]:
    return sorted({s for s in BEST_BY if s < last} | {last})


def _get_test_loss_info(
    points: pd.DataFrame, evals: pd.DataFrame, order: str = "paper"
) -> TestLossInfo:
    """Per-point test-loss curves and best-by-step tables (non-finite losses dropped)."""
    if evals.empty or points.empty:
        return TestLossInfo([], [], (0.0, 1.0))
    finite = evals[finite_mask(evals["test_loss"].to_numpy(float))]
    by_id = {pid: g for pid, g in finite.groupby("point_id", sort=False)}
    curves: list[PointLoss] = []
    for _, row in points.iterrows():
        group = by_id.get(str(row["point_id"]))
        if group is None or group.empty:
            continue
        curves.append(
            PointLoss(
                str(row["point_id"]),
                point_label(row["beta"], row["gamma"], order),
                float(row["c_value"]),
                Line(group["step"].to_numpy(float), group["test_loss"].to_numpy(float)),
            )
        )
    best_by: list[BestBy] = []
    if curves:
        last = int(max(p.curve.x.max() for p in curves))
        for step in _chosen_steps(last):
            rows = [(p.c_value, p.curve.y[p.curve.x <= step], p.label) for p in curves]
            rows = [(c, y.min(), lab) for c, y, lab in rows if len(y) and np.isfinite(c)]
            rows.sort(key=lambda r: r[0])
            best_by.append(
                BestBy(
                    step,
                    np.array([r[0] for r in rows], float),
                    np.array([r[1] for r in rows], float),
                    [r[2] for r in rows],
                )
            )
    return TestLossInfo(curves, best_by, value_range(p.c_value for p in curves))


def plot_test_loss(info: TestLossInfo) -> go.Figure:
    """Figure 4 from its info: curves colored by C (left), best-by-step against C (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not info.points:
        return empty_figure(TITLE, "no test loss recorded")
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("test loss against n", "best test loss by step, against C"),
    )
    lo, hi = info.c_range
    colors = colors_for([p.c_value for p in info.points], lo, hi)
    curves = [  # plain dicts, validated once by add_traces (see updates.plot_updates)
        {
            "type": "scatter",
            "x": p.curve.x,
            "y": p.curve.y,
            "mode": "lines",
            "name": p.label,
            "legendgroup": p.point_id,
            "showlegend": False,
            "line": {"color": color, "width": 1.2},
            "hovertemplate": f"{p.label}<br>C={p.c_value:.4g}<br>n=%{{x}}<br>"
            "test loss %{y:.4f}<extra></extra>",
        }
        for p, color in zip(info.points, colors, strict=True)
    ]
    fig.add_traces(curves, rows=1, cols=1)
    for best in info.best_by:
        fig.add_trace(
            go.Scatter(
                x=best.c_value,
                y=best.best,
                mode="lines+markers",
                name=f"best test loss by n = {best.step}",
                text=best.labels,
                hovertemplate="%{text}<br>C=%{x:.4g}<br>best %{y:.4f}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.add_trace(colorbar_trace(lo, hi, "C(β, γ)"), row=1, col=1)
    fig.update_xaxes(title_text="step n", row=1, col=1)
    fig.update_yaxes(title_text="test loss", row=1, col=1)
    fig.update_xaxes(title_text="C(β, γ)", row=1, col=2)
    fig.update_yaxes(title_text="best test loss", row=1, col=2)
    fig.update_layout(title={"text": TITLE}, legend={"orientation": "h", "y": -0.2})
    return fig
