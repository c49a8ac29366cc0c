"""The report's words and numbers: the agreement headline and the per-point table.

The headline uses :mod:`stabcli.theory.agreement`, the definition the sweep uses too: a
theory classifies a point correctly when it predicts growth (paper: region B−; exact:
γ² > β) exactly when the point was measured growing or diverged.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stabcli.errors import StabcliError
from stabcli.report.load import RunData
from stabcli.theory.agreement import AgreementSummary, PointOutcome, summarize

#: Columns of the per-point table, in order: (column, header).
TABLE_COLUMNS = (
    ("position", "position"),
    ("beta", "β"),
    ("gamma", "γ"),
    ("torch_beta1", "torch beta1"),
    ("torch_beta2", "torch beta2"),
    ("c_value", "C"),
    ("paper_region", "paper region"),
    ("exact_stable", "exact stable"),
    ("measured_class", "measured"),
    ("diverged_step", "diverged at"),
    ("underflow_step", "invalid from"),
    ("measured_slope", "measured slope"),
    ("fit_slope", "fit slope"),
    ("paper_rate", "paper rate |C|/2"),
    ("exact_rate", "exact rate ρ_n"),
    ("agrees_with", "agrees with"),
    ("bound_ratio_max", "max u/bound"),
    ("max_tensor", "max tensor"),
    ("final_loss", "final loss"),
    ("best_test_loss", "best test loss"),
    ("point_id", "point id"),
)


#: Measured/bound ratios up to this count as within float rounding (float32's ε is 1.2e-7).
BOUND_RATIO_TOLERANCE = 1e-6


def bound_verdict(ratio: float) -> str:
    """Words for the largest measured/exact-bound ratio, which may never exceed 1."""
    if ratio <= 1.0:
        return "within the exact bound"
    if ratio <= 1.0 + BOUND_RATIO_TOLERANCE:
        return "within the exact bound up to float rounding"
    return "ABOVE the exact bound: a bug in the probe"


@dataclass(frozen=True)
class ReportSummary:
    """The headline of a report: what was run, how much of it, and how the theories fared."""

    run_dir: str
    description: str  # the region
    status: str  # state.json's status
    finished: int  # points in points.csv
    planned: int  # points the sweep set out to run
    partial: bool
    agreement: AgreementSummary  # both theories' scores
    agrees_with: dict[str, int]  # counts of the agrees_with column ("both", "paper", ...)
    max_bound_ratio: float  # largest measured/bound ratio (must be <= 1)
    n_invalid: int = 0  # points whose second moment left the dtype's range at some step
    dtype: str = ""  # the training dtype (from config.json), e.g. "float32"

    @property
    def partial_note(self) -> str:
        """ "partial run: 3 of 8 points (status: interrupted)", or "" for a complete run."""
        if not self.partial:
            return ""
        return (
            f"partial run: {self.finished} of {self.planned} points finished "
            f"(status: {self.status})"
        )

    def lines(self) -> list[str]:
        """The headline as plain-text lines."""
        out = [f"run {self.run_dir}: {self.description}"]
        if self.partial:
            out.append(self.partial_note)
        else:
            out.append(f"{self.finished} points (complete)")
        out.append(self.agreement.sentence())
        if self.agrees_with:
            counts = ", ".join(f"{k} {v}" for k, v in self.agrees_with.items())
            out.append(f"measurement agreed with: {counts}")
        if math.isfinite(self.max_bound_ratio):
            out.append(
                f"largest max-update / exact bound: {self.max_bound_ratio:.9g} "
                f"({bound_verdict(self.max_bound_ratio)})"
            )
        if self.n_invalid:
            dtype = self.dtype or "the training dtype"
            out.append(
                f"numerically invalid: {self.n_invalid} point(s) from some step on, where the "
                f"second moment v fell below {dtype}'s normal range and m/sqrt(v) blew up "
                "(as torch.optim.Adam does); the bound check stops there (see the "
                "'invalid from' column; float64 reaches further)"
            )
        return out


def _outcomes(points: pd.DataFrame) -> list[PointOutcome]:
    """Scored points: those with a measured class."""
    return [
        PointOutcome.from_row(row)
        for row in points.to_dict("records")
        if row["measured_class"] and not pd.isna(row["exact_stable"])
    ]


def get_summary(run: RunData) -> ReportSummary:
    """The headline of ``run``, computed from points.csv."""
    points = run.points
    agrees = points["agrees_with"][points["agrees_with"] != ""].value_counts()
    order = [k for k in ("both", "paper", "exact", "neither") if k in agrees] + [
        k for k in agrees.index if k not in ("both", "paper", "exact", "neither")
    ]
    ratios = points["bound_ratio_max"].to_numpy(float)
    ratios = ratios[np.isfinite(ratios)]
    invalid = points["underflow_step"].notna()
    return ReportSummary(
        run_dir=str(run.path),
        description=run.description,
        status=run.status,
        finished=run.finished,
        planned=run.planned,
        partial=run.is_partial,
        agreement=summarize(_outcomes(points)),
        agrees_with={str(k): int(agrees[k]) for k in order},
        max_bound_ratio=float(ratios.max()) if len(ratios) else math.nan,
        n_invalid=int(invalid.sum()),
        dtype=run.dtype,
    )


def get_table(points: pd.DataFrame, human: bool = True) -> pd.DataFrame:
    """The per-point table (stored values, region order), with human headers or, for
    machine-readable exports, points.csv's column names."""
    columns = [c for c, _ in TABLE_COLUMNS if c in points]
    table = points[columns].copy()
    for column in ("diverged_step", "underflow_step"):  # steps: whole numbers
        if column in table:
            table[column] = table[column].astype("Int64")
    return table.rename(columns=dict(TABLE_COLUMNS)) if human else table


def format_cell(value: object, digits: int = 5) -> str:
    """A table cell for humans: floats to ``digits`` significant digits, missing ones empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}"
    return str(value)


def table_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown."""

    def cell(value: object) -> str:
        return format_cell(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def table_csv(table: pd.DataFrame) -> str:
    """The table as CSV (full precision)."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue()


def write_text(target: str | Path, text: str) -> None:
    """Write ``text`` to a file; a one-line StabcliError when that fails."""
    from stabcli.store.atomic import atomic_write_text

    path = Path(target)
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise StabcliError(f"cannot write {path}: {err.strerror or err}") from None
