"""What the theory says about a monitored point: its bound at every step and its growth rate.

The bound on ‖u_n‖∞ (to which λ‖θ_n‖∞ is added under decoupled decay, docs/theory.md
(1.5)) is, by the optimizer and the recorded path:

- constant (β, γ): the exact bound corr_n (1−γ)/sqrt(1−β) sqrt(S_n) (docs/theory.md (3.3);
  :func:`stabcli.theory.exact.exact_bound`), at the optimizer's own step n;
- moving (β_n, γ_n): the path bound c_n sqrt(𝒮_n) (docs/theory.md §5;
  :func:`stabcli.theory.path.path_bound`) with the optimizer's c_n: PyTorch's current-beta
  correction for torch Adam and k-Adam, the path products for MADA and HyperAdam (5.4);
- MADA: :func:`stabcli.theory.path.mada_path_bound` on its Adam-AVGrad-Lion face (β3 = 0
  and c = 1 at every step; docs/theory.md §7); off that face no bound of this form holds,
  and the bound is nan.

Steps before the monitor started (``offset``) are taken at the first recorded settings:
the path before ``watch`` is not known. Outside the theory's domain (β in (0, 1), γ in
[0, 1)) the bound is nan.
"""

from __future__ import annotations

import math

import numpy as np

from stabcli.monitor.groups import Correction, in_domain
from stabcli.monitor.history import PointTrace
from stabcli.theory.exact import exact_bound, exact_limit_bound, exact_stable
from stabcli.theory.path import (
    average_rate,
    current_bias_correction,
    mada_path_bound,
    path_bound,
)


def _full_path(trace: PointTrace, name: str) -> np.ndarray:
    """(offset + S,) the setting ``name`` from step 0, constant before the first record."""
    values = trace.settings[name]
    offset = int(trace.steps[0]) if trace.steps.size else 0
    return np.concatenate([np.full(offset, values[0]), values])


def _valid(trace: PointTrace) -> bool:
    b, g = trace.beta, trace.gamma
    return bool(b.size) and bool(np.all((b > 0) & (b < 1) & (g >= 0) & (g < 1)))


def point_bound(trace: PointTrace, correction: Correction, mada: bool) -> np.ndarray:
    """(S,) the bound on ‖u_n‖∞ at every recorded step (module docstring)."""
    s = trace.steps.size
    if not _valid(trace):
        return np.full(s, np.nan)
    offset = int(trace.steps[0])
    if mada:
        on_face = np.all(trace.settings["beta3"] == 0.0) and np.all(trace.settings["c"] == 1.0)
        if not on_face:
            return np.full(s, np.nan)
        names = ("beta", "gamma", "rho", "omega")
        beta, gamma, rho, omega = (_full_path(trace, n) for n in names)
        return mada_path_bound(beta, gamma, np.clip(rho, 0, 1), np.clip(omega, 0, 1))[offset:]
    if not trace.moving:
        return np.asarray(exact_bound(float(trace.beta[0]), float(trace.gamma[0]), trace.steps))
    beta, gamma = _full_path(trace, "beta"), _full_path(trace, "gamma")
    corr = current_bias_correction(beta, gamma) if correction is Correction.CURRENT else None
    return path_bound(beta, gamma, corr)[offset:]


def path_rate(trace: PointTrace, start: int, stop: int) -> float:
    """The exact theory's growth rate of a moving path over steps [start, stop): the mean of
    ln γ_n − ½ ln β_n there (docs/theory.md (5.7)), 0 where that mean is negative (the bound
    then settles instead of growing); nan outside the domain or for an empty window."""
    if not _valid(trace):
        return math.nan
    beta, gamma = _full_path(trace, "beta"), _full_path(trace, "gamma")
    start = max(start, 1)  # step 0 carries no growth factor (S_{−1} = 0)
    if stop <= start or stop > beta.size:
        return math.nan
    return max(0.0, float(average_rate(beta, gamma, start, stop)))


def limit_text(beta: float, gamma: float) -> str:
    """A short statement of what the exact theory says at one (β, γ), for messages."""
    if not in_domain(beta, gamma):
        return "outside the theory's domain β in (0, 1), γ in [0, 1)"
    if exact_stable(beta, gamma):
        return f"γ² < β: bounded by {exact_limit_bound(beta, gamma):.4g} for all steps"
    return "γ² ≥ β: unbounded"
