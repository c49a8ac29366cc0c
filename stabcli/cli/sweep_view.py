"""Progress bar and result rendering for ``stabcli sweep`` (stderr for progress, stdout for
results, so output pipes)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from stabcli.errors import Interrupted
from stabcli.sweep.run import SweepOutcome, SweepRequest, run_sweep


def run_with_progress(request: SweepRequest, quiet: bool) -> SweepOutcome:
    """Run the sweep with a progress bar over points x steps on stderr (none when quiet).

    Nothing is printed before the sweep has validated its input, so a bad input shows only
    its one-line error.
    """
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("point-steps"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )
    task = progress.add_task(f"probes ({request.preset.name})", total=None)

    def on_start(n_todo: int, steps: int) -> None:
        if not quiet:
            err.print(f"[bold]{request.region.description}[/] → {request.out}", highlight=False)
            done = len(request.region.points) - n_todo
            if done:
                err.print(f"resuming: {done} point(s) already finished, {n_todo} to run")
        progress.update(task, total=max(n_todo * steps, 1), completed=0 if n_todo else 1)
        progress.start()

    try:
        return run_sweep(
            request, on_progress=lambda k: progress.advance(task, k), on_start=on_start
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; finished batches are saved in {request.out}: re-run the same "
            "command to resume"
        ) from None
    finally:
        if progress.live.is_started:
            progress.stop()


def _f(x: object, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def show_outcome(outcome: SweepOutcome, as_json: bool, quiet: bool) -> None:
    """The per-point table and the headline (or one JSON object)."""
    out = Console()
    if as_json:
        points = json.loads(outcome.points.to_json(orient="records"))
        payload = {
            "run_dir": str(outcome.run.path),
            "summary": asdict(outcome.summary),
            "points_run": outcome.n_run,
            "points_reused": outcome.n_reused,
            "points": points,
        }
        print(json.dumps(_json_safe(payload), indent=2))
        return
    if not quiet:
        out.print(points_table(outcome))
    out.print(f"[bold]{outcome.summary.sentence()}[/]", highlight=False)
    ratio = outcome.points["bound_ratio_max"].max()
    check = "within the exact bound" if not ratio > 1 + 1e-5 else "ABOVE the exact bound: a bug"
    out.print(f"largest max-update / exact bound: {_f(ratio, 7)} ({check})", highlight=False)
    out.print(f"run directory: {outcome.run.path}", highlight=False)


def _rate(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.4f}"


def points_table(outcome: SweepOutcome) -> Table:
    """One row per point: prediction of both theories beside the measurement."""
    table = Table(
        header_style="bold",
        title="β = torch beta2, γ = torch beta1; growth rates of log‖u_n‖∞ per step",
    )
    for name in ("β", "γ", "C", "paper", "exact", "slope", "class", "agrees"):
        table.add_column(name, justify="right")
    for r in outcome.points.to_dict("records"):
        cls = r["measured_class"]
        if cls == "diverged":
            cls = f"diverged@{r['diverged_step']}"
        paper = _rate(r["paper_rate"]) if r["paper_region"] == "B-" else r["paper_region"]
        exact = "stable" if r["exact_stable"] else _rate(r["exact_rate"])
        table.add_row(
            _f(r["beta"], 5),
            _f(r["gamma"], 5),
            _f(r["c_value"], 3),
            paper,
            exact,
            _rate(r["measured_slope"]),
            cls,
            r["agrees_with"],
        )
    return table


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
