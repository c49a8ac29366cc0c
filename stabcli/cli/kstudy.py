"""``stabcli kstudy``: the paper's k-study (Figure 4), best test accuracy against k per
strategy, resumable like a sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from stabcli.store.kstudy import SubRunEntry
    from stabcli.sweep.kstudy import (
        KStudyPlan,
        KStudyRequest,
        KStudyResult,
        KStudyStart,
        SubRunDone,
    )

STUDY = "Study"
TRAINING = "Training (override the preset)"
OUTPUT = "Output"

#: The study's settings as this command spells them (a SettingError names settings).
FLAGS = {
    "k": "--k",
    "strategy": "--strategy",
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "steps": "--steps",
    "out": "--out",
    "points_per_batch": "--points-per-batch",
}
#: Peak learning rates of the default grid: three of App. H's {6e-5, 1e-4, 3e-4, 6e-4,
#: 1e-3, 3e-3}, around cnn-synthetic's 1e-3.
DEFAULT_LRS = (3e-4, 1e-3, 3e-3)
DEFAULT_KS = "1:4"


def parse_ks(given: list[str]) -> tuple[int, ...]:
    """``--k`` values: K or K0:K1 (both ends included), repeatable, in the order given."""
    from stabcli.errors import StabcliError

    ks: list[int] = []
    for text in given:
        lo, sep, hi = text.partition(":")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise StabcliError(f"--k must look like K or K0:K1 (e.g. 1:4), got {text!r}") from None
        if last < first:
            raise StabcliError(f"--k {text}: the range is empty (write it K0:K1, K0 <= K1)")
        if first < 1 or last > 1000:
            raise StabcliError(f"--k {text}: a study has k from 1 to 1000")
        ks += range(first, last + 1)
    return tuple(ks)


def kstudy(
    preset: Annotated[
        str, typer.Option(help="Preset name or TOML path.", rich_help_panel=TRAINING)
    ] = "cnn-synthetic",
    data: Annotated[
        Path | None, typer.Option(help="Path of the data file.", rich_help_panel=TRAINING)
    ] = None,
    k: Annotated[
        list[str] | None,
        typer.Option(
            "--k",
            metavar="K|K0:K1",
            help=f"k-Adam levels, a number or a range (repeatable; default {DEFAULT_KS}); "
            "k = 1 is Adam/AdamW.",
            show_default=False,
            rich_help_panel=STUDY,
        ),
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            help="inverse-exp, exp, scaled or naive, paper App. P (repeatable; default all four).",
            show_default=False,
            rich_help_panel=STUDY,
        ),
    ] = None,
    lr: Annotated[
        list[float] | None,
        typer.Option(
            help="Peak learning rate η of the grid (repeatable; default 3e-4, 1e-3, 3e-3).",
            show_default=False,
            rich_help_panel=STUDY,
        ),
    ] = None,
    weight_decay: Annotated[
        list[float] | None,
        typer.Option(
            help="Weight decay λ of the grid (repeatable; default the preset's); λ > 0 on a "
            "preset without weight decay trains AdamW's decoupled decay.",
            show_default=False,
            rich_help_panel=STUDY,
        ),
    ] = None,
    through: Annotated[
        str | None,
        typer.Option(
            metavar="BETA,GAMMA",
            help="Base pair (β̃, γ̃) the levels derive from, paper order (default 0.999,0.9).",
            show_default=False,
            rich_help_panel=STUDY,
        ),
    ] = None,
    torch_betas: Annotated[
        str | None,
        typer.Option(
            "--torch-betas",
            metavar="B1,B2",
            help="The base pair in PyTorch's order (beta1, beta2).",
            rich_help_panel=STUDY,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Steps per point (default the preset's); warm-up and evaluations scale with it.",
            show_default=False,
            rich_help_panel=TRAINING,
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:N or mps.", rich_help_panel=TRAINING)
    ] = None,
    points_per_batch: Annotated[
        int | None,
        typer.Option(min=1, help="Points per vectorized batch.", rich_help_panel=TRAINING),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Study directory (default: the same study's under runs/, else "
            "runs/kstudy-<timestamp>).",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bar.", rich_help_panel=OUTPUT),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON.", rich_help_panel=OUTPUT)
    ] = False,
) -> None:
    """Train a preset for each k and strategy over a grid of learning rates and weight
    decays, and show each one's best test accuracy (the paper's Figure 4).

    One run directory per (k, strategy) inside the study directory; re-running the same
    command resumes it. App. H's schedule: warm-up, then cosine decay to η/10.
    """
    from stabcli.errors import SettingError, StabcliError
    from stabcli.sweep.kstudy import plan_kstudy

    try:
        request = _request(
            preset,
            data,
            k,
            strategy,
            lr,
            weight_decay,
            through,
            torch_betas,
            steps,
            device,
            points_per_batch,
            out,
        )
        plan = plan_kstudy(request)
    except SettingError as err:
        raise StabcliError(err.render(FLAGS)) from None
    result = _run_with_progress(plan, quiet=quiet, bar=not (quiet or as_json))
    if as_json:
        print(json.dumps(_json_safe(_payload(result)), indent=2))
    else:
        from rich.console import Console

        render_result(result, plan, Console())


def _request(
    preset: str,
    data: Path | None,
    k: list[str] | None,
    strategy: list[str] | None,
    lr: list[float] | None,
    weight_decay: list[float] | None,
    through: str | None,
    torch_betas: str | None,
    steps: int | None,
    device: str | None,
    points_per_batch: int | None,
    out: Path | None,
) -> KStudyRequest:
    """The options as a :class:`~stabcli.sweep.kstudy.KStudyRequest` (option, then preset,
    then default)."""
    from stabcli.cli.params import parse_point, parse_torch_betas
    from stabcli.errors import StabcliError
    from stabcli.probe import load_preset
    from stabcli.sweep.kstudy import DEFAULT_BASE, STRATEGIES, KStudyRequest

    if through is not None and torch_betas is not None:
        raise StabcliError("give the base pair once: --through or --torch-betas, not both")
    if through is not None:
        base = parse_point(through, "--through")
    elif torch_betas is not None:
        base = parse_torch_betas(torch_betas)
    else:
        base = DEFAULT_BASE
    loaded = load_preset(preset)
    if data is not None:
        if not data.exists():  # a file, or a directory where the data set allows (CIFAR-10)
            raise StabcliError(f"--data {data}: no such file or directory")
        loaded = loaded.with_overrides(data_path=str(data.resolve()))
    return KStudyRequest(
        preset=loaded,
        ks=parse_ks(k or [DEFAULT_KS]),
        strategies=tuple(strategy) if strategy else STRATEGIES,
        lrs=tuple(lr) if lr else DEFAULT_LRS,
        weight_decays=tuple(weight_decay) if weight_decay else None,
        steps=steps,
        base=base,
        out=out,
        device=device,
        points_per_batch=points_per_batch,
    )


# ---------------------------------------------------------------------------- progress
def _subrun_name(entry: SubRunEntry, adam: str) -> str:
    return f"k=1 {adam}" if entry.k == 1 else f"k={entry.k} {entry.strategy}"


class _Display:
    """Progress on stderr: one bar over the study's point-steps in a terminal (its label
    the sub-run training), one line per sub-run elsewhere, or nothing (``quiet``)."""

    def __init__(self, plan: KStudyPlan, quiet: bool, bar: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from stabcli.cli.sweep_view import REFRESH_PER_SECOND, TimeLeftColumn

        self.plan, self.quiet = plan, quiet
        self.err = Console(stderr=True)
        self.bar = bar and self.err.is_terminal
        self.lines = not quiet and not self.bar
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeLeftColumn(),
            console=self.err,
            disable=not self.bar,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        self.task = self.progress.add_task("k-study", total=None, at_report=0.0)

    def say(self, text: str) -> None:
        self.err.print(text, highlight=False, soft_wrap=True, markup=False)

    def start(self, start: KStudyStart) -> None:
        plan = self.plan
        if not self.quiet:
            self.say(
                f"k-study on {plan.preset.name}: {len(plan.subruns)} sub-run(s) × "
                f"{plan.grid_size} point(s) (lr × weight decay), {plan.schedule.steps} steps "
                f"(warm-up {plan.schedule.warmup_steps}, cosine to lr/10) → {plan.out}"
            )
            if start.n_done:
                self.say(
                    f"resuming: {start.n_finished_subruns} sub-run(s) and {start.n_done} "
                    f"point(s) already finished, {start.n_todo} point(s) to run"
                )
        self.progress.reset(
            self.task,
            total=max(start.point_steps, 1),
            completed=0 if start.point_steps else 1,
            at_report=0.0,
        )
        self.progress.start()

    def subrun_start(self, entry: SubRunEntry) -> None:
        self.progress.update(self.task, description=_subrun_name(entry, self.plan.adam_label))

    def advance(self, point_steps: int) -> None:
        elapsed = self.progress.tasks[0].elapsed or 0.0
        self.progress.update(self.task, advance=point_steps, at_report=elapsed)

    def subrun_done(self, done: SubRunDone) -> None:
        if self.lines:
            from stabcli.cli.sweep_view import clock

            elapsed = self.progress.tasks[0].elapsed or 0.0
            what = "found finished" if done.n_run == 0 else f"{done.n_run} point(s) trained"
            self.say(
                f"sub-run {done.index}/{done.n_subruns} "
                f"{_subrun_name(done.entry, self.plan.adam_label)}: {what}, "
                f"elapsed {clock(elapsed)}"
            )

    def notice(self, line: str) -> None:
        if not self.quiet:
            self.say(line)

    def stop(self) -> None:
        if self.progress.live.is_started:
            self.progress.stop()


def _run_with_progress(plan: KStudyPlan, quiet: bool, bar: bool) -> KStudyResult:
    """Run the study with its progress on stderr; Ctrl-C or SIGTERM leaves it resumable."""
    from stabcli.cli.sweep_view import resumable_on_interrupt
    from stabcli.sweep.kstudy import run_kstudy

    display = _Display(plan, quiet, bar)
    try:
        with resumable_on_interrupt(f"finished sub-runs and points are saved in {plan.out}"):
            return run_kstudy(
                plan,
                on_progress=display.advance,
                on_start=display.start,
                on_subrun_start=display.subrun_start,
                on_subrun=display.subrun_done,
                on_notice=display.notice,
            )
    finally:
        display.stop()


# ------------------------------------------------------------------------------ results
def _number(value: float, digits: int = 4) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def render_result(result: KStudyResult, plan: KStudyPlan, console: Console) -> None:
    """The best grid point of each (k, strategy), k = 1 (Adam/AdamW) marked, and a footer."""
    from rich.table import Table

    table = Table(title="best over the lr × weight decay grid, per (k, strategy)")
    for name in ("k", "strategy", "best test acc", "best test loss", "lr", "weight decay"):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for best in result.best:
        adam = best.k == 1
        table.add_row(
            str(best.k),
            f"{best.label} (k = 1)" if adam else best.strategy,
            _number(best.best_test_accuracy),
            _number(best.best_test_loss),
            f"{best.lr:g}",
            f"{best.weight_decay:g}",
            style="bold cyan" if adam else None,
        )
    console.print(table)
    base = plan.request.base
    console.print(
        f"study {result.path}: base (β, γ) = ({base.beta:g}, {base.gamma:g}), i.e. torch "
        f"betas=({base.gamma:g}, {base.beta:g}); {result.n_run} point(s) trained now, "
        f"{result.n_reused} found finished",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    console.print(f"figure: stabcli report {result.path} --html", highlight=False, markup=False)


def _payload(result: KStudyResult) -> dict[str, object]:
    from dataclasses import asdict

    return {
        "study_dir": str(result.path),
        "points_run": result.n_run,
        "points_reused": result.n_reused,
        "best": [asdict(b) for b in result.best],
        "points": json.loads(result.points.to_json(orient="records")),
    }


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
