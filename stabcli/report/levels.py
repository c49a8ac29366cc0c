"""k-Adam's levels: each level's max-update against its own exact bound, and the level table.

Level i of k-Adam is Adam's normalization of the sequence u^(i−1), so ‖u^(i)_n‖∞ obeys the
exact bound U_n(β_i, γ_i) of its own pair whatever the earlier levels feed it
(docs/theory.md (6.3); paper App. S). The figure draws, for the level chosen in its menu,
every point's recorded ‖u^(i)_n‖∞ (traces' ``max_update_l<i>``, before λθ_n) beside that
bound; the table lists every point's levels with their pair, both theories' words for it
and the largest measured ratio (points.csv's ``level_ratio_l<i>``, in the words of the
measurement's bound check, :func:`stabcli.measure.bounds.bound_status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.measure import rounding_tolerance
from stabcli.measure.bounds import bound_status
from stabcli.report._display import (
    both_orders,
    colorbar_trace,
    colors_for,
    decimate_indices,
    empty_figure,
    finite_mask,
    point_label,
    value_range,
)
from stabcli.report.updates import BOUND_POINTS, Line
from stabcli.store.schema import level_ratio_column, level_trace_column
from stabcli.theory import exact, paper

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "k-Adam: each level's max-update ‖u^(i)_n‖∞ against its own exact bound"


@dataclass(frozen=True)
class LevelTrace:
    """One point's level i: its recorded max-updates and its own bound."""

    point_id: str
    label: str  # the point as typed
    hover: str  # the point in both orders, and the level's pair
    c_value: float  # C(β_i, γ_i): colors the lines
    measured: Line  # decimated ‖u^(i)_n‖∞ (finite, > 0)
    bound: Line  # U_n(β_i, γ_i) on a grid of steps
    ratio: float  # points.csv's level_ratio_l<i>: max over n of measured / bound


@dataclass(frozen=True)
class LevelsInfo:
    """What the levels figure draws: ``levels[i]`` holds level i + 1 of every point."""

    levels: list[list[LevelTrace]]
    c_range: tuple[float, float]


#: Most points drawn per level trace: a k-Adam figure holds k traces per point.
LEVEL_POINTS = 150


def _bound_line(beta: float, gamma: float, steps: np.ndarray) -> Line:
    """U_n(β, γ) on a grid of BOUND_POINTS steps over the run (finite values only)."""
    span = int(steps.max()) if len(steps) else 0
    grid = np.unique(np.linspace(0, span, BOUND_POINTS).astype(int))
    bound = np.asarray(exact.exact_bound(beta, gamma, grid), dtype=float)
    keep = finite_mask(bound, positive=True)
    return Line(grid[keep].astype(float), bound[keep])


def _level_of(
    row: pd.Series, trace: pd.DataFrame, level: int, max_points: int, order: str, bound: Line
) -> LevelTrace:
    beta, gamma = float(row["level_beta"]), float(row["level_gamma"])
    steps = trace["step"].to_numpy(int)
    values = trace[level_trace_column(level)].to_numpy(float)
    ok = finite_mask(values, positive=True)
    chosen = decimate_indices(np.where(ok, np.log(np.where(ok, values, 1.0)), np.nan), max_points)
    chosen = chosen[ok[chosen]]
    point = both_orders(float(row["beta"]), float(row["gamma"]), order)
    return LevelTrace(
        point_id=str(row["point_id"]),
        label=point_label(float(row["beta"]), float(row["gamma"]), order),
        hover=f"{point}<br>level {level}: (β_{level}, γ_{level}) = ({beta:.6g}, {gamma:.6g})",
        c_value=paper.c_value(beta, gamma),
        measured=Line(steps[chosen].astype(float), values[chosen]),
        bound=bound,
        ratio=float(row.get(level_ratio_column(level), np.nan)),
    )


def level_count(traces: pd.DataFrame) -> int:
    """k: the number of ``max_update_l<i>`` columns in the traces (0 for other runs)."""
    k = 0
    while level_trace_column(k + 1) in traces:
        k += 1
    return k


def _get_levels_info(
    points: pd.DataFrame,
    traces: pd.DataFrame,
    max_points: int = LEVEL_POINTS,
    order: str = "paper",
) -> LevelsInfo:
    """Every level of every point with a trace (module docstring); empty for runs that are
    not k-Adam's."""
    k = level_count(traces)
    if not k or points.empty or "level_beta" not in points:
        return LevelsInfo([], (0.0, 1.0))
    by_id = {pid: group for pid, group in traces.groupby("point_id", sort=False)}
    levels: list[list[LevelTrace]] = [[] for _ in range(k)]
    for _, row in points.iterrows():
        trace = by_id.get(str(row["point_id"]))
        if trace is None or not len(trace) or not np.isfinite(row["level_beta"]):
            continue
        # the points.csv pair is every level's (App. P), so one bound serves all levels
        bound = _bound_line(row["level_beta"], row["level_gamma"], trace["step"].to_numpy(int))
        for i in range(1, k + 1):
            levels[i - 1].append(_level_of(row, trace, i, max_points, order, bound))
    c_values = [t.c_value for level in levels for t in level]
    return LevelsInfo(levels if levels[0] else [], value_range(c_values))


