"""Functional update kernels of Adam and k-Adam: the optimizer math, written once.

One level of k-Adam is the adaptive normalization A_{γ,β} of the paper (App. Q), applied to
an input sequence x_n (docs/theory.md §1, §6):

    m ← γ m + (1−γ) x,    v ← β v + (1−β) x²,    u = corr_n · m / (sqrt(v) + ε')
    corr_n = sqrt(1 − β^{n+1}) / (1 − γ^{n+1})                         (paper eq. 5)

β decays the second moment (PyTorch ``beta2``), γ the first (``beta1``). k-Adam (paper
Section 4.2, eq. 10; the loop of App. R, Algorithm 1) applies it level by level:
u^{(0)} = g, u^{(i)} = A_{γ_i,β_i}(u^{(i−1)}), and steps by u^{(k)}; Adam is k = 1.
Coupled weight decay adds λθ to g before level 1; decoupled weight decay adds λθ to u^{(k)}.

ε placement (:data:`EPS_PLACEMENTS`): ``"paper"`` uses ε' = ε (App. R's ``C m/(sqrt(v) + ε)``);
``"torch"`` adds ε after bias-correcting sqrt(v), as ``torch.optim.Adam``, which is
ε' = ε · sqrt(1 − β^{n+1}).

The same kernel runs on two kinds of operands, through an ``ops`` backend:

- :data:`SINGLE` / :data:`STACKED` (:class:`TensorOps`): one tensor per call. Either one
  parameter tensor with Python-float coefficients, or the probe engine's stacked (P, N)
  buffer (P points) with per-point coefficients as (P, 1) tensors, so that no value ever
  goes back to the host.
- :data:`FOREACH` (:class:`ForeachOps`): lists of tensors with Python-float coefficients,
  through ``torch._foreach_*`` ops (a public optimizer's parameter group at a time).

Every kernel works in place on preallocated state and scratch; none allocates a
parameter-sized tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import torch
from torch import Tensor

from stabcli.theory.update import bias_correction, one_minus_power

Coeff = float | Tensor  # a Python float, or a tensor broadcastable to the operand, e.g. (P, 1)
EpsPlacement = Literal["torch", "paper"]
EPS_PLACEMENTS: tuple[EpsPlacement, ...] = ("torch", "paper")

T = TypeVar("T")  # the operand: a Tensor, or a list of Tensors
T_in = TypeVar("T_in", contravariant=True)


@dataclass(frozen=True)
class LevelCoeffs:
    """The scalars of one level's update at one step n (docs/theory.md §1, §6).

    Python floats for one parameter tensor or a foreach list; (P, 1) tensors for P stacked
    points.
    """

    beta: Coeff  # β_i: decay of v^{(i)} (the level's PyTorch beta2)
    one_minus_beta: Coeff  # 1 − β_i: weight of the new squared input in v^{(i)}
    one_minus_gamma: Coeff  # 1 − γ_i: weight of the new input in m^{(i)} (γ_i is beta1)
    corr: Coeff  # corr_n = sqrt(1 − β_i^{n+1}) / (1 − γ_i^{n+1}) (paper eq. 5)
    eps: Coeff  # ε': ε·sqrt(1 − β_i^{n+1}) for the "torch" placement, ε for "paper"


def level_coeffs(
    beta: float, gamma: float, n: int, eps: float, eps_placement: EpsPlacement
) -> LevelCoeffs:
    """:class:`LevelCoeffs` of a level with decays (β, γ) at step n = 0, 1, 2, ... as floats.

    corr_n comes from :func:`stabcli.theory.update.bias_correction` (exact near β = 1).
    """
    if eps_placement not in EPS_PLACEMENTS:
        raise ValueError(f"eps_placement must be one of {EPS_PLACEMENTS}, got {eps_placement!r}")
    eps_prime = eps * math.sqrt(one_minus_power(beta, n)) if eps_placement == "torch" else eps
    return LevelCoeffs(
        beta=beta,
        one_minus_beta=1.0 - beta,
        one_minus_gamma=1.0 - gamma,
        corr=bias_correction(beta, gamma, n),
        eps=eps_prime,
    )


class Ops(Protocol[T_in]):
    """Elementwise primitives on an operand T; the kernels below compose them.

    ``out`` may alias an input where a method says so; every method works in place.
    """

    def lerp_(self, state: T_in, x: T_in, weight: Coeff) -> None:
        """state ← state + weight · (x − state)."""
        ...

    def ema_square_(self, state: T_in, x: T_in, decay: Coeff, weight: Coeff, scratch: T_in) -> None:
        """state ← decay · state + weight · x² (weight = 1 − decay); scratch may be x."""
        ...

    def sqrt_add(self, v: T_in, eps: Coeff, out: T_in) -> None:
        """out ← sqrt(v) + eps."""
        ...

    def ratio_(self, m: T_in, out: T_in, scale: Coeff) -> None:
        """out ← scale · m / out."""
        ...

    def add_product(self, x: T_in, y: T_in, factor: Coeff, out: T_in) -> None:
        """out ← x + factor · y; out may be x."""
        ...

    def scale_(self, x: T_in, factor: float) -> None:
        """x ← factor · x."""
        ...

    def addcdiv_(self, x: T_in, num: T_in, den: T_in, value: float) -> None:
        """x ← x + value · num / den."""
        ...

    def max_abs(self, x: T_in) -> Tensor:
        """‖x‖∞ on the device: (P,) per point for stacked operands, else a 0-dim tensor.

        NaN propagates (a diverged point reads NaN, not a finite maximum).
        """
        ...


class TensorOps:
    """:class:`Ops` on single tensors; coefficients are floats or broadcastable tensors.

    ``stacked``: the first dimension indexes points (the engine's (P, N) buffer), and
    :meth:`max_abs` reduces every other dimension.
    """

    def __init__(self, stacked: bool = False):
        self.stacked = stacked

    def lerp_(self, state: Tensor, x: Tensor, weight: Coeff) -> None:
        state.lerp_(x, weight)

    def ema_square_(
        self, state: Tensor, x: Tensor, decay: Coeff, weight: Coeff, scratch: Tensor
    ) -> None:
        # square into scratch, then lerp: one formula for float and (P, 1) tensor weights
        torch.mul(x, x, out=scratch)
        state.lerp_(scratch, weight)

    def sqrt_add(self, v: Tensor, eps: Coeff, out: Tensor) -> None:
        torch.sqrt(v, out=out)
        out.add_(eps)

    def ratio_(self, m: Tensor, out: Tensor, scale: Coeff) -> None:
        torch.div(m, out, out=out)
        out.mul_(scale)

    def add_product(self, x: Tensor, y: Tensor, factor: Coeff, out: Tensor) -> None:
        if isinstance(factor, Tensor):
            torch.addcmul(x, y, factor, out=out)
        else:
            torch.add(x, y, alpha=factor, out=out)

    def scale_(self, x: Tensor, factor: float) -> None:
        x.mul_(factor)

    def addcdiv_(self, x: Tensor, num: Tensor, den: Tensor, value: float) -> None:
        x.addcdiv_(num, den, value=value)

    def max_abs(self, x: Tensor) -> Tensor:
        dims = tuple(range(1, x.ndim)) if self.stacked else None
        return torch.linalg.vector_norm(x, ord=math.inf, dim=dims)


def _number(c: Coeff) -> float:
    """A foreach coefficient: a Python number (foreach ops take no per-tensor weights)."""
    if isinstance(c, Tensor):
        raise TypeError("foreach operands take float coefficients, not tensors")
    return c


class ForeachOps:
    """:class:`Ops` on lists of tensors with Python-float coefficients.

    In-place steps are single ``torch._foreach_*`` calls. PyTorch has no foreach form that
    writes into existing tensors (``out=``), so :meth:`sqrt_add`, :meth:`ratio_` and
    :meth:`add_product` loop over the list for that one step, which keeps the kernels
    free of per-step allocations (on CUDA that loop is one launch per tensor).
    """

    def lerp_(self, state: list[Tensor], x: list[Tensor], weight: Coeff) -> None:
        torch._foreach_lerp_(state, x, _number(weight))

    def ema_square_(
        self,
        state: list[Tensor],
        x: list[Tensor],
        decay: Coeff,
        weight: Coeff,
        scratch: list[Tensor],
    ) -> None:
        # two foreach calls and no scratch: decay·state, then + weight·x·x
        torch._foreach_mul_(state, _number(decay))
        torch._foreach_addcmul_(state, x, x, value=_number(weight))

    def sqrt_add(self, v: list[Tensor], eps: Coeff, out: list[Tensor]) -> None:
        for v_t, out_t in zip(v, out, strict=True):
            torch.sqrt(v_t, out=out_t)
        torch._foreach_add_(out, _number(eps))

    def ratio_(self, m: list[Tensor], out: list[Tensor], scale: Coeff) -> None:
        for m_t, out_t in zip(m, out, strict=True):
            torch.div(m_t, out_t, out=out_t)
        torch._foreach_mul_(out, _number(scale))

    def add_product(
        self, x: list[Tensor], y: list[Tensor], factor: Coeff, out: list[Tensor]
    ) -> None:
        alpha = _number(factor)
        if out is x:
            torch._foreach_add_(out, y, alpha=alpha)
            return
        for x_t, y_t, out_t in zip(x, y, out, strict=True):
            torch.add(x_t, y_t, alpha=alpha, out=out_t)

    def scale_(self, x: list[Tensor], factor: float) -> None:
        torch._foreach_mul_(x, factor)

    def addcdiv_(self, x: list[Tensor], num: list[Tensor], den: list[Tensor], value: float) -> None:
        torch._foreach_addcdiv_(x, num, den, value=value)

    def max_abs(self, x: list[Tensor]) -> Tensor:
        return torch.stack(torch._foreach_norm(x, ord=math.inf)).amax()


SINGLE = TensorOps()  # one parameter tensor, float coefficients
STACKED = TensorOps(stacked=True)  # (P, N) points × parameters, (P, 1) coefficients
FOREACH = ForeachOps()  # a list of parameter tensors, float coefficients


def _moment_update(ops: Ops[T], x: T, m: T, v: T, c: LevelCoeffs, out: T) -> None:
    """Feed x to one level: m ← γm + (1−γ)x, v ← βv + (1−β)x², out ← sqrt(v) + ε'.

    ``out`` may be x: x is read by both moment updates before out is written.
    """
    ops.lerp_(m, x, c.one_minus_gamma)
    ops.ema_square_(v, x, c.beta, c.one_minus_beta, scratch=out)
    ops.sqrt_add(v, c.eps, out)


def adam_direction(ops: Ops[T], x: T, m: T, v: T, c: LevelCoeffs, out: T) -> None:
    """One level (Adam's direction, the paper's A_{γ,β} of App. Q), in place:

    m ← γ m + (1−γ) x,  v ← β v + (1−β) x²,  out ← corr_n · m / (sqrt(v) + ε').

    ``out`` may be x (the input is consumed before the result is written).
    """
    _moment_update(ops, x, m, v, c, out)
    ops.ratio_(m, out, c.corr)


def _check_levels(ms: Sequence[object], vs: Sequence[object], coeffs: Sequence[object]) -> int:
    k = len(coeffs)
    if k < 1 or len(ms) != k or len(vs) != k:
        raise ValueError(f"k-Adam needs k >= 1 levels of (m, v, coefficients), got {k}")
    return k


def kadam_direction(
    ops: Ops[T],
    grad: T,
    exp_avg: Sequence[T],
    exp_avg_sq: Sequence[T],
    coeffs: Sequence[LevelCoeffs],
    out: T,
    *,
    theta: T | None = None,
    weight_decay: Coeff = 0.0,
    decoupled: bool = True,
    level_max: list[Tensor] | None = None,
) -> None:
    """out ← the k-Adam step direction u^{(k)} (+ λθ), updating every level's m and v.

    Paper Section 4.2 eq. (10) and App. R, Algorithm 1 (docs/theory.md §6):
    u^{(0)} = g (+ λθ when coupled), u^{(i)} = corr_n^{(i)} m^{(i)} / (sqrt(v^{(i)}) + ε'_i)
    after m^{(i)}, v^{(i)} take u^{(i−1)}; with decoupled decay out = u^{(k)} + λθ, so that
    θ_{n+1} = θ_n − η · out and ‖out‖∞ is the measured max-update (docs/theory.md §1).

    ``level_max``, when given, receives ‖u^{(i)}‖∞ for i = 1..k (before λθ is added), as
    :meth:`Ops.max_abs` computes it: (P,) per point for stacked operands (paper App. S
    bounds each level). ``theta`` is needed only for a nonzero weight decay. ``grad`` is
    never written.
    """
    _check_levels(exp_avg, exp_avg_sq, coeffs)
    wd = isinstance(weight_decay, Tensor) or weight_decay != 0.0
    if wd and theta is None:
        raise ValueError("weight decay needs theta")
    x = grad
    if wd and not decoupled:
        ops.add_product(grad, theta, weight_decay, out)  # type: ignore[arg-type]
        x = out
    for m, v, c in zip(exp_avg, exp_avg_sq, coeffs, strict=True):
        adam_direction(ops, x, m, v, c, out)
        if level_max is not None:
            level_max.append(ops.max_abs(out))
        x = out
    if wd and decoupled:
        ops.add_product(out, theta, weight_decay, out)  # type: ignore[arg-type]


def kadam_update_(
    ops: Ops[T],
    theta: T,
    grad: T,
    exp_avg: Sequence[T],
    exp_avg_sq: Sequence[T],
    coeffs: Sequence[LevelCoeffs],
    scratch: T,
    *,
    lr: float,
    weight_decay: float = 0.0,
    decoupled: bool = True,
) -> None:
    """One k-Adam step on the parameters, in place: θ ← θ − η (u^{(k)} + λθ) (decoupled)
    or θ ← θ − η u^{(k)} with u^{(0)} = g + λθ (coupled); App. R, Algorithm 1.

    The same levels as :func:`kadam_direction`, but the last level's ratio goes straight
    into θ (one ``addcdiv``), so u^{(k)} is never stored: the public optimizer's path, with
    float coefficients (``lr``, ``weight_decay`` and every :class:`LevelCoeffs` field).
    Decoupled decay scales θ by (1 − ηλ) first, as ``torch.optim.AdamW`` does.
    ``scratch`` is shaped like θ; ``grad`` is never written.
    """
    k = _check_levels(exp_avg, exp_avg_sq, coeffs)
    x = grad
    if weight_decay != 0.0 and not decoupled:
        ops.add_product(grad, theta, weight_decay, scratch)  # u^{(0)} = g + λθ
        x = scratch
    for i in range(k - 1):
        adam_direction(ops, x, exp_avg[i], exp_avg_sq[i], coeffs[i], scratch)
        x = scratch
    last = coeffs[k - 1]
    if not isinstance(last.corr, float):
        raise TypeError("kadam_update_ takes float coefficients; use kadam_direction")
    _moment_update(ops, x, exp_avg[k - 1], exp_avg_sq[k - 1], last, scratch)
    if weight_decay != 0.0 and decoupled:
        ops.scale_(theta, 1.0 - lr * weight_decay)
    ops.addcdiv_(theta, exp_avg[k - 1], scratch, -lr * last.corr)
