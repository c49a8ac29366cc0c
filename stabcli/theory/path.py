"""The exact bound on Adam's max-update when (β_n, γ_n) change every step (docs/theory.md §5).

With step-dependent decays, m_n = γ_n m_{n−1} + (1−γ_n) g_n and
v_n = β_n v_{n−1} + (1−β_n) g_n² (m_{−1} = v_{−1} = 0, n = 0, 1, 2, ...) unroll to

    m_n = Σ_{k=0..n} a_{n,k} g_k,    a_{n,k} = (1−γ_k) Π_{j=k+1..n} γ_j
    v_n = Σ_{k=0..n} b_{n,k} g_k²,   b_{n,k} = (1−β_k) Π_{j=k+1..n} β_j

and Cauchy-Schwarz gives |m_n| ≤ sqrt(S_n) · sqrt(v_n) with S_n = Σ_k a_{n,k}²/b_{n,k}, which
obeys the recursion (docs/theory.md §5)

    S_n = r_n S_{n−1} + w_n,   r_n = γ_n²/β_n,   w_n = (1−γ_n)²/(1−β_n),   S_{−1} = 0.

So for any gradient sequence, any ε >= 0 and either ε placement,
‖u_n‖∞ <= c_n · sqrt(S_n), where c_n > 0 is the optimizer's scalar bias correction. At
constant (β, γ) this is :func:`stabcli.theory.exact.exact_bound`. Equality holds for
g_k ∝ a_{n,k}/b_{n,k} (ε = 0). Paths are arrays with time first: (T,) for one path, or
(T, P) for P paths side by side; β in (0, 1) and γ in [0, 1) at every step. β is
PyTorch's ``beta2``, γ its ``beta1``.

Pure numpy (imported inside the functions, so ``import stabcli.theory`` stays light).
"""

from __future__ import annotations

import math
from typing import Any

from stabcli.errors import StabcliError

Array = Any  # a numpy array; numpy is imported lazily (see the module docstring)


def _path(beta: Array, gamma: Array) -> tuple[Array, Array]:
    """(β, γ) as float64 arrays of one shape, time first, each inside its domain."""
    import numpy as np

    b = np.asarray(beta, dtype=np.float64)
    g = np.asarray(gamma, dtype=np.float64)
    if b.shape != g.shape or b.ndim == 0 or b.shape[0] == 0:
        raise StabcliError(
            f"a path needs beta and gamma of one shape (T,) or (T, P), got {b.shape} and {g.shape}"
        )
    bad_b = ~((b > 0.0) & (b < 1.0))  # also catches nan
    if bad_b.any():
        n = int(np.argwhere(bad_b)[0][0])
        raise StabcliError(f"beta must be in (0, 1) at every step, got {b[bad_b][0]} at step {n}")
    bad_g = ~((g >= 0.0) & (g < 1.0))
    if bad_g.any():
        n = int(np.argwhere(bad_g)[0][0])
        raise StabcliError(f"gamma must be in [0, 1) at every step, got {g[bad_g][0]} at step {n}")
    return b, g


def local_rate(beta: Array, gamma: Array) -> Array:
    """½ ln(γ_n²/β_n) = ln γ_n − ½ ln β_n: the bound's log-growth per step at step n.

    docs/theory.md §5: ½ ln(S_n/S_{n−1}) = ½ ln(r_n + w_n/S_{n−1}) >= ½ ln r_n, with equality
    in the limit S_{n−1} → ∞. Positive exactly where the path is in the exact-unstable
    region γ² > β; −inf at γ_n = 0 (RMSprop forgets everything at that step).
    """
    import numpy as np

    b, g = _path(beta, gamma)
    with np.errstate(divide="ignore"):
        return np.log(g) - 0.5 * np.log(b)


def average_rate(beta: Array, gamma: Array, start: int = 1, stop: int | None = None) -> Array:
    """Mean of :func:`local_rate` over steps start..stop−1 (docs/theory.md §5).

    Over a window where the bound is large, ln sqrt(S_n) grows by Σ ½ ln r_j, so this is
    the growth rate per step that a path's bound settles to there; for a constant point it
    is ln γ − ½ ln β, the exact theory's asymptotic rate. Step 0 carries no r (S_{−1} = 0),
    hence the default ``start=1``. A float for one path, a (P,) array for (T, P) paths.
    """
    rates = local_rate(beta, gamma)
    window = rates[start:stop]
    if window.shape[0] == 0:
        raise StabcliError(f"the window {start}:{stop} holds no step of a {len(rates)}-step path")
    mean = window.mean(axis=0)
    return float(mean) if mean.ndim == 0 else mean


