"""Engine vs. a loop of torch.optim.Adam runs: time per point-step.

For each preset, 16 points along the normal curve through (0.999, 0.9) are trained for 200
steps two ways on the same batches: once by the vectorized engine (all 16 in one program),
once as 16 sequential `torch.optim.Adam` runs (stabcli.probe.reference). Both record the
max-update every step. Prints, per preset, the medians over a few repeats:

    <preset>: engine <a> ms, loop <b> ms per point-step, <b/a>x

Usage: python benchmarks/bench_probes.py [--presets mlp-synthetic tiny-char] [--repeats 3]
       [--points 16] [--steps 200] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from stabcli.probe import load_preset, resolve_setup, run_probes
from stabcli.probe.reference import run_reference


def normal_curve_points(count: int) -> list[tuple[float, float]]:
    """(β, γ) along the normal curve γ³ + 2β³ = k through (0.999, 0.9), β from 0.955 to 0.999
    (paper Section 3.2; docs/theory.md §2)."""
    k = 2 * 0.999**3 + 0.9**3
    betas = np.linspace(0.955, 0.999, count)
    return [(float(b), float(np.cbrt(k - 2 * b**3))) for b in betas]


def bench(name: str, points: int, steps: int, repeats: int, device: str) -> tuple[float, float]:
    """Median ms per point-step of (engine, loop)."""
    preset = load_preset(name).with_overrides(steps=steps, eval_every=0, eval_batches=0)
    pts = normal_curve_points(points)
    setup = resolve_setup(preset, device)  # device, dtype and data once, as a sweep does
    data = setup.dataset()
    run_probes(preset.with_overrides(steps=5), pts, device=device)  # warm-up (allocator, caches)
    run_reference(preset.with_overrides(steps=5), pts[0], device=device, dataset=data)
    engine, loop = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_probes(setup, pts, points_per_batch=points)
        engine.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for pt in pts:
            run_reference(preset, pt, device=device, dataset=data)
        loop.append(time.perf_counter() - t0)
    per = 1e3 / (points * steps)
    return statistics.median(engine) * per, statistics.median(loop) * per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mlp-synthetic", "tiny-char"])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.presets:
        a, b = bench(name, args.points, args.steps, args.repeats, args.device)
        print(f"{name}: engine {a:.3f} ms, loop {b:.3f} ms per point-step, {b / a:.2f}x")


if __name__ == "__main__":
    main()
