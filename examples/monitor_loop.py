"""Monitor your own training loop: one line around any torch optimizer.

A small MLP classifier learns a random teacher network's labels (nothing downloaded, about
a few seconds on a CPU). ``stabcli.monitor.watch`` records the max-update ‖u_n‖∞ at every step,
the tensor holding it, and the betas, and warns when the betas are unstable (γ² > β, i.e.
beta1² > beta2) or the max-update grows. Then ``stabcli report`` draws the run::

    python examples/monitor_loop.py                              # PyTorch's default betas
    python examples/monitor_loop.py --beta1 0.99 --beta2 0.95    # unstable: it warns
    stabcli report runs/monitor-example --html

``build`` is also the "small example" of benchmarks/bench_monitor.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

import stabcli.monitor

WIDTH, BATCH, CLASSES, INPUTS = 128, 128, 10, 32


def build(
    beta1: float = 0.9, beta2: float = 0.999, seed: int = 0
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[[int], torch.Tensor]]:
    """(model, Adam optimizer, train_step(n) -> loss): a 22k-parameter MLP on teacher labels."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(INPUTS, CLASSES, generator=gen)
    model = torch.nn.Sequential(
        torch.nn.Linear(INPUTS, WIDTH),
        torch.nn.GELU(),
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.GELU(),
        torch.nn.Linear(WIDTH, CLASSES),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(beta1, beta2))

    def train_step(n: int) -> torch.Tensor:
        x = torch.randn(BATCH, INPUTS, generator=torch.Generator().manual_seed(seed + n))
        y = (x @ teacher).argmax(dim=1)  # (B,) labels of the teacher
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return model, optimizer, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beta1", type=float, default=0.9, help="PyTorch's beta1 (γ)")
    parser.add_argument("--beta2", type=float, default=0.999, help="PyTorch's beta2 (β)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="runs/monitor-example", help="run directory")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest
    model, optimizer, train_step = build(args.beta1, args.beta2)

    with stabcli.monitor.watch(optimizer, run_dir=args.out, model=model, overwrite=True) as mon:
        for n in range(args.steps):
            loss = train_step(n)
    print(f"final loss {loss.item():.3f}")
    print(mon.summary().tail(3).to_string(index=False))
    row = mon.points().iloc[0]
    print(
        f"(β, γ) = ({row.beta}, {row.gamma}): measured {row.measured_class} "
        f"(rate {row.rate:.3g}/step), exact theory stable: {row.exact_stable}; "
        f"largest max-update / bound: {row.bound_ratio_max:.4f}; run directory {args.out}"
    )


if __name__ == "__main__":
    main()
