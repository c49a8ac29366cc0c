"""Running a registered figure into its directory, and every figure in turn.

A figure runs into ``OUT/<figure>/``: its sub-runs (sweep run directories, resumable), its
page ``figure.html`` and ``assessment.json``, the record of a finished figure (claim,
measured, held, scale, seconds, versions). A figure whose ``assessment.json`` is there is
not run again (``overwrite`` runs it afresh); an interrupted one resumes its sub-runs.
Nothing in ``OUT`` is ever deleted but a figure's own files, which are replaced.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from stabcli import __version__
from stabcli.errors import StabcliError
from stabcli.reproduce.assessment import Assessment, Scale, check_scale
from stabcli.reproduce.figures import Figure, FigureContext, FigureOutcome

ASSESSMENT_FILE = "assessment.json"
PAGE_FILE = "figure.html"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
#: Packages whose versions an assessment records (those installed).
VERSIONED = ("numpy", "torch", "pandas", "plotly")


@dataclass(frozen=True)
class FigureRecord:
    """assessment.json: a finished figure."""

    figure: str
    title: str
    paper_ref: str
    claim: str
    measured: str
    held: bool | None
    scale: str
    seconds: float  # wall time of the run that finished it
    setup: str  # model, points, steps
    subruns: tuple[str, ...]  # beneath the figure's directory
    page: str  # the figure's HTML, beside assessment.json
    created: str
    versions: dict[str, str]

    @property
    def assessment(self) -> Assessment:
        return Assessment(self.claim, self.measured, self.held)

    @property
    def verdict(self) -> str:
        return self.assessment.verdict

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "verdict": self.verdict}, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> FigureRecord | None:
        """The record in ``path`` (a figure directory), None when there is none; an
        unreadable one is a one-line error."""
        file = path / ASSESSMENT_FILE
        if not file.is_file():
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            return cls(
                **{k: data[k] for k in cls.__dataclass_fields__ if k != "subruns"},
                subruns=tuple(data["subruns"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StabcliError(
                f"cannot read {file}: {err}; remove it or use --overwrite to run the figure again"
            ) from None


@dataclass(frozen=True)
class FigureRun:
    """One figure of ``reproduce`` (or ``reproduce all``): its record, or why it failed."""

    figure: Figure
    record: FigureRecord | None  # None: it failed
    reused: bool  # found finished, not run again
    error: str = ""  # one line, when it failed

    @property
    def verdict(self) -> str:
        return self.record.verdict if self.record is not None else "failed"


def versions() -> dict[str, str]:
    """Python's and the installed packages' versions (read from metadata: nothing imported)."""
    found = {"stabcli": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def has_gpu() -> bool:
    """Whether torch sees a CUDA device here."""
    import torch

    return bool(torch.cuda.is_available())


def check_paper_scale(fig: Figure, device: str | None) -> None:
    """``--scale paper`` is refused in one line for a figure without a paper-sized setup,
    and for one that trains nanoGPT or a CIFAR-10 CNN on a machine with no GPU, unless
    ``--device cpu`` forces it."""
    if not fig.paper_scale:
        raise StabcliError(
            f"{fig.name} has no paper scale here (its analysis is sized for a CPU); use --scale cpu"
        )
    if fig.needs_gpu_at_paper and device != "cpu" and not has_gpu():
        raise StabcliError(
            f"{fig.name} at --scale paper trains the paper's model (arXiv 2411.05746 App. H) "
            "and needs a GPU; none found here: use --scale cpu, or force --device cpu"
        )


def run_figure(
    fig: Figure,
    scale: str,
    out: Path,
    *,
    device: str | None = None,
    overwrite: bool = False,
    notice: Callable[[str], None] = lambda _line: None,
) -> FigureRun:
    """Run ``fig`` into ``out/<name>`` (module docstring), or read it back when finished."""
    known: Scale = check_scale(scale)
    if known == "paper":
        check_paper_scale(fig, device)
    where = out / fig.name
    found = FigureRecord.read(where)
    if found is not None and not overwrite:
        if found.scale != known:
            raise StabcliError(
                f"{where} holds {fig.name} at --scale {found.scale}; use another --out, or "
                "--overwrite to replace it"
            )
        return FigureRun(fig, found, reused=True)
    runner = fig.run
    started = time.perf_counter()
    context = FigureContext(known, where, device, overwrite, notice)
    outcome = runner(context)
    seconds = time.perf_counter() - started
    record = _record(fig, known, outcome, seconds)
    _write(where, fig, record, outcome)
    return FigureRun(fig, record, reused=False)


def _record(fig: Figure, scale: Scale, outcome: FigureOutcome, seconds: float) -> FigureRecord:
    a = outcome.assessment
    return FigureRecord(
        figure=fig.name,
        title=fig.title,
        paper_ref=fig.paper_ref,
        claim=a.claim,
        measured=a.measured,
        held=None if a.held is None else bool(a.held),  # numpy's bool is not JSON's
        scale=scale,
        seconds=round(seconds, 3),
        setup=outcome.setup,
        subruns=outcome.subruns,
        page=PAGE_FILE,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=versions(),
    )


def _write(where: Path, fig: Figure, record: FigureRecord, outcome: FigureOutcome) -> None:
    """The page first, then assessment.json (the record that the figure is finished)."""
    from stabcli.report.reproduce import FigurePage, write_figure_page
    from stabcli.store.atomic import atomic_write_text

    page = FigurePage(
        name=fig.name,
        title=fig.title,
        paper_ref=fig.paper_ref,
        claim=record.claim,
        measured=record.measured,
        verdict=record.verdict,
        scale=record.scale,
        seconds=record.seconds,
        setup=record.setup,
        sections=outcome.sections,
        subruns=outcome.subruns,
    )
    try:
        write_figure_page(page, where / PAGE_FILE)
        atomic_write_text(where / ASSESSMENT_FILE, record.to_json())
    except OSError as err:
        raise StabcliError(f"cannot write {where}: {err.strerror or err}") from None


def run_all(
    figures: Sequence[Figure],
    scale: str,
    out: Path,
    *,
    device: str | None = None,
    overwrite: bool = False,
    notice: Callable[[str], None] = lambda _line: None,
    on_figure: Callable[[FigureRun], None] | None = None,
) -> list[FigureRun]:
    """Every figure in turn; one that fails is reported and the next one runs. The summary
    (summary.md, summary.json in ``out``) is written after each figure."""
    check_scale(scale)
    runs: list[FigureRun] = []
    for fig in figures:
        notice(f"{fig.name}: {fig.title}")
        try:
            done = run_figure(fig, scale, out, device=device, overwrite=overwrite, notice=notice)
        except StabcliError as err:
            done = FigureRun(fig, None, reused=False, error=" ".join(str(err).split()))
        except Exception as err:  # a bug in one figure must not stop the others
            line = " ".join(f"{type(err).__name__}: {err}".split())
            done = FigureRun(fig, None, reused=False, error=line)
        runs.append(done)
        write_summary(runs, out, scale)
        if on_figure is not None:
            on_figure(done)
    return runs


def summary_rows(runs: Sequence[FigureRun]) -> list[dict[str, Any]]:
    """One row per figure: name, paper reference, claim, measured, verdict, seconds."""
    rows = []
    for r in runs:
        rec = r.record
        rows.append(
            {
                "figure": r.figure.name,
                "paper_ref": r.figure.paper_ref,
                "claim": r.figure.claim,
                "measured": rec.measured if rec is not None else f"failed: {r.error}",
                "held": rec.held if rec is not None else None,
                "verdict": r.verdict,
                "seconds": rec.seconds if rec is not None else None,
                "reused": r.reused,
            }
        )
    return rows


def write_summary(runs: Sequence[FigureRun], out: Path, scale: str) -> None:
    """summary.json and summary.md in ``out``, atomically."""
    from stabcli.store.atomic import atomic_write_text

    rows = summary_rows(runs)
    body = {"scale": scale, "versions": versions(), "figures": rows}
    lines = [
        f"# stabcli reproduce all --scale {scale}",
        "",
        "| figure | paper | claim | measured | held |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row["figure"], row["paper_ref"], row["claim"], row["measured"], row["verdict"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    try:
        atomic_write_text(out / SUMMARY_JSON, json.dumps(body, indent=2) + "\n")
        atomic_write_text(out / SUMMARY_MD, "\n".join(lines) + "\n")
    except OSError as err:
        raise StabcliError(f"cannot write the summary in {out}: {err.strerror or err}") from None
