"""Several runs of one region side by side: final training loss by initial (beta1, beta2).

The MADA paper (arXiv 2401.08893, Section 5, Figure 8) compares optimizers by the final
training loss each reaches from every initial (β1, β2) of a grid: MADA and HyperAdam, which
learn their betas from there, beside Adam, which keeps them. ``stabcli report RUN_A RUN_B
RUN_C --compare`` draws that figure from run directories swept over the same points with
different optimizers (``stabcli sweep --optimizer mada|hyperadam|adam``): one panel per
run, a heatmap when the points form a grid in PyTorch's order, colored on one shared scale.

The final training loss of a point is the mean of its training loss (traces' ``loss``)
over the last :data:`LAST_STEPS` recorded steps: a single step's loss is one minibatch's,
noisy enough to reorder close optimizers. A point whose loss is not finite there is
marked diverged. Runs are comparable only if they hold the same points, trained the same
number of steps on the same preset; anything else is a one-line error naming the runs.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stabcli import __version__
from stabcli.errors import StabcliError
from stabcli.report._display import empty_figure
from stabcli.report.load import RunData

if TYPE_CHECKING:
    import plotly.graph_objects as go

TITLE = "Final training loss by initial (beta1, beta2), one panel per run (MADA paper, Fig. 8)"
#: Steps at the end of a run whose training losses are averaged into the final loss.
LAST_STEPS = 10
#: Digits a (β, γ) is matched to across runs (a point id holds the settings, which differ).
MATCH_DIGITS = 12
#: Colorscale of the loss (low = dark).
LOSS_COLORSCALE = "Viridis"


@dataclass(frozen=True)
class ComparedRun:
    """One run of the comparison: its name and each common point's final loss."""

    path: Path
    name: str  # the panel's title: optimizer (and hyper-lr), or the run's own name
    loss: np.ndarray  # (P,) final training loss per common point; nan where diverged
    best: np.ndarray  # (P,) bool: the lowest final loss of all runs at that point


@dataclass(frozen=True)
class CompareInfo:
    """What the comparison shows: the common points in PyTorch's order, and every run."""

    beta1: np.ndarray  # (P,) initial torch beta1 = γ
    beta2: np.ndarray  # (P,) initial torch beta2 = β
    runs: list[ComparedRun]
    grid: bool  # the points are the full product of their beta1 and beta2 values
    z_range: tuple[float, float]  # shared color range of the finite final losses
    steps: int | None  # steps per point (the same in every run)
    preset: str  # the preset every run trained


def _train(run: RunData) -> dict[str, Any]:
    settings = run.config.get("settings")
    preset = settings.get("preset") if isinstance(settings, dict) else None
    train = preset.get("train") if isinstance(preset, dict) else None
    return train if isinstance(train, dict) else {}


def _preset_name(run: RunData) -> str:
    settings = run.config.get("settings")
    preset = settings.get("preset") if isinstance(settings, dict) else None
    name = preset.get("name") if isinstance(preset, dict) else None
    return str(name or run.config.get("preset_name") or "")


def run_name(run: RunData) -> str:
    """A panel's title: the optimizer, with its hyper-learning rate when it learns betas."""
    name = run.optimizer
    hyper = _train(run).get("hyper_lr")
    if name in ("hyperadam", "mada"):
        name += (
            f" (hyper-lr {hyper:g})" if isinstance(hyper, int | float) else " (default hyper-lr)"
        )
    if name == "kadam":
        name += f" (k = {_train(run).get('k')}, {_train(run).get('strategy')})"
    return name


def final_losses(run: RunData, last: int = LAST_STEPS) -> pd.Series:
    """Each point's mean training loss over its last ``last`` recorded steps, by point id;
    nan when one of them is not finite (the point diverged)."""
    traces = run.traces
    if traces.empty or "loss" not in traces:
        return pd.Series(dtype=float)
    tail = traces.sort_values(["point_id", "step"]).groupby("point_id", sort=False).tail(last)
    loss = pd.to_numeric(tail["loss"], errors="coerce")
    finite = np.isfinite(loss.to_numpy(float))
    frame = pd.DataFrame({"point_id": tail["point_id"], "loss": loss, "finite": finite})
    grouped = frame.groupby("point_id")
    return grouped["loss"].mean().where(grouped["finite"].all())


