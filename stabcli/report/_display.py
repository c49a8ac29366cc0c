"""Helpers shared by the figures: decimation, finite filtering, colors by C, empty figures.

Decimation thins what is *drawn*; the stored traces are never touched. Plotly is imported
only by the drawing helpers, so the ``_get_*_info`` functions stay plotly-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Most points drawn per measured trace: enough for the eye, small enough for 128 traces.
MAX_TRACE_POINTS = 300
#: Colorscale for C(β, γ) (sequential, so neighbouring points along a curve stay apart).
C_COLORSCALE = "Viridis"
#: Colorscale for measured slopes in the (β, γ) plane.
SLOPE_COLORSCALE = "Plasma"


def decimate_indices(
    values: np.ndarray, max_points: int = MAX_TRACE_POINTS, keep: Iterable[int] = ()
) -> np.ndarray:
    """Indices of ``values`` to draw: at most about ``max_points`` (plus ``keep``).

    The series is cut into ``max_points // 2`` buckets and each bucket's smallest and largest
    finite values are kept (spikes survive, unlike plain striding), as are the first and last
    index and every index in ``keep`` (e.g. the divergence step). Sorted, unique.
    """
    n = len(values)
    extra = np.array([i for i in keep if 0 <= i < n], dtype=int)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2)
    size = math.ceil(n / buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, size)
    finite = np.isfinite(grid)
    low = np.where(finite, grid, np.inf).argmin(axis=1)
    high = np.where(finite, grid, -np.inf).argmax(axis=1)
    offsets = np.arange(buckets) * size
    rows = finite.any(axis=1)
    chosen = np.concatenate([(offsets + low)[rows], (offsets + high)[rows], [0, n - 1], extra])
    return np.unique(chosen[chosen < n])


def finite_mask(*arrays: np.ndarray, positive: bool = False) -> np.ndarray:
    """Elementwise: all arrays finite (and > 0 when ``positive``, for log axes)."""
    mask = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        a = np.asarray(a, dtype=float)
        mask &= np.isfinite(a)
        if positive:
            mask &= a > 0
    return mask


def value_range(values: Iterable[float]) -> tuple[float, float]:
    """(min, max) of the finite values, widened when equal; (0, 1) when there are none."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if lo == hi:
        pad = abs(lo) * 0.05 or 0.05
        return (lo - pad, hi + pad)
    return (lo, hi)


def colors_for(values: Sequence[float], lo: float, hi: float, scale: str = C_COLORSCALE) -> list:
    """Colors of ``values`` on ``scale`` over [lo, hi] (grey for non-finite values)."""
    from plotly.colors import get_colorscale, sample_colorscale

    where = [
        min(1.0, max(0.0, (v - lo) / (hi - lo))) if math.isfinite(v) and hi > lo else math.nan
        for v in values
    ]
    scale_list = get_colorscale(scale)
    return [
        "rgb(150,150,150)" if math.isnan(w) else sample_colorscale(scale_list, [w])[0]
        for w in where
    ]


def colorbar_trace(lo: float, hi: float, title: str, scale: str = C_COLORSCALE) -> go.Scatter:
    """An invisible trace that only shows a colorbar for [lo, hi]."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker={
            "colorscale": scale,
            "cmin": lo,
            "cmax": hi,
            "color": [lo],
            "showscale": True,
            "colorbar": {"title": {"text": title}, "thickness": 14},
        },
    )


def empty_figure(title: str, message: str = "no data") -> go.Figure:
    """A figure with a title and a centred note, for empty input (never an error)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(
        title={"text": title},
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {
                "text": message,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"size": 16},
            }
        ],
    )
    return fig


def point_label(beta: float, gamma: float) -> str:
    """A point in the paper's order with PyTorch's names: "β=0.999, γ=0.9"."""
    return f"β={beta:.6g}, γ={gamma:.6g}"
