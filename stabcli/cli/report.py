"""``stabcli report``: look at a run directory, in the terminal or as one HTML file; or
compare several runs of one region (``--compare``)."""

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
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="RUN_DIR...",
            help="A run directory written by `stabcli sweep` or the monitor (default: the "
            "newest under runs/); several with --compare.",
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
            help="Where to write the HTML report (implies --html; default RUN_DIR/report.html, "
            "or compare.html with --compare).",
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
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Compare runs of one region (e.g. --optimizer mada, hyperadam and adam): "
            "final training loss by initial (beta1, beta2), one panel per run.",
        ),
    ] = False,
) -> None:
    """Report on a sweep or a monitored run: what was measured, each theory's verdicts, and
    figures.

    Without options it prints the summary and the per-point table. Examples:
    `stabcli report runs/20261122-224724 --html` writes runs/20261122-224724/report.html;
    `stabcli report runs/mada runs/hyperadam runs/adam --compare --html` writes compare.html.
    """
    from stabcli.errors import StabcliError

    if csv == "-" and markdown == "-":
        raise StabcliError("--csv - and --markdown - would both write to stdout; give one a file")
    from stabcli.report.targets import check_target

    check_target(csv, "csv", "--csv")  # before anything is read or written
    check_target(markdown, "markdown", "--markdown")
    page = out if out is not None else (Path("compare.html") if compare and html else None)
    check_target(page, "html", "--out")  # a run's own report.html is always its to replace
    given = list(run_dirs or [])
    if compare:
        _compare(given, html, out, csv, markdown)
        return
    if len(given) > 1:
        raise StabcliError(
            f"got {len(given)} run directories: give one, or --compare to compare several"
        )
    from stabcli.report.load import is_kstudy

    if given and is_kstudy(given[0]):
        _kstudy(given[0], html, out, csv, markdown)
        return
    from stabcli.report import get_summary, get_table, load_run, resolve_run_dir

    run = load_run(resolve_run_dir(given[0] if given else None))
    summary = get_summary(run)
    if summary.partial:
        typer.echo(f"stabcli: note: {summary.partial_note}", err=True)
    table = get_table(run.points, order=run.order)
    if csv is not None:
        from stabcli.report.summary import table_csv

        _emit(csv, table_csv(get_table(run.points, human=False, order=run.order)), "CSV table")
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


def _kstudy(
    path: Path, html: bool, out: Path | None, csv: str | None, markdown: str | None
) -> None:
    """`stabcli report STUDY_DIR` on a k-study: best test accuracy against k per strategy
    (HTML), the best-of-grid table (terminal, CSV, Markdown)."""
    from stabcli.report.kstudy import kstudy_table, partial_note, write_kstudy_html
    from stabcli.report.load import load_kstudy
    from stabcli.report.summary import table_csv, table_markdown

    data = load_kstudy(path)
    if partial_note(data) and (html or out is not None or csv is not None or markdown):
        typer.echo(f"stabcli: note: {partial_note(data)}", err=True)
    if csv is not None:
        _emit(csv, table_csv(kstudy_table(data)), "CSV table")
    if markdown is not None:
        _emit(markdown, table_markdown(kstudy_table(data)), "Markdown table")
    if html or out is not None:
        written = write_kstudy_html(data, out if out is not None else path / "report.html")
        typer.echo(str(written), err="-" in (csv, markdown))
    if not (html or out is not None or csv is not None or markdown is not None):
        from rich.console import Console

        from stabcli.report.kstudy import render_kstudy

        render_kstudy(data, Console())


def _compare(
    given: list[Path], html: bool, out: Path | None, csv: str | None, markdown: str | None
) -> None:
    """`stabcli report RUN... --compare`: the table in the terminal, or the exports."""
    from stabcli.errors import StabcliError
    from stabcli.report import load_run
    from stabcli.report.compare import _get_compare_info, compare_table, write_compare_html
    from stabcli.report.summary import table_csv, table_markdown

    seen: dict[Path, Path] = {}
    for path in given:  # the same run twice would be compared with itself
        if path.resolve() in seen:
            raise StabcliError(f"--compare: {path} is given twice (as {seen[path.resolve()]})")
        seen[path.resolve()] = path
    info = _get_compare_info([load_run(path) for path in given])
    table = compare_table(info)
    if csv is not None:
        _emit(csv, table_csv(table), "CSV comparison")
    if markdown is not None:
        _emit(markdown, table_markdown(table), "Markdown comparison")
    if html or out is not None:
        path = write_compare_html(info, out if out is not None else Path("compare.html"))
        typer.echo(str(path), err="-" in (csv, markdown))
    if not (html or out is not None or csv is not None or markdown is not None):
        from rich.console import Console

        from stabcli.report.terminal import render_compare

        render_compare(info, Console())
