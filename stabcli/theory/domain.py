"""Valid hyperparameter points and the two orders people write them in.

docs/theory.md §1: the paper's (β, γ) is PyTorch's ``betas=(beta1, beta2) = (γ, β)``.
Valid input is β in (0, 1) and γ in [0, 1); γ = 0 is RMSprop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stabcli.errors import StabcliError


def decay_text(x: float, digits: int = 6) -> str:
    """A decay rate β or γ (or torch beta1, beta2) to ``digits`` significant digits, or as
    many more as it takes not to round to 1: 0.9999999 must not read as 1, which lies
    outside the domain, nor two such points as the same one."""
    x = float(x)
    while digits < 17 and x != 1.0 and float(f"{x:.{digits}g}") == 1.0:
        digits += 1
    return f"{x:.{digits}g}"


def _finite(name: str, value: float | str, valid: str) -> float:
    """``value`` (a number, or text as typed) as a finite float, or a one-line error."""
    number: float | None = None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number):
        raise StabcliError(f"{name} must be a number in {valid}, got {value!r}")
    return number


def validate_beta(value: float | str, name: str = "beta") -> float:
    """Return β as a float, or raise :class:`StabcliError` unless 0 < β < 1."""
    value = _finite(name, value, "(0, 1)")
    if not 0.0 < value < 1.0:
        raise StabcliError(
            f"{name} must be in (0, 1) (second-moment decay, torch beta2), got {value}"
        )
    return value


def validate_gamma(value: float | str, name: str = "gamma") -> float:
    """Return γ as a float, or raise :class:`StabcliError` unless 0 <= γ < 1."""
    value = _finite(name, value, "[0, 1)")
    if not 0.0 <= value < 1.0:
        raise StabcliError(
            f"{name} must be in [0, 1) (first-moment decay, torch beta1), got {value}"
        )
    return value


@dataclass(frozen=True)
class HyperPoint:
    """One point of Adam's hyperparameter plane, in the paper's order (β, γ)."""

    beta: float  # decay of the second moment v (PyTorch beta2)
    gamma: float  # decay of the first moment m (PyTorch beta1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", validate_beta(self.beta))
        object.__setattr__(self, "gamma", validate_gamma(self.gamma))

    @classmethod
    def from_torch(cls, beta1: float, beta2: float) -> HyperPoint:
        """Build from PyTorch's ``betas=(beta1, beta2)``: γ = beta1, β = beta2."""
        return cls(beta=validate_beta(beta2, "beta2"), gamma=validate_gamma(beta1, "beta1"))

    @property
    def torch_betas(self) -> tuple[float, float]:
        """PyTorch's ``betas=(beta1, beta2) = (γ, β)``."""
        return (self.gamma, self.beta)
