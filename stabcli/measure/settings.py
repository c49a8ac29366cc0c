"""How growth is measured: one frozen dataclass of tolerances, with documented defaults.

Every figure in this package (slope profile, valid window, rate, class, verdicts, the live
monitor) reads its thresholds from :class:`MeasureSettings`, so a run directory that saves
it can be re-measured identically (docs/theory.md §9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stabcli.errors import SettingError, StabcliError

#: Machine epsilon of the arithmetic the optimizer's update runs in, per training dtype.
#: bfloat16 autocast keeps parameters and Adam's moments in float32, so float32 rounding.
_UPDATE_EPS = {
    "float64": 2.0**-52,
    "float32": 2.0**-23,
    "bfloat16": 2.0**-23,
}
#: Rounding slack of a measured ratio u_n / bound_n in units of that epsilon: m_n and v_n
#: are running sums whose relative rounding grows by ~1 eps per step until it saturates
#: near 1/(1 − decay); a few dozen eps covers the ratio's own division and square root.
_ROUNDING_ULPS = 64.0
#: Floor of the slack: the bound itself is evaluated in float64, in log space where it is
#: large (exp of up to ~709 carries a relative error of up to ~709 · 2^-53 ≈ 8e-14).
_BOUND_EVAL_TOL = 1e-12


def rounding_tolerance(dtype: str) -> float:
    """Relative slack of u_n / bound_n for a training dtype: 64 eps of the update's arithmetic.

    float32 and bfloat16 autocast (float32 moments): 7.6e-6; float64: 1e-12, the floor set
    by the float64 evaluation of the bound.
    """
    try:
        return max(_ROUNDING_ULPS * _UPDATE_EPS[dtype], _BOUND_EVAL_TOL)
    except KeyError:
        known = ", ".join(sorted(_UPDATE_EPS))
        raise StabcliError(f"unknown training dtype {dtype!r} (expected one of {known})") from None


@dataclass(frozen=True)
class MeasureSettings:
    """Thresholds of the measurement (docs/theory.md §9). Defaults in brackets."""

    growth_tol: float = 1e-3  # a rate (per step) above this is growth [1e-3]
    confidence: float = 0.95  # two-sided level of every rate interval [0.95]
    settle_tol: float = 0.02  # a predicted rate counts as settled within 2% of its limit
    min_window: int = 100  # fewest steps of a valid window [100]
    window_fraction: float = 1 / 3  # a valid window is the last third of the run [1/3] …
    max_window: int = 1000  # … at most 1000 steps, at least min_window, all settled
    profile_window: int = 100  # steps per sliding window of the slope profile [100]
    profile_stride: int = 10  # steps between consecutive profile windows [10]
    central_half: int = 5  # central difference from n − 5 to n + 5 (paper App. H) [5]
    closer_tol: float = 0.10  # a theory is "closer" only within 10% of the measured rate
    reach_tol: float = 0.5  # "clearly slower/faster": interval beyond ±50% of the predicted rate
    power_tol: float = 0.1  # √n: fitted exponent within 0.1 (or its interval) of ½

    def __post_init__(self) -> None:
        def bad(name: str, value: object, want: str) -> SettingError:
            # names the setting, so that a front end shows it as its own (--growth-tol)
            return SettingError(
                "measurement setting {" + name + "} must be {want}, got {value}",
                want=want,
                value=value,
            )

        for name in ("growth_tol", "power_tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise bad(name, value, "a number >= 0")
        if not (math.isfinite(self.window_fraction) and 0 < self.window_fraction <= 1):
            raise bad("window_fraction", self.window_fraction, "in (0, 1]")
        for name in ("settle_tol", "closer_tol", "reach_tol", "confidence"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1):
                raise bad(name, value, "strictly between 0 and 1")
        for name in ("min_window", "max_window", "profile_window", "profile_stride"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise bad(name, value, "a whole number >= 1")
        if self.min_window < 10:
            raise bad("min_window", self.min_window, ">= 10 (a rate needs some steps)")
        if self.max_window < self.min_window:
            raise bad("max_window", self.max_window, f">= min_window ({self.min_window})")
        if not (isinstance(self.central_half, int) and self.central_half >= 1):
            raise bad("central_half", self.central_half, "a whole number >= 1")

    def window_length(self, steps: int) -> int:
        """Length of the valid window of a run of ``steps`` steps, before the settle step cuts
        it: window_fraction · steps, clipped to [min_window, max_window]."""
        return min(self.max_window, max(self.min_window, round(self.window_fraction * steps)))
