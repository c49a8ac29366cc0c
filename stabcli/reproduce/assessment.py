"""What every reproduced figure reports beside its data: the paper's claim, what was
measured here, and whether the claim held.

Each analysis in this package takes a ``scale`` ("cpu", the default: minutes on a 2-core
CPU; "test": a seconds-long reduced form for CI; "paper": the paper's own setup, arXiv
2411.05746 App. H, where the analysis has one) and returns a frozen dataclass of the
numbers its figure plots, with an :class:`Assessment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from stabcli.errors import StabcliError

Scale = Literal["cpu", "paper", "test"]
SCALES: tuple[Scale, ...] = ("cpu", "paper", "test")
_Plan = TypeVar("_Plan")


@dataclass(frozen=True)
class Assessment:
    """The paper's claim in one sentence, what was measured, and whether the claim held."""

    claim: str  # the paper's claim, with where it is made (section, figure, equation)
    measured: str  # what this run found, with numbers and the tolerance applied
    held: bool | None  # None: the run could not decide (too few usable points, …)

    @property
    def verdict(self) -> str:
        """The verdict as a word for tables: held, not held or undetermined."""
        if self.held is None:
            return "undetermined"
        return "held" if self.held else "not held"


def check_scale(scale: str) -> Scale:
    """``scale`` if it is one this package runs, else a one-line :class:`StabcliError`."""
    for known in SCALES:
        if scale == known:
            return known
    raise StabcliError(f"unknown scale {scale!r}; expected one of: {', '.join(SCALES)}")


def plan_for(plans: Mapping[Scale, _Plan], scale: str, what: str) -> _Plan:
    """The plan of ``scale`` among an analysis's ``plans``; a scale it has no plan for (e.g.
    "paper" for an analysis with no paper-sized setup) is a one-line :class:`StabcliError`."""
    known = check_scale(scale)
    if known not in plans:
        have = ", ".join(plans)
        raise StabcliError(f"{what} has no {known!r} scale here; it runs at: {have}")
    return plans[known]