def _key(beta: float, gamma: float) -> tuple[float, float]:
    return (round(float(beta), MATCH_DIGITS), round(float(gamma), MATCH_DIGITS))


def _check_comparable(runs: list[RunData]) -> None:
    """One-line errors for runs that cannot be compared (module docstring)."""
    if len(runs) < 2:
        raise StabcliError("--compare needs at least two run directories")
    for run in runs:
        if run.kind == "monitor":
            raise StabcliError(
                f"{run.path} is a monitored run; --compare takes sweeps over one region"
            )
    first = runs[0]
    keys = {_key(b, g) for b, g in zip(first.points["beta"], first.points["gamma"], strict=True)}
    for run in runs[1:]:
        for what, mine, theirs in (
            ("preset", _preset_name(first), _preset_name(run)),
            ("steps", _train(first).get("steps"), _train(run).get("steps")),
        ):
            if mine != theirs:
                raise StabcliError(
                    f"{first.path} and {run.path} differ in {what} ({mine} vs {theirs}): "
                    "their final losses are not comparable"
                )
        other = {_key(b, g) for b, g in zip(run.points["beta"], run.points["gamma"], strict=True)}
        if other != keys:
            missing = sorted(keys - other) or sorted(other - keys)
            where = run.path if keys - other else first.path
            beta, gamma = missing[0]
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise StabcliError(
                f"{first.path} and {run.path} cover different regions: {where} lacks "
                f"(beta1, beta2) = ({gamma:g}, {beta:g}){more}; compare runs swept over the "
                "same points"
            )


def _get_compare_info(runs: list[RunData], last: int = LAST_STEPS) -> CompareInfo:
    """The comparison of ``runs`` (module docstring); a one-line StabcliError when they do
    not hold the same points of the same preset and steps."""
    _check_comparable(runs)
    first = runs[0].points
    beta2 = first["beta"].to_numpy(float)  # β = torch beta2
    beta1 = first["gamma"].to_numpy(float)  # γ = torch beta1
    keys = [_key(b, g) for b, g in zip(beta2, beta1, strict=True)]
    losses = []
    for run in runs:
        by_key = dict(
            zip(
                (_key(b, g) for b, g in zip(run.points["beta"], run.points["gamma"], strict=True)),
                run.points["point_id"].astype(str),
                strict=True,
            )
        )
        final = final_losses(run, last)
        losses.append(np.array([final.get(by_key[k], np.nan) for k in keys], dtype=float))
    table = np.array(losses)  # (R, P): runs, points
    finite_table = np.where(np.isfinite(table), table, np.inf)
    lowest = finite_table.min(axis=0) if len(keys) else np.array([])  # (P,); inf: all diverged
    names = [run_name(r) for r in runs]
    if len(set(names)) < len(names):  # two runs of one optimizer: tell them apart by folder
        names = [f"{n} ({r.path.name})" for n, r in zip(names, runs, strict=True)]
    compared = [
        ComparedRun(r.path, n, row, np.isfinite(row) & (row == lowest))
        for r, n, row in zip(runs, names, table, strict=True)
    ]
    finite = table[np.isfinite(table)]
    z_range = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    grid = len(set(beta1)) * len(set(beta2)) == len(set(keys))
    steps = _train(runs[0]).get("steps")
    return CompareInfo(
        beta1=beta1,
        beta2=beta2,
        runs=compared,
        grid=grid,
        z_range=z_range,
        steps=int(steps) if isinstance(steps, int | float) else None,
        preset=_preset_name(runs[0]),
    )


def compare_table(info: CompareInfo) -> pd.DataFrame:
    """One row per point, in PyTorch's order first: the final loss of each run and the
    run with the lowest."""
    table = pd.DataFrame(
        {
            "beta1": info.beta1,
            "beta2": info.beta2,
            "β": info.beta2,
            "γ": info.beta1,
            **{r.name: r.loss for r in info.runs},
        }
    )
    names = np.array([r.name for r in info.runs], dtype=object)
    best = np.array([r.best for r in info.runs])  # (R, P)
    table["lowest"] = [", ".join(names[best[:, i]]) for i in range(len(table))]
    return table


def _cell(loss: float) -> str:
    return f"{loss:.3f}" if math.isfinite(loss) else "diverged"


