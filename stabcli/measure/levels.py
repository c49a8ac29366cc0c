"""k-Adam's levels, each checked against its own exact bound.

Level i of k-Adam is Adam's normalization applied to the sequence u^(i−1) with its own
decays (β_i, γ_i), so whatever the earlier levels feed it, ‖u^(i)_n‖∞ <= U_n(β_i, γ_i), the
exact bound of docs/theory.md (3.3) at that level's pair (docs/theory.md (6.3); paper
App. S, App. Q eq. (16)). The bounds do not compound: the update is level k's u^(k) (plus
λθ_n under decoupled decay), which is why a k-Adam point's own bound check, window, rates
and verdicts are those of its last level (:func:`stabcli.measure.optimizers.measure_kadam`).
This module checks every level: a ratio above 1 (beyond rounding) at any level is a probe
bug, like one above the update's bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stabcli.measure.bounds import BoundCheck, BoundStatus, bound_checks, exact_bounds
from stabcli.measure.window import Window


@dataclass(frozen=True)
class LevelBounds:
    """One k-Adam point's levels against their own exact bounds (module docstring)."""

    beta: tuple[float, ...]  # (k,) β_i: level i's second-moment decay (torch beta2)
    gamma: tuple[float, ...]  # (k,) γ_i: its first-moment decay (torch beta1)
    ratios: tuple[float, ...]  # (k,) max over n of ‖u^(i)_n‖∞ / U_n(β_i, γ_i); nan if none
    worst: int  # the level 1..k with the largest finite ratio; 0 when no ratio is finite
    check: BoundCheck  # the bound check of that level (its ratio, step and words)

    @property
    def k(self) -> int:
        return len(self.ratios)

    @property
    def broken(self) -> bool:
        """Whether some level's max-update exceeded its bound beyond the dtype's rounding."""
        return self.check.status is BoundStatus.ABOVE


def level_bounds(
    level_beta: np.ndarray,  # (K, P) β_i of every level and point
    level_gamma: np.ndarray,  # (K, P) γ_i
    level_updates: np.ndarray,  # (K, P, S) ‖u^(i)_n‖∞, before λθ_n; nan after divergence
    windows: Sequence[Window],  # (P,) each point's valid window (the last level's)
    tolerance: float,  # settings.rounding_tolerance(dtype)
    invalid: Sequence[str] | None = None,  # (P,) reason a point is numerically invalid, or ""
) -> list[LevelBounds]:
    """Every level of every point against U_n(β_i, γ_i), n = 0..S−1 (module docstring)."""
    beta = np.asarray(level_beta, dtype=float)
    gamma = np.asarray(level_gamma, dtype=float)
    u = np.asarray(level_updates, dtype=float)
    k, p, s = u.shape
    if beta.shape != (k, p) or gamma.shape != (k, p):
        raise ValueError(f"level betas must be (levels, points) = {(k, p)}, got {beta.shape}")
    checks: list[list[BoundCheck]] = []  # (K, P)
    bounds: dict[bytes, np.ndarray] = {}  # the strategies repeat one pair at every level
    for i in range(k):
        key = beta[i].tobytes() + gamma[i].tobytes()
        if key not in bounds:
            bounds[key] = exact_bounds(beta[i], gamma[i], s)  # (P, S)
        checks.append(bound_checks(u[i], bounds[key], None, windows, tolerance, invalid))
    out = []
    for j in range(p):
        ratios = tuple(checks[i][j].ratio_all for i in range(k))
        finite = [i for i in range(k) if np.isfinite(ratios[i])]
        worst = max(finite, key=lambda i: ratios[i]) if finite else k - 1
        out.append(
            LevelBounds(
                beta=tuple(float(b) for b in beta[:, j]),
                gamma=tuple(float(g) for g in gamma[:, j]),
                ratios=ratios,
                worst=worst + 1 if finite else 0,
                check=checks[worst][j],
            )
        )
    return out
