"""``stabcli report``: look at a sweep's run directory, in the terminal or as one HTML file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def _emit(target: str, text: str, what: str) -> None:
    """Write an export to a file (and say so on stderr) or, for "-", to stdout."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from stabcli.report.summary import write_text

    write_text(target, text)
    typer.echo(f"{what} written to {target}", err=True)


def report(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN_DIR",
            help="A run directory written by `stabcli sweep` (default: the newest under runs/).",
            show_default=False,
        ),
    ] = None,
    html: Annotated[
        bool, typer.Option("--html", help="Write the interactive, self-contained HTML report.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Where to write the HTML report (implies --html; default RUN_DIR/report.html).",
            show_default=False,
        ),
    ] = None,
    csv: Annotated[
        str | None,
        typer.Option(
            "--csv", metavar="FILE", help="Export the per-point table as CSV ('-': stdout)."
        ),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option(
            "--markdown",
            metavar="FILE",
            help="Export the per-point table as Markdown ('-': stdout).",
        ),
    ] = None,
) -> None:
    """Report on a sweep: what was measured, each theory's verdicts, and figures.

    Without options it prints the summary and the per-point table. Example:
    `stabcli report runs/20261122-224724 --html` writes runs/20261122-224724/report.html.
    """
    from stabcli.report import get_summary, get_table, load_run, resolve_run_dir

    if csv == "-" and markdown == "-":
        from stabcli.errors import StabcliError

        raise StabcliError("--csv - and --markdown - would both write to stdout; give one a file")
    run = load_run(resolve_run_dir(run_dir))
    summary = get_summary(run)
    if summary.partial:
        typer.echo(f"stabcli: note: {summary.partial_note}", err=True)
    table = get_table(run.points)
    if csv is not None:
        from stabcli.report.summary import table_csv

        _emit(csv, table_csv(get_table(run.points, human=False)), "CSV table")
    if markdown is not None:
        from stabcli.report.summary import table_markdown

        _emit(markdown, table_markdown(table), "Markdown table")
    if html or out is not None:
        from stabcli.report import write_html

        path = write_html(run, out if out is not None else run.path / "report.html")
        # The path is the result; to stderr when stdout already carries an exported table.
        typer.echo(str(path), err="-" in (csv, markdown))
    if not (html or out is not None or csv is not None or markdown is not None):
        from rich.console import Console

        from stabcli.report.terminal import render_run

        render_run(run, Console())
