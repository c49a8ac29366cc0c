"""The self-contained HTML report: one file, plotly.js embedded once, no network requests.

The page is plain HTML: a header (with a banner for partial runs), the agreement summary,
the figures (each a plotly div drawn by the single embedded copy of plotly.js; no CDN, no
MathJax), and the per-point table with a few lines of inline JavaScript to sort it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stabcli import __version__
from stabcli.errors import StabcliError
from stabcli.report.load import RunData
from stabcli.report.plane import _get_plane_info, plot_plane
from stabcli.report.slopes import _get_slopes_info, plot_slopes
from stabcli.report.summary import ReportSummary, format_cell, get_summary, get_table
from stabcli.report.tensors import _get_tensor_info, plot_tensors
from stabcli.report.testloss import _get_test_loss_info, plot_test_loss
from stabcli.report.updates import _get_updates_info, plot_updates

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

#: plotly.js options: no logo, no tips; nothing here fetches anything.
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "showTips": False}


@dataclass(frozen=True)
class Section:
    """One figure of the page."""

    key: str  # the div id is "fig-<key>"
    heading: str
    caption: str
    figure: go.Figure
    height: int  # pixels


def build_figures(run: RunData) -> list[Section]:
    """Every figure of the report, in page order (test loss only when it was recorded)."""
    sections = [
        Section(
            "plane",
            "1. The (β, γ) plane",
            "Level curves of C, normal curves, the paper's stable region B+ (shaded) and both "
            "boundaries; the sweep's points colored by measured slope. Buttons: whole square "
            "or the corner near (1, 1).",
            plot_plane(_get_plane_info(run.points, run.through)),
            640,
        ),
        Section(
            "updates",
            "2. Max-update against n",
            "‖u_n‖∞ per point on a log axis, colored by C, with each point's paper bound "
            "(dotted) and exact bound (dashed); × marks a divergence. Long traces are "
            "thinned for display (extremes and the divergence step kept).",
            plot_updates(_get_updates_info(run.points, run.traces)),
            640,
        ),
        Section(
            "slopes",
            "3. Measured slope against both theories",
            "Slope of log‖u_n‖∞ at the slope step, measured as in the paper (App. H) and by "
            "least squares, against the paper's rate |C|/2 and the exact rate ρ_n.",
            plot_slopes(_get_slopes_info(run.points, run.description, run.slope_at)),
            520,
        ),
    ]
    if not run.evals.empty:
        sections.append(
            Section(
                "testloss",
                "4. Test loss",
                "Test loss against n per point (colored by C), and the best test loss reached "
                "by chosen steps against C (the paper's Fig. 3).",
                plot_test_loss(_get_test_loss_info(run.points, run.evals)),
                520,
            )
        )
    sections.append(
        Section(
            "tensors",
            f"{len(sections) + 1}. Where the growth lives",
            "Share of steps at which each parameter tensor held the max-update, per point.",
            plot_tensors(_get_tensor_info(run.points, run.traces)),
            560,
        )
    )
    return sections


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px; color: #222; }
.banner { background: #fff3cd; border: 1px solid #e0c46c; padding: .6em 1em; font-weight: 600; }
.summary li { margin: .2em 0; }
figure { margin: 2em 0; } figcaption { color: #555; font-size: .92em; }
table.points { border-collapse: collapse; font-size: .82em; }
table.points th, table.points td { border: 1px solid #ddd; padding: .25em .5em; }
table.points th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; }
table.points td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tablewrap { max-height: 36em; overflow: auto; }
"""

# Click a header to sort by it; click again to reverse. Numbers sort as numbers, blanks last.
_SORTER = """
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


def _table_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th title='click to sort'>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for record in table.itertuples(index=False):
        cells = []
        for value in record:
            text = html.escape(format_cell(value))
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
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary.lines())
    return f"<ul class='summary'>{items}</ul>"


def render_html(run: RunData) -> str:
    """The whole report page as one string."""
    from plotly.offline import get_plotlyjs

    summary = get_summary(run)
    title = f"stabcli report: {run.description}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Run directory <code>{html.escape(str(run.path))}</code> · stabcli {__version__} · "
        "β = torch beta2, γ = torch beta1: points are written (β, γ), as in the paper.</p>",
    ]
    if summary.partial:
        parts.append(f"<p class='banner' id='partial'>{html.escape(summary.partial_note)}</p>")
    parts += ["<h2>Summary</h2>", _summary_html(summary)]
    for section in build_figures(run):
        div = section.figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=f"fig-{section.key}",
            config=PLOT_CONFIG,
            default_height=f"{section.height}px",
        )
        parts.append(
            f"<figure><h2>{html.escape(section.heading)}</h2>{div}"
            f"<figcaption>{html.escape(section.caption)}</figcaption></figure>"
        )
    parts += [
        f"<h2>Points ({summary.finished} of {summary.planned})</h2>",
        _summary_html(summary),
        _table_html(get_table(run.points)),
        f"<script type='text/javascript'>{_SORTER}</script></body></html>",
    ]
    return "\n".join(parts)


def write_html(run: RunData, out: str | Path) -> Path:
    """Write the report of ``run`` to ``out`` (atomically) and return the path written."""
    from stabcli.store.atomic import atomic_write_text

    path = Path(out)
    text = render_html(run)
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise StabcliError(f"cannot write the report to {path}: {err.strerror or err}") from None
    return path
