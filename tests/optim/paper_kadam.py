"""An independent k-Adam for the tests, written straight from the paper's pseudo-code.

arXiv 2411.05746, App. R, Algorithm 1 ("k-Adam update rule"), one tensor at a time, with
plain arithmetic (no lerp, no foreach, no stabcli code), so that it shares nothing with
``stabcli.optim`` but the algorithm:

    g ← ∇L(θ_n);  if coupled: g ← g + λθ_n;  ĝ ← g
    for i = 1..k:  m_i ← γ_i m_i + (1−γ_i) ĝ;  v_i ← β_i v_i + (1−β_i) ĝ²
                   C ← sqrt(1−β_i^{n+1}) / (1−γ_i^{n+1});  ĝ ← C m_i / (sqrt(v_i) + ε)
    u ← ĝ;  if not coupled: u ← u + λθ_n;  θ_{n+1} ← θ_n − η u;  n ← n + 1

``eps_placement="torch"`` replaces the ĝ line by PyTorch's form,
ĝ ← (m_i / (1−γ_i^{n+1})) / (sqrt(v_i / (1−β_i^{n+1})) + ε), i.e. ε added after the bias
correction of v_i, as torch.optim.Adam writes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class PaperKAdam:
    """k-Adam over a list of parameter groups, each {"params", "lr", "betas", ...}.

    ``betas`` of a group is a list of k PyTorch-order pairs (beta1_i, beta2_i) = (γ_i, β_i).
    ``level_max`` records, for every step, a list over levels of ‖u^{(i)}‖∞ over all
    parameters (the quantity the paper bounds per level in App. S); ``last_update`` maps
    each parameter's id to its last step direction u (λθ_n included when decoupled).
    """

    def __init__(self, groups: Sequence[dict], eps: float, eps_placement: str) -> None:
        self.groups = groups
        self.eps = eps
        self.eps_placement = eps_placement
        self.n = 0
        self.m: dict[int, list[torch.Tensor]] = {}
        self.v: dict[int, list[torch.Tensor]] = {}
        self.level_max: list[list[float]] = []
        self.last_update: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self) -> None:
        n = self.n
        step_max: list[float] = []
        for group in self.groups:
            lr, wd, coupled = group["lr"], group.get("weight_decay", 0.0), group["coupled"]
            levels = group["betas"]
            for theta in group["params"]:
                key = id(theta)
                if key not in self.m:
                    self.m[key] = [torch.zeros_like(theta) for _ in levels]
                    self.v[key] = [torch.zeros_like(theta) for _ in levels]
                g = theta.grad.clone()
                if coupled:
                    g = g + wd * theta
                g_hat = g
                for i, (gamma_i, beta_i) in enumerate(levels):
                    m_i = gamma_i * self.m[key][i] + (1 - gamma_i) * g_hat
                    v_i = beta_i * self.v[key][i] + (1 - beta_i) * g_hat * g_hat
                    self.m[key][i], self.v[key][i] = m_i, v_i
                    bc1 = 1 - gamma_i ** (n + 1)
                    bc2 = 1 - beta_i ** (n + 1)
                    if self.eps_placement == "paper":
                        c = math.sqrt(bc2) / bc1
                        g_hat = c * m_i / (torch.sqrt(v_i) + self.eps)
                    else:
                        g_hat = (m_i / bc1) / (torch.sqrt(v_i / bc2) + self.eps)
                    level = float(g_hat.abs().max())
                    if len(step_max) <= i:
                        step_max.append(level)
                    else:
                        step_max[i] = max(step_max[i], level)
                u = g_hat
                if not coupled:
                    u = u + wd * theta
                self.last_update[key] = u
                theta.sub_(lr * u)
        self.level_max.append(step_max)
        self.n += 1
