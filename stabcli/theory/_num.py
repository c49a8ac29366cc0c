"""Elementwise math that works on Python floats and on numpy arrays alike.

The closed forms in this package take scalar (β, γ) and a step ``n`` that is an int or a
numpy array. Scalars go through :mod:`math` (so ``stabcli check`` never imports numpy);
arrays go through numpy, which is already imported whenever an array exists.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

Num = Any  # float, int or numpy array: the annotations say which where it matters


def _is_scalar(x: object) -> bool:
    return isinstance(x, int | float)


def exp(x: Num) -> Num:
    if _is_scalar(x):
        try:
            return math.exp(x)
        except OverflowError:
            return math.inf
    import numpy as np

    with np.errstate(over="ignore"):
        return np.exp(x)


def expm1(x: Num) -> Num:
    if _is_scalar(x):
        if x == -math.inf:
            return -1.0
        try:
            return math.expm1(x)
        except OverflowError:
            return math.inf
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        return np.expm1(x)


def log(x: Num) -> Num:
    if _is_scalar(x):
        if x > 0:
            return math.log(x)
        return -math.inf if x == 0 else math.nan
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def sqrt(x: Num) -> Num:
    if _is_scalar(x):
        return math.sqrt(x) if x >= 0 else math.nan
    import numpy as np

    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def full_like(n: Num, value: float) -> Num:
    """``value`` with the shape of ``n`` (a float when ``n`` is a scalar)."""
    if _is_scalar(n):
        return float(value)
    import numpy as np

    return np.full(np.shape(n), value, dtype=float)


def as_steps(n: Num) -> Num:
    """Validate a step index (int >= 0, or an array of them) and return it as float(s)."""
    if _is_scalar(n):
        if n < 0:
            raise ValueError(f"step n must be >= 0, got {n}")
        return float(n)
    import numpy as np

    arr = np.asarray(n, dtype=float)
    if np.any(arr < 0):
        raise ValueError("steps n must be >= 0")
    return arr


def cbrt(x: Num) -> Num:
    """Real cube root (negative for negative input), for floats and arrays."""
    if _is_scalar(x):
        return math.copysign(abs(x) ** (1.0 / 3.0), x)
    import numpy as np

    return np.cbrt(x)


@contextlib.contextmanager
def quiet_overflow() -> Iterator[None]:
    """Let numpy overflow to inf silently (a bound that passes the float range is inf)."""
    import sys

    np = sys.modules.get("numpy")
    if np is None:
        yield
        return
    with np.errstate(over="ignore", invalid="ignore"):
        yield
