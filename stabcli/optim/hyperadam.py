"""HyperAdam: Adam whose β1 and β2 are learned by hyper-gradient descent.

Chandra et al. 2022 ("Gradient descent: the ultimate optimizer", NeurIPS 2022,
arXiv 1909.13371), as the MADA paper (arXiv 2401.08893, Section 2 footnote 1 and Section 5)
uses it as a baseline. The moment math is Adam's kernel from :mod:`stabcli.optim.kernels`
(shared with k-Adam and the probe engine); this module adds the derivative of the update in
the betas and the optimizer around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from stabcli.optim.hypergrad import BETA1, BETA2, HyperOptimizer
from stabcli.optim.kernels import SINGLE, LevelCoeffs, TensorOps, adam_direction

Coef = float | torch.Tensor  # a Python float, or a tensor broadcasting over the moments

#: HyperAdam's learnable coefficients, in the order of ``hyper_dir``'s rows.
HYPERADAM_COEFFICIENTS = ("beta1", "beta2")


#: Scratch tensors (shaped like the moments) that :func:`hyperadam_step` works in.
HYPERADAM_SCRATCH = 3


def _axpy_(x: torch.Tensor, y: torch.Tensor, a: Coef) -> torch.Tensor:
    """x ← x + a·y in place, for a float or a broadcasting tensor ``a``."""
    if isinstance(a, torch.Tensor):
        return x.addcmul_(y, a)
    return x.add_(y, alpha=a)


def hyperadam_step(
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    grad: torch.Tensor,
    beta1: Coef,
    beta2: Coef,
    prod1: Coef,
    prod2: Coef,
    eps: float,
    learned: Sequence[str] = (),
    out: torch.Tensor | None = None,
    scratch: Sequence[torch.Tensor] | None = None,
    out_scale: Coef = 1.0,
    ops: TensorOps = SINGLE,
    bias_corrections: tuple[Coef, Coef] | None = None,
) -> torch.Tensor:
    """Advance Adam's moments by one step and return u_t; ∂u_t/∂β_k into ``out[k]``.

    The derivatives are multiplied by ``out_scale`` (the optimizer passes −η_t, to store
    ∂θ_t/∂β directly).

    With P1 = Π_{j<t} β1_j and P2 = Π_{j<t} β2_j (``prod1``, ``prod2``; 1 at t = 1)::

        m_t = β1 m_{t−1} + (1−β1) g,   v_t = β2 v_{t−1} + (1−β2) g²
        m̂ = m_t/(1 − P1 β1),   v̂ = v_t/(1 − P2 β2),   u_t = m̂/(sqrt(v̂) + ε)

    (bias correction by the betas' products along the path, docs/theory.md §5; PyTorch's
    1 − β^t at constant betas; ε after the square root, as ``torch.optim.Adam``). The
    moments go through :func:`stabcli.optim.kernels.adam_direction` with
    corr = sqrt(1 − P2 β2)/(1 − P1 β1) and ε' = ε sqrt(1 − P2 β2). Derivatives, with the
    moments of step t−1 held fixed (the paper's one-step hyper-gradient, Section 3 eq. (4)),
    D = sqrt(v̂) + ε::

        ∂u/∂β1 = (m_{t−1} − g + m̂ P1) / ((1 − P1 β1) D)
        ∂u/∂β2 = −u/(2 sqrt(v̂) D) · (v_{t−1} − g² + v̂ P2)/(1 − P2 β2)

    Coefficients are floats, or (P, 1) tensors over a (P, N) buffer with ``ops=STACKED``.
    ``bias_corrections``, when given, is (1 − P1 β1, 1 − P2 β2) computed by the caller: the
    probe engine forms them in float64 and passes them cast to float32, since 1 − P2 β2
    formed in float32 from β2 near 1 loses up to ~1e-3 of its value to cancellation.
    ``scratch`` holds :data:`HYPERADAM_SCRATCH` tensors shaped like ``grad`` (fresh ones
    when None); the returned u_t is the first of them. ``grad`` is never written.
    """
    want = set(learned)
    if want - set(HYPERADAM_COEFFICIENTS):
        raise ValueError(f"unknown HyperAdam coefficient(s) {sorted(want)}")
    if want and (out is None or out.shape[0] < len(learned)):
        raise ValueError("out needs one row per learned beta")
    bufs = scratch if scratch is not None else [torch.empty_like(grad) for _ in range(3)]
    u, root, den = bufs[:HYPERADAM_SCRATCH]
    index = {name: k for k, name in enumerate(learned)}

    def deriv(name: str) -> torch.Tensor:
        """out's row for ∂u/∂q_name."""
        assert out is not None
        return out[index[name]]

    if "beta1" in want:
        torch.sub(exp_avg, grad, out=deriv("beta1"))  # m_{t−1} − g, scaled below
    if "beta2" in want:
        torch.addcmul(exp_avg_sq, grad, grad, value=-1.0, out=deriv("beta2"))  # v_{t−1} − g²
    if bias_corrections is None:
        bc1, bc2 = 1.0 - prod1 * beta1, 1.0 - prod2 * beta2
    else:
        bc1, bc2 = bias_corrections
    sqrt_bc2 = bc2**0.5
    coeffs = LevelCoeffs(
        beta=beta2,
        one_minus_beta=1.0 - beta2,
        one_minus_gamma=1.0 - beta1,
        corr=sqrt_bc2 / bc1,
        eps=eps * sqrt_bc2,
    )
    adam_direction(ops, grad, exp_avg, exp_avg_sq, coeffs, u)
    if not want:
        return u
    assert out is not None
    torch.div(exp_avg_sq, bc2, out=root).sqrt_()  # sqrt(v̂)
    torch.add(root, eps, out=den)  # D
    if "beta1" in want:
        _axpy_(deriv("beta1"), exp_avg, prod1 / bc1).div_(den).mul_(out_scale / bc1)
    if "beta2" in want:
        # ∂u/∂v̂ = −u/(2 sqrt(v̂) D); v̂ = 0 only where every g so far was 0, and u = 0
        root.mul_(den).clamp_min_(torch.finfo(root.dtype).tiny)
        r = _axpy_(deriv("beta2"), exp_avg_sq, prod2 / bc2)  # v_{t−1} − g² + v̂ P2
        r.mul_(u).div_(root).mul_(-0.5 * out_scale / bc2)
    return u


class HyperAdam(HyperOptimizer):
    r"""Adam with β1 and β2 learned by hyper-gradient descent (Chandra et al. 2022).

    Update rule at step t (symbols → arguments: η ``lr``, (β1, β2) ``betas`` in PyTorch's
    order, i.e. γ = β1 and β = β2 in docs/theory.md; ε ``eps``; λ ``weight_decay``;
    κ ``hyper_lr``; D ``bounds``)::

        (β1, β2)_t = Π_D[(β1, β2)_{t−1} − κ ⊙ ⟨g_t, ∂θ_{t−1}/∂(β1, β2)⟩]    (t >= 2)
        g_t ← g_t + λ θ_{t−1}                          (only if not decoupled_weight_decay)
        m_t = β1 m_{t−1} + (1−β1) g_t,   v_t = β2 v_{t−1} + (1−β2) g_t²
        u_t = (m_t/(1 − Π_{j≤t} β1_j)) / (sqrt(v_t/(1 − Π_{j≤t} β2_j)) + ε)
        θ_t = θ_{t−1} − η λ θ_{t−1} [if decoupled] − η u_t

    With ``hyper_lr=0`` (or constant betas) this is ``torch.optim.Adam`` (``AdamW`` with
    ``decoupled_weight_decay=True``): the products Π_{j≤t} β_j are PyTorch's β^t then. The
    hyper-gradient is the MADA paper's one-step truncation (Section 3, eq. (4);
    :mod:`stabcli.optim.hypergrad`), computed analytically in ``step()`` at O(N) cost, from
    ``p.grad``. The betas move before θ does, so after each ``step()`` ``group["betas"]``
    holds the pair that made it; the (β, γ) = (β2, β1) path then obeys
    :func:`stabcli.theory.path.path_bound` (docs/theory.md §5, §7), whose default bias
    correction is the one used here.

    Args:
        params: parameters or param groups; each group may set any argument below.
        lr: η.
        betas: initial (β1, β2).
        eps: ε.
        weight_decay: λ.
        decoupled_weight_decay: AdamW-style decay if True, as ``torch.optim.Adam``'s flag.
        hyper_lr: κ; one number for both betas or a mapping {"beta1": κ1, "beta2": κ2}
            (a missing name is not learned). Default 1e-4 for both (MADA paper App. C.2).
        bounds: the box D, e.g. ``{"beta1": (0.5, 0.99)}``; defaults β1 in [0, 0.999],
            β2 in [0.5, 0.9999].
    """

    coefficients = (BETA1, BETA2)
    scratch_count = HYPERADAM_SCRATCH + 1  # + the gradient with coupled weight decay

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = False,
        hyper_lr: float | Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "hyper_lr": {c.name: c.hyper_lr for c in self.coefficients}
            if hyper_lr is None
            else hyper_lr,
            "bounds": bounds,
        }
        super().__init__(params, defaults)

    def _update(
        self,
        p: torch.Tensor,
        group: dict[str, Any],
        state: dict[str, Any],
        learned: list[str],
        out: torch.Tensor | None,
    ) -> None:
        grad = p.grad
        assert grad is not None
        if not state:
            state["step"] = 0
            state["prod1"] = 1.0  # Π_{j<t} β1_j
            state["prod2"] = 1.0  # Π_{j<t} β2_j
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        lr, wd = float(group["lr"]), float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])
        scratch = self._scratch(p)
        if wd and not decoupled:
            grad = torch.add(grad, p, alpha=wd, out=scratch[HYPERADAM_SCRATCH])
        beta1, beta2 = group["betas"]
        u = hyperadam_step(
            state["exp_avg"],
            state["exp_avg_sq"],
            grad,
            beta1,
            beta2,
            state["prod1"],
            state["prod2"],
            float(group["eps"]),
            learned,
            out,
            scratch[:HYPERADAM_SCRATCH],
            out_scale=-lr,  # store ∂θ_t/∂β = −η_t ∂u_t/∂β
        )
        state["prod1"] *= beta1
        state["prod2"] *= beta2
        if wd and decoupled:
            p.mul_(1.0 - lr * wd)
        p.add_(u, alpha=-lr)
