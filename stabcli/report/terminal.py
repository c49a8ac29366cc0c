"""The report in a terminal: the per-point table and the headline, with rich.

The table shows the numbers that decide each point first (docs/theory.md §9): its class,
the rate over its valid window with the interval's half-width, and both theories' rates
over the same window. As many further columns as fit the width follow; the exports
(--csv, --markdown) always hold them all. A region typed in PyTorch's order shows its
points as (beta1, beta2) first; the title names both orders either way. A k-Adam run adds
the table of its levels (:func:`stabcli.report.levels.get_level_table`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stabcli.measure import MeasureSettings
from stabcli.report.compare import LAST_STEPS, CompareInfo
from stabcli.report.levels import get_level_table
from stabcli.report.load import RunData
from stabcli.report.summary import ReportSummary, format_cell, get_summary

_PADDING = 3  # a cell's border and padding, in characters
_COLORS = {
    "growing": "red",
    "diverged": "bold red",
    "bounded": "green",
    "undetermined": "yellow",
}


def _fixed(column: str) -> Callable[[pd.Series], str]:
    def cell(row: pd.Series) -> str:
        value = row.get(column)
        if not (isinstance(value, float) and math.isfinite(value)):
            return ""
        return f"{round(value, 4) + 0.0:.4f}"  # + 0.0: a rounded −1e-17 reads 0.0000, not −0.0000

    return cell


def _plain(column: str) -> Callable[[pd.Series], str]:
    return lambda row: format_cell(row.get(column), digits=5)


def _decay(column: str) -> Callable[[pd.Series], str]:
    return lambda row: format_cell(row.get(column), digits=5, decay=True)


def _step(column: str) -> Callable[[pd.Series], str]:
    def cell(row: pd.Series) -> str:
        value = row.get(column)
        return f"{int(value)}" if isinstance(value, float) and math.isfinite(value) else ""

    return cell


def _rate(row: pd.Series) -> str:
    """rate ± half-width of its interval, 4 decimals: "0.0125±0.0002"."""
    rate, low, high = (row.get(c) for c in ("rate", "rate_low", "rate_high"))
    if not (isinstance(rate, float) and math.isfinite(rate)):
        return ""
    half = (high - low) / 2 if isinstance(high, float) and isinstance(low, float) else math.nan
    return f"{rate:.4f}±{half:.4f}" if math.isfinite(half) else f"{rate:.4f}"


def _window(row: pd.Series) -> str:
    start, stop = row.get("window_start"), row.get("window_stop")
    if isinstance(start, float) and isinstance(stop, float) and math.isfinite(start + stop):
        return f"{int(start)}–{int(stop)}" if stop > start else ""
    return ""


@dataclass(frozen=True)
class Column:
    """A terminal column: its header, how a row becomes its cell, and its alignment."""

    header: str
    cell: Callable[[pd.Series], str]
    right: bool = True  # numbers right-aligned
    when_set: bool = False  # shown only when some point has a value there (rare events)


#: Terminal columns in display order.
COLUMNS = {
    "torch_beta1": Column("beta1", _decay("torch_beta1")),
    "torch_beta2": Column("beta2", _decay("torch_beta2")),
    "beta": Column("β", _decay("beta")),
    "gamma": Column("γ", _decay("gamma")),
    "c_value": Column("C", _fixed("c_value")),
    "measured_class": Column("measured", _plain("measured_class"), right=False),
    "rate": Column("rate ±95%", _rate),
    "exact_rate": Column("ρ_n", _fixed("exact_rate")),
    "paper_rate": Column("|C|/2", _fixed("paper_rate")),
    "closer_theory": Column("closer", _plain("closer_theory"), right=False),
    "window": Column("window", _window),
    "central_slope": Column("App. H", _fixed("central_slope")),
    "bound_ratio_settled": Column("u/bound", _plain("bound_ratio_settled")),
    "diverged_step": Column("diverged", _step("diverged_step"), when_set=True),
    "underflow_step": Column("invalid from", _step("underflow_step"), when_set=True),
    "max_tensor": Column("max tensor", _plain("max_tensor"), right=False),
    "class_reason": Column("why", _plain("class_reason"), right=False),
}
#: Which columns are shown first when the width is short: the deciding numbers (class,
#: rate ± error, ρ_n and |C|/2) come right after the point itself.
PRIORITY = (
    "beta",
    "gamma",
    "measured_class",
    "rate",
    "exact_rate",
    "paper_rate",
    "closer_theory",
    "c_value",
    "diverged_step",
    "underflow_step",
    "window",
    "bound_ratio_settled",
    "central_slope",
    "max_tensor",
    "class_reason",
)


def render_summary(summary: ReportSummary, console: Console) -> None:
    """The headline lines (plain text, never markup: they hold paths); falsifications in
    red, the partial-run note in yellow."""
    for line in summary.lines():
        style = None
        if line.startswith("FALSIFIED"):
            style = "bold red"
        elif line == summary.partial_note:
            style = "bold yellow"
        console.print(line, style=style, highlight=False, soft_wrap=True, markup=False)


#: The priority of a region typed in PyTorch's order: (beta1, beta2) first, (β, γ) last.
TORCH_PRIORITY = ("torch_beta1", "torch_beta2", *PRIORITY[2:], "beta", "gamma")
#: The table's title in each order: both orders named.
TITLES = {
    "paper": "β = torch beta2, γ = torch beta1",
    "torch": "PyTorch's order: beta1 = γ, beta2 = β",
}


def fitting_columns(cells: dict[str, list[str]], width: int, order: str = "paper") -> list[str]:
    """The columns to show at ``width`` characters: by priority (PRIORITY, or
    TORCH_PRIORITY for a region typed in PyTorch's order), each if it fits, in display
    order."""
    chosen: set[str] = set()
    used = 1
    for key in TORCH_PRIORITY if order == "torch" else PRIORITY:
        if key not in cells:
            continue
        need = max([len(COLUMNS[key].header), *map(len, cells[key])]) + _PADDING
        if used + need > width and len(chosen) >= 3:
            continue
        chosen.add(key)
        used += need
    return [key for key in COLUMNS if key in chosen]


def render_table(
    points: pd.DataFrame,
    console: Console,
    settings: MeasureSettings | None = None,
    order: str = "paper",
) -> None:
    """The per-point table: the columns that fit the console, the measured class colored;
    the point as (beta1, beta2) first when ``order`` is "torch"."""
    s = settings or MeasureSettings()
    rows = [row for _, row in points.iterrows()]
    keys = [k for k in COLUMNS if order == "torch" or not k.startswith("torch_")]
    if order == "torch":
        keys = ["torch_beta1", "torch_beta2", *(k for k in keys if not k.startswith("torch_"))]
    cells = {key: [COLUMNS[key].cell(row) for row in rows] for key in keys}
    for key in keys:
        if COLUMNS[key].when_set and not any(cells[key]):
            del cells[key]
    chosen = set(fitting_columns(cells, console.width, order))
    shown = [k for k in keys if k in chosen]
    hidden = len(cells) - len(shown)
    notes = [
        f"rate: least-squares slope of log‖u_n‖∞ per step over the point's valid window, "
        f"± its {s.confidence:.0%} interval; ρ_n (exact) and |C|/2 (paper): their rates over "
        f"the same window; closer: the theory within {s.closer_tol:.0%} of the rate",
        f"{hidden} column(s) hidden for width: see --csv or --markdown" if hidden else "",
    ]
    out = Table(
        show_header=True,
        header_style="bold",
        title=TITLES.get(order, TITLES["paper"]),
        caption="\n".join(n for n in notes if n),
        caption_justify="left",
    )
    for key in shown:
        column = COLUMNS[key]
        out.add_column(column.header, justify="right" if column.right else "left", no_wrap=True)
    for i in range(len(rows)):
        row = []
        for key in shown:
            text = escape(cells[key][i])  # cells hold stored text (tensor names, ...)
            color = _COLORS.get(cells[key][i]) if key == "measured_class" else None
            row.append(f"[{color}]{text}[/]" if color else text)
        out.add_row(*row)
    console.print(out)


#: Words of a level check that held (the terminal's level table leaves them out).
HELD = ("within the bound", "within the bound up to rounding")


def render_levels(run: RunData, console: Console) -> None:
    """A k-Adam run's per-level table (nothing for other runs), narrowed for a terminal:
    the paper's region is C's sign, and the check's words appear only when a level did
    not hold (the headline says which)."""
    table = get_level_table(run.points, run.dtype, run.order)
    if table.empty:
        return
    table = table.drop(columns=["paper"])
    if table["level check"].isin(HELD).all():
        table = table.drop(columns=["level check"])
    names = {c: c.removeprefix("u/bound ") for c in table.columns if c.startswith("u/bound")}
    table = table.rename(columns={"C(β_i, γ_i)": "C_i", **names})
    out = Table(
        show_header=True,
        header_style="bold",
        title="k-Adam levels, each against its own exact bound",
        caption="l<i>: max over n of ‖u^(i)_n‖∞ / U_n(β_i, γ_i), level i's exact bound",
        caption_justify="left",
    )
    for column in table.columns:
        text = column in ("point", "exact", "level check")
        out.add_column(str(column), justify="left" if text else "right", no_wrap=True)
    for record in table.itertuples(index=False):
        out.add_row(*(escape(format_cell(v, digits=4)) for v in record))
    console.print(out)


def render_compare(info: CompareInfo, console: Console) -> None:
    """`stabcli report RUN... --compare` in a terminal: final loss per point and run, the
    lowest in bold, the points in PyTorch's order (the grid the MADA paper draws)."""
    out = Table(
        show_header=True,
        header_style="bold",
        title=f"final training loss (mean of the last {LAST_STEPS} steps), {info.preset}"
        + (f", {info.steps} steps" if info.steps else ""),
        caption="beta1 = γ, beta2 = β (initial); bold: the lowest at that point",
        caption_justify="left",
    )
    out.add_column("beta1", justify="right", no_wrap=True)
    out.add_column("beta2", justify="right", no_wrap=True)
    for run in info.runs:
        out.add_column(escape(run.name), justify="right")
    for i in range(len(info.beta1)):
        cells = [format_cell(info.beta1[i], decay=True), format_cell(info.beta2[i], decay=True)]
        for run in info.runs:
            loss = float(run.loss[i])
            text = f"{loss:.4f}" if math.isfinite(loss) else "diverged"
            cells.append(f"[bold]{text}[/]" if run.best[i] else text)
        out.add_row(*cells)
    console.print(out)
    for run in info.runs:
        wins = int(run.best.sum())
        console.print(
            f"{run.name}: lowest at {wins} of {len(info.beta1)} points ({run.path})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def render_run(run: RunData, console: Console) -> None:
    """What `stabcli report` (and a finished `stabcli sweep`) prints: table, the k-Adam
    levels if any, then the headline."""
    render_table(run.points, console, run.measure_settings, run.order)
    render_levels(run, console)
    render_summary(get_summary(run), console)
