"""MADA: the meta-adaptive optimizer that learns its own coefficients (arXiv 2401.08893).

A ``torch.optim.Optimizer`` for the paper's parameterized optimizer (Section 2 and App. C.1,
written out in :mod:`stabcli.optim.mada_kernel`) whose coefficients
q = (β1, β2, β3, ρ, c, ω) are learned during training by projected hyper-gradient descent
(Section 3, Algorithm 1; :mod:`stabcli.optim.hypergrad`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from stabcli.errors import StabcliError
from stabcli.optim.hypergrad import BETA1, BETA2, Coefficient, HyperOptimizer, get_coefficient
from stabcli.optim.mada_kernel import (
    MADA_COEFFICIENTS,
    MADA_SCRATCH,
    MadaCoefficients,
    MadaMoments,
    mada_step,
)

#: Hard domains, default boxes D and hyper-learning rates: the betas as in
#: :mod:`stabcli.optim.hypergrad`; the interpolation coefficients on the paper's unit
#: interval (β3 below 1, a decay), with κ = 1e-2 (App. C.2, vision tasks; Section 5.2).
COEFFICIENTS = (
    BETA1,
    BETA2,
    Coefficient("beta3", 0.0, 1.0, False, True, (0.0, 0.999), 1e-2),
    Coefficient("rho", 0.0, 1.0, False, False, (0.0, 1.0), 1e-2),
    Coefficient("c", 0.0, 1.0, False, False, (0.0, 1.0), 1e-2),
    Coefficient("omega", 0.0, 1.0, False, False, (0.0, 1.0), 1e-2),
)
assert tuple(c.name for c in COEFFICIENTS) == MADA_COEFFICIENTS

DEFAULT_HYPER_LR = {c.name: c.hyper_lr for c in COEFFICIENTS}

_MOMENTS = ("exp_avg", "exp_diff", "exp_avg_sq", "exp_avg_sq_mean", "prev_grad", "lion_avg")


class MADA(HyperOptimizer):
    r"""Meta-adaptive optimizer (MADA; Ozkara et al., ICML 2024, arXiv 2401.08893).

    Update rule at step t (the paper's eqs. (1)-(3) with App. C.1; elementwise; symbols →
    arguments: η ``lr``, (β1, β2) ``betas`` (PyTorch's order: β1 decays m, β2 decays v̄; in
    docs/theory.md's (β, γ) notation γ = β1 and β = β2), β3 ``beta3``, ρ ``rho``,
    c ``c``, ω ``omega``, ε ``eps``, λ ``weight_decay``, (β1ᴸ, β2ᴸ) ``lion_betas``,
    κ ``hyper_lr``, D ``bounds``)::

        q_t  = Π_D[q_{t−1} − κ ⊙ ⟨g_t, ∂θ_{t−1}/∂q⟩]        (t >= 2; hyper-gradient step)
        g_t ← g_t + λ θ_{t−1}                              (only if not decoupled_weight_decay)
        d_t  = g_t − g_{t−1} (d_1 = 0),  ĝ_t = g_t + β3 d_t
        m_t  = β1 m_{t−1} + (1−β1) g_t,   n_t = β3 n_{t−1} + (1−β3) d_t
        g̃²_t = c ĝ_t² + (1−c)(v̄_{t−1} + ĝ_t² sign(ĝ_t² − v̄_{t−1}))
        v̄_t  = β2 v̄_{t−1} + (1−β2) g̃²_t,   v̂_t = v̄_t/(1 − Π_{j≤t} β2_j)
        ṽ_t  = ṽ_{t−1} + (v̂_t − ṽ_{t−1})/t,   V_t = ρ v̂_t + (1−ρ) ṽ_t
        u_t  = ω (m_t/(1 − Π_{j≤t} β1_j) + β3 n_t)/(sqrt(V_t) + ε)
               + (1−ω) sign(β1ᴸ mᴸ_{t−1} + (1−β1ᴸ) g_t),   mᴸ_t = β2ᴸ mᴸ_{t−1} + (1−β2ᴸ) g_t
        θ_t  = θ_{t−1} − η λ θ_{t−1} [if decoupled] − η u_t

    Vertices of q: Adam/AdamW (β3 = 0, ρ = c = ω = 1, the default start), AVGrad (ρ = 0),
    Yogi (c = 0), Adan (β3 > 0), Lion (ω = 0). ω is the paper's γ (renamed here because γ
    means β1 in this project). ε goes after the square root, as in PyTorch.

    The hyper-gradient is the paper's (Section 3, eq. (4)), truncated to the previous update:
    ∂θ_{t−1}/∂q = −η_{t−1} ∂u_{t−1}/∂q, computed analytically inside ``step()`` and kept per
    parameter (``state["hyper_dir"]``, one row per learned coefficient), so each step costs
    O(N) extra work and no second backward pass. It uses ``p.grad`` (the loss's gradient,
    without coupled weight decay). Coefficients with κ = 0 are not learned and cost nothing.
    q moves before θ (Chandra et al. 2022's order; see :mod:`stabcli.optim.hypergrad`), so
    after each ``step()`` every param group holds the coefficients that made it:
    ``group["betas"]`` is readable at every step. On the Adam-AVGrad-Lion face (β3 = 0,
    c = 1) the max-update along the learned path obeys
    :func:`stabcli.theory.path.mada_path_bound` ((β, γ) = (β2, β1); docs/theory.md §5, §7).

    Args:
        params: parameters or param groups; each group may set any argument below.
        lr: η.
        betas: initial (β1, β2), PyTorch's order.
        beta3, rho, c, omega: initial interpolation coefficients.
        eps: ε.
        weight_decay: λ.
        decoupled_weight_decay: AdamW-style decay (the paper's choice, App. C.1) if True,
            else λθ is added to the gradient as in ``torch.optim.Adam``.
        hyper_lr: κ; one number for all coefficients, or a mapping name → κ in which
            missing names are not learned. Default: 1e-4 for β1, β2 and 1e-2 otherwise.
        bounds: the box D per coefficient, e.g. ``{"beta2": (0.9, 0.999)}``; defaults:
            β1, β3 in [0, 0.999], β2 in [0.5, 0.9999], ρ, c, ω in [0, 1].
        lion_betas: Lion's fixed (β1ᴸ, β2ᴸ) (Chen et al. 2023, arXiv 2302.06675: its defaults).
    """

    coefficients = COEFFICIENTS
    scratch_count = MADA_SCRATCH + 1  # + the gradient with coupled weight decay

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float = 0.0,
        rho: float = 1.0,
        c: float = 1.0,
        omega: float = 1.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = True,
        hyper_lr: float | Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        lion_betas: tuple[float, float] = (0.9, 0.99),
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "beta3": beta3,
            "rho": rho,
            "c": c,
            "omega": omega,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "hyper_lr": DEFAULT_HYPER_LR if hyper_lr is None else hyper_lr,
            "bounds": bounds,
            "lion_betas": tuple(lion_betas),
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (PyTorch's API), normalising and validating its settings."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        lion = tuple(float(b) for b in group["lion_betas"])
        if len(lion) != 2 or not all(0.0 <= b <= 1.0 for b in lion):
            raise StabcliError(f"lion_betas must be a pair in [0, 1], got {group['lion_betas']}")
        group["lion_betas"] = lion

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
            zeros = MadaMoments.zeros_like(p)
            for name in _MOMENTS:
                state[name] = getattr(zeros, name)
        state["step"] += 1
        lr, wd = float(group["lr"]), float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])
        scratch = self._scratch(p)
        if wd and not decoupled:
            grad = torch.add(grad, p, alpha=wd, out=scratch[MADA_SCRATCH])
        q = MadaCoefficients(*(get_coefficient(group, n) for n in MADA_COEFFICIENTS))
        u = mada_step(
            MadaMoments(*(state[name] for name in _MOMENTS)),
            grad,
            q,
            state["step"],
            state["prod1"],
            state["prod2"],
            float(group["eps"]),
            group["lion_betas"],
            learned,
            out,
            scratch[:MADA_SCRATCH],
            out_scale=-lr,  # store ∂θ_t/∂q = −η_t ∂u_t/∂q
        )
        state["prod1"] *= float(q.beta1)
        state["prod2"] *= float(q.beta2)
        if wd and decoupled:
            p.mul_(1.0 - lr * wd)
        p.add_(u, alpha=-lr)
