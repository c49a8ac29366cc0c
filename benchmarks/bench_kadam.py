"""KAdam's step() time against torch.optim.Adam(foreach=True), and the stacked kernel
against the probe engine's StackedAdam.

Part 1: a stack of linear layers (about 10M parameters by default) gets its gradients once;
then only ``step()`` is timed, for torch.optim.Adam(foreach=True) and KAdam with k = 1, 2, 3
(foreach and single-tensor paths), all on the same parameters and gradients, in one
interleaved loop (every repetition times each optimizer once, so machine noise hits all of
them alike). Prints, per thread count, the median ms per step, the ratio to Adam, and the
target ratio (k + 1)/2.

Part 2 (``--stacked``, on by default): one step of P stacked points on a (P, N) buffer,
today's ``stabcli.probe.optim.StackedAdam.step`` against ``kernels.kadam_direction`` with
STACKED operands (k = 1) followed by the same bookkeeping the engine does (max-update,
alive mask, η, masked step), to show that the shared kernel costs the engine nothing.

Usage: python benchmarks/bench_kadam.py [--layers 10] [--width 1000] [--repeats 15]
       [--threads 1 2] [--dtype float32] [--no-stacked] [--points 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from stabcli.optim import KAdam
from stabcli.optim.kernels import STACKED, LevelCoeffs, kadam_direction

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_params(layers: int, width: int, dtype: torch.dtype) -> list[torch.nn.Parameter]:
    """A stack of ``layers`` Linear(width, width) layers, with gradients filled once."""
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    params = list(model.to(dtype).parameters())
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
    return params


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds."""
    for fn in fns.values():  # warm-up: state allocation, first-touch page faults
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_step(args: argparse.Namespace, threads: int) -> None:
    torch.set_num_threads(threads)
    params = make_params(args.layers, args.width, DTYPES[args.dtype])
    n_params = sum(p.numel() for p in params)
    opts: dict[str, torch.optim.Optimizer] = {
        "torch Adam foreach": torch.optim.Adam(params, lr=1e-3, foreach=True)
    }
    for k in (1, 2, 3):
        opts[f"KAdam k={k} foreach"] = KAdam(params, lr=1e-3, k=k, foreach=True)
        opts[f"KAdam k={k} single"] = KAdam(params, lr=1e-3, k=k, foreach=False)
    medians = interleaved_medians({name: opt.step for name, opt in opts.items()}, args.repeats)
    adam = medians["torch Adam foreach"]
    print(
        f"\n{threads} thread(s), {n_params / 1e6:.2f}M parameters in {len(params)} tensors, "
        f"{args.dtype}, median of {args.repeats} interleaved steps"
    )
    print(f"{'optimizer':<22} {'ms/step':>9} {'÷ Adam':>8} {'target':>8}  meets")
    for name, sec in medians.items():
        if name.startswith("torch"):
            print(f"{name:<22} {sec * 1e3:9.1f} {1.0:8.2f}")
            continue
        k = int(name.split("k=")[1].split()[0])
        ratio, target = sec / adam, (k + 1) / 2
        meets = "yes" if ratio <= target else "NO"
        print(f"{name:<22} {sec * 1e3:9.1f} {ratio:8.2f} {target:8.2f}  {meets}")


def bench_stacked(args: argparse.Namespace, threads: int) -> None:
    """StackedAdam.step (the engine today) vs the shared kernel plus the same bookkeeping."""
    from stabcli.probe.config import TrainConfig
    from stabcli.probe.optim import StackedAdam, adam_tables

    torch.set_num_threads(threads)
    dtype = DTYPES[args.dtype]
    n_points = args.points
    n = args.layers * args.width * (args.width + 1) // n_points
    gen = torch.Generator().manual_seed(1)
    flat = torch.randn(n_points, n, generator=gen, dtype=dtype)  # (P, N): points, parameters
    grad = torch.randn(n_points, n, generator=gen, dtype=dtype)  # (P, N)
    beta = np.linspace(0.95, 0.999, n_points)
    gamma = np.linspace(0.9, 0.99, n_points)
    train = TrainConfig(steps=64, eps=1e-30)
    tables = adam_tables(train, beta, gamma, flat.device, dtype)
    engine = StackedAdam(flat, beta, gamma, train, tables)
    loss = torch.zeros(n_points, dtype=dtype)
    alive = torch.ones(n_points, dtype=torch.bool)

    m = [torch.zeros_like(flat)]  # (P, N) per level
    v = [torch.zeros_like(flat)]
    out, a = torch.empty_like(flat), torch.empty_like(flat)  # (P, N) scratch: u, |u|
    one_minus_beta = torch.as_tensor(1.0 - beta, dtype=dtype)[:, None]  # (P, 1)
    one_minus_gamma = torch.as_tensor(1.0 - gamma, dtype=dtype)[:, None]  # (P, 1)
    beta_col = torch.as_tensor(beta, dtype=dtype)[:, None]  # (P, 1)

    def kernel_step(step: int = 10) -> None:
        coeffs = LevelCoeffs(
            beta=beta_col,
            one_minus_beta=one_minus_beta,
            one_minus_gamma=one_minus_gamma,
            corr=tables.corr[step][:, None],
            eps=tables.eps[step][:, None],
        )
        kadam_direction(STACKED, grad, m, v, [coeffs], out)
        torch.abs(out, out=a)
        max_update, _ = a.max(dim=1)  # (P,)
        ok = alive & torch.isfinite(loss) & torch.isfinite(max_update)
        out.mul_(tables.lr[step][:, None])
        out.masked_fill_(~ok[:, None], 0.0)
        flat.sub_(out)

    fns: dict[str, Callable[[], object]] = {
        "StackedAdam.step": lambda: engine.step(10, flat, grad, loss, alive),
        "kernel + bookkeeping": kernel_step,
    }
    medians = interleaved_medians(fns, args.repeats)
    base = medians["StackedAdam.step"]
    print(f"\nstacked: {n_points} points x {n:,} parameters, {threads} thread(s), {args.dtype}")
    for name, sec in medians.items():
        print(f"{name:<22} {sec * 1e3:9.1f} ms {sec / base:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--no-stacked", dest="stacked", action="store_false")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU threads available: {torch.get_num_threads()}")
    for threads in args.threads:
        bench_step(args, threads)
    if args.stacked:
        for threads in args.threads:
            bench_stacked(args, threads)


if __name__ == "__main__":
    main()