def log_path_sum(beta: Array, gamma: Array) -> Array:
    """ln S_n for every step, from S_n = r_n S_{n−1} + w_n (docs/theory.md §5).

    The recursion runs in linear space on a mantissa s_n in [½, 1) with an integer binary
    exponent K_n (S_n = s_n 2^{K_n}; rescaling by powers of two is exact), so it neither
    overflows nor loses the ~1e-16-per-step accuracy of the plain recursion, however long
    the path stays in γ² > β.
    """
    mantissa, exponent = _scaled_path_sum(*_path(beta, gamma))
    import numpy as np

    return np.log(mantissa) + exponent * math.log(2.0)


def _scaled_path_sum(b: Array, g: Array) -> tuple[Array, Array]:
    """(s_n, K_n) with S_n = s_n · 2^{K_n}, s_n in [½, 1), for validated float64 paths."""
    import numpy as np

    r = g * g / b  # (T, ...) r_n
    w = (1.0 - g) ** 2 / (1.0 - b)  # (T, ...) w_n > 0
    mantissa = np.empty_like(r)
    exponent = np.empty(r.shape, dtype=np.int64)
    s = np.zeros(r.shape[1:])  # S_{−1} = 0
    k = np.zeros(r.shape[1:], dtype=np.int64)
    for n in range(r.shape[0]):
        s = r[n] * s + np.ldexp(w[n], -k)  # S_n / 2^{K_{n−1}}
        s, e = np.frexp(s)
        k = k + e
        mantissa[n], exponent[n] = s, k
    return mantissa, exponent


def path_bias_correction(beta: Array, gamma: Array) -> Array:
    """c_n = sqrt(1 − Π_{j≤n} β_j) / (1 − Π_{j≤n} γ_j): bias correction by the path's products.

    1 − Π_{j≤n} β_j = Σ_k b_{n,k} is the total weight of v_n's sum (and likewise for m_n),
    so this divides each moment by exactly its weight; MADA and HyperAdam in
    :mod:`stabcli.optim` use it. At constant betas it is PyTorch's sqrt(1−β^{n+1})/(1−γ^{n+1}).
    Computed as −expm1(Σ ln β_j), exact near β = 1.
    """
    import numpy as np

    b, g = _path(beta, gamma)
    with np.errstate(divide="ignore"):
        bc2 = -np.expm1(np.cumsum(np.log(b), axis=0))
        bc1 = -np.expm1(np.cumsum(np.log(g), axis=0))
    return np.sqrt(bc2) / bc1


def current_bias_correction(beta: Array, gamma: Array) -> Array:
    """c_n = sqrt(1 − β_n^{n+1}) / (1 − γ_n^{n+1}): PyTorch's, with the betas of step n.

    What ``torch.optim.Adam`` computes when its betas are changed between steps (by a
    schedule or a monitor): the powers use the current betas and PyTorch's step n + 1.
    """
    import numpy as np

    b, g = _path(beta, gamma)
    steps = np.arange(1, b.shape[0] + 1, dtype=np.float64).reshape((-1,) + (1,) * (b.ndim - 1))
    with np.errstate(divide="ignore"):
        return np.sqrt(-np.expm1(steps * np.log(b))) / -np.expm1(steps * np.log(g))


