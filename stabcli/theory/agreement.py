"""Which theory a measurement agreed with, and the headline over a sweep.

A theory predicts growth for a point when its bound grows without limit: the paper in B−
(C < 0), the exact theory when γ² > β (docs/theory.md (3.5)). Its classification is correct
when that prediction matches what the probe measured (growing or diverged vs bounded). Pure Python,
so the sweep (which writes points.csv) and the report (which reads it) share one definition.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stabcli.theory import exact, paper

#: Measured classes of a probe point.
GROWING, BOUNDED, DIVERGED = "growing", "bounded", "diverged"
#: Two predicted rates count as equally good when within this relative distance.
RATE_TIE = 0.10


@dataclass(frozen=True)
class Prediction:
    """Both theories' predictions for one point at the slope step (columns of points.csv)."""

    c_value: float  # C(β, γ)
    paper_region: str  # "B+", "B0" or "B-"
    exact_stable: bool  # γ² < β
    paper_rate: float  # |C|/2 in B−, else 0
    exact_rate: float  # ρ_n at the slope step when γ² > β, else 0


def predict(beta: float, gamma: float, step: int) -> Prediction:
    """What the paper (Section 3.1) and the exact theory (docs/theory.md (3.9)) predict at n."""
    return Prediction(
        c_value=paper.c_value(beta, gamma),
        paper_region=paper.region(beta, gamma).value,
        exact_stable=exact.exact_stable(beta, gamma),
        paper_rate=paper.paper_rate(beta, gamma),
        exact_rate=float(exact.exact_rate_at(beta, gamma, step)),
    )


@dataclass(frozen=True)
class PointOutcome:
    """What the two theories predicted for a point and what was measured."""

    paper_grows: bool  # the paper predicts growth (region B−)
    exact_grows: bool  # the exact theory predicts growth (γ² > β)
    paper_rate: float  # |C|/2 in B−, else 0
    exact_rate: float  # ρ_n at the slope step when γ² > β, else 0
    measured_class: str  # "growing", "bounded" or "diverged"
    measured_slope: float  # measured d log‖u_n‖∞/dn at the slope step (nan if unknown)

    @property
    def measured_grows(self) -> bool:
        return self.measured_class in (GROWING, DIVERGED)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PointOutcome:
        """A points.csv row (as a mapping; text, numbers or booleans) as an outcome."""
        stable = row["exact_stable"]
        if isinstance(stable, str):
            stable = stable.strip().lower() == "true"
        return cls(
            paper_grows=row["paper_region"] == paper.Region.B_MINUS.value,
            exact_grows=not bool(stable),
            paper_rate=_float(row["paper_rate"]),
            exact_rate=_float(row["exact_rate"]),
            measured_class=str(row["measured_class"]),
            measured_slope=_float(row["measured_slope"]),
        )


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def relative_error(predicted: float, measured: float) -> float:
    """|predicted − measured| / |measured| (nan when undefined)."""
    if not (math.isfinite(predicted) and math.isfinite(measured)) or measured == 0:
        return math.nan
    return abs(predicted - measured) / abs(measured)


def agrees_with(o: PointOutcome) -> str:
    """'both', 'paper', 'exact' or 'neither': which theory the measurement agreed with.

    First by classification (growth predicted iff measured); when both classify a growing
    point correctly, by the closer predicted rate unless they are within RATE_TIE.
    """
    paper_ok = o.paper_grows == o.measured_grows
    exact_ok = o.exact_grows == o.measured_grows
    if paper_ok and exact_ok and o.measured_class == GROWING:
        ep = relative_error(o.paper_rate, o.measured_slope)
        ee = relative_error(o.exact_rate, o.measured_slope)
        if math.isfinite(ep) and math.isfinite(ee) and abs(ep - ee) > RATE_TIE:
            return "paper" if ep < ee else "exact"
    if paper_ok and exact_ok:
        return "both"
    if paper_ok:
        return "paper"
    return "exact" if exact_ok else "neither"


@dataclass(frozen=True)
class AgreementSummary:
    """The headline of a sweep."""

    n_points: int
    n_growing: int  # measured growing (not diverged) points with a finite slope
    paper_correct: int  # points the paper's theory classified correctly
    exact_correct: int  # points the exact theory classified correctly
    paper_median_rel_error: float  # median |paper rate − slope|/slope over growing points
    exact_median_rel_error: float  # same for the exact ρ_n

    def sentence(self) -> str:
        def pct(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"

        return (
            f"classified correctly: paper {self.paper_correct}/{self.n_points}, exact "
            f"{self.exact_correct}/{self.n_points}; median relative rate error on "
            f"{self.n_growing} growing points: paper {pct(self.paper_median_rel_error)}, "
            f"exact {pct(self.exact_median_rel_error)}"
        )


def summarize(outcomes: Iterable[PointOutcome]) -> AgreementSummary:
    """Counts of correct classifications and median rate errors over growing points."""
    items = list(outcomes)
    growing = [o for o in items if o.measured_class == GROWING and math.isfinite(o.measured_slope)]

    def median(errors: list[float]) -> float:
        finite = [e for e in errors if math.isfinite(e)]
        return statistics.median(finite) if finite else math.nan

    return AgreementSummary(
        n_points=len(items),
        n_growing=len(growing),
        paper_correct=sum(o.paper_grows == o.measured_grows for o in items),
        exact_correct=sum(o.exact_grows == o.measured_grows for o in items),
        paper_median_rel_error=median(
            [relative_error(o.paper_rate, o.measured_slope) for o in growing]
        ),
        exact_median_rel_error=median(
            [relative_error(o.exact_rate, o.measured_slope) for o in growing]
        ),
    )
