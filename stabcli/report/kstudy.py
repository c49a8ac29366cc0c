"""The k-study's report: best test accuracy against k, one line per strategy, k = 1
(Adam/AdamW) highlighted: the paper's Figure 4 in shape (Section 4.2, App. H).

Data first, drawing second: :func:`_get_kstudy_info` reads what the figure shows from a
study read back by :func:`stabcli.store.kstudy.read_kstudy` (no plotly), and
:func:`plot_kstudy` draws it. Each (k, strategy) is represented by its best grid point
(:func:`stabcli.store.kstudy.best_of_grid`: highest best test accuracy over the lr × weight
decay grid). k = 1 is the same optimizer for every strategy (k-Adam with one level is
Adam), so its point starts every strategy's line and is drawn once more, larger, with a
dotted line at its accuracy across all k.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stabcli import __version__
from stabcli.report._display import empty_figure
from stabcli.store.kstudy import ADAM, KStudyData, best_of_grid

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from rich.console import Console

TITLE = "k-Adam: best test accuracy against k (paper Fig. 4)"
#: Marker and color of k = 1 (Adam/AdamW), drawn over the strategies' lines.
ADAM_COLOR = "#d62728"


@dataclass(frozen=True)
class BestPoint:
    """The best grid point of one (k, strategy)."""

    k: int
    accuracy: float  # best test accuracy over the run (nan: none recorded)
    loss: float  # best test loss over the run, of the same point
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class StrategyLine:
    """One strategy's best points against k, k = 1 (Adam) first when the study has it."""

    strategy: str
    points: list[BestPoint]

    @property
    def k(self) -> np.ndarray:
        return np.array([p.k for p in self.points], dtype=float)

    @property
    def accuracy(self) -> np.ndarray:
        return np.array([p.accuracy for p in self.points], dtype=float)


@dataclass(frozen=True)
class KStudyInfo:
    """What the figure draws: one line per strategy, and k = 1 on its own."""

    lines: list[StrategyLine]  # in the study's strategy order
    adam: BestPoint | None  # k = 1, when the study has it
    adam_label: str  # "Adam" or "AdamW"
    ks: list[int]  # every k of the study with a finished point


def _best_point(row: pd.Series) -> BestPoint:
    return BestPoint(
        int(row["k"]),
        float(row["best_test_accuracy"]),
        float(row["best_test_loss"]),
        float(row["lr"]),
        float(row["weight_decay"]),
    )


def _get_kstudy_info(data: KStudyData) -> KStudyInfo:
    """Each (k, strategy)'s best grid point, grouped by strategy and sorted by k; points
    without a finite accuracy are left out of the lines (a study of a preset that records
    none draws an empty figure)."""
    label = str(data.manifest.get("adam_label") or "Adam")
    best = best_of_grid(data.points)
    best = best[np.isfinite(pd.to_numeric(best["best_test_accuracy"], errors="coerce"))]
    adam_rows = best[best["strategy"] == ADAM]
    adam = _best_point(adam_rows.iloc[0]) if len(adam_rows) else None
    settings = data.manifest.get("settings", {})
    order = [s for s in settings.get("strategies", []) if isinstance(s, str)]
    found = [s for s in dict.fromkeys(best["strategy"]) if s != ADAM]
    lines = []
    for strategy in order + [s for s in found if s not in order]:
        rows = best[best["strategy"] == strategy].sort_values("k", kind="stable")
        if rows.empty:
            continue
        points = [_best_point(r) for _, r in rows.iterrows()]
        lines.append(StrategyLine(strategy, ([adam] if adam is not None else []) + points))
    ks = sorted({int(k) for k in best["k"]})
    return KStudyInfo(lines, adam, label, ks)


def _hover(strategy: str, point: BestPoint) -> str:
    return (
        f"{strategy}, k = {point.k}<br>best test accuracy {point.accuracy:.4f}<br>"
        f"best test loss {point.loss:.4f}<br>lr {point.lr:g}, weight decay {point.weight_decay:g}"
    )


