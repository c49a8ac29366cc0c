"""The report's words and numbers: the headline and the per-point table.

The headline is :mod:`stabcli.measure.headline`'s, computed from points.csv's rows
(:mod:`stabcli.report.measured`): falsifications first, then classes, each theory's
verdicts with the median rate error on exactly the points where it predicted growth and
growth was seen, the bound check, and why points are undetermined (docs/theory.md §9).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stabcli.errors import StabcliError
from stabcli.measure import Headline
from stabcli.report.load import RunData
from stabcli.report.measured import has_verdicts, headline_of
from stabcli.theory.domain import decay_text

#: Columns of the per-point table, in order: (points.csv column, header). Every column of
#: store.schema.POINT_COLUMNS, the deciding ones first.
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
    ("rate", "rate"),
    ("rate_low", "rate low"),
    ("rate_high", "rate high"),
    ("rate_stderr", "rate stderr"),
    ("rate_lag1", "residual lag-1"),
    ("class_reason", "why"),
    ("exact_rate", "exact rate ρ_n"),
    ("paper_rate", "paper rate |C|/2"),
    ("closer_theory", "closer theory"),
    ("exact_verdict", "exact verdict"),
    ("exact_rel_error", "exact rate error"),
    ("paper_verdict", "paper verdict"),
    ("paper_rel_error", "paper rate error"),
    ("settle_step", "settles at"),
    ("window_rule", "window rule"),
    ("window_start", "window from"),
    ("window_stop", "window to"),
    ("steps_needed", "steps needed"),
    ("central_slope", "central slope"),
    ("central_at", "central at"),
    ("power_exponent", "log-log exponent"),
    ("power_halfwidth", "exponent ±"),
    ("growth_shape", "growth shape"),
    ("sqrt_n", "√n"),
    ("bound_ratio_max", "max u/bound"),
    ("bound_ratio_step", "max u/bound at"),
    ("bound_ratio_settled", "max u/bound settled"),
    ("bound_check", "bound check"),
    ("bound_note", "bound note"),
    ("diverged_step", "diverged at"),
    ("underflow_step", "invalid from"),
    ("max_tensor", "max tensor"),
    ("final_loss", "final loss"),
    ("best_test_loss", "best test loss"),
    ("point_id", "point id"),
)
#: Optional columns of the table (store.schema: k-Adam's, learned betas', a monitor's),
#: shown after the bound check when a run has them; then one per k-Adam level.
OPTIONAL_TABLE_COLUMNS = (
    ("level_beta", "β_i (levels)"),
    ("level_gamma", "γ_i (levels)"),
    ("level_ratio_max", "max level u/bound"),
    ("level_worst", "at level"),
    ("level_check", "level check"),
    ("final_beta", "final β"),
    ("final_gamma", "final γ"),
    ("first_unstable_step", "entered γ²>β at"),
    ("unstable_class", "after entering"),
    ("unstable_rate", "rate after entering"),
    ("unstable_reason", "why (after entering)"),
    ("bound_kind", "bound"),
    ("off_face_step", "off MADA's face at"),
    ("param_groups", "param groups"),
    ("path", "path"),
)
#: Columns of whole numbers (steps), shown without decimals.
STEP_COLUMNS = (
    "settle_step",
    "window_start",
    "window_stop",
    "steps_needed",
    "central_at",
    "bound_ratio_step",
    "diverged_step",
    "underflow_step",
    "level_worst",
    "first_unstable_step",
    "off_face_step",
)
#: The point's columns in PyTorch's order, for a region typed that way.
TORCH_FIRST = (("torch_beta1", "torch beta1 (γ)"), ("torch_beta2", "torch beta2 (β)"))
#: points.csv's columns holding a decay rate, β and γ in either order.
DECAY_COLUMNS = ("beta", "gamma", "torch_beta1", "torch_beta2")


@dataclass(frozen=True)
class ReportSummary:
    """The headline of a report: what was run, how much of it, and what it found."""

    run_dir: str
    description: str  # the region
    status: str  # state.json's status
    finished: int  # points in points.csv
    planned: int  # points the sweep set out to run
    partial: bool
    headline: Headline  # measure.headline over the finished points
    measured: bool  # False for rows an older stabcli wrote (no verdicts)
    n_invalid: int = 0  # points whose second moment left the dtype's range at some step
    dtype: str = ""  # the training dtype (from config.json), e.g. "float32"
    batching: str = ""  # how a factory model's points ran (config.json's batching), or ""
    optimizer: str = "adam"  # the optimizer trained (a monitor: the watched class)
    order: str = "paper"  # how the region's points were typed: "paper" or "torch"

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
        """The headline as plain-text lines; falsifications start with "FALSIFIED"."""
        out = [f"run {self.run_dir}: {self.description}"]
        if self.optimizer not in ("adam", ""):
            out.append(f"optimizer: {self.optimizer}")
        if self.batching:
            out.append(f"batching: {self.batching}")
        if self.order == "torch":
            out.append("points typed in PyTorch's order: (beta1, beta2) = (γ, β)")
        out.append(self.partial_note if self.partial else f"{self.finished} points (complete)")
        if not self.measured:
            out.append(
                "these points were measured by an earlier stabcli (no verdicts recorded); "
                "run the sweep again to measure them with this version"
            )
        out += self.headline.lines()
        if self.n_invalid:
            dtype = self.dtype or "the training dtype"
            out.append(
                f"numerically invalid: {self.n_invalid} point(s) from some step on, where the "
                f"second moment v fell below {dtype}'s normal range and m/sqrt(v) overshoots "
                "(as torch.optim.Adam does); the bound check calls them numerically invalid, "
                "not a probe bug (see the 'invalid from' column; float64 reaches further)"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values (non-finite numbers as None)."""
        h = self.headline

        def number(x: float) -> float | None:
            return x if math.isfinite(x) else None

        def tally(t: Any) -> dict[str, Any]:
            return {
                "verdicts": {str(v): n for v, n in t.counts},
                "median_rel_error": number(t.median_rel_error),
            }

        return {
            "run_dir": self.run_dir,
            "description": self.description,
            "status": self.status,
            "n_points": h.n_points,
            "planned": self.planned,
            "partial": self.partial,
            "classes": {str(c): n for c, n in h.classes},
            "paper": tally(h.paper),
            "exact": tally(h.exact),
            "closer_theory": dict(h.closer),
            "falsifications": [
                {"beta": f.beta, "gamma": f.gamma, "theory": str(f.theory), "what": f.what}
                for f in h.falsifications
            ],
            "bound_ratio_max": number(h.worst_ratio),
            "bound_ratio_settled": number(h.worst_ratio_window),
            "bound_check": str(h.worst_status),
            "n_invalid": self.n_invalid,
            "undetermined": dict(h.undetermined),
            "steps_needed": h.steps_needed,
            "optimizer": self.optimizer,
            "batching": self.batching or None,
            "order": self.order,
            "levels": _levels_json(h, number),
            "paths": _paths_json(h),
            "lines": self.lines(),
        }