def plot_compare(info: CompareInfo) -> go.Figure:
    """One heatmap per run on a shared color scale (scatter when the points are no grid);
    cells give the loss, "diverged" where it was not finite."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not info.runs or not len(info.beta1):
        return empty_figure(TITLE, "no common points")
    fig = make_subplots(
        rows=1,
        cols=len(info.runs),
        subplot_titles=[r.name for r in info.runs],
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    lo, hi = info.z_range
    b1 = sorted(set(info.beta1.tolist()))
    b2 = sorted(set(info.beta2.tolist()))
    for col, run in enumerate(info.runs, start=1):
        hover = [
            f"beta1={g:.6g}, beta2={b:.6g} (β={b:.6g}, γ={g:.6g})<br>final loss "
            f"{_cell(v)}{' (lowest)' if best else ''}"
            for g, b, v, best in zip(info.beta1, info.beta2, run.loss, run.best, strict=True)
        ]
        common = {"coloraxis": "coloraxis", "hovertemplate": "%{hovertext}<extra></extra>"}
        if info.grid:
            z = np.full((len(b2), len(b1)), np.nan)
            text = np.full((len(b2), len(b1)), "", dtype=object)
            tips = np.full((len(b2), len(b1)), "", dtype=object)
            for g, b, v, tip, best in zip(
                info.beta1, info.beta2, run.loss, hover, run.best, strict=True
            ):
                i, j = b2.index(b), b1.index(g)
                z[i, j], text[i, j], tips[i, j] = v, _cell(v) + (" ★" if best else ""), tip
            fig.add_trace(
                go.Heatmap(
                    x=[f"{v:.6g}" for v in b1],
                    y=[f"{v:.6g}" for v in b2],
                    z=z,
                    text=text,
                    texttemplate="%{text}",
                    hovertext=tips,
                    name=run.name,
                    **common,
                ),
                row=1,
                col=col,
            )
            fig.update_xaxes(type="category", row=1, col=col)
            fig.update_yaxes(type="category", row=1, col=col)
        else:
            fig.add_trace(
                go.Scatter(
                    x=info.beta1,
                    y=info.beta2,
                    mode="markers+text",
                    text=[
                        _cell(v) + (" ★" if b else "")
                        for v, b in zip(run.loss, run.best, strict=True)
                    ],
                    textposition="top center",
                    hovertext=hover,
                    marker={"size": 14, "color": run.loss, "coloraxis": "coloraxis"},
                    name=run.name,
                    hovertemplate="%{hovertext}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title={"text": "initial beta1 (γ)"}, row=1, col=col)
    fig.update_yaxes(title={"text": "initial beta2 (β)"}, row=1, col=1)
    steps = f", {info.steps} steps" if info.steps else ""
    fig.update_layout(
        title={"text": f"{TITLE}<br><sub>{info.preset}{steps}; ★ lowest at that point</sub>"},
        coloraxis={
            "colorscale": LOSS_COLORSCALE,
            "cmin": lo,
            "cmax": hi,
            "colorbar": {"title": {"text": "final loss"}},
        },
        showlegend=False,
    )
    return fig


def render_compare_html(info: CompareInfo) -> str:
    """The comparison as one self-contained page: the figure and the table."""
    from stabcli.report.page import PLOT_CONFIG, SORTER, page_head, table_html

    div = plot_compare(info).to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id="fig-compare",
        config=PLOT_CONFIG,
        default_height="560px",
    )
    runs = "".join(
        f"<li>{html.escape(r.name)}: <code>{html.escape(str(r.path))}</code></li>"
        for r in info.runs
    )
    caption = (
        f"Mean training loss over each point's last {LAST_STEPS} steps, by the initial "
        "(beta1, beta2) it started from (β = torch beta2, γ = torch beta1); one color scale "
        "for all panels. HyperAdam and MADA learn their betas from there; Adam keeps them."
    )
    return "\n".join(
        [
            *page_head(TITLE),
            f"<p>stabcli {__version__} · runs compared:</p><ul>{runs}</ul>",
            f"<figure>{div}<figcaption>{html.escape(caption)}</figcaption></figure>",
            "<h2>Final training loss per point</h2>",
            table_html(compare_table(info)),
            f"<script type='text/javascript'>{SORTER}</script></body></html>",
        ]
    )


def write_compare_html(info: CompareInfo, out: str | Path) -> Path:
    """Write the comparison page to ``out`` (atomically) and return the path written."""
    from stabcli.report.page import write_page

    return write_page(render_compare_html(info), out, what="comparison")
