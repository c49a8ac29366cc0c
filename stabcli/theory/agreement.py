"""Both theories' predictions at one point and step, in points.csv's words.

:func:`predict` gives C, the paper's region and rate (Section 3.1) and the exact theory's
stability and ρ_n at a step (docs/theory.md (3.9)); the report uses it to fill these
columns for rows written without them. Measured rates, classes and verdicts are
:mod:`stabcli.measure`'s (docs/theory.md §9).

:func:`agrees_with` is the scoring the measurement module replaced (its verdicts and
``closer_theory``); it stays only while :mod:`stabcli.monitor` still calls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
