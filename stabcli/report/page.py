"""The self-contained HTML report: one file, plotly.js embedded once, no network requests.

The page is plain HTML: a header (with a banner for partial runs, and how a factory
model's points ran), the headline (falsifications first, in red), the figures (each a
plotly div drawn by the single embedded copy of plotly.js; no CDN, no MathJax), and the
per-point table with a few lines of inline JavaScript to sort it.

Which figures, by the run: every run has the plane, the max-update against the bound its
points obey (the exact bound of the point, of a k-Adam point's last level, of a learned
path, or the bound a monitor recorded), the rates, the slope profiles and where the growth
lives; k-Adam runs add each level against its own bound and the level table; learned betas
and monitored runs add their paths through the plane; runs that recorded test loss add
it. A monitor sees no loss, so it has no loss figure.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stabcli import __version__
from stabcli.errors import StabcliError
from stabcli.report.boundary import _get_boundary_info, plot_boundary
from stabcli.report.levels import _get_levels_info, get_level_table, plot_levels
from stabcli.report.load import RunData
from stabcli.report.paths import _get_paths_info, plot_paths
from stabcli.report.plane import _get_plane_info, plot_plane
from stabcli.report.profiles import _get_profiles_info, plot_profiles
from stabcli.report.rates import _get_rates_info, plot_rates
from stabcli.report.summary import (
    DECAY_HEADERS,
    ReportSummary,
    format_cell,
    get_summary,
    get_table,
)
from stabcli.report.tensors import _get_tensor_info, plot_tensors
from stabcli.report.testloss import _get_test_loss_info, plot_test_loss
from stabcli.report.updates import _get_updates_info, plot_updates

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

#: plotly.js options: no logo, no tips; nothing here fetches anything.
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "showTips": False}
#: What the header says of the order points are shown in: both orders named either way.
ORDER_NOTES = {
    "paper": "β = torch beta2, γ = torch beta1: points are written (β, γ), as in the paper.",
    "torch": "Points were typed in PyTorch's order and are shown as (beta1, beta2) = (γ, β) "
    "first; β = torch beta2, γ = torch beta1 as in the paper.",
}
#: Figure 2's caption, by the bound its points obey (report.updates).
UPDATES_CAPTIONS = {
    "point": "‖u_n‖∞ per point on a log axis, colored by C, with each point's paper bound "
    "(dotted) and exact bound (dashed); × marks a divergence.",
    "level": "The update ‖u_n‖∞ = ‖u^(k)_n‖∞ per point on a log axis, colored by C of its "
    "levels, with the paper bound (dotted) and the exact bound (dashed) of the last level's "
    "(β_k, γ_k), which bounds the update (docs/theory.md (6.3)); × marks a divergence.",
    "path": "‖u_n‖∞ per point on a log axis, colored by C of its starting pair, with the bound "
    "along the (β_n, γ_n) path it recorded (dashed; docs/theory.md §5, MADA's (7.5) on its "
    "Adam-AVGrad-Lion face, none off it); × marks a divergence.",
    "trace": "‖u_n‖∞ of the monitored run on a log axis, with the bound the monitor recorded "
    "at each step (dashed: the exact bound, or the path bound of moving betas; docs/theory.md "
    "§3, §5); the steps start where watching began and skip those not measured.",
}


@dataclass(frozen=True)
class Section:
    """One figure of the page."""

    key: str  # the div id is "fig-<key>"
    heading: str
    caption: str
    figure: go.Figure
    height: int  # pixels
    table: pd.DataFrame | None = None  # a table under the figure (k-Adam's levels)


def update_bounds(run: RunData) -> str:
    """Which bound figure 2 draws (:func:`stabcli.report.updates._get_updates_info`)."""
    if run.kind == "monitor":
        return "trace"
    if run.levels:
        return "level"
    if run.learned:
        return "path"
    return "point"


def build_figures(run: RunData) -> list[Section]:
    """Every figure of the report, in page order (module docstring: by the run's optimizer
    and origin; the boundary figure only when a point lies on a boundary, test loss only
    when it was recorded)."""
    settings = run.measure_settings
    curve = run.is_curve
    order = run.order
    bounds = update_bounds(run)
    sections = [
        Section(
            "plane",
            "The (β, γ) plane",
            "Level curves of C (grey), normal curves, the paper's stable region B+ (shaded) "
            "and both boundaries; the sweep's points colored by their measured class, marked "
            "by the exact theory's verdict, falsifications outlined in red. Buttons: the "
            "swept points, the whole square, or the corner near (1, 1).",
            plot_plane(_get_plane_info(run.points, run.through, order)),
            640,
        ),
        Section(
            "updates",
            "Max-update against n",
            f"{UPDATES_CAPTIONS[bounds]} Long traces are thinned for display (extremes and "
            "the divergence step kept); + λ‖θ_n‖∞ under decoupled weight decay.",
            plot_updates(_get_updates_info(run.points, run.traces, bounds=bounds, order=order)),
            640,
        ),
    ]
    if run.levels:
        sections.append(
            Section(
                "levels",
                "k-Adam: every level against its own bound",
                "For the level chosen in the menu: each point's ‖u^(i)_n‖∞ (before λθ_n) and "
                "the exact bound of that level's (β_i, γ_i), which it obeys whatever the "
                "earlier levels feed it (docs/theory.md (6.3)). The table lists every level "
                "with both theories' words for its pair and its largest measured ratio.",
                plot_levels(_get_levels_info(run.points, run.traces, order=order)),
                560,
                get_level_table(run.points, run.dtype, order),
            )
        )
    if run.learned:
        sections.append(
            Section(
                "paths",
                "Paths through the (β, γ) plane",
                "Each point's recorded (β_n, γ_n), colored by step, over the paper's boundary "
                "C = 0 and the exact one γ² = β; ○ marks the start, ◆ the end, a red × the "
                "first step in γ² > β, where the path bound starts to grow (docs/theory.md "
                "(5.7)).",
                plot_paths(_get_paths_info(run.points, run.traces, order=order)),
                640,
            )
        )
    sections += [
        Section(
            "rates",
            "Measured rate against both theories",
            (
                "The rate of log‖u_n‖∞ read over each point's valid window, with its "
                f"{settings.confidence:.0%} interval, along the curve beside the paper's "
                "|C|/2 and the exact ρ_n over the same window, and the paper's central "
                "difference (App. H); dotted lines where the curve crosses C = 0 and γ² = β."
                if curve
                else "The rate of log‖u_n‖∞ read over each point's valid window, with its "
                f"{settings.confidence:.0%} interval, against the rate each theory predicts "
                "over the same window (paper |C|/2, exact ρ_n); on y = x the prediction is met."
            ),
            plot_rates(_get_rates_info(run.points, curve, run.description, order)),
            520,
        ),
        Section(
            "profiles",
            "Slope profiles and valid windows",
            f"For the point chosen in the menu: the slope of log‖u_n‖∞ over sliding windows of "
            f"{settings.profile_window} steps with its interval (band), the exact ρ_n "
            "(dashed), the paper's |C|/2, the growth tolerance (dotted), and the valid window "
            "the point's rate was read from (shaded). Recomputed from the traces.",
            plot_profiles(_get_profiles_info(run.points, run.traces, settings, order)),
            560,
        ),
    ]
    boundary = _get_boundary_info(run.points, run.traces, order=order)
    if boundary.points:
        sections.append(
            Section(
                "boundary",
                "On the boundary: the √n law",
                "Points on γ² = β or C = 0, on log-log axes: the measured ‖u_n‖∞, its exact "
                "bound, and a √n line through its last value; the legend gives the fitted "
                "log-log exponent after the settle step.",
                plot_boundary(boundary),
                520,
            )
        )
    if not run.evals.empty and run.kind != "monitor":
        sections.append(
            Section(
                "testloss",
                "Test loss",
                "Test loss against n per point (colored by C), and the best test loss reached "
                "by chosen steps against C (the paper's Fig. 3).",
                plot_test_loss(_get_test_loss_info(run.points, run.evals, order)),
                520,
            )
        )
    sections.append(
        Section(
            "tensors",
            "Where the growth lives",
            "Share of the steps of each point's valid window (its whole run when that is "
            "empty) at which each parameter tensor held the max-update: the tensors most "
            "often on top are named, the rest pooled as 'other'. The table's max tensor is "
            "each point's largest share.",
            plot_tensors(_get_tensor_info(run.points, run.traces, order=order)),
            560,
        )
    )
    return [
        Section(s.key, f"{i}. {s.heading}", s.caption, s.figure, s.height, s.table)
        for i, s in enumerate(sections, start=1)
    ]


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px; color: #222; }
.banner { background: #fff3cd; border: 1px solid #e0c46c; padding: .6em 1em; font-weight: 600; }
.summary li { margin: .2em 0; }
.summary li.falsified { color: #c00; font-weight: 700; }
figure { margin: 2em 0; } figcaption { color: #555; font-size: .92em; }
table.points { border-collapse: collapse; font-size: .82em; }
table.points th, table.points td { border: 1px solid #ddd; padding: .25em .5em; }
table.points th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; }
table.points td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tablewrap { max-height: 36em; overflow: auto; }
"""

