"""Engine vs. a loop of torch.optim.Adam runs, on a roofline: time, FLOP/s and % of peak.

For each preset, 16 points along the normal curve through (0.999, 0.9) are trained for 200
steps on the same batches: by the vectorized engine (all 16 in one program) with each
optimizer asked for (Adam by default; k-Adam, HyperAdam, MADA with ``--optimizers``),
eagerly and/or through torch.compile (``--compile``), and as 16 sequential
`torch.optim.Adam` runs (stabcli.probe.reference). Every run records the max-update every
step. Each repeat times every variant once, in turn, so machine noise hits them alike.

The roofline: the FLOPs of one point-step are counted from the preset's shapes
(:func:`stabcli.probe.models.step_flops`: matrix products of the forward and backward
passes, the optimizer's elementwise work; models without a count, the CNN, are counted by
torch's FlopCounterMode on one step). Achieved FLOP/s = FLOPs / time per point-step, as a
fraction of two peaks measured in the same run, in the preset's dtype: a large square GEMM
(the machine's peak) and a GEMM shaped like the model's largest product (a batched product
of P points for the engine, one product for the loop: what these shapes allow). Prints the
medians over the repeats as a table.

Usage: python benchmarks/bench_probes.py [--presets mlp-synthetic tiny-char] [--repeats 3]
       [--points 16] [--steps 200] [--threads N] [--device cpu|cuda]
       [--compile off|on|both] [--cold-compile]
       [--optimizers adam kadam hyperadam mada] [--k 3] [--no-loop] [--loop-points N]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from stabcli.probe import load_preset, resolve_setup, run_probes
from stabcli.probe.backend import SharedDropout, StepFlops, build_model, unflatten
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream
from stabcli.probe.device import resolve_device, resolve_dtype
from stabcli.probe.optim import elementwise_flops
from stabcli.probe.reference import run_reference


def normal_curve_points(count: int) -> list[tuple[float, float]]:
    """(β, γ) along the normal curve γ³ + 2β³ = k through (0.999, 0.9), β from 0.955 to 0.999
    (paper Section 3.2; docs/theory.md §2)."""
    k = 2 * 0.999**3 + 0.9**3
    betas = np.linspace(0.955, 0.999, count)
    return [(float(b), float(np.cbrt(k - 2 * b**3))) for b in betas]


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(
    m: int, k: int, n: int, batch: int, dtype: torch.dtype, device: torch.device, seconds: float
) -> float:
    """GFLOP/s of (m, k) @ (k, n) products, ``batch`` of them in one bmm (1: one mm), timed
    for about ``seconds``; the median of the timed calls."""
    a = torch.randn(batch, m, k, dtype=dtype, device=device)
    b = torch.randn(batch, k, n, dtype=dtype, device=device)
    out = torch.empty(batch, m, n, dtype=dtype, device=device)

    def call() -> None:
        if batch == 1:
            torch.mm(a[0], b[0], out=out[0])
        else:
            torch.bmm(a, b, out=out)

    for _ in range(3):
        call()
    sync(device)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        t0 = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2.0 * batch * m * k * n / statistics.median(times) / 1e9


def largest_product(preset: Preset, n_in: int, n_out: int) -> tuple[int, int, int] | None:
    """(m, k, n) of one point's largest matrix product in the forward pass, or None."""
    m, t = preset.model, preset.train
    if m.kind == "gpt":
        tokens, c = t.batch_size * m.block_size, m.n_embd
        return max([(tokens, c, 4 * c), (tokens, c, n_out)], key=lambda s: s[1] * s[2])
    if m.kind == "mlp":
        widths = [n_in, *[m.n_embd] * m.n_layer, n_out]
        k, n = max(itertools.pairwise(widths), key=lambda s: s[0] * s[1])
        return (t.batch_size, k, n)
    return None


