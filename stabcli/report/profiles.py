"""Figure 4: each point's slope profile against ρ_n, with its valid window shaded.

The profile is the least-squares slope of log‖u_n‖∞ over sliding windows across the run,
with its interval (docs/theory.md (9.2), (9.4)), recomputed from the traces at report
time by :func:`stabcli.measure.profile.slope_profiles` with the run's own settings (never
stored). Beside it: the exact rate ρ_n at every step where γ² > β (docs/theory.md (3.9)),
the paper's |C|/2 in B− (eq. 5), the growth tolerance, and the valid window the point's
rate was read from (points.csv's window_start..window_stop). The reader sees where a rate
was read and why there. One point at a time, chosen from a menu.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli.measure import MeasureSettings
from stabcli.measure.profile import log_trace, slope_profiles
from stabcli.report._display import (
    CLASS_COLORS,
    EXACT_COLOR,
    PAPER_COLOR,
    empty_figure,
    point_label,
)
from stabcli.report.load import trace_matrices, trace_matrix
from stabcli.theory.exact import exact_rate_at
from stabcli.theory.paper import paper_rate

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Slope profile of log‖u_n‖∞ and the window each rate was read from"


@dataclass(frozen=True)
class PointProfile:
    """What figure 4 draws for one point; arrays of shape (K,): profile windows."""

    point_id: str
    label: str  # "β=…, γ=…: growing"
    measured_class: str
    centres: np.ndarray  # (K,) middle step of each sliding window
    slopes: np.ndarray  # (K,) least-squares slope per step (nan where not fitted)
    low: np.ndarray  # (K,) slope − half-width of its interval
    high: np.ndarray  # (K,) slope + half-width
    rho: np.ndarray  # (K,) exact ρ_n at the centres (0 where γ² < β); for moving betas
    # the path's ln γ_n − ½ ln β_n there (0 where negative; docs/theory.md (5.7))
    paper_rate: float  # |C|/2 in B−, else 0
    window: tuple[int, int] | None  # [start, stop) of the valid window, None when empty
    rate: float  # the rate read over that window (nan if none)


@dataclass(frozen=True)
class ProfilesInfo:
    """Every point's profile, in region order, and the tolerance that decides growth."""

    points: list[PointProfile]
    growth_tol: float
    profile_window: int  # steps per sliding window
    first: int  # index of the point shown first: the first growing one, else 0


def _window(row: pd.Series) -> tuple[int, int] | None:
    start, stop = row.get("window_start"), row.get("window_stop")
    try:
        a, b = int(start), int(stop)
    except (TypeError, ValueError):
        return None
    return (a, b) if b > a else None


