"""Small models for the monitor's tests (float64, deterministic; tests/conftest.py pins one
torch thread)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def vanishing(beta: float, gamma: float, *, quiet_after: int = 5, lr: float = 1e-3):
    """A parameter whose gradient vanishes after ``quiet_after`` steps, under
    torch.optim.Adam(betas=(γ, β), eps=1e-30): its update then follows
    corr_n (γ/sqrt(β))^n, the exact bound's growth (docs/theory.md §3), so γ² > β
    guarantees growth. Returns (parameter, optimizer, step(n))."""
    w = torch.nn.Parameter(torch.linspace(0.5, 1.5, 4, dtype=torch.float64))
    x = torch.linspace(1.0, 2.0, 4, dtype=torch.float64)
    opt = torch.optim.Adam([w], lr=lr, betas=(gamma, beta), eps=1e-30)

    def step(n: int) -> None:
        opt.zero_grad()
        scale = 1.0 if n < quiet_after else 0.0
        (scale * (w * x).sum()).backward()
        opt.step()

    return w, opt, step


def regression(
    seed: int = 0, width: int = 16, device: str = "cpu"
) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    """A small MLP on fixed random data (float64); returns (model, loss())."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, width), torch.nn.Tanh(), torch.nn.Linear(width, 1)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    model, x, y = model.to(device), x.to(device), y.to(device)

    def loss() -> torch.Tensor:
        return ((model(x) - y) ** 2).mean()

    return model, loss


def train(opt: torch.optim.Optimizer, loss: Callable[[], torch.Tensor], steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss().backward()
        opt.step()