def counted_flops(preset: Preset, device: torch.device) -> tuple[StepFlops, str]:
    """FLOPs of one point-step: the model's count from its shapes, or FlopCounterMode's
    count of one forward and backward pass of one point (plus the optimizer's count)."""
    setup = resolve_setup(preset, str(device))
    data = setup.dataset()
    model = build_model(preset, data)
    if model.flops is not None:
        return model.flops, "counted from the shapes"
    dtype, _ = resolve_dtype(preset, device)
    stream = (
        model.stream(device, dtype) if model.stream else BatchStream(data, preset, device, dtype)
    )
    flat = model.initial().to(device=device, dtype=dtype)[None].clone().requires_grad_(True)
    x, y = stream.train_batch(0)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = model.loss(unflatten(flat, model.specs), x, y, SharedDropout(0.0, None))
        loss.sum().backward()
    total = counter.get_total_flops()
    optimizer = model.n_params * elementwise_flops(preset.train)
    return StepFlops(
        total // 3, total - total // 3, optimizer
    ), "forward+backward by FlopCounterMode"


@dataclass(frozen=True)
class Timing:
    """Median ms per point-step of one variant, and its warm-up run's seconds (5 steps)."""

    ms: float
    first_s: float


def variant(preset: Preset, optimizer: str, k: int) -> tuple[str, Preset]:
    """(label, preset) of the engine with ``optimizer``; Adam keeps the preset untouched."""
    if optimizer == "adam":
        return "adam", preset
    if optimizer == "kadam":
        return f"kadam k={k}", preset.with_overrides(optimizer="kadam", k=k)
    return optimizer, preset.with_overrides(optimizer=optimizer)