def plot_levels(info: LevelsInfo) -> go.Figure:
    """The levels figure: one level at a time (menu), measured solid and its bound dashed."""
    import plotly.graph_objects as go

    if not info.levels:
        return empty_figure(TITLE, "no k-Adam levels recorded")
    lo, hi = info.c_range
    traces: list[dict[str, Any]] = []
    owner: list[set[int]] = []  # the levels (0-based) each trace belongs to
    k = len(info.levels)
    drawn: dict[tuple[str, int], int] = {}  # (point, id of its bound line) -> trace index
    for i, level in enumerate(info.levels):
        colors = colors_for([t.c_value for t in level], lo, hi)
        for t, color in zip(level, colors, strict=True):
            shown = i == k - 1
            traces.append(
                dict(
                    type="scatter",
                    x=t.measured.x,
                    y=t.measured.y,
                    mode="lines",
                    name=f"level {i + 1}: {t.label}",
                    line={"color": color},
                    hovertemplate=f"{t.hover}<br>n=%{{x}}<br>‖u^({i + 1})_n‖∞=%{{y:.4g}}"
                    f"<br>max ratio to its bound {t.ratio:.6g}<extra></extra>",
                    legendgroup=t.point_id,
                    visible=shown,
                )
            )
            owner.append({i})
            key = (t.point_id, id(t.bound))
            if key in drawn:  # levels sharing a pair share its bound: drawn once
                owner[drawn[key]].add(i)
                traces[drawn[key]]["visible"] = traces[drawn[key]]["visible"] or shown
                continue
            drawn[key] = len(traces)
            traces.append(
                dict(
                    type="scatter",
                    x=t.bound.x,
                    y=t.bound.y,
                    mode="lines",
                    name=f"exact bound of (β_i, γ_i) ({t.label})",
                    showlegend=False,
                    line={"color": color, "dash": "dash", "width": 1},
                    opacity=0.6,
                    hovertemplate=f"exact bound<br>{t.hover}<br>n=%{{x}}<br>%{{y:.4g}}"
                    "<extra></extra>",
                    legendgroup=t.point_id,
                    visible=shown,
                )
            )
            owner.append({i})
    fig = go.Figure(data=[*traces, colorbar_trace(lo, hi, "C(β_i, γ_i)")])
    buttons = [
        {
            "label": f"level {i + 1}",
            "method": "update",
            "args": [{"visible": [i in o for o in owner] + [True]}],
        }
        for i in range(k)
    ]
    fig.update_layout(
        title={"text": TITLE},
        xaxis={"title": {"text": "step n"}},
        yaxis={"title": {"text": "‖u^(i)_n‖∞"}, "type": "log"},
        legend={"font": {"size": 10}, "x": 1.14},
        updatemenus=[
            {"type": "dropdown", "x": 0.0, "y": 1.12, "xanchor": "left", "buttons": buttons,
             "active": k - 1}
        ],
        annotations=[
            {
                "text": "solid: measured ‖u^(i)_n‖∞ (before λθ_n) · dashed: U_n(β_i, γ_i)",
                "xref": "paper",
                "yref": "paper",
                "x": 0.3,
                "y": 1.08,
                "showarrow": False,
                "font": {"size": 11},
            }
        ],
    )  # fmt: skip
    return fig


def get_level_table(points: pd.DataFrame, dtype: str = "", order: str = "paper") -> pd.DataFrame:
    """One row per point: its levels' (β_i, γ_i) (paper App. P: every strategy gives all
    levels one pair), what both theories say of that pair (paper Section 3.1; docs/theory.md
    §3), each level's largest measured ratio to its own bound, and the words of the worst
    one in the measurement's rule (:func:`stabcli.measure.bounds.bound_status` with the
    rounding tolerance of the run's dtype, and its flag for a numerically invalid point).
    Empty for runs that are not k-Adam's."""
    ks: list[int] = []
    while level_ratio_column(len(ks) + 1) in points:
        ks.append(len(ks) + 1)
    head = ["point", "β_i", "γ_i", "C(β_i, γ_i)", "paper", "exact"]
    ratios = [f"u/bound l{i}" for i in ks]
    if not ks or "level_beta" not in points:
        return pd.DataFrame(columns=[*head, *ratios, "level check"])
    tolerance = rounding_tolerance(dtype or "float32")
    rows = []
    for _, row in points.iterrows():
        beta, gamma = float(row["level_beta"]), float(row["level_gamma"])
        valid = bool(np.isfinite(beta) and np.isfinite(gamma))
        flagged = "underflow" if pd.notna(row.get("underflow_step")) else ""
        values = [float(row[level_ratio_column(i)]) for i in ks]
        finite = [v for v in values if np.isfinite(v)]
        worst = bound_status(max(finite), tolerance, flagged).value if finite else ""
        stable = exact.exact_stable(beta, gamma) if valid else None
        rows.append(
            [
                point_label(float(row["beta"]), float(row["gamma"]), order),
                beta,
                gamma,
                paper.c_value(beta, gamma) if valid else np.nan,
                paper.region(beta, gamma).value if valid else "",
                "" if stable is None else ("γ² < β" if stable else "γ² ≥ β"),
                *values,
                worst,
            ]
        )
    return pd.DataFrame(rows, columns=[*head, *ratios, "level check"])
