"""Progress and result rendering for ``stabcli sweep`` (stderr for progress, stdout for
results, so output pipes).

Before training, the points the run is too short to measure are listed with the
``--steps`` that would measure them all (docs/theory.md (9.3)), with where the batches run
(on a Ray cluster) and how a factory model trains them. In a terminal a progress bar over
point-steps refreshes twice a second, its time left estimated from the elapsed time per
point-step; it covers every worker (Ray tasks report their point-steps as they go, and a
batch that starts again takes its part back). Without a terminal (a pipe, a CI log) one
line is printed per committed batch instead.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from stabcli.errors import Interrupted
from stabcli.sweep.run import BatchSaved, SweepOutcome, SweepPlan, SweepStart, run_sweep

#: Refreshes of the progress bar per second (its elapsed time and estimate move between
#: the engine's reports, which come once per block of steps).
REFRESH_PER_SECOND = 2


def seconds_left(elapsed_now: float, elapsed_at_report: float, done: int, total: int) -> float:
    """Estimated seconds to go: the time per point-step so far times the point-steps left,
    counted down since the last report.

    At the last report, ``done`` point-steps had taken ``elapsed_at_report`` seconds, so the
    whole run takes about elapsed_at_report · total / done; what is left is that less the
    time elapsed now. nan before the first report.
    """
    if done <= 0 or total <= 0:
        return math.nan
    return max(elapsed_at_report * total / done - elapsed_now, 0.0)


def clock(seconds: float) -> str:
    """h:mm:ss, or "?" when unknown."""
    if not math.isfinite(seconds):
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class TimeLeftColumn(ProgressColumn):
    """Elapsed time and the estimate of :func:`seconds_left`, re-rendered at every refresh."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        at_report = float(task.fields.get("at_report", 0.0))
        left = seconds_left(elapsed, at_report, int(task.completed), int(task.total or 0))
        text = f"{clock(elapsed)} (~{clock(left)} left)"
        return Text(text, style="progress.remaining", no_wrap=True, overflow="ellipsis")


class _Display:
    """Progress on stderr: a bar in a terminal, one line per batch elsewhere, or nothing."""

    def __init__(self, plan: SweepPlan, err: Console, quiet: bool, bar: bool) -> None:
        self.plan, self.err, self.quiet = plan, err, quiet
        self.bar = bar and err.is_terminal
        self.lines = not quiet and not self.bar
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("point-steps"),
            TimeLeftColumn(),
            console=err,
            disable=not self.bar,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        name = escape(plan.request.preset.name)
        self.task = self.progress.add_task(name, total=None, at_report=0.0)
        self.started = time.monotonic()
        self.steps = 0
        self.total = 0
        self.batches = 0

    def say(self, text: str, style: str | None = None) -> None:
        """A line of plain text (never markup: paths may hold "[/x]")."""
        self.err.print(text, style=style, highlight=False, soft_wrap=True, markup=False)

    def start(self, start: SweepStart) -> None:
        if not self.quiet:
            self.err.print(
                f"[bold]{escape(self.plan.request.region.description)}[/] → "
                f"{escape(str(self.plan.out))}",
                highlight=False,
                soft_wrap=True,
            )
            if start.note:
                self.say(f"note: {start.note}")
            if start.n_done:
                self.say(
                    f"resuming: {start.n_done} point(s) already finished, {start.n_todo} to run"
                )
            for line in (start.executor, start.batching):
                if line:
                    self.say(line)
            if start.executor and start.n_batches:
                self.say(f"{start.n_batches} batch(es) of up to {start.points_per_batch} point(s)")
            for line in self.plan.windows.lines():
                self.say(line, style="yellow")
        self.steps = start.steps
        self.total = start.n_todo * start.steps
        self.started = time.monotonic()
        self.progress.reset(  # the clock starts now, after the run directory was opened
            self.task, total=max(self.total, 1), completed=0 if start.n_todo else 1, at_report=0.0
        )
        self.progress.start()

    def advance(self, k: int) -> None:
        elapsed = self.progress.tasks[0].elapsed or 0.0  # the one task
        self.progress.update(self.task, advance=k, at_report=elapsed)

    def notice(self, line: str) -> None:
        """A line about the run (a batch run again), above the bar."""
        if not self.quiet:
            self.say(line, style="yellow")

    def saved(self, batch: BatchSaved) -> None:
        self.batches += 1
        if not self.lines:
            return
        elapsed = time.monotonic() - self.started
        done = batch.n_saved * self.steps  # point-steps of the batches committed so far
        left = seconds_left(elapsed, elapsed, done, self.total)
        self.say(
            f"batch {self.batches}: {batch.n_saved} of {batch.n_todo} points saved "
            f"({done:,} of {self.total:,} point-steps), elapsed {clock(elapsed)}, "
            f"left ~{clock(left)}"
        )

    def stop(self) -> None:
        if self.progress.live.is_started:
            self.progress.stop()


def run_with_progress(plan: SweepPlan, quiet: bool, bar: bool = True) -> SweepOutcome:
    """Run the sweep with its progress on stderr (module docstring).

    ``quiet``: nothing on stderr but errors; ``bar``: a progress bar when stderr is a
    terminal (else, and with ``bar`` False, one line per batch). Nothing is printed before
    the sweep has validated its input, so a bad input shows only its one-line error.
    User-given text (paths, preset names) is escaped: Rich would read "[/x]" in a path as
    markup.
    """
    display = _Display(plan, Console(stderr=True), quiet, bar)
    saved = f"finished batches are saved in {plan.out}"
    try:
        with resumable_on_interrupt(saved):
            return run_sweep(
                plan,
                on_progress=display.advance,
                on_start=display.start,
                on_saved=display.saved,
                on_notice=display.notice,
            )
    finally:
        display.stop()


@contextlib.contextmanager
def resumable_on_interrupt(saved: str) -> Iterator[None]:
    """Ctrl-C, and `kill` (SIGTERM) like it, end the block with a one-line
    :class:`Interrupted` saying what is ``saved`` and that re-running resumes."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {saved}: re-run the same command to resume") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def show_outcome(outcome: SweepOutcome, as_json: bool, quiet: bool) -> None:
    """The per-point table and the headline, as `stabcli report` prints them (or JSON)."""
    from stabcli.report import get_summary, load_run
    from stabcli.report.terminal import render_run, render_summary

    run = load_run(outcome.run.path)
    summary = get_summary(run)
    if as_json:
        points = json.loads(outcome.points.to_json(orient="records"))
        payload = {
            "run_dir": str(outcome.run.path),
            "summary": summary.to_json(),
            "points_run": outcome.n_run,
            "points_reused": outcome.n_reused,
            "points": points,
        }
        print(json.dumps(_json_safe(payload), indent=2))
        return
    if quiet:
        render_summary(summary, Console())
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
