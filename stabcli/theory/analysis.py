"""Both theories' verdict on one point, as data (what ``stabcli check`` shows).

Every report puts the paper's continuous-time figures (``docs/theory.md §2``, arXiv
2411.05746 eq. 5) beside the exact discrete ones (``docs/theory.md §3``) and says plainly
when they disagree; this module computes both, and owns the limits of check's inputs: the
step n (an integer in [0, :data:`MAX_STEP`]) and the threshold (finite, > 0).
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
#: Largest step n at which bounds are evaluated: the search horizon, far past any training.
MAX_STEP = MAX_SEARCH_STEP


@dataclass(frozen=True)
class TheoryVerdict:
    """One theory's figures for one point."""

    theory: str  # "paper" (continuous time, eq. 5) or "exact" (discrete, docs/theory.md §3)
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
    bound: Callable[[int], float], threshold: float, limit: float, settled: int | None = None
) -> int | None:
    """The first step n whose bound exceeds ``threshold``; None when it never does.

    Bounds are smooth in n: the first 64 steps are checked one by one, later ones on a
    geometric grid (ratio 1.05, a few hundred evaluations up to 1e15) followed by
    bisection. ``settled``, when given, is a step from which on the bound equals ``limit``
    to float precision (see :func:`settling_step`): the grid stops there. A finite
    ``limit`` at or below the threshold with no crossing means never.
    """
    horizon = MAX_SEARCH_STEP if settled is None else min(settled, MAX_SEARCH_STEP)
    previous, n = -1, 0
    while True:
        if bound(n) > threshold:
            lo, hi = previous, n  # bound(lo) <= threshold < bound(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if bound(mid) > threshold else (mid, hi)
            return hi
        if n >= horizon:
            break
        previous = n
        n = min(horizon, n + 1 if n < 64 else int(n * 1.05) + 1)
    if limit <= threshold:
        return None
    return None if math.isnan(limit) else MAX_SEARCH_STEP


def settling_step(*decays: float) -> int:
    """A step n from which every decay d^(n+1) is below 2^-60, capped at the horizon.

    A bound built from β^(n+1), γ^(n+1) (the bias correction corr_n, docs/theory.md §1)
    and r^(n+1) with r = γ²/β < 1 (the exact sum S_n, docs/theory.md §3) then differs
    from its limit by less than float rounding, so searching further cannot find a
    crossing that the limit does not already decide. Every decay must be in [0, 1).
    """
    largest = max(decays)
    if largest <= 0.0:
        return 0
    return min(MAX_SEARCH_STEP, math.ceil(60 * math.log(2) / -math.log(largest)))


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
        else first_step_exceeding(
            lambda n: paper.paper_bound(beta, gamma, n),
            threshold,
            limit,
            # In B+ eq. 5 is corr_n times a constant: settled once β^(n+1), γ^(n+1) are.
            settling_step(beta, gamma) if where is paper.Region.B_PLUS else None,
        ),
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
            lambda n: exact.exact_bound(beta, gamma, n),
            threshold,
            limit,
            # Stable (γ² < β): corr_n and S_n settle once β^(n+1), γ^(n+1), r^(n+1) do.
            settling_step(beta, gamma, gamma * gamma / beta) if stable else None,
        ),
    )


def validate_step(step: object, name: str = "step") -> int:
    """``step`` as an int in [0, :data:`MAX_STEP`], or a one-line :class:`StabcliError`."""
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise StabcliError(
            f"{name} must be an integer from 0 to 10^15 (the step n), got {_short(step)}"
        )
    return step


def validate_threshold(threshold: object, name: str = "threshold") -> float:
    """``threshold`` as a finite float > 0, or a one-line :class:`StabcliError`.

    Zero is refused with the negatives: every bound is positive (the exact one is 1 at
    n = 0, docs/theory.md §3), so "steps until the bound exceeds 0" is always 0.
    """
    number = math.nan
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        try:
            number = float(threshold)
        except OverflowError:  # an int past float's range
            number = math.inf
    if not (math.isfinite(number) and number > 0):
        raise StabcliError(f"{name} must be a finite number > 0, got {_short(threshold)}")
    return number


def _short(value: object) -> str:
    """``repr(value)`` cut to one readable line (a 400-digit step is shown by its size)."""
    text = repr(value)
    if isinstance(value, int) and len(text) > 24:
        return f"{text[:6]}... ({len(text.lstrip('-'))} digits)"
    return text if len(text) <= 40 else text[:37] + "..."


def _resolve_point(
    beta: float | None, gamma: float | None, torch_betas: tuple[float, float] | None
) -> HyperPoint:
    """The point from (β, γ) in the paper's order or PyTorch's ``betas=(beta1, beta2)``."""
    if torch_betas is not None:
        if beta is not None or gamma is not None:
            raise StabcliError("give either beta, gamma (paper order) or torch_betas, not both")
        if isinstance(torch_betas, str | bytes) or len(torch_betas) != 2:
            raise StabcliError(f"torch_betas must be a pair (beta1, beta2), got {torch_betas!r}")
        beta1, beta2 = torch_betas
        return HyperPoint.from_torch(beta1, beta2)
    if beta is None or gamma is None:
        raise StabcliError("give the point as beta, gamma (paper order) or torch_betas=(b1, b2)")
    return HyperPoint(beta, gamma)


def analyze_point(
    beta: float | None = None,
    gamma: float | None = None,
    step: int = 1000,
    threshold: float = 1e3,
    *,
    torch_betas: tuple[float, float] | None = None,
) -> PointAnalysis:
    """Both theories' verdicts on (β, γ) at step ``step`` (inputs validated).

    The point is given in the paper's order, ``analyze_point(0.95, 0.9)``, or in PyTorch's,
    ``analyze_point(torch_betas=(0.9, 0.95))``: the same point, β = beta2 and γ = beta1
    (docs/theory.md §1). ``step`` is an integer in [0, 10^15]; ``threshold`` (the bound
    level for ``steps_to_threshold``) is finite and > 0.
    """
    point = _resolve_point(beta, gamma, torch_betas)
    step = validate_step(step)
    threshold = validate_threshold(threshold)
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
