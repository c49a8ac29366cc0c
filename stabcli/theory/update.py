"""Quantities of Adam's update rule itself, shared by both theories.

docs/theory.md (1.1): m_n = γ m_{n-1} + (1-γ) g_n, v_n = β v_{n-1} + (1-β) g_n²,
u_n = corr_n · m_n / (sqrt(v_n) + ε'), with m_{-1} = v_{-1} = 0 and n = 0, 1, 2, ...
"""

from __future__ import annotations

from stabcli.theory import _num
from stabcli.theory._num import Num


def one_minus_power(x: float, n: Num) -> Num:
    """1 − x^{n+1}, computed as −expm1((n+1)·ln x) so that it stays exact near x = 1."""
    return -_num.expm1((_num.as_steps(n) + 1.0) * _num.log(x))


def bias_correction(beta: float, gamma: float, n: Num) -> Num:
    """corr_n = sqrt(1 − β^{n+1}) / (1 − γ^{n+1}) (paper eq. 5; docs/theory.md (1.2))."""
    return _num.sqrt(one_minus_power(beta, n)) / one_minus_power(gamma, n)


def bias_correction_drift(x: float, n: Num) -> Num:
    """x^{n+1} ln x / (1 − x^{n+1}): d/dn of −log(1 − x^{n+1}) (ρ_n's drift, docs/theory.md (3.8)).

    Zero for x = 0 (the limit), which is RMSprop's γ = 0.
    """
    if x == 0.0:
        return _num.full_like(n, 0.0)
    lx = _num.log(x)
    power = _num.exp((_num.as_steps(n) + 1.0) * lx)
    return power * lx / one_minus_power(x, n)
