"""Engine vs. a loop of torch.optim.Adam runs: time per point-step, for each engine optimizer.

For each preset, 16 points along the normal curve through (0.999, 0.9) are trained for 200
steps on the same batches: by the vectorized engine (all 16 in one program) with each
optimizer asked for (Adam by default; k-Adam, HyperAdam, MADA with ``--optimizers``), and
as 16 sequential `torch.optim.Adam` runs (stabcli.probe.reference). Every run records the
max-update every step. Each repeat times every variant once, in turn, so machine noise hits
them alike. Prints, per preset, the medians over the repeats:

    <preset>: engine <a> ms, loop <b> ms per point-step, <b/a>x
    <preset>: engine[kadam k=3] <c> ms per point-step, <c/a>x Adam's engine

Usage: python benchmarks/bench_probes.py [--presets mlp-synthetic tiny-char] [--repeats 3]
       [--points 16] [--steps 200] [--threads N] [--device cpu]
       [--optimizers adam kadam hyperadam mada] [--k 3] [--no-loop]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from stabcli.probe import load_preset, resolve_setup, run_probes
from stabcli.probe.config import Preset
from stabcli.probe.reference import run_reference


def normal_curve_points(count: int) -> list[tuple[float, float]]:
    """(β, γ) along the normal curve γ³ + 2β³ = k through (0.999, 0.9), β from 0.955 to 0.999
    (paper Section 3.2; docs/theory.md §2)."""
    k = 2 * 0.999**3 + 0.9**3
    betas = np.linspace(0.955, 0.999, count)
    return [(float(b), float(np.cbrt(k - 2 * b**3))) for b in betas]


def variant(preset: Preset, optimizer: str, k: int) -> tuple[str, Preset]:
    """(label, preset) of the engine with ``optimizer``; Adam keeps the preset untouched."""
    if optimizer == "adam":
        return "adam", preset
    if optimizer == "kadam":
        return f"kadam k={k}", preset.with_overrides(optimizer="kadam", k=k)
    return optimizer, preset.with_overrides(optimizer=optimizer)


def bench(args: argparse.Namespace, name: str) -> dict[str, float]:
    """Median ms per point-step of each engine variant and (unless --no-loop) the loop."""
    preset = load_preset(name).with_overrides(steps=args.steps, eval_every=0, eval_batches=0)
    pts = normal_curve_points(args.points)
    runs: dict[str, Callable[[], object]] = {}
    for optimizer in args.optimizers:
        label, p = variant(preset, optimizer, args.k)
        setup = resolve_setup(p, args.device)  # device, dtype and data once, as a sweep does
        run_probes(setup.preset.with_overrides(steps=5), pts, device=args.device)  # warm-up
        runs[f"engine[{label}]"] = lambda s=setup: run_probes(s, pts, points_per_batch=args.points)
    if args.loop:
        data = resolve_setup(preset, args.device).dataset()
        run_reference(preset.with_overrides(steps=5), pts[0], device=args.device, dataset=data)

        def loop() -> None:
            for pt in pts:
                run_reference(preset, pt, device=args.device, dataset=data)

        runs["loop"] = loop
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    per = 1e3 / (args.points * args.steps)
    return {key: statistics.median(values) * per for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mlp-synthetic", "tiny-char"])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=["adam"],
        choices=["adam", "kadam", "hyperadam", "mada"],
        help="engine optimizers to time (Adam first: the others are compared with it)",
    )
    parser.add_argument("--k", type=int, default=3, help="k-Adam's levels")
    parser.add_argument("--no-loop", dest="loop", action="store_false", help="skip the loop")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.presets:
        ms = bench(args, name)
        adam = ms.get("engine[adam]")
        loop = ms.get("loop")
        if adam is not None and loop is not None:
            speedup = loop / adam
            print(
                f"{name}: engine {adam:.3f} ms, loop {loop:.3f} ms per point-step, {speedup:.2f}x"
            )
        elif adam is not None:
            print(f"{name}: engine {adam:.3f} ms per point-step")
        elif loop is not None:
            print(f"{name}: loop {loop:.3f} ms per point-step")
        for key, value in ms.items():
            if key not in ("engine[adam]", "loop"):
                ratio = f", {value / adam:.2f}x Adam's engine" if adam else ""
                print(f"{name}: {key} {value:.3f} ms per point-step{ratio}")


if __name__ == "__main__":
    main()