def _levels_json(h: Headline, number: Any) -> dict[str, Any] | None:
    """k-Adam's per-level bound check (measure.headline.LevelTally), or None."""
    t = h.levels
    if t is None:
        return None
    return {
        "k": t.k,
        "level_ratio_max": number(t.worst_ratio),
        "level": t.worst_level or None,
        "level_betas": list(t.worst_pair) if t.worst_pair else None,
        "point": list(t.worst_point) if t.worst_point else None,
        "level_check": str(t.worst_status),
        "n_broken": t.n_broken,
    }


def _paths_json(h: Headline) -> dict[str, Any] | None:
    """Learned betas' paths (measure.headline.PathTally), or None."""
    t = h.paths
    if t is None:
        return None
    return {
        "n_paths": t.n_paths,
        "entered": len(t.entered),
        "first_unstable_steps": list(t.entered),
        "after": dict(t.after),
        "n_no_bound": t.n_no_bound,
    }


def get_summary(run: RunData) -> ReportSummary:
    """The headline of ``run``, computed from points.csv."""
    points = run.points
    return ReportSummary(
        run_dir=str(run.path),
        description=run.description,
        status=run.status,
        finished=run.finished,
        planned=run.planned,
        partial=run.is_partial,
        headline=headline_of(points, run.measure_settings),
        measured=has_verdicts(points),
        n_invalid=int(points["underflow_step"].notna().sum()),
        dtype=run.dtype,
        batching=run.batching,
        optimizer=run.optimizer,
        order=run.order,
    )


def table_columns(points: pd.DataFrame, order: str = "paper") -> list[tuple[str, str]]:
    """(points.csv column, header) of the per-point table for these rows: every column of
    TABLE_COLUMNS, the optional ones the run has after the bound check, one per k-Adam
    level, and, for a region typed in PyTorch's order, torch beta1 and beta2 first."""
    levels = [c for c in points.columns if str(c).startswith("level_ratio_l")]
    extra = [(c, h) for c, h in OPTIONAL_TABLE_COLUMNS if c in points]
    extra += [(c, f"u/bound level {c.removeprefix('level_ratio_l')}") for c in levels]
    columns = list(TABLE_COLUMNS)
    at = next(i for i, (c, _) in enumerate(columns) if c == "bound_note") + 1
    columns[at:at] = extra
    if order == "torch":
        columns = [
            (c, dict(TORCH_FIRST).get(c, h)) for c, h in columns if c not in dict(TORCH_FIRST)
        ]
        columns[1:1] = list(TORCH_FIRST)  # after the position
    return [(c, h) for c, h in columns if c in points]


def get_table(points: pd.DataFrame, human: bool = True, order: str = "paper") -> pd.DataFrame:
    """The per-point table (stored values, region order), with human headers or, for
    machine-readable exports, points.csv's column names; the point in PyTorch's order
    first when the region was typed that way (``order="torch"``), else the paper's."""
    columns = table_columns(points, order)
    table = points[[c for c, _ in columns]].copy()
    for column in STEP_COLUMNS:  # steps: whole numbers
        if column in table:
            table[column] = table[column].round().astype("Int64")
    return table.rename(columns=dict(columns)) if human else table


#: Headers of the columns holding a decay rate (β, γ in either order): shown with the
#: digits that keep them off 1 (:func:`stabcli.theory.domain.decay_text`).
DECAY_HEADERS = frozenset(
    [h for c, h in TABLE_COLUMNS if c in DECAY_COLUMNS] + [h for _, h in TORCH_FIRST]
)


def format_cell(value: object, digits: int = 5, decay: bool = False) -> str:
    """A table cell for humans: floats to ``digits`` significant digits (a ``decay`` rate
    β or γ with more where those would round it to 1), missing ones empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return decay_text(float(value), digits) if decay else f"{value:.{digits}g}"
    return str(value)


def table_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown."""

    def cell(value: object, decay: bool = False) -> str:
        return format_cell(value, decay=decay).replace("|", "\\|")

    decays = [c in DECAY_HEADERS for c in table.columns]
    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, d) for v, d in zip(row, decays, strict=True)) + " |")
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
