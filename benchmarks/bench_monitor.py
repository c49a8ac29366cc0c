"""Per-step overhead of stabcli.monitor: the same training step with and without it.

One model and its torch.optim.Adam train in alternating blocks of steps, without and with
a monitor (``stabcli.monitor.watch``, default settings: every step measured, a host copy
every 256 steps; made at the start of its block and closed at its end), so both sides
share the same memory layout (two copies of one model differed by 5% with no monitor at
all) and machine noise hits both alike. Forward + backward and ``optimizer.step()`` are
timed separately: the monitor works only inside ``step()`` (its hooks), and on a shared
2-core machine the noise of a 0.6 s forward + backward is larger than the monitor itself.
Prints per model the medians of both parts on each side, the time in the monitor's own
hooks (timed inside the watched steps by hooks registered around them), and the overhead:
the difference of the ``step()`` medians over the median plain training step, against:

- ``gpt-10m``: a decoder of ~10.7M parameters (6 layers, 6 heads, width 384, vocabulary 65:
  the size of the nanoGPT model of arXiv 2411.05746's Shakespeare experiments, App. H), on
  random token batches of 4 x 128. Target: overhead under 5% of a training step.
- ``small-example``: examples/monitor_loop.py's 22k-parameter MLP, batch 128. Target:
  under 15%.

Usage: python benchmarks/bench_monitor.py [--blocks-gpt 10] [--blocks-small 8]
       [--threads 1] [--only gpt-10m small-example]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from stabcli.monitor import watch

ROOT = Path(__file__).resolve().parents[1]


#: nanoGPT's block: pre-norm, GELU, no dropout (deterministic timing).
LAYER = {"dropout": 0.0, "activation": "gelu", "batch_first": True, "norm_first": True}


class Decoder(nn.Module):
    """Token and position embeddings, pre-norm causal transformer layers, tied head."""

    def __init__(self, vocab: int = 65, block: int = 128, layers: int = 6, heads: int = 6,
                 width: int = 384):  # fmt: skip
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(block, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, **LAYER) for _ in range(layers)
        )
        self.ln = nn.LayerNorm(width)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(block))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]  # (B, T): batch, time
        x = self.tok(idx) + self.pos.weight[:t]  # (B, T, C)
        for layer in self.layers:
            x = layer(x, src_mask=self.mask[:t, :t], is_causal=True)
        return self.ln(x) @ self.tok.weight.T  # (B, T, vocab)


Backward = Callable[[nn.Module], None]  # zero_grad, forward and backward of one batch


def gpt_10m() -> tuple[nn.Module, Backward]:
    model = Decoder()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 65, (4, 129), generator=gen)  # (B, T + 1)

    def backward(m: nn.Module) -> None:
        m.zero_grad(set_to_none=True)
        logits = m(tokens[:, :-1])  # (B, T, vocab)
        nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()

    return model, backward


def small_example() -> tuple[nn.Module, Backward]:
    """examples/monitor_loop.py's model, on one of its batches."""
    spec = importlib.util.spec_from_file_location("monitor_loop", ROOT / "examples/monitor_loop.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model, _, _ = example.build()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(example.BATCH, example.INPUTS, generator=gen)
    y = torch.randint(0, example.CLASSES, (example.BATCH,), generator=gen)

    def backward(m: nn.Module) -> None:
        m.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(m(x), y).backward()

    return model, backward


MODELS = {"gpt-10m": (gpt_10m, 0.05), "small-example": (small_example, 0.15)}


def _median_ms(values: list[float]) -> float:
    return 1e3 * statistics.median(values)


def measure(name: str, blocks: int, block: int) -> None:
    """Alternate blocks of ``block`` steps without and with a monitor on the same model and
    optimizer (module docstring); the first step of a block is not timed (a new monitor's
    buffers are first touched there)."""
    make, target = MODELS[name]
    model, backward = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = {side: {"backward": [], "step": []} for side in ("plain", "watched")}
    hooks: list[float] = []  # the monitor's own hooks, timed inside each watched step
    marks: list[float] = []

    def mark(*_: object) -> None:
        marks.append(time.perf_counter())

    def lap(*_: object) -> None:
        hooks.append(time.perf_counter() - marks.pop())

    for b in range(2 * blocks + 2):  # two warm-up blocks
        side = ("plain", "watched")[b % 2]
        monitor = None
        if side == "watched":  # hooks run in registration order: the timing hooks
            opt.register_step_pre_hook(mark)  # bracket the monitor's pre- and post-hook
            opt.register_step_post_hook(mark)
            monitor = watch(opt, model=model)
            opt.register_step_pre_hook(lap)
            opt.register_step_post_hook(lap)
        for n in range(block):
            start = time.perf_counter()
            backward(model)
            middle = time.perf_counter()
            opt.step()
            end = time.perf_counter()
            if n and b >= 2:
                times[side]["backward"].append(middle - start)
                times[side]["step"].append(end - middle)
        if monitor is not None:
            monitor.close()
            opt._optimizer_step_pre_hooks.clear()  # the timing hooks (the monitor's are gone)
            opt._optimizer_step_post_hooks.clear()
        if b < 2:
            hooks.clear()
    plain, watched = times["plain"], times["watched"]
    whole = _median_ms(plain["backward"]) + _median_ms(plain["step"])  # a plain step, ms
    extra = _median_ms(watched["step"]) - _median_ms(plain["step"])
    extra_mean = 1e3 * (statistics.mean(watched["step"]) - statistics.mean(plain["step"]))
    per_step = [a + c for a, c in zip(hooks[0::2], hooks[1::2], strict=True)]
    params = sum(p.numel() for p in model.parameters())
    tensors = sum(1 for _ in model.parameters())
    verdict = "met" if extra / whole < target else "NOT met"
    print(
        f"{name}: {params:,d} parameters in {tensors} tensors, {len(plain['step'])} steps "
        f"per side\n"
        f"  forward + backward: {_median_ms(plain['backward']):9.3f} ms plain, "
        f"{_median_ms(watched['backward']):9.3f} ms watched\n"
        f"  optimizer.step():   {_median_ms(plain['step']):9.3f} ms plain, "
        f"{_median_ms(watched['step']):9.3f} ms watched; the monitor's hooks alone "
        f"{_median_ms(per_step):.3f} ms\n"
        f"  overhead: {extra / whole:+.1%} of a {whole:.3f} ms training step (hooks alone: "
        f"{_median_ms(per_step) / whole:.1%}; with means, which count the host copies: "
        f"{extra_mean / whole:+.1%}); target < {target:.0%}: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks-gpt", type=int, default=10, help="blocks per side")
    parser.add_argument("--blocks-small", type=int, default=8, help="blocks per side")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPU(s), "
        f"{platform.machine()} {platform.processor() or ''}".rstrip()
    )
    for name in args.only:
        if name == "gpt-10m":
            measure(name, args.blocks_gpt, block=4)
        else:
            measure(name, args.blocks_small, block=300)  # a host copy at step 256


if __name__ == "__main__":
    main()