def _path_rates(traces: pd.DataFrame, ids: list[str], steps: int) -> np.ndarray | None:
    """(P, S) the exact rate of moving betas at each step, max(0, ln γ_n − ½ ln β_n)
    (docs/theory.md (5.7): the path bound's log-growth once it is large), carried over the
    steps a monitor did not record; None when the traces hold no path."""
    if "beta" not in traces or "gamma" not in traces:
        return None
    wide = trace_matrices(traces, ids, ("beta", "gamma"))  # (P, S) each
    beta = pd.DataFrame(wide["beta"]).ffill(axis=1).to_numpy()
    gamma = pd.DataFrame(wide["gamma"]).ffill(axis=1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.log(gamma) - 0.5 * np.log(beta)  # (P, S)
    return np.maximum(rate, 0.0)[:, :steps]


def _get_profiles_info(
    points: pd.DataFrame, traces: pd.DataFrame, settings: MeasureSettings, order: str = "paper"
) -> ProfilesInfo:
    """Profiles of every point with a trace, recomputed from its max-updates (module docstring).

    Steps from the point's divergence on are left out, as the measurement does.
    """
    ids = points["point_id"].astype(str).tolist() if len(points) else []
    u = trace_matrix(traces, ids)  # (P, S): points, steps
    if not ids or u.shape[1] == 0:
        return ProfilesInfo([], settings.growth_tol, settings.profile_window, 0)
    steps = np.arange(u.shape[1])
    diverged = points["diverged_step"].to_numpy(float)  # (P,)
    cut = np.where(np.isfinite(diverged), diverged, u.shape[1])
    log_u = np.where(steps[None, :] < cut[:, None], log_trace(u), np.nan)  # (P, S)
    profiles = slope_profiles(log_u, settings)
    path_rho = _path_rates(traces, ids, u.shape[1])  # (P, S) or None
    out = []
    for i, ((_, row), profile, has) in enumerate(
        zip(points.iterrows(), profiles, np.isfinite(u).any(axis=1), strict=True)
    ):
        if not has:  # no record of this point in the traces
            continue
        beta, gamma = float(row["beta"]), float(row["gamma"])
        cls = str(row.get("measured_class", "") or "")
        centres = profile.centres
        out.append(
            PointProfile(
                point_id=str(row["point_id"]),
                label=f"{point_label(beta, gamma, order)}: {cls or '?'}",
                measured_class=cls,
                centres=centres,
                slopes=profile.slopes,
                low=profile.slopes - profile.halfwidth,
                high=profile.slopes + profile.halfwidth,
                rho=np.asarray(exact_rate_at(beta, gamma, centres), dtype=float)
                if path_rho is None
                else path_rho[i, np.clip(np.rint(centres).astype(int), 0, u.shape[1] - 1)],
                paper_rate=paper_rate(beta, gamma),
                window=_window(row),
                rate=float(row.get("rate", np.nan)),
            )
        )
    growing = [i for i, p in enumerate(out) if p.measured_class == "growing"]
    return ProfilesInfo(
        out, settings.growth_tol, settings.profile_window, growing[0] if growing else 0
    )


def _shapes(p: PointProfile) -> list[dict[str, Any]]:
    """The point's valid window, shaded (none when it is empty)."""
    if p.window is None:
        return []
    return [
        {
            "type": "rect",
            "yref": "paper",
            "x0": p.window[0],
            "x1": p.window[1] - 1,
            "y0": 0,
            "y1": 1,
            "fillcolor": "rgba(255,200,0,0.20)",
            "line": {"width": 0},
            "layer": "below",
        }
    ]


def _single_precision(p: PointProfile) -> PointProfile:
    arrays = ("centres", "slopes", "low", "high", "rho")
    return replace(p, **{name: getattr(p, name).astype(np.float32) for name in arrays})


def plot_profiles(info: ProfilesInfo) -> go.Figure:
    """Figure 4 from its info: one point at a time (a menu), its profile with a band, ρ_n,
    |C|/2 and the window shaded."""
    import plotly.graph_objects as go

    if not info.points:
        return empty_figure(TITLE, "no traces recorded")
    per_point = 4  # traces per point: band, profile, ρ_n, |C|/2
    traces: list[dict[str, Any]] = []
    for k, point in enumerate(info.points):
        p = _single_precision(point)  # display only: halves the page's size
        visible = k == info.first
        ok = np.isfinite(p.low) & np.isfinite(p.high)
        color = CLASS_COLORS.get(p.measured_class, "#555555")
        traces += [
            dict(
                type="scatter",
                x=np.concatenate([p.centres[ok], p.centres[ok][::-1]]),
                y=np.concatenate([p.high[ok], p.low[ok][::-1]]),
                fill="toself",
                fillcolor="rgba(31,119,180,0.18)",
                line={"width": 0},
                name="interval of each slope",
                hoverinfo="skip",
                visible=visible,
            ),
            dict(
                type="scatter",
                x=p.centres,
                y=p.slopes,
                mode="lines",
                name=f"slope over {info.profile_window} steps",
                line={"color": color, "width": 2},
                hovertemplate="n=%{x:.0f}<br>slope %{y:.5f}<extra></extra>",
                visible=visible,
            ),
            dict(
                type="scatter",
                x=p.centres,
                y=p.rho,
                mode="lines",
                name="exact ρ_n",
                line={"color": EXACT_COLOR, "dash": "dash", "width": 2},
                hovertemplate="n=%{x:.0f}<br>ρ_n %{y:.5f}<extra></extra>",
                visible=visible,
            ),
            dict(
                type="scatter",
                x=[p.centres[0], p.centres[-1]],
                y=[p.paper_rate, p.paper_rate],
                mode="lines",
                name="paper |C|/2",
                line={"color": PAPER_COLOR, "width": 1.5},
                hoverinfo="skip",
                visible=visible,
            ),
        ]

    def title(p: PointProfile) -> str:
        rate = f"rate {p.rate:.4g} per step" if np.isfinite(p.rate) else "no rate"
        where = f" over n = {p.window[0]}–{p.window[1] - 1}" if p.window else ""
        return f"{TITLE}<br><sub>{p.label}, {rate}{where} (shaded)</sub>"

    every = np.concatenate([p.centres for p in info.points])
    traces.append(  # the same for every point: always shown
        dict(
            type="scatter",
            x=[float(every.min()), float(every.max())],
            y=[info.growth_tol, info.growth_tol],
            mode="lines",
            name=f"growth tolerance {info.growth_tol:g}",
            line={"color": "grey", "dash": "dot", "width": 1},
            hoverinfo="skip",
        )
    )
    buttons = []
    for k, p in enumerate(info.points):
        shown = [k == j // per_point for j in range(len(traces) - 1)] + [True]
        buttons.append(
            {
                "label": p.label,
                "method": "update",
                "args": [{"visible": shown}, {"shapes": _shapes(p), "title.text": title(p)}],
            }
        )
    first = info.points[info.first]
    fig = go.Figure(data=traces)
    fig.update_layout(
        title={"text": title(first)},
        margin={"t": 110},
        shapes=_shapes(first),
        xaxis={"title": {"text": "step n (window centre)"}},
        yaxis={"title": {"text": "d log‖u_n‖∞ / dn (per step)"}},
        legend={"orientation": "h", "y": -0.2},
        updatemenus=[
            {
                "buttons": buttons,
                "active": info.first,
                "x": 1.0,
                "y": 1.02,
                "xanchor": "right",
                "yanchor": "bottom",
                "showactive": True,
            }
        ],
    )
    return fig
