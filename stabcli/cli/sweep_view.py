"""Progress bar and result rendering for ``stabcli sweep`` (stderr for progress, stdout for
results, so output pipes)."""

from __future__ import annotations

import json
import math
import signal
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from stabcli.errors import Interrupted
from stabcli.sweep.run import SweepOutcome, SweepPlan, SweepStart, run_sweep


def run_with_progress(plan: SweepPlan, quiet: bool) -> SweepOutcome:
    """Run the sweep with a progress bar over points x steps on stderr (none when quiet).

    Nothing is printed before the sweep has validated its input, so a bad input shows only
    its one-line error. User-given text (paths, preset names) is escaped: Rich would read
    "[/x]" in a path as markup.
    """
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("point-steps"),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )
    task = progress.add_task(f"probes ({escape(plan.request.preset.name)})", total=None)

    def on_start(start: SweepStart) -> None:
        if not quiet:
            description = escape(plan.request.region.description)
            out = escape(str(plan.out))
            err.print(f"[bold]{description}[/] → {out}", highlight=False, soft_wrap=True)
            if start.note:
                err.print(f"note: {escape(start.note)}", highlight=False, soft_wrap=True)
            if start.n_done:
                err.print(
                    f"resuming: {start.n_done} point(s) already finished, {start.n_todo} to run"
                )
        total = start.n_todo * start.steps
        progress.update(task, total=max(total, 1), completed=0 if start.n_todo else 1)
        progress.start()

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops it like Ctrl-C
    try:
        return run_sweep(plan, on_progress=lambda k: progress.advance(task, k), on_start=on_start)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; finished batches are saved in {plan.out}: re-run the same "
            "command to resume"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if progress.live.is_started:
            progress.stop()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def show_outcome(outcome: SweepOutcome, as_json: bool, quiet: bool) -> None:
    """The per-point table and the headline, as `stabcli report` prints them (or JSON)."""
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
    from stabcli.report import load_run
    from stabcli.report.summary import get_summary
    from stabcli.report.terminal import render_run, render_summary

    run = load_run(outcome.run.path)
    if quiet:
        render_summary(get_summary(run), Console())
    else:
        render_run(run, Console())


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