def plot_kstudy(info: KStudyInfo) -> go.Figure:
    """The figure from its info: lines of best test accuracy against k per strategy, k = 1
    as a large marker with a dotted line at its accuracy."""
    import plotly.graph_objects as go

    if not info.lines and info.adam is None:
        return empty_figure(TITLE, "no finished point with a test accuracy")
    fig = go.Figure()
    for line in info.lines:
        fig.add_trace(
            go.Scatter(
                x=line.k,
                y=line.accuracy,
                mode="lines+markers",
                name=line.strategy,
                text=[_hover(line.strategy, p) for p in line.points],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if info.adam is not None:
        adam = info.adam
        name = f"k = 1: {info.adam_label}"
        fig.add_trace(
            go.Scatter(
                x=[1],
                y=[adam.accuracy],
                mode="markers",
                name=name,
                marker={"symbol": "star", "size": 18, "color": ADAM_COLOR},
                text=[_hover(info.adam_label, adam)],
                hovertemplate="%{text}<extra></extra>",
            )
        )
        fig.add_hline(
            y=adam.accuracy,
            line={"dash": "dot", "color": ADAM_COLOR, "width": 1},
            annotation_text=f"{info.adam_label} (k = 1)",
            annotation_position="bottom right",
        )
    fig.update_xaxes(title_text="k (levels of k-Adam)", tickmode="array", tickvals=info.ks)
    fig.update_yaxes(title_text="best test accuracy")
    fig.update_layout(title={"text": TITLE}, legend={"title": {"text": "strategy"}})
    return fig


# ----------------------------------------------------------------------------- tables
def kstudy_table(data: KStudyData) -> pd.DataFrame:
    """One row per (k, strategy): its best grid point (best_of_grid), k = 1 named by its
    optimizer (Adam/AdamW)."""
    label = str(data.manifest.get("adam_label") or "Adam")
    best = best_of_grid(data.points)
    return pd.DataFrame(
        {
            "k": best["k"].astype(int),
            "strategy": [label if s == ADAM else s for s in best["strategy"]],
            "best test accuracy": best["best_test_accuracy"].astype(float),
            "best test loss": best["best_test_loss"].astype(float),
            "lr": best["lr"].astype(float),
            "weight decay": best["weight_decay"].astype(float),
            "sub-run": best["subrun"].astype(str),
        }
    )


def partial_note(data: KStudyData) -> str:
    """One line saying which sub-runs are not complete ("" when all are)."""
    unfinished = [s for s in data.subruns if not s.complete]
    if not unfinished:
        return ""
    names = ", ".join(f"{s.entry.name} ({s.status}, {s.finished}/{s.planned})" for s in unfinished)
    foreign = [s.entry.name for s in unfinished if s.status.startswith("holds ")]
    move = f"move {', '.join(foreign)} out of the study, then " if foreign else ""
    return (
        f"partial study: {len(unfinished)} of {len(data.subruns)} sub-run(s) not complete: "
        f"{names}; {move}re-run the same `stabcli kstudy` command to finish it"
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def render_kstudy(data: KStudyData, console: Console) -> None:
    """The best-of-grid table in the terminal, k = 1 highlighted."""
    from rich.table import Table

    note = partial_note(data)
    if note:
        console.print(note, style="yellow", highlight=False, markup=False)
    table = Table(title=f"k-study {data.path}: best over the lr × weight decay grid")
    frame = kstudy_table(data)
    for column in frame.columns:
        table.add_column(column, justify="left" if column in ("strategy", "sub-run") else "right")
    for row in frame.itertuples(index=False):
        cells = [_cell(v) for v in row]
        table.add_row(*cells, style="bold cyan" if row[0] == 1 else None)
    console.print(table)


# ------------------------------------------------------------------------------- page
def render_kstudy_html(data: KStudyData) -> str:
    """The study's report page: header, partial banner, the figure and both tables."""
    from stabcli.report.page import SORTER, Section, page_head, section_html, table_html

    settings = data.manifest.get("settings", {})
    base = settings.get("base") or [math.nan, math.nan]
    figure = Section(
        key="kstudy",
        heading="Best test accuracy against k",
        caption="For every k and strategy (paper App. P), the highest test accuracy reached "
        "over the run by the best point of the lr × weight decay grid; k = 1 (Adam/AdamW, the "
        "same for every strategy) is the star and the dotted line. Warm-up, then cosine decay "
        "to lr/10 (App. H).",
        figure=plot_kstudy(_get_kstudy_info(data)),
        height=560,
    )
    parts = page_head(f"stabcli k-study: {data.manifest.get('preset_name', '')}")
    parts += [
        f"<p>Study directory <code>{html.escape(str(data.path))}</code> · stabcli "
        f"{__version__} · base (β, γ) = ({base[0]:g}, {base[1]:g}), i.e. torch betas=("
        f"{base[1]:g}, {base[0]:g}); β = torch beta2, γ = torch beta1.</p>",
    ]
    note = partial_note(data)
    if note:
        parts.append(f"<p class='banner' id='partial'>{html.escape(note)}</p>")
    parts += [
        section_html(figure),
        "<h2>Best grid point per (k, strategy)</h2>",
        table_html(kstudy_table(data)),
        f"<h2>Every grid point ({len(data.points)})</h2>",
        table_html(data.points),
        f"<script type='text/javascript'>{SORTER}</script></body></html>",
    ]
    return "\n".join(parts)


def write_kstudy_html(data: KStudyData, out: str | Path) -> Path:
    """Write the study's report to ``out`` (atomically) and return the path written."""
    from stabcli.report.page import write_page

    return write_page(render_kstudy_html(data), out)
