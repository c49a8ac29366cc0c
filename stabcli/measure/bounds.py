"""The exact bound check: max_n u_n / (bound_n + wd_term_n), over the run and past the transient.

For any gradient sequence and any ε >= 0, ‖u_n‖∞ <= corr_n · (1−γ)/sqrt(1−β) · sqrt(S_n)
(docs/theory.md §3); under decoupled weight decay the measured step also holds λ‖θ_n‖∞
(``wd_term``), which is added. A ratio above 1 is therefore either rounding of the
training dtype, a numerically invalid run (e.g. float32 underflow of the second moment at
deep-unstable points, where v_n loses the fading g² terms and u_n overshoots), or a bug;
only the caller knows the second, so it can flag a point with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from stabcli.measure.window import Window
from stabcli.theory.exact import exact_bound


class BoundStatus(StrEnum):
    """Words for a ratio u_n / (bound_n + wd_term_n)."""

    WITHIN = "within the bound"  # <= 1
    ROUNDING = "within the bound up to rounding"  # <= 1 + rounding tolerance of the dtype
    INVALID = "numerically invalid"  # above, at a point the caller flagged (reason given)
    ABOVE = "above the bound"  # above, unexplained: a probe bug until shown otherwise
    UNKNOWN = "no finite value"
    #: MADA off its Adam-AVGrad-Lion face (β3 > 0 or c < 1 at some step): no bound of the
    #: path bound's form holds there (docs/theory.md (7.5)), so nothing to check; not a
    #: falsification
    NO_BOUND = "no bound off the Adam-AVGrad-Lion face"


def bound_status(ratio: float, tolerance: float, invalid_reason: str = "") -> BoundStatus:
    """The words for a ratio given the dtype's rounding tolerance and the caller's flag."""
    if not np.isfinite(ratio):
        return BoundStatus.UNKNOWN
    if ratio <= 1.0:
        return BoundStatus.WITHIN
    if ratio <= 1.0 + tolerance:
        return BoundStatus.ROUNDING
    return BoundStatus.INVALID if invalid_reason else BoundStatus.ABOVE


@dataclass(frozen=True)
class BoundCheck:
    """Largest measured u_n over the exact bound (plus the weight-decay term)."""

    ratio_all: float  # max over all finite n
    step_all: int  # the n where it is reached (−1 without a finite value)
    ratio_window: float  # max over the valid window: past the transient
    status: BoundStatus  # words for ratio_all
    note: str  # the caller's reason for INVALID; the tolerance used otherwise

    @property
    def held(self) -> bool:
        """Whether the bound held over the whole run (up to the dtype's rounding)."""
        return self.status in (BoundStatus.WITHIN, BoundStatus.ROUNDING)


def exact_bounds(
    betas: Sequence[float] | np.ndarray, gammas: Sequence[float] | np.ndarray, steps: int
) -> np.ndarray:
    """(P, S) exact bound_n for n = 0..S−1 of every point (theory.exact.exact_bound)."""
    n = np.arange(steps)
    return np.array([exact_bound(b, g, n) for b, g in zip(betas, gammas, strict=True)])


def _masked_max(ratio: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise max and argmax of ``ratio`` over finite entries where ``keep``; nan/−1 if none."""
    use = keep & np.isfinite(ratio)
    filled = np.where(use, ratio, -np.inf)
    at = filled.argmax(axis=1)
    any_ = use.any(axis=1)
    best = np.where(any_, filled[np.arange(len(at)), at], np.nan)
    return best, np.where(any_, at, -1)


def bound_checks(
    max_update: np.ndarray,  # (P, S) ‖u_n‖∞
    bounds: np.ndarray,  # (P, S) exact bound_n
    wd_term: np.ndarray | None,  # (P, S) λ‖θ_n‖∞ under decoupled weight decay, or None
    windows: Sequence[Window],
    tolerance: float,  # settings.rounding_tolerance(dtype)
    invalid: Sequence[str] | None = None,  # (P,) caller's reason a point is numerically invalid
) -> list[BoundCheck]:
    """Bound ratios of every point, over all n and over its valid window."""
    p, s = max_update.shape
    limit = bounds if wd_term is None else bounds + wd_term
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.asarray(max_update, dtype=float) / limit  # (P, S)
    everywhere = np.ones((p, s), dtype=bool)
    steps = np.arange(s)
    in_window = np.array([(steps >= w.start) & (steps < w.stop) for w in windows])  # (P, S)
    all_max, all_at = _masked_max(ratio, everywhere)
    win_max, _ = _masked_max(ratio, in_window)
    reasons = list(invalid) if invalid is not None else [""] * p
    checks = []
    for i in range(p):
        status = bound_status(float(all_max[i]), tolerance, reasons[i])
        note = (
            reasons[i] if status is BoundStatus.INVALID else f"rounding tolerance {tolerance:.2g}"
        )
        checks.append(
            BoundCheck(float(all_max[i]), int(all_at[i]), float(win_max[i]), status, note)
        )
    return checks
