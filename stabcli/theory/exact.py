"""Exact discrete-time results for Adam (docs/theory.md §3).

Cauchy-Schwarz applied to the discrete sums m_n = (1−γ) Σ_k γ^k g_{n−k} and
v_n = (1−β) Σ_k β^k g²_{n−k} instead of their continuous approximations. With
r = γ²/β and S_n = Σ_{k=0..n} r^k, for any gradient sequence and any ε >= 0:

    ‖u_n‖∞ <= corr_n · (1−γ)/sqrt(1−β) · sqrt(S_n),

with equality for g_{n−k} ∝ (γ/β)^k. All functions take the paper's (β, γ).
"""

from __future__ import annotations

import math

from stabcli.theory import _num
from stabcli.theory._num import Num
from stabcli.theory.update import bias_correction, bias_correction_drift


def log_ratio(beta: float, gamma: float) -> float:
    """ln r with r = γ²/β: the per-step log-growth of the Cauchy-Schwarz sum S_n."""
    return 2.0 * _num.log(gamma) - math.log(beta)


def geometric_sum(beta: float, gamma: float, n: Num) -> Num:
    """S_n = Σ_{k=0..n} r^k = (1 − r^{n+1})/(1 − r), or n + 1 when r = 1 (docs/theory.md (3.2))."""
    lr = log_ratio(beta, gamma)
    steps = _num.as_steps(n)
    if lr == 0.0:
        return steps + 1.0
    return _num.expm1((steps + 1.0) * lr) / _num.expm1(lr)


def log_geometric_sum(beta: float, gamma: float, n: Num) -> Num:
    """ln S_n, without overflow when r > 1: (n+1) ln r + ln(1 − r^{−(n+1)}) − ln(r − 1),
    with ln(r − 1) = ln r + ln(1 − 1/r) (finite even where r overflows, e.g. subnormal β)."""
    lr = log_ratio(beta, gamma)
    if lr <= 0.0:
        return _num.log(geometric_sum(beta, gamma, n))
    k = _num.as_steps(n) + 1.0
    log_r_minus_one = lr + math.log(-math.expm1(-lr))
    return k * lr + _num.log(-_num.expm1(-k * lr)) - log_r_minus_one


def exact_bound(beta: float, gamma: float, n: Num) -> Num:
    """Exact bound on ‖u_n‖∞: corr_n · (1−γ)/sqrt(1−β) · sqrt(S_n) (docs/theory.md (3.3)).

    Holds for every gradient sequence and every ε >= 0, in either ε placement; with
    decoupled weight decay the measured step also holds λ‖θ_n‖∞, which must be added.
    Equals 1 at n = 0. Evaluated in log space when r > 1, so it is finite wherever the
    bound itself is.
    """
    scale = (1.0 - gamma) / math.sqrt(1.0 - beta)
    corr = bias_correction(beta, gamma, n)
    if log_ratio(beta, gamma) <= 0.0:
        return corr * scale * _num.sqrt(geometric_sum(beta, gamma, n))
    with _num.quiet_overflow():
        return corr * scale * _num.exp(0.5 * log_geometric_sum(beta, gamma, n))


#: Relative distance |γ² − β|/β within which a pair is on the boundary γ² = β
#: (docs/theory.md (3.5)): twice the rounding of decimal inputs and of γ·γ (4 units in the
#: last place), so that 0.49 0.7, 0.64 0.8 and 0.81 0.9 are all marginal, as typed.
BOUNDARY_TOLERANCE = 8 * 2.0**-53


def on_exact_boundary(beta: float, gamma: float) -> bool:
    """γ² = β to within float rounding (BOUNDARY_TOLERANCE): √n growth, rate 0 (§4)."""
    return abs(gamma * gamma - beta) <= BOUNDARY_TOLERANCE * beta


def exact_stable(beta: float, gamma: float) -> bool:
    """Exactly stable iff γ² < β (docs/theory.md (3.5); the known condition β1 < sqrt(β2)),
    by more than rounding: a pair on the boundary (:func:`on_exact_boundary`) is not."""
    return gamma * gamma < beta and not on_exact_boundary(beta, gamma)


def exact_limit_bound(beta: float, gamma: float) -> float:
    """lim_{n→∞} of the exact bound: (1−γ)·sqrt(β) / sqrt((1−β)(β−γ²)) if γ² < β, else +∞."""
    if not exact_stable(beta, gamma):
        return math.inf
    return (1.0 - gamma) * math.sqrt(beta) / math.sqrt((1.0 - beta) * (beta - gamma * gamma))


def exact_rate(beta: float, gamma: float) -> float:
    """Asymptotic growth rate of the exact bound: log γ − ½ log β when γ² > β, else 0
    (docs/theory.md (3.7)); 0 on the boundary, where the growth is √n and the difference
    of logarithms only rounding."""
    if exact_stable(beta, gamma) or on_exact_boundary(beta, gamma):
        return 0.0
    return max(0.0, math.log(gamma) - 0.5 * math.log(beta))


def exact_slope(beta: float, gamma: float, n: Num) -> Num:
    """ρ_n, the slope of log‖u_n‖∞ at step n with the bias-correction drift (docs/theory.md (3.9)).

    ρ_n = log γ − ½ log β − ½ β^{n+1} ln β/(1 − β^{n+1}) + γ^{n+1} ln γ/(1 − γ^{n+1}).
    It is the exact log-derivative of ‖u_n‖∞ once the gradient has vanished (u_n then
    evolves as corr_n · (γ/sqrt(β))^n), and the rate at which the bound is approached.
    """
    asymptotic = _num.log(gamma) - 0.5 * math.log(beta)
    return asymptotic - 0.5 * bias_correction_drift(beta, n) + bias_correction_drift(gamma, n)


def exact_rate_at(beta: float, gamma: float, n: Num) -> Num:
    """The exact theory's predicted growth rate at step n: ρ_n (docs/theory.md (3.9)) when
    γ² >= β, else 0. Its asymptotic part is :func:`exact_rate`'s, so that on the boundary
    γ² = β, where log γ − ½ log β is zero but rounds to ±1e-17, it is the drift alone."""
    if exact_stable(beta, gamma):
        return _num.full_like(n, 0.0)
    drift = bias_correction_drift(gamma, n) - 0.5 * bias_correction_drift(beta, n)
    return exact_rate(beta, gamma) + drift


def boundary_gamma(beta: Num) -> Num:
    """The exact stability boundary γ² = β as γ(β) = sqrt(β)."""
    return _num.sqrt(beta)
