"""MADA's and HyperAdam's cost against torch.optim.Adam(foreach=True), on a small GPT.

The MADA paper (arXiv 2401.08893, Section 6 "Limitations") argues the optimizer's extra
work is O(N) per step, negligible next to the ~6TN FLOPs of forward and backward over T
tokens. This measures it on a nanoGPT-like model of ~10.7M parameters (6 layers, 6 heads,
embedding 384, vocabulary 65: the size of the paper's Shakespeare model, Section 5.2):

1. ``step()`` alone, with fixed gradients: every optimizer on its own copy of the model;
2. one full training step (forward + backward + step) on random token batches.

Repetitions are interleaved (each round runs every optimizer once) and medians reported,
with the ratio to Adam(foreach). Optimizers: Adam (foreach and single-tensor), HyperAdam
learning both betas, MADA learning all six coefficients from an interior point, and the
two with hyper_lr = 0 (the update rule alone, no hyper-gradient).

Usage: python benchmarks/bench_mada.py [--repeats 7] [--batch 4] [--block 128]
       [--threads 1] [--device cpu] [--skip-train]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stabcli.optim import MADA, HyperAdam


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention and a 4x MLP (nanoGPT's layout)."""

    def __init__(self, embd: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(embd), nn.LayerNorm(embd)
        self.qkv, self.proj = nn.Linear(embd, 3 * embd), nn.Linear(embd, embd)
        self.fc, self.out = nn.Linear(embd, 4 * embd), nn.Linear(4 * embd, embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape  # (B, T, C): batch, time, channels
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C/H)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """Token and position embeddings, blocks, final norm, head tied to the embedding."""

    def __init__(self, vocab: int = 65, block: int = 256, layers: int = 6, heads: int = 6,
                 embd: int = 384):  # fmt: skip
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, embd), nn.Embedding(block, embd)
        self.blocks = nn.ModuleList(Block(embd, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(embd)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.ln(x) @ self.tok.weight.T  # (B, T, vocab)


INTERIOR = {"betas": (0.9, 0.95), "beta3": 0.3, "rho": 0.6, "c": 0.5, "omega": 0.9}

OPTIMIZERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "adam-foreach": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
    "adam-single": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False),
    "hyperadam": lambda ps: HyperAdam(ps, lr=1e-3),
    "hyperadam-k0": lambda ps: HyperAdam(ps, lr=1e-3, hyper_lr=0.0),
    "mada": lambda ps: MADA(ps, lr=1e-3, **INTERIOR),
    "mada-k0": lambda ps: MADA(ps, lr=1e-3, hyper_lr=0.0, **INTERIOR),
}


def batch(seed: int, size: int, block: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 65, (size, block + 1), generator=gen).to(device)
    return tokens[:, :-1], tokens[:, 1:]


def train_step(model: GPT, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    logits = model(x)
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
    opt.step()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def report(title: str, times: dict[str, list[float]]) -> None:
    """Medians and minima (the least disturbed repetition) and their ratios to Adam."""
    base_med = statistics.median(times["adam-foreach"])
    base_min = min(times["adam-foreach"])
    print(f"\n{title}")
    print(f"{'optimizer':>14} {'median ms':>10} {'ratio':>7} {'min ms':>9} {'ratio':>7}")
    for name, ts in times.items():
        med, low = statistics.median(ts), min(ts)
        ratios = f"{med / base_med:6.2f}x {low * 1e3:9.1f} {low / base_min:6.2f}x"
        print(f"{name:>14} {med * 1e3:10.1f} {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4, help="sequences per training step")
    parser.add_argument("--block", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-train", action="store_true", help="time step() only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = GPT(block=max(args.block, 256)).to(args.device)
    n_params = sum(p.numel() for p in base.parameters())
    tokens = args.batch * args.block
    print(
        f"# device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s);"
        f" GPT {n_params / 1e6:.2f}M parameters in {len(list(base.parameters()))} tensors;"
        f" {tokens} tokens per training step ({args.batch} x {args.block})"
    )
    models = {name: copy.deepcopy(base) for name in OPTIMIZERS}
    opts = {name: make(list(models[name].parameters())) for name, make in OPTIMIZERS.items()}

    # 1. step() alone: one backward for gradients, copied to every model, then timed steps.
    x, y = batch(0, args.batch, args.block, args.device)
    for name in OPTIMIZERS:  # warm-up: state allocation, first hyper-gradient
        for _ in range(2):
            train_step(models[name], opts[name], x, y)
    step_times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    for _ in range(args.repeats):
        for name, opt in opts.items():
            sync(args.device)
            t0 = time.perf_counter()
            opt.step()
            sync(args.device)
            step_times[name].append(time.perf_counter() - t0)
    report("step() alone (same gradients every repetition)", step_times)
    if args.skip_train:
        return

    # 2. One training step: forward + backward + step, a fresh batch per round.
    train_times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    for r in range(args.repeats):
        x, y = batch(1 + r, args.batch, args.block, args.device)
        for name, opt in opts.items():
            sync(args.device)
            t0 = time.perf_counter()
            train_step(models[name], opt, x, y)
            sync(args.device)
            train_times[name].append(time.perf_counter() - t0)
    report("full training step (forward + backward + step)", train_times)
    adam_step = statistics.median(step_times["adam-foreach"])
    adam_train = statistics.median(train_times["adam-foreach"])
    print(
        f"\nforward + backward ~ {(adam_train - adam_step) * 1e3:.0f} ms (Adam's step subtracted)"
    )
    for name in ("hyperadam", "mada"):
        extra = statistics.median(train_times[name]) - adam_train
        share = extra / adam_train
        print(f"{name}: a training step costs {extra * 1e3:+.0f} ms ({share:+.1%}) vs Adam")


if __name__ == "__main__":
    main()
