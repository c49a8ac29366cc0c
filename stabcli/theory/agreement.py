"""Both theories' predictions at one point and step, in points.csv's words.

:func:`predict` gives C, the paper's region and rate (Section 3.1) and the exact theory's
stability and ρ_n at a step (docs/theory.md (3.9)); the report uses it to fill these
columns for rows written without them. Measured rates, classes and each theory's verdict
are :mod:`stabcli.measure`'s (docs/theory.md §9).
"""

from __future__ import annotations

from dataclasses import dataclass

from stabcli.theory import exact, paper


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
