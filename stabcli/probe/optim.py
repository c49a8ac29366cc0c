"""Adam/AdamW over P stacked points, as one set of elementwise operations.

Update rule (docs/theory.md §1; paper Section 2), for each point with its own
(β, γ) — β decays the second moment (PyTorch ``beta2``), γ the first (``beta1``):

    g_n ← g_n + λ θ_n                                   (coupled weight decay only)
    m_n = γ m_{n−1} + (1−γ) g_n,     v_n = β v_{n−1} + (1−β) g_n²
    u_n = corr_n · m_n / (sqrt(v_n) + ε'),   corr_n = sqrt(1−β^{n+1}) / (1−γ^{n+1})
    θ_{n+1} = θ_n − η_n (u_n + λ θ_n)                   (λ θ_n for decoupled decay only)

ε placement: ``"paper"`` uses ε' = ε; ``"torch"`` adds ε after bias-correcting sqrt(v), as
``torch.optim.Adam``, which is ε' = ε · sqrt(1−β^{n+1}). The recorded max-update is
‖u_n + λθ_n‖∞ = ‖θ_{n+1} − θ_n‖∞ / η_n, computed before it is applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stabcli.probe.config import TrainConfig
from stabcli.theory.paper import annealed_lr
from stabcli.theory.update import bias_correction, one_minus_power


def lr_table(train: TrainConfig, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """η_n for every step and point, (S, P) float64.

    ``constant``: η. ``cosine``: nanoGPT's linear warm-up to η, then cosine decay to
    ``min_lr`` at the last step (paper App. H, Figure 3). ``anneal``: paper App. O eq. (15),
    η_n = η0 · exp(−n|C|/2) for points in B− (:func:`stabcli.theory.paper.annealed_lr`).
    """
    n = np.arange(train.steps, dtype=np.float64)[:, None]  # (S, 1)
    ones = np.ones((1, len(beta)))
    if train.schedule == "constant":
        return train.lr * np.ones_like(n) * ones
    if train.schedule == "anneal":
        steps = np.arange(train.steps)
        points = zip(beta.tolist(), gamma.tolist(), strict=True)
        return np.stack([annealed_lr(train.lr, b, g, steps) for b, g in points], axis=1)
    warm = max(train.warmup_steps, 0)
    span = max(train.steps - 1 - warm, 1)
    progress = np.clip((n - warm) / span, 0.0, 1.0)
    cosine = train.min_lr + 0.5 * (1.0 + np.cos(math.pi * progress)) * (train.lr - train.min_lr)
    warmup = train.lr * (n + 1) / (warm + 1)
    return np.where(n < warm, warmup, cosine) * ones


@dataclass
class AdamTables:
    """Per-step, per-point scalars of the update, precomputed on the device: each (S, P)."""

    lr: torch.Tensor  # η_n
    lr_host: np.ndarray  # η_n in float64 on the host, for the traces
    corr: torch.Tensor  # corr_n = sqrt(1−β^{n+1}) / (1−γ^{n+1})
    eps: torch.Tensor  # ε' (depends on the ε placement)


def adam_tables(
    train: TrainConfig, beta: np.ndarray, gamma: np.ndarray, device: torch.device, dtype
) -> AdamTables:
    """Build :class:`AdamTables` for points (β, γ) = (beta[i], gamma[i])."""
    steps = np.arange(train.steps)
    # (S, P) columns of corr_n and 1 − β^{n+1}, from the theory's closed forms
    points = list(zip(beta.tolist(), gamma.tolist(), strict=True))
    corr = np.stack([bias_correction(b, g, steps) for b, g in points], axis=1)
    bc2 = np.stack([one_minus_power(b, steps) for b, _ in points], axis=1)
    eps = train.eps * (np.sqrt(bc2) if train.eps_placement == "torch" else np.ones_like(bc2))
    lr = lr_table(train, beta, gamma)

    def dev(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device).to(dtype)

    return AdamTables(lr=dev(lr), lr_host=lr, corr=dev(corr), eps=dev(eps))


class StackedAdam:
    """Adam state for P points over a flat (P, N) parameter buffer.

    ``step`` performs one update for all points with a handful of elementwise kernels;
    it returns the per-point max-update, the flat index that held it, and the updated
    alive mask, all on the device (no host synchronisation).
    """

    def __init__(
        self,
        flat: torch.Tensor,
        beta: np.ndarray,
        gamma: np.ndarray,
        train: TrainConfig,
        tables: AdamTables,
    ):
        state_dtype = flat.dtype  # float32 even under bf16 autocast
        self.m = torch.zeros(flat.shape, dtype=state_dtype, device=flat.device)  # (P, N)
        self.v = torch.zeros_like(self.m)  # (P, N)
        self.tmp = torch.empty_like(self.m)  # (P, N) scratch: g², then u_n
        self.tmp_abs = torch.empty_like(self.m)  # (P, N) scratch: |u_n|
        self.one_minus_gamma = torch.as_tensor(1.0 - gamma, device=flat.device).to(state_dtype)
        self.one_minus_beta = torch.as_tensor(1.0 - beta, device=flat.device).to(state_dtype)
        self.one_minus_gamma = self.one_minus_gamma[:, None]  # (P, 1)
        self.one_minus_beta = self.one_minus_beta[:, None]  # (P, 1)
        self.mode = train.weight_decay_mode
        self.wd = train.weight_decay if self.mode != "none" else 0.0
        self.tables = tables

    @torch.no_grad()
    def step(
        self,
        n: int,
        flat: torch.Tensor,
        grad: torch.Tensor,
        loss: torch.Tensor,
        alive: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Update ``flat`` in place for step n.

        Returns (max_update (P,), argmax (P,), wd_term (P,) or None, alive (P,)), where
        wd_term = λ‖θ_n‖∞ with decoupled decay (the part of the step that is not u_n).

        A point whose loss or update is not finite is frozen: its parameters keep their
        values (``torch.where``, so no NaN reaches them) and it stays dead afterwards.
        """
        m, v, u, a = self.m, self.v, self.tmp, self.tmp_abs
        g = grad if grad.dtype == m.dtype else grad.to(m.dtype)
        if self.mode == "coupled" and self.wd:
            g = g + self.wd * flat
        m.lerp_(g, self.one_minus_gamma)  # m = γ m + (1−γ) g
        torch.mul(g, g, out=u)
        v.lerp_(u, self.one_minus_beta)  # v = β v + (1−β) g²
        torch.sqrt(v, out=u)
        u.add_(self.tables.eps[n][:, None])
        torch.div(m, u, out=u)
        u.mul_(self.tables.corr[n][:, None])  # u_n, (P, N)
        wd_term = None
        if self.mode == "decoupled" and self.wd:
            wd_term = self.wd * torch.abs(flat, out=a).amax(dim=1)  # (P,) λ‖θ_n‖∞
            u.add_(flat, alpha=self.wd)  # the measured step contains λθ_n (AdamW)
        torch.abs(u, out=a)
        max_update, argmax = a.max(dim=1)  # (P,), (P,); NaN and inf propagate
        alive = alive & torch.isfinite(loss) & torch.isfinite(max_update)
        u.mul_(self.tables.lr[n][:, None])  # η_n (u_n + λθ_n)
        u.masked_fill_(~alive[:, None], 0.0)  # frozen points: no step, no NaN
        flat.sub_(u)
        return max_update, argmax, wd_term, alive