# Click a header to sort by it; click again to reverse. Numbers sort as numbers, blanks last.
SORTER = """
document.querySelectorAll("table.points th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.getAttribute("data-order") !== "asc";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
    th.setAttribute("data-order", asc ? "asc" : "desc");
    var key = function (tr) {
      var td = tr.cells[col], v = td.getAttribute("data-value");
      return v === null ? td.textContent : v;
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var nx = parseFloat(x), ny = parseFloat(y);
      var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? r : -r;
    });
    rows.forEach(function (tr) { body.appendChild(tr); });
  });
});
"""


def table_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th title='click to sort'>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    decays = [c in DECAY_HEADERS for c in table.columns]
    for record in table.itertuples(index=False):
        cells = []
        for value, decay in zip(record, decays, strict=True):
            text = html.escape(format_cell(value, decay=decay))
            if isinstance(value, int | float) and not isinstance(value, bool):
                raw = "" if isinstance(value, float) and math.isnan(value) else repr(value)
                cells.append(f"<td class='num' data-value='{raw}'>{text}</td>")
            else:
                cells.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<div class='tablewrap'><table class='points'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _summary_html(summary: ReportSummary) -> str:
    items = "".join(
        f"<li class='falsified'>{html.escape(line)}</li>"
        if line.startswith("FALSIFIED")
        else f"<li>{html.escape(line)}</li>"
        for line in summary.lines()
    )
    return f"<ul class='summary'>{items}</ul>"


