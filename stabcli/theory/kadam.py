"""k-Adam: the adaptive normalization applied k times (paper Section 4.2, Appendices P-S).

Each level i has its own (β_i, γ_i) and obeys its own bound in both theories, so the
stability of k-Adam is the table of its levels' verdicts (THEORY.md, "k-Adam").
"""

from __future__ import annotations

from enum import StrEnum

from stabcli.errors import StabcliError
from stabcli.theory.analysis import PointAnalysis, analyze_point
from stabcli.theory.domain import HyperPoint


class KAdamStrategy(StrEnum):
    """How k-Adam's per-level (β_i, γ_i) derive from a base (β̃, γ̃) (paper Appendix P)."""

    INVERSE_EXP = "inverse-exp"  # β_i = 1 − (1−β̃)^{1/k}: keeps the product of (1−β_i) at 1−β̃
    EXP = "exp"  # β_i = β̃^k
    SCALED = "scaled"  # β_i = β̃/k
    NAIVE = "naive"  # β_i = β̃


def parse_strategy(name: str) -> KAdamStrategy:
    """The strategy called ``name``, or a one-line error listing the known ones."""
    try:
        return KAdamStrategy(name)
    except ValueError:
        known = ", ".join(s.value for s in KAdamStrategy)
        raise StabcliError(f"unknown k-Adam strategy {name!r}; known strategies: {known}") from None


def level_decay(base: float, k: int, strategy: KAdamStrategy) -> float:
    """One level's decay from the base decay (β̃ or γ̃), per paper Appendix P."""
    match strategy:
        case KAdamStrategy.INVERSE_EXP:
            return 1.0 - (1.0 - base) ** (1.0 / k)
        case KAdamStrategy.EXP:
            return base**k
        case KAdamStrategy.SCALED:
            return base / k
        case KAdamStrategy.NAIVE:
            return base


def kadam_levels(base: HyperPoint, k: int, strategy: KAdamStrategy) -> list[HyperPoint]:
    """(β_i, γ_i) for levels i = 1..k. All four strategies are uniform across levels."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise StabcliError(f"k must be an integer >= 1 (number of k-Adam levels), got {k!r}")
    level = HyperPoint(level_decay(base.beta, k, strategy), level_decay(base.gamma, k, strategy))
    return [level] * k


def kadam_table(
    base: HyperPoint, k: int, strategy: KAdamStrategy, step: int = 1000, threshold: float = 1e3
) -> list[PointAnalysis]:
    """Both theories' verdicts for each level of k-Adam, in level order."""
    return [
        analyze_point(level.beta, level.gamma, step=step, threshold=threshold)
        for level in kadam_levels(base, k, strategy)
    ]
