"""``stabcli reproduce``: one command per figure of the papers, each a resumable directory
with the paper's claim, what was measured and whether it held (stabcli.reproduce)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stabcli.errors import StabcliError

if TYPE_CHECKING:
    from rich.console import Console

    from stabcli.reproduce.runner import FigureRun

#: Where figures go without --out: one directory per scale, so scales never mix.
DEFAULT_ROOT = Path("runs") / "reproduce"


def reproduce(
    figure: Annotated[
        str | None,
        typer.Argument(help="Figure to reproduce (see --list), or 'all'.", show_default=False),
    ] = None,
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            help="cpu (minutes on a CPU), paper (the paper's setup, App. H; nanoGPT and "
            "CIFAR-10 figures need a GPU) or test (seconds).",
        ),
    ] = "cpu",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Output directory (default runs/reproduce/<scale>).", show_default=False
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="cuda, mps or cpu (default: cuda, then mps, then cpu); --scale paper's "
            "GPU figures run on a CPU only when given --device cpu.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Run finished figures again (their files replaced)."),
    ] = False,
    list_figures: Annotated[
        bool, typer.Option("--list", help="List the figures and exit.")
    ] = False,
) -> int:
    """Reproduce a figure of the papers: the figure, the paper's claim, what was measured
    here and whether the claim held, in OUT/<figure>/ (figure.html, assessment.json)."""
    from rich.console import Console

    from stabcli.reproduce.assessment import check_scale
    from stabcli.reproduce.figures import FIGURES
    from stabcli.reproduce.figures import figure as find

    if list_figures:
        _print_list(Console())
        return 0
    if figure is None:
        raise StabcliError("give a figure (see stabcli reproduce --list), or all")
    known = check_scale(scale)
    chosen = list(FIGURES) if figure == "all" else [find(figure)]
    root = out if out is not None else DEFAULT_ROOT / known
    err = Console(stderr=True)

    def notice(line: str) -> None:
        err.print(line, markup=False, highlight=False)

    from stabcli.cli.sweep_view import resumable_on_interrupt
    from stabcli.reproduce.runner import run_all, run_figure

    saved = f"finished figures and sweep points are saved in {root}"
    if figure != "all":
        with resumable_on_interrupt(saved):
            done = run_figure(
                chosen[0], known, root, device=device, overwrite=overwrite, notice=notice
            )
        _print_summary(Console(), [done], root)
        return 0
    with resumable_on_interrupt(saved):
        runs = run_all(chosen, known, root, device=device, overwrite=overwrite, notice=notice)
    _print_summary(Console(), runs, root)
    return 1 if any(r.record is None for r in runs) else 0


def _print_list(console: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from stabcli.reproduce.figures import FIGURES

    # narrow columns kept whole; the source and the claim share the rest of the width
    table = Table(header_style="bold", show_lines=True)
    table.add_column("figure", no_wrap=True)
    table.add_column("cpu min", justify="right", no_wrap=True)
    table.add_column("GPU", no_wrap=True)
    table.add_column("source and claim", ratio=1)
    for f in FIGURES:
        gpu = ("yes" if f.needs_gpu_at_paper else "no") if f.paper_scale else "-"
        name = f.name if f.available() else f"{f.name}\n(not yet)"
        what = f"[dim]{escape(f.paper_ref)}[/dim]\n{escape(f.claim)}"
        table.add_row(escape(name), f"{f.cpu_minutes:g}", gpu, what)
    console.print(table)
    total = sum(f.cpu_minutes for f in FIGURES)
    console.print(
        f"GPU: whether --scale paper needs one (-: no paper scale). all --scale cpu: about "
        f"{total:.0f} minutes on a 2-core CPU",
        highlight=False,
    )


def _print_summary(console: Console, runs: list[FigureRun], root: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(header_style="bold", show_lines=True)
    for name in ("figure", "claim", "measured", "held"):
        table.add_column(name)
    colors = {"held": "green", "not held": "red", "undetermined": "yellow", "failed": "red"}
    for r in runs:
        rec = r.record
        claim = rec.claim if rec is not None else r.figure.claim
        measured = rec.measured if rec is not None else f"failed: {r.error}"
        verdict = f"[{colors.get(r.verdict, 'white')}]{escape(r.verdict)}[/]"
        table.add_row(escape(r.figure.name), escape(claim), escape(measured), verdict)
    console.print(table)
    for r in runs:
        if r.record is not None:
            page = root / r.figure.name / r.record.page
            note = " (finished earlier: not run again; --overwrite runs it again)"
            line = f"{r.figure.name}: {page}{note if r.reused else ''}"
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if len(runs) > 1:
        line = f"summary: {root / 'summary.md'}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    sys.stdout.flush()