def path_bound(beta: Array, gamma: Array, corr: Array | None = None) -> Array:
    """The exact bound on ‖u_n‖∞ along a path: c_n · sqrt(S_n) (docs/theory.md §5).

    Holds for every gradient sequence, every ε >= 0 and either ε placement; with decoupled
    weight decay add λ‖θ_n‖∞ to compare with a measured step. ``corr`` is the optimizer's
    bias correction c_n, shape like the path; by default :func:`path_bias_correction`
    (what :mod:`stabcli.optim`'s MADA and HyperAdam use), or pass
    :func:`current_bias_correction` for ``torch.optim.Adam`` with betas changed in flight.
    At constant betas it equals :func:`stabcli.theory.exact.exact_bound`. Evaluated from
    S_n's mantissa and binary exponent: +inf only where the bound itself passes the float
    range.
    """
    import numpy as np

    b, g = _path(beta, gamma)
    c = path_bias_correction(b, g) if corr is None else np.asarray(corr, dtype=np.float64)
    if c.shape != b.shape:
        raise StabcliError(f"corr must have the path's shape {b.shape}, got {c.shape}")
    mantissa, exponent = _scaled_path_sum(b, g)
    odd = exponent % 2  # sqrt(s 2^K) = sqrt(s 2^{K mod 2}) · 2^{⌊K/2⌋}
    root = np.sqrt(mantissa * (1.0 + odd))
    with np.errstate(over="ignore"):
        return c * np.ldexp(root, (exponent - odd) // 2)


def log_path_bound(beta: Array, gamma: Array, corr: Array | None = None) -> Array:
    """ln of :func:`path_bound`, finite even where the bound passes the float range."""
    import numpy as np

    b, g = _path(beta, gamma)
    c = path_bias_correction(b, g) if corr is None else np.asarray(corr, dtype=np.float64)
    if c.shape != b.shape:
        raise StabcliError(f"corr must have the path's shape {b.shape}, got {c.shape}")
    return np.log(c) + 0.5 * log_path_sum(b, g)


def mada_path_bound(
    beta: Array, gamma: Array, rho: Array, omega: Array, corr: Array | None = None
) -> Array:
    """Bound on MADA's ‖u_n‖∞ on its Adam-AVGrad-Lion face (β3 = 0, c = 1): docs/theory.md §7.

    There v̄ is Adam's second moment, V = ρ v̂ + (1−ρ) ṽ with ṽ_n the mean of v̂_0..v̂_n, and
    u = ω a + (1−ω) sign(·) (MADA, arXiv 2401.08893, App. C.1). Since ṽ_n >= v̂_n/(n+1),
    V >= (ρ + (1−ρ)/(n+1)) v̂, so with the path bound B_n = c_n sqrt(S_n) on |m̂|/sqrt(v̂):

        ‖u_n‖∞ <= ω_n B_n / sqrt(ρ_n + (1−ρ_n)/(n+1)) + (1 − ω_n).

    Attained at ρ = 1 (Adam, or Adam mixed with Lion when the signs agree); for ρ < 1 it
    is an upper bound only (AVGrad's mean lets it grow like sqrt(n) after quiet stretches).
    ``rho`` and ``omega`` are paths like β and γ, in [0, 1]; ``corr`` as in :func:`path_bound`.
    No bound of this form holds off the face (Adan's β3 n term, Yogi's c < 1).
    """
    import numpy as np

    b, g = _path(beta, gamma)
    r = np.asarray(rho, dtype=np.float64)
    w = np.asarray(omega, dtype=np.float64)
    for name, x in (("rho", r), ("omega", w)):
        if x.shape != b.shape:
            raise StabcliError(f"{name} must have the path's shape {b.shape}, got {x.shape}")
        if not np.all((x >= 0.0) & (x <= 1.0)):
            raise StabcliError(f"{name} must be in [0, 1] at every step")
    steps = np.arange(1, b.shape[0] + 1, dtype=np.float64).reshape((-1,) + (1,) * (b.ndim - 1))
    weight = r + (1.0 - r) / steps  # V >= weight · v̂
    with np.errstate(over="ignore", invalid="ignore"):
        adaptive = path_bound(b, g, corr) / np.sqrt(weight)
        return np.where(w > 0.0, w * adaptive, 0.0) + (1.0 - w)


def first_unstable_step(beta: Array, gamma: Array) -> Any:
    """The first step n at which the path is in the exact-unstable region γ_n² > β_n.

    docs/theory.md §5: only there does the bound's log-growth ½ ln r_n turn positive. For one
    path (shape (T,)) an int, or None when it never enters; for (T, P) paths a (P,) int
    array with −1 for the paths that never enter.
    """
    import numpy as np

    b, g = _path(beta, gamma)
    unstable = g * g > b  # (T, ...)
    first = np.where(unstable.any(axis=0), unstable.argmax(axis=0), -1)
    if first.ndim == 0:
        return None if first < 0 else int(first)
    return first