def page_head(title: str) -> list[str]:
    """The opening of a self-contained page: its style, plotly.js embedded once (no network
    requests) and the title as its heading."""
    from plotly.offline import get_plotlyjs

    from stabcli.report.targets import PAGE_START

    return [
        PAGE_START,
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]


def section_html(section: Section) -> str:
    """One figure of a page: heading, the plot (plotly.js not repeated), caption and the
    section's table if it has one."""
    div = section.figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=f"fig-{section.key}",
        config=PLOT_CONFIG,
        default_height=f"{section.height}px",
    )
    below = table_html(section.table) if section.table is not None else ""
    return (
        f"<figure><h2>{html.escape(section.heading)}</h2>{div}"
        f"<figcaption>{html.escape(section.caption)}</figcaption>{below}</figure>"
    )


def write_page(text: str, out: str | Path, what: str = "report") -> Path:
    """Write a rendered page (the ``what``) to ``out`` atomically and return the path
    written; a write error is a one-line :class:`StabcliError`."""
    from stabcli.store.atomic import atomic_write_text

    path = Path(out)
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise StabcliError(f"cannot write the {what} to {path}: {err.strerror or err}") from None
    return path


def render_html(run: RunData) -> str:
    """The whole report page as one string."""
    summary = get_summary(run)
    parts = page_head(f"stabcli report: {run.description}")
    parts += [
        f"<p>Run directory <code>{html.escape(str(run.path))}</code> · stabcli {__version__} · "
        f"{ORDER_NOTES[run.order]}</p>",
    ]
    if summary.optimizer not in ("adam", ""):
        parts.append(f"<p id='optimizer'>Optimizer: {html.escape(summary.optimizer)}</p>")
    if summary.batching:
        parts.append(f"<p id='batching'>Batching: {html.escape(summary.batching)}</p>")
    if summary.partial:
        parts.append(f"<p class='banner' id='partial'>{html.escape(summary.partial_note)}</p>")
    parts += ["<h2>Summary</h2>", _summary_html(summary)]
    parts += [section_html(section) for section in build_figures(run)]
    parts += [
        f"<h2>Points ({summary.finished} of {summary.planned})</h2>",
        _summary_html(summary),
        table_html(get_table(run.points, order=run.order)),
        f"<script type='text/javascript'>{SORTER}</script></body></html>",
    ]
    return "\n".join(parts)


def write_html(run: RunData, out: str | Path) -> Path:
    """Write the report of ``run`` to ``out`` (atomically) and return the path written."""
    return write_page(render_html(run), out)
