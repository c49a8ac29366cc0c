"""The paper's continuous-time results (arXiv 2411.05746, Section 3.1 and Appendices E, O).

All functions take the paper's (β, γ): β is PyTorch's beta2, γ is PyTorch's beta1.
"""

from __future__ import annotations

import math
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

    Works on floats and on numpy arrays of β and γ. C is +∞ at γ = 0 (RMSprop).
    """
    if isinstance(gamma, int | float) and gamma == 0:
        return math.inf
    numerator = 2.0 * beta * (1.0 - gamma) - gamma * (1.0 - beta)
    if isinstance(gamma, int | float):
        return numerator / (beta * gamma)
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        c = numerator / (beta * gamma)
    return np.where(np.asarray(gamma) == 0, np.inf, c)


def region(beta: float, gamma: float, tol: float = B0_TOLERANCE) -> Region:
    """The paper's region of (β, γ): B0 when |C| <= ``tol``, else B+ or B− by the sign of C."""
    c = c_value(beta, gamma)
    if abs(c) <= tol:
        return Region.B_ZERO
    return Region.B_PLUS if c > 0 else Region.B_MINUS


def paper_rate(beta: float, gamma: float, tol: float = B0_TOLERANCE) -> float:
    """Predicted growth rate d log‖u_n‖∞/dn: |C|/2 in B−, 0 elsewhere (paper eq. 5, Section 3.2)."""
    if region(beta, gamma, tol) is not Region.B_MINUS:
        return 0.0
    return abs(c_value(beta, gamma)) / 2.0


def _prefactor(beta: float, gamma: float) -> float:
    """(1−γ)/γ · sqrt(β/(1−β)), the n-independent factor of paper eq. 5."""
    if gamma == 0.0:
        return math.inf
    return (1.0 - gamma) / gamma * math.sqrt(beta / (1.0 - beta))


def paper_bound(beta: float, gamma: float, n: Num, tol: float = B0_TOLERANCE) -> Num:
    """The paper's max-update bound at step n (eq. 5).

    ‖u_n‖∞ <= corr_n · (1−γ)/γ · sqrt(β/(1−β)) · B_n, with B_n = 1/sqrt(C) in B+,
    sqrt(n) on B0 and exp(n|C|/2)/sqrt(|C|) in B−. Infinite (uninformative) at γ = 0,
    where the continuous-time prefactor diverges.
    """
    steps = _num.as_steps(n)
    corr = bias_correction(beta, gamma, n)
    pre = _prefactor(beta, gamma)
    if math.isinf(pre):
        return _num.full_like(n, math.inf)
    c = c_value(beta, gamma)
    where = region(beta, gamma, tol)
    if where is Region.B_PLUS:
        growth = _num.full_like(n, 1.0 / math.sqrt(c))
    elif where is Region.B_ZERO:
        growth = _num.sqrt(steps)
    else:
        growth = _num.exp(steps * abs(c) / 2.0) / math.sqrt(abs(c))
    return corr * pre * growth


def paper_limit_bound(beta: float, gamma: float, tol: float = B0_TOLERANCE) -> float:
    """lim_{n→∞} of eq. 5: (1−γ)/γ · sqrt(β/(1−β)) / sqrt(C) in B+, +∞ elsewhere."""
    if gamma == 0.0 or region(beta, gamma, tol) is not Region.B_PLUS:
        return math.inf  # γ = 0: the continuous-time prefactor diverges
    return _prefactor(beta, gamma) / math.sqrt(c_value(beta, gamma))


def boundary_gamma(beta: Num) -> Num:
    """The paper's boundary B0 = {C = 0} as γ(β) = 2β/(1+β) (Section 3.1)."""
    return 2.0 * beta / (1.0 + beta)


def annealed_lr(lr0: float, beta: float, gamma: float, n: Num, tol: float = B0_TOLERANCE) -> Num:
    """Appendix O, eq. 15: η_n = η0 · exp(−n|C|/2) in B−; η0 elsewhere (no growth to undo)."""
    steps = _num.as_steps(n)
    rate = paper_rate(beta, gamma, tol)
    return lr0 * _num.exp(-steps * rate)
