"""The paper's continuous-time results (arXiv 2411.05746, Section 3.1 and Appendices E, O).

All functions take the paper's (β, γ): β is PyTorch's beta2, γ is PyTorch's beta1.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from enum import StrEnum

from stabcli.theory import _num
from stabcli.theory._num import Num
from stabcli.theory.update import bias_correction

#: Default tolerance on |C| under which a point counts as being on B0 = {C = 0}.
B0_TOLERANCE = 1e-12


class Region(StrEnum):
    """The paper's regions of the (β, γ) plane (Section 3.1)."""

    B_PLUS = "B+"  # C > 0: bounded updates
    B_ZERO = "B0"  # C = 0: the boundary, bound grows like sqrt(n)
    B_MINUS = "B-"  # C < 0: bound grows like exp(n|C|/2)


def c_value(beta: Num, gamma: Num) -> Num:
    """C(β, γ) = (2β(1−γ) − γ(1−β)) / (βγ) = 2/γ − 1/β − 1 (paper Section 3.1, below eq. 5).

    Works on floats and on numpy arrays of β and γ. C is +∞ at γ = 0 (RMSprop); where βγ
    underflows (subnormal β or γ) it is ±∞ with the numerator's sign (−∞ for subnormal β).
    """
    numerator = 2.0 * beta * (1.0 - gamma) - gamma * (1.0 - beta)
    if isinstance(gamma, int | float) and isinstance(beta, int | float):
        denominator = beta * gamma
        return numerator / denominator if denominator != 0 else math.copysign(math.inf, numerator)
    import numpy as np

    denominator = np.multiply(beta, gamma)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c = np.divide(numerator, denominator)
    return np.where(denominator == 0, np.copysign(np.inf, numerator), c)


def region(beta: float, gamma: float, tol: float = B0_TOLERANCE) -> Region:
    """The paper's region of (β, γ) by the sign of C; B0 when |C| <= tol · (2/γ + 1/β + 1).

    The tolerance is relative to the size of the terms of C = 2/γ − 1/β − 1, since the
    rounding error of C grows with them (points computed on the boundary at small β).
    """
    c = c_value(beta, gamma)
    scale = 2.0 / gamma + 1.0 / beta + 1.0 if gamma > 0 else math.inf
    if math.isfinite(c) and math.isfinite(scale) and abs(c) <= tol * scale:
        return Region.B_ZERO
    return Region.B_PLUS if c > 0 else Region.B_MINUS


def paper_rate(beta: float, gamma: float, tol: float = B0_TOLERANCE) -> float:
    """Predicted growth rate d log‖u_n‖∞/dn: |C|/2 in B−, 0 elsewhere (paper eq. 5, Section 3.2)."""
    if region(beta, gamma, tol) is not Region.B_MINUS:
        return 0.0
    return abs(c_value(beta, gamma)) / 2.0


def _prefactor(beta: float, gamma: float) -> float:
    """(1−γ)/γ · sqrt(β/(1−β)), the n-independent factor of paper eq. 5 (γ > 0)."""
    return (1.0 - gamma) / gamma * math.sqrt(beta / (1.0 - beta))


def paper_bound(beta: float, gamma: float, n: Num, tol: float = B0_TOLERANCE) -> Num:
    """The paper's max-update bound at step n (eq. 5).

    ‖u_n‖∞ <= corr_n · (1−γ)/γ · sqrt(β/(1−β)) · B_n, with B_n = 1/sqrt(C) in B+,
    sqrt(n) on B0 and exp(n|C|/2)/sqrt(|C|) in B−. At γ = 0 it is its limit γ → 0⁺, +∞:
    the prefactor (1−γ)/γ diverges faster than 1/sqrt(C) vanishes.
    """
    steps = _num.as_steps(n)
    corr = bias_correction(beta, gamma, n)
    if gamma == 0.0:
        return _num.full_like(n, math.inf)
    where = region(beta, gamma, tol)
    if where is Region.B_PLUS:
        return corr * paper_limit_bound(beta, gamma, tol)
    c = c_value(beta, gamma)
    if where is Region.B_ZERO:
        growth = _num.sqrt(steps)
    else:
        # |C| overflows to +inf for subnormal β (1/β does): the largest float stands in, so
        # the bound is +inf from n = 1 on, as it is for the true |C|, instead of inf/inf.
        size = min(abs(c), sys.float_info.max)
        with _num.quiet_overflow():
            growth = _num.exp(steps * size / 2.0) / math.sqrt(size)
    with _num.quiet_overflow():
        return corr * _prefactor(beta, gamma) * growth


