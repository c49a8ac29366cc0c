"""The report in a terminal: the headline and the per-point table, with rich."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from stabcli.report.summary import ReportSummary, format_cell

#: Table columns for a terminal, most important first: as many as fit the width are shown
#: (in table order); the exports (--csv, --markdown) always hold them all.
TERMINAL_PRIORITY = {  # table column: short header
    "β": "β",
    "γ": "γ",
    "C": "C",
    "measured": "measured",
    "measured slope": "slope",
    "paper rate |C|/2": "paper |C|/2",
    "exact rate ρ_n": "exact ρ_n",
    "agrees with": "agrees",
    "diverged at": "diverged at",
    "paper region": "paper",
    "exact stable": "exact stable",
    "max u/bound": "u/bound",
    "max tensor": "max tensor",
}
_COLORS = {"growing": "red", "diverged": "bold red", "bounded": "green"}
_PADDING = 3  # a cell's border and padding, in characters


def render_summary(summary: ReportSummary, console: Console) -> None:
    """The headline lines; the partial-run note in yellow."""
    for line in summary.lines():
        style = "bold yellow" if line == summary.partial_note else None
        console.print(line, style=style, highlight=False, soft_wrap=True)


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


def render_table(table: pd.DataFrame, console: Console) -> None:
    """The per-point table: the columns that fit the console, measured class colored."""
    cells = {c: [format_cell(v, digits=4) for v in table[c]] for c in table.columns}
    shown = set(_fitting_columns(cells, console.width))
    columns = [c for c in table.columns if c in shown]
    hidden = len([c for c in TERMINAL_PRIORITY if c in cells]) - len(columns)
    caption = f"{hidden} column(s) hidden for width: see --csv or --markdown" if hidden else None
    out = Table(show_header=True, header_style="bold", caption=caption)
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(table[column]) and column != "exact stable"
        out.add_column(
            TERMINAL_PRIORITY[column], justify="right" if numeric else "left", no_wrap=True
        )
    for i in range(len(table)):
        row = []
        for column in columns:
            text = cells[column][i]
            color = _COLORS.get(text) if column == "measured" else None
            row.append(f"[{color}]{text}[/]" if color else text)
        out.add_row(*row)
    console.print(out)
