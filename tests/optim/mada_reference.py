"""Plain reference optimizers for MADA's tests, written from the MADA paper (arXiv 2401.08893).

Each is a per-tensor loop in ordinary arithmetic, in the form its own paper writes it,
sharing no code with :mod:`stabcli.optim`: AVGrad (seed Section 4.1, eq. (5)), Yogi
(Zaheer et al. 2018: v_t = v_{t−1} − (1−β2) sign(v_{t−1} − g²) g²), Adan (seed Table 1 and
eq. (2)), Lion (Chen et al. 2023, Algorithm 2), and the full App. C.1 parameterization.

The conventions MADA documents where the paper leaves them open are followed here too:
bias corrections 1 − β^t on m and v̄ (constant betas), AVGrad averaging the bias-corrected
v̂, Adan's n uncorrected with g_0 := g_1, ε after the square root, and decoupled weight
decay θ ← θ − ηλθ before the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class Reference:
    """A reference optimizer over a list of parameters (each step reads ``p.grad``)."""

    params: list[torch.Tensor]
    lr: float
    weight_decay: float = 0.0
    t: int = 0
    state: list[dict[str, torch.Tensor]] = field(default_factory=list)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        if not self.state:
            self.state = [{} for _ in self.params]
        for p, st in zip(self.params, self.state, strict=True):
            assert p.grad is not None
            p.mul_(1.0 - self.lr * self.weight_decay)  # decoupled decay (AdamW, App. C.1)
            p.sub_(self.lr * self.direction(p.grad.clone(), st))

    def direction(self, g: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


@dataclass
class AVGrad(Reference):
    """MADA paper eq. (5): Adam's m and v̄, normalised by the running mean of v̂_1..v̂_t."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def direction(self, g, st):
        t = self.t
        if not st:
            st.update(m=torch.zeros_like(g), v=torch.zeros_like(g), mean=torch.zeros_like(g))
        st["m"] = self.beta1 * st["m"] + (1 - self.beta1) * g
        st["v"] = self.beta2 * st["v"] + (1 - self.beta2) * g * g
        v_hat = st["v"] / (1 - self.beta2**t)
        st["mean"] = ((t - 1) * st["mean"] + v_hat) / t  # (v̂_t + (t−1) ṽ_{t−1})/t
        m_hat = st["m"] / (1 - self.beta1**t)
        return m_hat / (torch.sqrt(st["mean"]) + self.eps)


@dataclass
class Yogi(Reference):
    """Zaheer et al. 2018, Algorithm 2, with Adam's bias corrections."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def direction(self, g, st):
        t = self.t
        if not st:
            st.update(m=torch.zeros_like(g), v=torch.zeros_like(g))
        st["m"] = self.beta1 * st["m"] + (1 - self.beta1) * g
        st["v"] = st["v"] - (1 - self.beta2) * torch.sign(st["v"] - g * g) * g * g
        m_hat = st["m"] / (1 - self.beta1**t)
        v_hat = st["v"] / (1 - self.beta2**t)
        return m_hat / (torch.sqrt(v_hat) + self.eps)


@dataclass
class Adan(Reference):
    """MADA paper Table 1 / eq. (2): m = m̄ + β3 n with n averaging g_t − g_{t−1}; v from ĝ."""

    beta1: float = 0.98
    beta2: float = 0.99
    beta3: float = 0.92
    eps: float = 1e-8

    def direction(self, g, st):
        t = self.t
        if not st:
            st.update(m=torch.zeros_like(g), n=torch.zeros_like(g), v=torch.zeros_like(g))
            st["prev"] = g.clone()  # g_0 := g_1: no difference at the first step
        diff = g - st["prev"]
        st["prev"] = g.clone()
        st["m"] = self.beta1 * st["m"] + (1 - self.beta1) * g
        st["n"] = self.beta3 * st["n"] + (1 - self.beta3) * diff
        g_hat = g + self.beta3 * diff
        st["v"] = self.beta2 * st["v"] + (1 - self.beta2) * g_hat * g_hat
        m_total = st["m"] / (1 - self.beta1**t) + self.beta3 * st["n"]
        return m_total / (torch.sqrt(st["v"] / (1 - self.beta2**t)) + self.eps)


@dataclass
class Lion(Reference):
    """Chen et al. 2023, Algorithm 2: sign of an interpolated momentum."""

    beta1: float = 0.9
    beta2: float = 0.99

    def direction(self, g, st):
        if not st:
            st["m"] = torch.zeros_like(g)
        update = torch.sign(self.beta1 * st["m"] + (1 - self.beta1) * g)
        st["m"] = self.beta2 * st["m"] + (1 - self.beta2) * g
        return update


@dataclass
class FullMada(Reference):
    """The whole App. C.1 parameterization at fixed q, term by term as the paper writes it."""

    beta1: float = 0.9
    beta2: float = 0.999
    beta3: float = 0.0
    rho: float = 1.0
    c: float = 1.0
    omega: float = 1.0
    eps: float = 1e-8
    lion_beta1: float = 0.9
    lion_beta2: float = 0.99

    def direction(self, g, st):
        t = self.t
        if not st:
            for key in ("m", "n", "v_bar", "v_tilde", "m_lion"):
                st[key] = torch.zeros_like(g)
            st["prev"] = g.clone()
        diff = g - st["prev"]
        st["prev"] = g.clone()
        st["m"] = self.beta1 * st["m"] + (1 - self.beta1) * g
        st["n"] = self.beta3 * st["n"] + (1 - self.beta3) * diff
        g_hat = g + self.beta3 * diff
        yogi = st["v_bar"] + g_hat**2 * torch.sign(g_hat**2 - st["v_bar"])
        g_tilde2 = self.c * g_hat**2 + (1 - self.c) * yogi
        st["v_bar"] = self.beta2 * st["v_bar"] + (1 - self.beta2) * g_tilde2
        v_hat = st["v_bar"] / (1 - self.beta2**t)
        st["v_tilde"] = (v_hat + (t - 1) * st["v_tilde"]) / t
        v = self.rho * v_hat + (1 - self.rho) * st["v_tilde"]
        adaptive = (st["m"] / (1 - self.beta1**t) + self.beta3 * st["n"]) / (
            torch.sqrt(v) + self.eps
        )
        lion = torch.sign(self.lion_beta1 * st["m_lion"] + (1 - self.lion_beta1) * g)
        st["m_lion"] = self.lion_beta2 * st["m_lion"] + (1 - self.lion_beta2) * g
        return self.omega * adaptive + (1 - self.omega) * lion


def adam_path_update(
    grads: list[float], beta1: list[float], beta2: list[float], eps: float
) -> list[float]:
    """u_t of one scalar parameter under Adam with betas (β1_t, β2_t) moving every step.

    Bias corrections by the products along the path, 1 − Π_{j≤t} β_j, as HyperAdam
    documents. Plain floats, for checking HyperAdam's moment math at hyper-lr > 0.
    """
    m = v = 0.0
    p1 = p2 = 1.0
    out = []
    for g, b1, b2 in zip(grads, beta1, beta2, strict=True):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p1, p2 = p1 * b1, p2 * b2
        out.append((m / (1 - p1)) / (math.sqrt(v / (1 - p2)) + eps))
    return out
