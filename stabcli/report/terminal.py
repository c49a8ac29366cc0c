"""The report in a terminal: the headline and the per-point table, with rich."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stabcli.report.load import RunData
from stabcli.report.summary import ReportSummary, format_cell, get_summary, get_table

#: Table columns for a terminal, most important first: as many as fit the width are shown
#: (in table order); the exports (--csv, --markdown) always hold them all.
TERMINAL_PRIORITY = {  # table column: short header
    "β": "β",
    "γ": "γ",
    "C": "C",
    "measured": "measured",
    "measured slope": "slope",
    "exact rate ρ_n": "ρ_n",
    "paper rate |C|/2": "|C|/2",
    "agrees with": "agrees",
    "diverged at": "diverged",
    "invalid from": "invalid from",
    "fit slope": "fit",
    "max u/bound": "u/bound",
    "max tensor": "max tensor",
    "paper region": "paper",
    "exact stable": "exact stable",
}
#: Columns shown only when some point has a value there (rare events).
SHOWN_WHEN_SET = {"invalid from"}
#: Rates and C read best with fixed decimals (and stay narrow).
FIXED_DECIMALS = {"C", "measured slope", "fit slope", "exact rate ρ_n", "paper rate |C|/2"}
_COLORS = {"growing": "red", "diverged": "bold red", "bounded": "green"}
_PADDING = 3  # a cell's border and padding, in characters


def render_summary(summary: ReportSummary, console: Console) -> None:
    """The headline lines (plain text, never markup: they hold paths); the partial-run note
    in yellow."""
    for line in summary.lines():
        style = "bold yellow" if line == summary.partial_note else None
        console.print(line, style=style, highlight=False, soft_wrap=True, markup=False)


def _fitting_columns(cells: dict[str, list[str]], width: int) -> list[str]:
    chosen: list[str] = []
    used = 1
    for column in TERMINAL_PRIORITY:
        if column not in cells:
            continue
        need = max([len(TERMINAL_PRIORITY[column]), *map(len, cells[column])]) + _PADDING
        if used + need > width and len(chosen) >= 3:
            continue
        chosen.append(column)
        used += need
    return chosen


def _cell(column: str, value: object) -> str:
    if column in FIXED_DECIMALS and isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}"
    return format_cell(value, digits=5)


def render_table(table: pd.DataFrame, console: Console, slope_step: int | None = None) -> None:
    """The per-point table: the columns that fit the console, measured class colored."""
    cells = {c: [_cell(c, v) for v in table[c]] for c in table.columns}
    for column in SHOWN_WHEN_SET & set(cells):
        if not any(cells[column]):
            del cells[column]
    shown = set(_fitting_columns(cells, console.width))
    columns = [c for c in table.columns if c in shown and c in cells]
    hidden = len([c for c in TERMINAL_PRIORITY if c in cells]) - len(columns)
    at = f" at n = {slope_step}" if slope_step is not None else ""
    notes = [
        f"rates per step{at}: slope measured (App. H), ρ_n exact, |C|/2 paper",
        "measured class: from the least-squares slope around that step",
        f"{hidden} column(s) hidden for width: see --csv or --markdown" if hidden else "",
    ]
    title = "β = torch beta2, γ = torch beta1"
    caption = "\n".join(n for n in notes if n)
    out = Table(
        show_header=True, header_style="bold", title=title, caption=caption, caption_justify="left"
    )
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(table[column]) and column != "exact stable"
        out.add_column(
            TERMINAL_PRIORITY[column], justify="right" if numeric else "left", no_wrap=True
        )
    for i in range(len(table)):
        row = []
        for column in columns:
            text = escape(cells[column][i])  # cells hold stored text (tensor names, ...)
            color = _COLORS.get(cells[column][i]) if column == "measured" else None
            row.append(f"[{color}]{text}[/]" if color else text)
        out.add_row(*row)
    console.print(out)


def render_run(run: RunData, console: Console) -> None:
    """What `stabcli report` (and a finished `stabcli sweep`) prints: table, then headline."""
    steps = run.points["slope_step"].dropna().tolist() if "slope_step" in run.points else []
    render_table(get_table(run.points), console, int(steps[0]) if steps else None)
    render_summary(get_summary(run), console)
