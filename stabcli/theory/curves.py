"""Curves of the (β, γ) plane: boundaries, level curves, normal curves, arc-length sampling.

Level curves B_c = {C = c} and normal curves C_{β0,γ0} (perpendicular to them) are from the
paper's Section 3.1 and Appendix E. Sampling uses numpy; the closed forms do not need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stabcli.errors import StabcliError
from stabcli.theory import _num
from stabcli.theory._num import Num
from stabcli.theory.domain import HyperPoint
from stabcli.theory.paper import c_value


def level_gamma(beta: Num, c: float) -> Num:
    """Level curve B_c as γ(β) = 2β / ((c+1)β + 1) (paper Section 3.1, from C(β, γ) = c)."""
    return 2.0 * beta / ((c + 1.0) * beta + 1.0)


def normal_constant(beta0: float, gamma0: float) -> float:
    """k = 2β0³ + γ0³, the constant of the normal curve through (β0, γ0) (paper App. E)."""
    return 2.0 * beta0**3 + gamma0**3


def normal_gamma(beta: Num, k: float) -> Num:
    """Normal curve γ³ + 2β³ = k as γ(β) = (k − 2β³)^{1/3} (paper App. E)."""
    return _num.cbrt(k - 2.0 * beta**3)


def normal_beta(gamma: Num, k: float) -> Num:
    """The normal curve solved for β: β = ((k − γ³)/2)^{1/3}."""
    return _num.cbrt((k - gamma**3) / 2.0)


@dataclass(frozen=True)
class CurveSection:
    """A curve of the plane restricted to a range of β, traced by a smooth parameter t.

    ``trace(t)`` maps an array of t in [t_lo, t_hi] to arrays (β, γ); ``open_ends`` says
    whether the ends lie on the edge of the valid domain (and must not be sampled).
    """

    name: str  # e.g. "normal curve through (0.999, 0.9)"
    t_lo: float
    t_hi: float
    trace: Callable[[Any], tuple[Any, Any]]
    open_ends: bool


def _normal_polar(k: float) -> Callable[[Any], tuple[Any, Any]]:
    # Polar angle φ = atan2(γ, β) is a smooth parameter over the whole curve, also where the
    # curve turns vertical (γ → 0) or horizontal; ρ solves ρ³(2cos³φ + sin³φ) = k.
    import numpy as np

    def trace(phi: Any) -> tuple[Any, Any]:
        c, s = np.cos(phi), np.sin(phi)
        rho = np.cbrt(k / (2.0 * c**3 + s**3))
        return rho * c, rho * s

    return trace


def normal_section(
    beta0: float, gamma0: float, span: tuple[float, float] | None = None
) -> CurveSection:
    """The normal curve through (β0, γ0) inside the unit square, or over β in ``span``.

    Inside the square the curve runs from γ = 1 (or β = 0) down to β = 1 (or γ = 0).
    """
    k = normal_constant(beta0, gamma0)
    name = f"normal curve through ({beta0:g}, {gamma0:g})"
    if span is None:
        # Ends of the open section: where γ reaches 1 (else β = 0), and where β reaches 1
        # (else γ = 0).
        upper = (normal_beta(1.0, k), 1.0) if k > 1.0 else (0.0, _num.cbrt(k))
        lower = (1.0, normal_gamma(1.0, k)) if k > 2.0 else (_num.cbrt(k / 2.0), 0.0)
        open_ends = True
    else:
        lo, hi = _check_span(span, name)
        upper, lower = (lo, normal_gamma(lo, k)), (hi, normal_gamma(hi, k))
        inside = (normal_beta(1.0, k) if k > 1.0 else 0.0, 1.0 if k > 2.0 else _num.cbrt(k / 2))
        for b, g in (upper, lower):
            if not 0.0 <= g < 1.0:
                raise StabcliError(
                    f"--span: the {name} has gamma = {g:.6g} at beta = {b:g}, outside [0, 1); "
                    f"inside the unit square it spans beta in ({inside[0]:.6g}, {inside[1]:.6g})"
                )
        open_ends = False
    return CurveSection(
        name=name,
        t_lo=math.atan2(lower[1], lower[0]),
        t_hi=math.atan2(upper[1], upper[0]),
        trace=_normal_polar(k),
        open_ends=open_ends,
    )


def level_section(
    beta0: float, gamma0: float, span: tuple[float, float] | None = None
) -> CurveSection:
    """The level curve B_c through (β0, γ0), c = C(β0, γ0), inside the unit square."""
    c = c_value(beta0, gamma0)
    name = f"level curve C = {c:.6g} through ({beta0:g}, {gamma0:g})"
    if math.isinf(c):
        raise StabcliError(
            "the level curve through a point with gamma = 0 (C = +inf) is the line gamma = 0"
        )
    if span is None:
        hi = min(1.0, 1.0 / (1.0 - c)) if c < 0 else 1.0  # γ reaches 1 at β = 1/(1 − c)
        lo, open_ends = 0.0, True
    else:
        lo, hi = _check_span(span, name)
        for b in (lo, hi):
            HyperPoint(b, level_gamma(b, c))
        open_ends = False

    def trace(beta: Any) -> tuple[Any, Any]:
        return beta, level_gamma(beta, c)

    return CurveSection(name=name, t_lo=lo, t_hi=hi, trace=trace, open_ends=open_ends)


def _check_span(span: tuple[float, float], name: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in span)
    if not (0.0 < lo < hi < 1.0):
        raise StabcliError(
            f"--span must be B0:B1 with 0 < B0 < B1 < 1 (beta values on the {name}), "
            f"got {lo:g}:{hi:g} (empty or inverted ranges are refused)"
        )
    return lo, hi


def sample_by_arc_length(
    section: CurveSection, n_points: int, resolution: int = 200_001
) -> list[HyperPoint]:
    """``n_points`` points spaced uniformly by arc length along ``section``.

    With open ends (the curve's section inside the unit square, whose ends are invalid
    points) the points sit at the centres of n equal-length pieces; with closed ends (a
    ``span``) the first and last points are the ends themselves.
    """
    import numpy as np

    if n_points < 1:
        raise StabcliError(f"the number of points must be at least 1, got {n_points}")
    t = np.linspace(section.t_lo, section.t_hi, resolution)
    beta, gamma = section.trace(t)
    segment = np.hypot(np.diff(beta), np.diff(gamma))
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    total = arc[-1]
    if section.open_ends:
        targets = (np.arange(n_points) + 0.5) / n_points * total
    elif n_points == 1:
        targets = np.array([0.5 * total])
    else:
        targets = np.linspace(0.0, total, n_points)
    t_at = np.interp(targets, arc, t)
    b, g = section.trace(t_at)
    g = np.clip(g, 0.0, None)
    return [HyperPoint(float(bi), float(gi)) for bi, gi in zip(b, g, strict=True)]
