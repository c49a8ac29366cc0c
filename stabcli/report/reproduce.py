"""The pages of ``stabcli reproduce``: one self-contained HTML file per figure, with the
paper's claim, what was measured and whether it held above the figure's plots.

Data first, drawing second: a :class:`Panel` holds the lines a plot shows (plain arrays),
:func:`plot_panel` draws it. The ``*_sections`` functions turn the numerical analyses'
dataclasses (``stabcli.reproduce``'s Figures 5 and 9 and the memory paper's Figures 1 and
2; report does not import them, it reads their documented fields) into panels. Sweep-based
figures reuse the sweep report's own figures (:func:`stabcli.report.page.build_figures`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stabcli import __version__
from stabcli.report._display import EXACT_COLOR, PAPER_COLOR, empty_figure, finite_mask
from stabcli.report.page import Section, page_head, section_html, write_page

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Colors of a panel's series, cycled (plotly's default qualitative palette).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
VERDICT_COLORS = {"held": "#2ca02c", "not held": "#c00000", "undetermined": "#b8860b"}


@dataclass(frozen=True)
class Series:
    """One line (or set of markers) of a panel."""

    name: str
    x: np.ndarray  # (L,)
    y: np.ndarray  # (L,)
    dash: str = "solid"  # "solid", "dash", "dot"
    markers: bool = False  # markers instead of a line
    color: str | None = None  # None: the palette's next


@dataclass(frozen=True)
class Panel:
    """What one plot shows."""

    title: str
    x_title: str
    y_title: str
    series: tuple[Series, ...]
    log_x: bool = False
    log_y: bool = False


@dataclass(frozen=True)
class FigurePage:
    """Everything a figure's page shows."""

    name: str
    title: str
    paper_ref: str
    claim: str
    measured: str
    verdict: str  # held, not held, undetermined
    scale: str
    seconds: float
    setup: str
    sections: tuple[Section, ...]
    subruns: tuple[str, ...] = field(default=())  # relative paths, each with report.html


def plot_panel(panel: Panel) -> go.Figure:
    """The panel drawn with plotly (non-finite values, and non-positive ones on a log axis,
    dropped); an empty panel is an empty figure with its title."""
    import plotly.graph_objects as go

    drawn = 0
    fig = go.Figure()
    for i, s in enumerate(panel.series):
        x, y = np.asarray(s.x, float), np.asarray(s.y, float)
        keep = finite_mask(x, y)
        if panel.log_x:
            keep &= x > 0
        if panel.log_y:
            keep &= y > 0
        if not keep.any():
            continue
        color = s.color or PALETTE[i % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=x[keep],
                y=y[keep],
                name=s.name,
                mode="markers" if s.markers else "lines",
                line={"dash": s.dash, "color": color},
                marker={"color": color, "size": 7},
            )
        )
        drawn += 1
    if not drawn:
        return empty_figure(panel.title)
    fig.update_layout(
        title={"text": panel.title},
        xaxis={"title": {"text": panel.x_title}, "type": "log" if panel.log_x else "linear"},
        yaxis={"title": {"text": panel.y_title}, "type": "log" if panel.log_y else "linear"},
        legend={"font": {"size": 11}},
        margin={"t": 60},
    )
    return fig


def panel_section(key: str, heading: str, caption: str, panel: Panel, height: int = 480) -> Section:
    return Section(key, heading, caption, plot_panel(panel), height)


