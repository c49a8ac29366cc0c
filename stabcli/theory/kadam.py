"""k-Adam: the adaptive normalization applied k times (paper Section 4.2, Appendices P-S).

Each level i has its own (β_i, γ_i) and obeys its own bound in both theories, so the
stability of k-Adam is the table of its levels' verdicts (docs/theory.md §6). All four
strategies of Appendix P give every level the same (β_i, γ_i), so each distinct level is
analysed once and a table of any k up to :data:`MAX_K` costs the same as k = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stabcli.errors import StabcliError
from stabcli.theory.analysis import PointAnalysis, analyze_point
from stabcli.theory.domain import HyperPoint

#: Most levels accepted: far beyond the paper's k = 1..10 (Figure 4), small enough that a
#: per-level list stays cheap.
MAX_K = 1000


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
    k = validate_k(k)
    beta, gamma = level_decay(base.beta, k, strategy), level_decay(base.gamma, k, strategy)
    try:
        level = HyperPoint(beta, gamma)
    except StabcliError as err:  # e.g. exp: β̃^k underflows to 0 for a large k
        raise StabcliError(
            f"k-Adam strategy {strategy.value} with k = {k} gives levels outside the valid "
            f"range: {err}"
        ) from None
    return [level] * k


def validate_k(k: object, name: str = "k") -> int:
    """``k`` as an int in [1, :data:`MAX_K`], or a one-line :class:`StabcliError`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        shown = repr(k) if len(repr(k)) <= 24 else f"a {len(repr(k))}-character number"
        raise StabcliError(
            f"{name} must be an integer from 1 to {MAX_K} (number of k-Adam levels), got {shown}"
        )
    return k


def kadam_table(
    base: HyperPoint, k: int, strategy: KAdamStrategy, step: int = 1000, threshold: float = 1e3
) -> list[PointAnalysis]:
    """Both theories' verdicts for each level of k-Adam, in level order.

    Each distinct (β_i, γ_i) is analysed once; equal levels share one :class:`PointAnalysis`.
    """
    analyses: dict[HyperPoint, PointAnalysis] = {}
    table = []
    for level in kadam_levels(base, k, strategy):
        if level not in analyses:
            analyses[level] = analyze_point(level.beta, level.gamma, step, threshold)
        table.append(analyses[level])
    return table


@dataclass(frozen=True)
class LevelRun:
    """Consecutive levels first..last (1-based, inclusive) with one and the same analysis."""

    first: int
    last: int
    analysis: PointAnalysis

    @property
    def label(self) -> str:
        """The levels as shown: "3" for one level, "1–10" for a run."""
        return str(self.first) if self.first == self.last else f"{self.first}–{self.last}"


def level_runs(table: list[PointAnalysis]) -> list[LevelRun]:
    """``table`` (one analysis per level) as runs of consecutive equal levels."""
    runs: list[LevelRun] = []
    for i, analysis in enumerate(table, start=1):
        if runs and runs[-1].analysis == analysis:
            runs[-1] = LevelRun(runs[-1].first, i, analysis)
        else:
            runs.append(LevelRun(i, i, analysis))
    return runs
