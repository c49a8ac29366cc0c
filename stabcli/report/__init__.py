"""``stabcli report``: look at a sweep — figures, the headline, the per-point table.

Data first, drawing second (as Optuna's visualization module): each figure has a
``_get_*_info`` function that computes what it shows (no plotly) and a ``plot_*`` function
that draws that info into a plotly figure. :func:`write_html` puts them in one offline page.

    run = load_run("runs/2024-…")
    write_html(run, "report.html")
"""

from stabcli.report.load import RunData, load_run, resolve_run_dir
from stabcli.report.page import build_figures, render_html, write_html
from stabcli.report.summary import ReportSummary, get_summary, get_table

__all__ = [
    "ReportSummary",
    "RunData",
    "build_figures",
    "get_summary",
    "get_table",
    "load_run",
    "render_html",
    "resolve_run_dir",
    "write_html",
]