def _thin(n: int, most: int = 400) -> np.ndarray:
    """Indices of at most ``most`` of n steps, evenly spread on a log scale (first and last
    kept), for long traces drawn on log axes."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.geomspace(1, n, most).astype(int) - 1)


def boundary_sections(fig: Any) -> tuple[Section, ...]:
    """Figure 5 (``stabcli.reproduce.boundary.BoundaryFigure``): per boundary, the
    worst-case and i.i.d. traces against n on log-log axes, with the √n laws and U_n."""
    n = np.asarray(fig.steps, float)
    idx = _thin(len(n))
    x = n[idx] + 1.0
    sections = []
    for where, law_name, laws in (
        ("paper", "eq. (5) on B0 (√n law)", fig.paper_law),
        ("exact", "U_n on γ² = β (√n law)", fig.exact_law),
    ):
        series: list[Series] = []
        for i, beta in enumerate(fig.betas):
            for t in fig.traces:
                if t.boundary == where and t.beta == beta:
                    series.append(
                        Series(f"β={beta:g} {t.sequence}", x, np.asarray(t.max_update)[idx])
                    )
            series.append(
                Series(
                    f"β={beta:g} {law_name}", x, np.asarray(laws[i])[idx], "dot", color=PAPER_COLOR
                )
            )
            if where == "paper":
                series.append(
                    Series(
                        f"β={beta:g} exact U_n",
                        x,
                        np.asarray(fig.exact_on_b0[i])[idx],
                        "dash",
                        color=EXACT_COLOR,
                    )
                )
        label = "B0 = {C = 0}" if where == "paper" else "γ² = β"
        sections.append(
            panel_section(
                f"boundary-{where}",
                f"‖u_n‖∞ on {label}",
                "Simulated float64 Adam on worst-case (geometric) and i.i.d. gradient "
                "sequences; dotted: the √n law, dashed: the exact bound U_n "
                "(docs/theory.md §4).",
                Panel(f"Max-update on {label}", "n + 1", "‖u_n‖∞", tuple(series), True, True),
                560,
            )
        )
    return tuple(sections)


def trajectory_sections(fig: Any) -> tuple[Section, ...]:
    """Figure 9 (``stabcli.reproduce.trajectory.TrajectoryFigure``): chosen parameters of
    discrete Adam and of eq. (4), the squared norms with eq. (12), and their distance."""
    n = np.asarray(fig.steps, float)
    params = []
    for j, name in enumerate(fig.names[:6]):
        color = PALETTE[j % len(PALETTE)]
        params.append(Series(f"{name} discrete", n, fig.discrete[:, j], color=color))
        params.append(Series(f"{name} eq. (4)", n, fig.continuous[:, j], "dash", color=color))
    norms = []
    for j, name in enumerate(fig.matrices[:4]):
        color = PALETTE[j % len(PALETTE)]
        norms.append(Series(f"{name} discrete", n, fig.discrete_norms[:, j], color=color))
        norms.append(Series(f"{name} eq. (4)", n, fig.continuous_norms[:, j], "dash", color=color))
        norms.append(Series(f"{name} eq. (12)", n, fig.predicted_norms[:, j], "dot", color=color))
    gap = (
        Series("‖θ(t_n) − θ_n‖∞", n, fig.distance),
        Series("‖θ_n − θ_0‖∞", n, fig.displacement, "dash"),
    )
    return (
        panel_section(
            "trajectory-params",
            "Parameters: discrete Adam and the continuous trajectory",
            "Solid: discrete Adam's θ_n; dashed: the solution of eq. (4) by App. I's scheme "
            "at t_n (docs/theory.md §11). The first six chosen parameters.",
            Panel("Parameter trajectories", "n", "θ", tuple(params)),
        ),
        panel_section(
            "trajectory-norms",
            "Squared norms of weight matrices",
            "Solid: discrete; dashed: eq. (4); dotted: eq. (12)'s prediction of d‖W‖²/dt "
            "integrated along the ODE.",
            Panel("‖W‖² against n", "n", "‖W‖²", tuple(norms)),
        ),
        panel_section(
            "trajectory-distance",
            "Distance between the trajectories",
            "The largest coordinate gap between eq. (4) and discrete Adam, beside how far "
            "discrete Adam moved.",
            Panel("Distance against n", "n", "‖·‖∞", gap),
        ),
    )


def memoryless_sections(fig: Any) -> tuple[Section, ...]:
    """The memory paper's Figure 1 (``MemorylessFigure``): ‖θ_n − θ̃_n‖∞ against time per h,
    beside the first-order approximation's distance."""
    series: list[Series] = []
    for j, h in enumerate(fig.lrs):
        color = PALETTE[j % len(PALETTE)]
        t = np.asarray(fig.steps[j], float) * float(h)
        series.append(Series(f"h={h:g} memoryless", t, fig.memoryless[j], color=color))
        series.append(Series(f"h={h:g} first order", t, fig.first_order[j], "dot", color=color))
    return (
        panel_section(
            "memoryless",
            "Adam against its memoryless modified iteration",
            "ℓ∞ distance between Adam's θ_n and the memoryless iteration of arXiv 2502.02132 "
            "Theorem 3.2 (solid), and sign descent's first-order approximation (dotted), "
            "against time n·h (docs/theory.md §8).",
            Panel("Distance against time", "t = n·h", "‖θ_n − θ̃_n‖∞", tuple(series), False, True),
        ),
    )


def generalization_sections(fig: Any) -> tuple[Section, ...]:
    """The memory paper's Figure 2 in shape (``GeneralizationFigure``): mean test accuracy
    at the loss threshold against the memory coefficient, by sweep."""
    accuracy = np.nanmean(np.asarray(fig.accuracy, float), axis=1) if np.size(fig.accuracy) else []
    k = np.asarray(fig.memory_coefficient, float)
    sweeps = np.asarray(fig.sweep)
    series = tuple(
        Series(
            f"{name} sweep",
            k[sweeps == name],
            np.asarray(accuracy)[sweeps == name],
            markers=True,
        )
        for name in ("beta", "gamma")
        if (sweeps == name).any()
    )
    return (
        panel_section(
            "generalization",
            "Test accuracy against the memory coefficient",
            f"Mean test accuracy over seeds once the training loss fell below "
            f"{fig.threshold:g}, against K = β/(1−β) − γ/(1−γ) (what `stabcli check` prints; "
            "docs/theory.md §8).",
            Panel(
                "Accuracy at the loss threshold", "memory coefficient K", "test accuracy", series
            ),
        ),
    )


def render_figure_page(page: FigurePage) -> str:
    """The figure's page as one string: plotly.js embedded once, no network requests."""
    color = VERDICT_COLORS.get(page.verdict, "#222")
    parts = page_head(f"stabcli reproduce {page.name}: {page.title}")
    parts += [
        f"<p>{html.escape(page.paper_ref)} · scale {html.escape(page.scale)} · "
        f"{page.seconds:.1f} s · stabcli {__version__} · β = torch beta2, γ = torch beta1</p>",
    ]
    if page.setup:
        parts.append(f"<p id='setup'>Setup: {html.escape(page.setup)}</p>")
    parts += [
        "<table class='points' id='assessment'><tbody>",
        f"<tr><th>claim</th><td>{html.escape(page.claim)}</td></tr>",
        f"<tr><th>measured</th><td>{html.escape(page.measured)}</td></tr>",
        f"<tr><th>held</th><td style='color:{color};font-weight:700'>"
        f"{html.escape(page.verdict)}</td></tr>",
        "</tbody></table>",
    ]
    if page.subruns:
        links = "".join(
            f"<li><a href='{html.escape(s)}/report.html'>{html.escape(s)}</a></li>"
            for s in page.subruns
        )
        parts.append(f"<h2>Sweep runs</h2><ul>{links}</ul>")
    parts += [section_html(section) for section in page.sections]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_figure_page(page: FigurePage, out: str | Path) -> Path:
    """Write the page atomically and return its path."""
    return write_page(render_figure_page(page), out)
