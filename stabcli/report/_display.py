"""Helpers shared by the figures: decimation, finite filtering, colors by C, empty figures.

Decimation thins what is *drawn*; the stored traces are never touched. Plotly is imported
only by the drawing helpers, so the ``_get_*_info`` functions stay plotly-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from stabcli.theory.domain import decay_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Most points drawn per measured trace: enough for the eye, small enough for 128 traces.
MAX_TRACE_POINTS = 300
#: Colorscale for C(β, γ) (sequential, so neighbouring points along a curve stay apart).
C_COLORSCALE = "Viridis"
#: Colorscale of the plane's level curves of C: greys, so that they stay background and
#: the points' class colors (below) never read as a level.
LEVEL_COLORSCALE = [[0.0, "rgb(215,215,215)"], [1.0, "rgb(95,95,95)"]]
#: Colors of the measured classes (points in the plane, profile figure), none of them grey.
CLASS_COLORS = {
    "growing": "#d62728",  # red
    "bounded": "#2ca02c",  # green
    "undetermined": "#ff9f1c",  # orange
    "diverged": "#1f1f9f",  # dark blue
}
#: Colors of the theories' lines wherever they appear: the paper's C = 0 and |C|/2 in
#: black, the exact γ² = β and ρ_n in purple (neither is a class color).
PAPER_COLOR = "#222222"
EXACT_COLOR = "#7b3fa0"
#: Distinct colors for up to 24 named parameter tensors (Plotly's Dark24); "other" is grey.
TENSOR_PALETTE = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
    "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
    "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
)  # fmt: skip
OTHER_COLOR = "#b0b0b0"


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


def colors_for(
    values: Sequence[float], lo: float, hi: float, scale: str | list = C_COLORSCALE
) -> list:
    """Colors of ``values`` on ``scale`` (a name or a list of [position, color]) over
    [lo, hi] (grey for non-finite values)."""
    from plotly.colors import get_colorscale, sample_colorscale

    where = [
        min(1.0, max(0.0, (v - lo) / (hi - lo))) if math.isfinite(v) and hi > lo else math.nan
        for v in values
    ]
    scale_list = get_colorscale(scale) if isinstance(scale, str) else scale
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


#: The two orders a point can be typed in: the paper's (β, γ) and PyTorch's (beta1, beta2),
#: with beta1 = γ and beta2 = β (docs/theory.md §1).
ORDERS = ("paper", "torch")


def point_label(beta: float, gamma: float, order: str = "paper") -> str:
    """A point as it was typed: "β=0.999, γ=0.9" in the paper's order, or
    "beta1=0.9, beta2=0.999" in PyTorch's (``order="torch"``)."""
    if order == "torch":
        return f"beta1={decay_text(gamma)}, beta2={decay_text(beta)}"
    return f"β={decay_text(beta)}, γ={decay_text(gamma)}"


def both_orders(beta: float, gamma: float, order: str = "paper") -> str:
    """A point in both orders, the one it was typed in first (hover texts):
    "β=0.999, γ=0.9 (torch betas=(0.9, 0.999))" or "betas=(0.9, 0.999) (β=0.999, γ=0.9)"."""
    torch = f"betas=({decay_text(gamma)}, {decay_text(beta)})"
    if order == "torch":
        return f"{torch} (β={decay_text(beta)}, γ={decay_text(gamma)})"
    return f"β={decay_text(beta)}, γ={decay_text(gamma)} (torch {torch})"
