"""Both theories' verdict on one point, as data (what ``stabcli check`` shows).

THEORY.md asks every report to put the paper's continuous-time figures beside the exact
discrete ones and to say plainly when they disagree; this module computes both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from stabcli.errors import StabcliError
from stabcli.theory import exact, paper
from stabcli.theory.domain import HyperPoint
from stabcli.theory.memory import memory_coefficient

#: Search horizon for "steps until the bound exceeds the threshold".
MAX_SEARCH_STEP = 10**15


@dataclass(frozen=True)
class TheoryVerdict:
    """One theory's figures for one point."""

    theory: str  # "paper" (continuous time, eq. 5) or "exact" (discrete, THEORY.md)
    label: str  # paper: region "B+", "B0" or "B-"; exact: "stable" or "unstable"
    stable: bool  # True when the theory bounds ‖u_n‖∞ uniformly in n
    rate: float  # asymptotic growth rate of log‖u_n‖∞ per step (0 when bounded)
    rate_at_step: float  # growth rate at the chosen step (exact: ρ_n; paper: |C|/2)
    bound_at_step: float  # bound on ‖u_n‖∞ at the chosen step
    limit_bound: float  # lim_{n→∞} of the bound (inf when unbounded)
    steps_to_threshold: int | None  # first step whose bound exceeds the threshold; None: never


@dataclass(frozen=True)
class PointAnalysis:
    """Everything both theories say about (β, γ) at a given step."""

    beta: float  # paper's β = PyTorch beta2
    gamma: float  # paper's γ = PyTorch beta1
    step: int  # the step n at which bounds and rates are evaluated
    threshold: float  # the bound level for steps_to_threshold
    c_value: float  # C(β, γ)
    memory_coefficient: float  # β/(1−β) − γ/(1−γ)
    paper: TheoryVerdict
    exact: TheoryVerdict

    @property
    def torch_betas(self) -> tuple[float, float]:
        """PyTorch's betas=(beta1, beta2) = (γ, β)."""
        return (self.gamma, self.beta)

    @property
    def theories_agree(self) -> bool:
        return self.paper.stable == self.exact.stable

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        p, e = self.paper, self.exact
        if p.stable and e.stable:
            return (
                f"Stable: both theories bound the max-update for all steps "
                f"(exact limit {e.limit_bound:.4g})."
            )
        if not e.stable and e.rate == 0.0:
            return (
                "Marginal: γ² = β exactly, so the exact bound grows only like sqrt(n), "
                f"a polynomial growth (paper: {p.label}, C = "
                f"{self.c_value:.4g}); {_when(e.steps_to_threshold, self.threshold)}."
            )
        if not p.stable and not e.stable:
            when = _when(e.steps_to_threshold, self.threshold)
            return (
                f"Unstable: the max-update can grow exponentially, by {e.rate:.4g} per step "
                f"exactly ({p.rate:.4g} per step in the paper's continuous time); {when}."
            )
        if e.stable:
            return (
                f"The theories disagree: the paper puts this point in {p.label} (C = "
                f"{self.c_value:.4g}), but γ² < β, so the exact discrete bound stays "
                f"below {e.limit_bound:.4g} for all steps: updates stay bounded."
            )
        return (  # unreachable in theory (γ² > β implies C < 0) but worded all the same
            "The theories disagree: the paper bounds this point but the exact discrete bound grows."
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready figures with stable key names (documented in README, `check --json`)."""
        out: dict[str, object] = {
            "beta": self.beta,
            "gamma": self.gamma,
            "torch_beta1": self.gamma,
            "torch_beta2": self.beta,
            "step": self.step,
            "threshold": self.threshold,
            "C": self.c_value,
            "memory_coefficient": self.memory_coefficient,
            "theories_agree": self.theories_agree,
            "verdict": self.verdict,
            "paper": asdict(self.paper),
            "exact": asdict(self.exact),
        }
        safe = _json_safe(out)
        assert isinstance(safe, dict)
        return safe


def _json_safe(value: object) -> object:
    """Replace non-finite floats by null (JSON has no inf/nan) and recurse into dicts."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _when(steps: int | None, threshold: float) -> str:
    if steps is None:
        return f"its bound never exceeds {threshold:g}"
    return f"its bound exceeds {threshold:g} at step {steps}"


def first_step_exceeding(
    bound: Callable[[int], float], threshold: float, limit: float
) -> int | None:
    """The first step n whose bound exceeds ``threshold``; None when it never does.

    Bounds are smooth in n: the first 64 steps are checked one by one, later ones on a
    geometric grid (ratio 1.05, a few hundred evaluations up to 1e15) followed by
    bisection. A finite ``limit`` at or below the threshold with no crossing means never.
    """
    previous = -1
    n = 0
    while n <= MAX_SEARCH_STEP:
        if bound(n) > threshold:
            lo, hi = previous, n  # bound(lo) <= threshold < bound(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if bound(mid) > threshold else (mid, hi)
            return hi
        previous = n
        n = n + 1 if n < 64 else int(n * 1.05) + 1
    if limit <= threshold:
        return None
    return None if math.isnan(limit) else MAX_SEARCH_STEP


def _paper_verdict(beta: float, gamma: float, step: int, threshold: float) -> TheoryVerdict:
    where = paper.region(beta, gamma)
    limit = paper.paper_limit_bound(beta, gamma)
    rate = paper.paper_rate(beta, gamma)
    return TheoryVerdict(
        theory="paper",
        label=where.value,
        stable=where is paper.Region.B_PLUS,
        rate=rate,
        rate_at_step=rate,
        bound_at_step=paper.paper_bound(beta, gamma, step),
        limit_bound=limit,
        # At γ = 0 eq. 5 is infinite for every n: it bounds nothing but predicts no growth.
        steps_to_threshold=None
        if gamma == 0.0
        else first_step_exceeding(lambda n: paper.paper_bound(beta, gamma, n), threshold, limit),
    )


def _exact_verdict(beta: float, gamma: float, step: int, threshold: float) -> TheoryVerdict:
    stable = exact.exact_stable(beta, gamma)
    limit = exact.exact_limit_bound(beta, gamma)
    return TheoryVerdict(
        theory="exact",
        label="stable" if stable else "unstable",
        stable=stable,
        rate=exact.exact_rate(beta, gamma),
        rate_at_step=exact.exact_rate_at(beta, gamma, step),
        bound_at_step=exact.exact_bound(beta, gamma, step),
        limit_bound=limit,
        steps_to_threshold=first_step_exceeding(
            lambda n: exact.exact_bound(beta, gamma, n), threshold, limit
        ),
    )


def analyze_point(
    beta: float, gamma: float, step: int = 1000, threshold: float = 1e3
) -> PointAnalysis:
    """Both theories' verdicts on (β, γ) at step ``step`` (inputs validated)."""
    point = HyperPoint(beta, gamma)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise StabcliError(f"step must be an integer >= 0, got {step!r}")
    return PointAnalysis(
        beta=point.beta,
        gamma=point.gamma,
        step=step,
        threshold=threshold,
        c_value=paper.c_value(point.beta, point.gamma),
        memory_coefficient=memory_coefficient(point.beta, point.gamma),
        paper=_paper_verdict(point.beta, point.gamma, step, threshold),
        exact=_exact_verdict(point.beta, point.gamma, step, threshold),
    )