def paper_limit_bound(beta: float, gamma: float, tol: float = B0_TOLERANCE) -> float:
    """lim_{n→∞} of eq. 5: (1−γ)/γ · sqrt(β/(1−β)) / sqrt(C) in B+, +∞ in B0 and B−.

    Computed as (1−γ)·sqrt(β/(1−β)) / sqrt(γ·(2β(1−γ) − γ(1−β))/β), which stays exact for
    tiny γ; +∞ at γ = 0 (its limit γ → 0⁺).
    """
    if gamma == 0.0:
        return math.inf
    if region(beta, gamma, tol) is not Region.B_PLUS:
        return math.inf
    inner = gamma * (2.0 * beta * (1.0 - gamma) - gamma * (1.0 - beta)) / beta
    if inner <= 0.0:
        return math.inf
    return (1.0 - gamma) * math.sqrt(beta / (1.0 - beta)) / math.sqrt(inner)


def boundary_gamma(beta: Num) -> Num:
    """The paper's boundary B0 = {C = 0} as γ(β) = 2β/(1+β) (Section 3.1)."""
    return 2.0 * beta / (1.0 + beta)


def annealed_lr(lr0: float, beta: float, gamma: float, n: Num, tol: float = B0_TOLERANCE) -> Num:
    """Appendix O, eq. 15: η_n = η0 · exp(−n|C|/2) in B−; η0 elsewhere (no growth to undo)."""
    steps = _num.as_steps(n)
    rate = paper_rate(beta, gamma, tol)
    return lr0 * _num.exp(-steps * rate)


@dataclass(frozen=True)
class SqrtLaw:
    """A max-update bound that grows like √n on a stability boundary (docs/theory.md §4).

    bound_n = corr_n · coefficient · sqrt(n + shift), corr_n = sqrt(1 − β^{n+1})/(1 − γ^{n+1});
    its log-log slope d log bound_n / d log n tends to ``exponent`` = ½ once corr_n ≈ 1.
    """

    boundary: str  # "paper": B0 = {C = 0}, eq. 5 with B_n = √n; "exact": γ² = β
    beta: float  # β = torch beta2
    gamma: float  # γ = torch beta1, on the boundary
    coefficient: float  # ½ sqrt((1−β)/β) (paper) or sqrt((1−γ)/(1+γ)) (exact)
    shift: float  # 0 (paper: √n) or 1 (exact: √(n+1))
    exponent: float = 0.5

    def bound(self, n: Num) -> Num:
        """The bound at step n (an int or a numpy array of steps)."""
        steps = _num.as_steps(n)
        corr = bias_correction(self.beta, self.gamma, n)
        return corr * self.coefficient * _num.sqrt(steps + self.shift)


def sqrt_n_law(beta: float, boundary: str = "paper") -> SqrtLaw:
    """The √n law of the bound on a boundary at β (docs/theory.md (4.1)-(4.2)).

    - ``"paper"``: on B0, γ = 2β/(1+β) gives (1−γ)/γ = (1−β)/(2β), so eq. 5 with B_n = √n is
      P_n = corr_n · ½ sqrt((1−β)/β) · √n (docs/theory.md (4.1)); the same number as
      :func:`paper_bound` at (β, 2β/(1+β)).
    - ``"exact"``: on γ² = β, r = 1 and S_n = n + 1, and (1−γ)/sqrt(1−β) = sqrt((1−γ)/(1+γ)),
      so U_n = corr_n · sqrt((1−γ)/(1+γ)) · sqrt(n+1) (docs/theory.md (4.2)), attained by
      g_j ∝ γ^j; the same number as ``exact.exact_bound`` at (β, sqrt(β)).

    The exact theory bounds the paper's B0 points uniformly, by 1/sqrt(1−β) (docs/theory.md
    (4.3)): there the √n law is the paper's, and no input sequence follows it for long.
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"β must be in (0, 1), got {beta}")
    if boundary == "paper":
        gamma = float(boundary_gamma(beta))
        return SqrtLaw("paper", beta, gamma, 0.5 * math.sqrt((1.0 - beta) / beta), 0.0)
    if boundary == "exact":
        gamma = math.sqrt(beta)
        return SqrtLaw("exact", beta, gamma, math.sqrt((1.0 - gamma) / (1.0 + gamma)), 1.0)
    raise ValueError(f"boundary must be 'paper' or 'exact', got {boundary!r}")


def b0_bound(beta: float, n: Num) -> Num:
    """The paper's bound on B0 at step n: corr_n · ½ sqrt((1−β)/β) · √n (docs/theory.md (4.1))."""
    return sqrt_n_law(beta, "paper").bound(n)