def bench(args: argparse.Namespace, preset: Preset) -> dict[str, Timing]:
    """Median ms per point-step of each engine variant and (unless --no-loop) the loop."""
    pts = normal_curve_points(args.points)
    runs: dict[str, Callable[[], object]] = {}
    first: dict[str, float] = {}
    modes = ["off", "on"] if args.compile == "both" else [args.compile]
    for optimizer in args.optimizers:
        for mode in modes:
            label, p = variant(preset.with_overrides(compile=mode), optimizer, args.k)
            key = f"engine[{label}{', compiled' if mode == 'on' else ''}]"
            setup = resolve_setup(p, args.device)  # device, dtype and data once, as a sweep does
            t0 = time.perf_counter()  # warm-up: 5 steps (and, compiled, the compilation)
            run_probes(setup.preset.with_overrides(steps=5), pts, device=args.device)
            first[key] = time.perf_counter() - t0
            runs[key] = lambda s=setup: run_probes(s, pts, points_per_batch=args.points)
    loop_points = min(args.loop_points or args.points, args.points)
    if args.loop:
        data = resolve_setup(preset, args.device).dataset()
        t0 = time.perf_counter()
        run_reference(preset.with_overrides(steps=5), pts[0], device=args.device, dataset=data)
        first["loop"] = time.perf_counter() - t0

        def loop() -> None:
            for pt in pts[:loop_points]:
                run_reference(preset, pt, device=args.device, dataset=data)

        runs["loop"] = loop
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)

    def per(key: str) -> float:  # ms per point-step from seconds per run
        return 1e3 / ((loop_points if key == "loop" else args.points) * args.steps)

    return {key: Timing(statistics.median(v) * per(key), first[key]) for key, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mlp-synthetic", "tiny-char"])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compile",
        choices=["off", "on", "both"],
        default="off",
        help="the engine eagerly, through torch.compile, or both (train.compile)",
    )
    parser.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile into an empty inductor cache (the first compilation a user sees)",
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=["adam"],
        choices=["adam", "kadam", "hyperadam", "mada"],
        help="engine optimizers to time (Adam first: the others are compared with it)",
    )
    parser.add_argument("--k", type=int, default=3, help="k-Adam's levels")
    parser.add_argument("--no-loop", dest="loop", action="store_false", help="skip the loop")
    parser.add_argument(
        "--loop-points",
        type=int,
        default=None,
        help="time the loop on the first N points only (its time per point-step does not "
        "depend on how many points it runs one after another; default: all)",
    )
    parser.add_argument("--gemm-seconds", type=float, default=2.0, help="time per GEMM peak")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cold_compile:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="stabcli-inductor-")
    device = resolve_device(args.device)
    today = datetime.date.today().isoformat()
    print(f"# {today}, device {device.type}: {device_name(device)}, torch {torch.__version__}")
    loop_note = f" (the loop: the first {args.loop_points})" if args.loop_points else ""
    print(
        f"# {args.points} points{loop_note} x {args.steps} steps, median of {args.repeats} "
        f"repeats; load average {os.getloadavg()[0]:.2f} at the start"
    )
    rows: list[tuple[str, ...]] = []
    square_peaks: dict[torch.dtype, float] = {}
    for name in args.presets:
        preset = load_preset(name).with_overrides(steps=args.steps, eval_every=0, eval_batches=0)
        dtype, autocast = resolve_dtype(preset, device)
        gemm_dtype = torch.bfloat16 if autocast else dtype
        if gemm_dtype not in square_peaks:
            size = 4096 if device.type == "cuda" else 2048
            square_peaks[gemm_dtype] = gemm_rate(
                size, size, size, 1, gemm_dtype, device, args.gemm_seconds
            )
            print(
                f"# GEMM peak, {gemm_dtype}: square {size}^3 {square_peaks[gemm_dtype]:.1f} GFLOP/s"
            )
        peak = square_peaks[gemm_dtype]
        flops, how = counted_flops(preset, device)
        data = resolve_setup(preset, args.device).dataset()
        shape = largest_product(preset, data.n_in, data.n_out)
        model_peak = {"engine": float("nan"), "loop": float("nan")}
        shape_text = ""
        if shape is not None:
            m, k, n = shape
            model_peak["engine"] = gemm_rate(
                m, k, n, args.points, gemm_dtype, device, args.gemm_seconds
            )
            model_peak["loop"] = gemm_rate(m, k, n, 1, gemm_dtype, device, args.gemm_seconds)
            shape_text = (
                f"; largest product ({m}x{k})@({k}x{n}): {model_peak['engine']:.1f} GFLOP/s as a "
                f"bmm of {args.points}, {model_peak['loop']:.1f} as one mm"
            )
        print(
            f"# {name}: {flops.total / 1e6:.2f} MFLOP per point-step (forward "
            f"{flops.forward / 1e6:.2f}, backward {flops.backward / 1e6:.2f}, optimizer "
            f"{flops.optimizer / 1e6:.3f}; {how}){shape_text}"
        )
        timings = bench(args, preset)
        loop = timings.get("loop")
        eager = timings.get("engine[adam]")
        for key, timing in timings.items():
            rate = flops.total / (timing.ms * 1e-3) / 1e9
            side = "loop" if key == "loop" else "engine"
            speedup = f"{loop.ms / timing.ms:.2f}x" if loop is not None else ""
            note = f"warm-up {timing.first_s:.1f} s"
            if key.endswith(", compiled]") and eager is not None:
                eager_key = key.replace(", compiled]", "]")
                base = timings.get(eager_key)
                if base is not None:
                    note += f" ({timing.first_s - base.first_s:+.1f} s vs eager: compilation)"
            rows.append(
                (
                    name,
                    key,
                    f"{timing.ms:.3f}",
                    speedup,
                    f"{rate:.1f}",
                    f"{100 * rate / peak:.1f}%",
                    f"{100 * rate / model_peak[side]:.1f}%" if shape is not None else "",
                    note,
                )
            )
    header = (
        "preset",
        "run",
        "ms / point-step",
        "vs loop",
        "GFLOP/s",
        "% square GEMM",
        "% model GEMM",
        "",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
