"""Benchmark of Ray's overhead per batch against the local executor, on the same machine.

Target: a tiny-char batch run as a Ray task takes less than 5% longer than the same batch
run by the local executor.

Both sides run the same batches through the executor seam (stabcli.sweep.executor), with
the sweep's progress callback: LocalExecutor in this process, RayExecutor on a Ray
instance started here with as many CPUs as one task reserves (the torch threads), so
Ray's tasks run one at a time like the local batches and their wall times compare like
for like. Ray's workers run at the driver's niceness, 0, rather than Ray's default 15,
which on a shared machine would time the neighbours. The workers are warmed by one run
first (its cold cost, process start, imports and the data, is printed apart: it is paid
once per worker). Repeats alternate local and Ray; medians are printed: wall time per
batch, the time inside run_batch (the same training on either side) and the rest, the
executor's own cost per batch, whose difference is Ray's overhead (on a busy shared
machine the training's own noise dwarfs it in the wall times; the difference of the
rests cancels it).

With ``--figure2-steps K`` (and tiny Shakespeare in $STABCLI_SHAKESPEARE or the cache),
it also times K steps of one point of the paper's Figure 2 model (nanogpt-shakespeare,
at a batch of ``--figure2-batch`` sequences instead of 64, scaled up by FLOPs) on this
CPU, and prints the projection of Figure 2 (64 points x 1500 steps) on N GPUs, with its
assumptions.

    python benchmarks/bench_executor.py [--points 8] [--points-per-batch 2] [--steps 300]
        [--repeats 5] [--threads 1] [--figure2-steps 0] [--figure2-batch 8]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
from collections.abc import Sequence

import torch

from stabcli.probe import Preset, ProbePoint, ProbeSetup, load_preset, resolve_setup, run_batch
from stabcli.sweep.executor import Batch, BatchDone, Executor, LocalExecutor, split_batches
from stabcli.sweep.ray_executor import even_batches
from stabcli.theory.curves import normal_section, sample_by_arc_length

TARGET = 0.05  # Ray's overhead per batch, as a share of a local batch's time
FIGURE2_POINTS, FIGURE2_STEPS = 64, 1500  # the paper's Figure 2 (App. H)


def tiny_char(points: int, per_batch: int, steps: int) -> tuple[ProbeSetup, list[Batch]]:
    """tiny-char on the normal curve through (0.999, 0.9), split as a sweep splits it."""
    preset = load_preset("tiny-char").with_overrides(steps=steps, eval_every=0)
    curve = sample_by_arc_length(normal_section(0.999, 0.9), points)
    probe_points = [ProbePoint(p.beta, p.gamma) for p in curve]
    setup = resolve_setup(preset, "cpu")
    return setup, split_batches(range(points), probe_points, per_batch)


def run_all(
    executor: Executor, setup: ProbeSetup, batches: Sequence[Batch]
) -> tuple[float, list[float]]:
    """Wall time of running every batch, and each batch's time inside run_batch."""
    done = 0

    def progress(k: int) -> None:  # what the sweep's progress bar does, minus drawing
        nonlocal done
        done += k

    start = time.perf_counter()
    inside = [
        o.record.seconds for o in executor.run(setup, batches, progress) if isinstance(o, BatchDone)
    ]
    wall = time.perf_counter() - start
    if len(inside) != len(batches):
        raise RuntimeError("a batch failed")
    return wall, inside


def gpt_flops_per_step(preset: Preset, vocab: int) -> float:
    """Training FLOPs of one point's step: 6 per parameter and token (forward and
    backward of every weight) plus attention's 12·L·T·C per token (PaLM, App. B), over
    B·T tokens."""
    m, t = preset.model, preset.train
    c, n_layer, block = m.n_embd, m.n_layer, m.block_size
    # weights: token and position embeddings, 12·C² per block (attention 4C², MLP 8C²)
    n_params = vocab * c + block * c + n_layer * 12 * c * c
    tokens = t.batch_size * block
    return tokens * (6 * n_params + 12 * n_layer * block * c)


def figure2(steps: int, batch: int, overhead: float) -> None:
    """Time ``steps`` steps of one Figure 2 point here, and project Figure 2 on N GPUs."""
    from stabcli.errors import StabcliError

    try:
        full = load_preset("nanogpt-shakespeare")
        preset = full.with_overrides(steps=steps, batch_size=batch)
        setup = resolve_setup(preset, "cpu")
    except StabcliError as err:
        print(f"figure 2: skipped ({err})")
        return
    vocab = setup.dataset().n_out
    run_batch(setup, [ProbePoint(0.999, 0.9)])  # warm: data, model, kernels
    result = run_batch(setup, [ProbePoint(0.999, 0.9)])
    per_step = result.seconds / steps
    flops = gpt_flops_per_step(preset, vocab)
    cpu_rate = flops / per_step
    full_flops = gpt_flops_per_step(full, vocab)
    memory = setup.memory(torch.device("cpu"))
    full_memory = resolve_setup(full.with_overrides(steps=FIGURE2_STEPS), "cpu").memory(
        torch.device("cpu")
    )
    print(
        f"figure 2 model here: {per_step:.2f} s per point-step at batch {batch} "
        f"({flops / 1e9:.0f} GFLOP) = {cpu_rate / 1e9:.1f} GFLOP/s on this CPU; at batch 64: "
        f"{full_flops / 1e12:.2f} TFLOP per point-step, {full_flops / cpu_rate:.0f} s here"
    )
    total = FIGURE2_POINTS * FIGURE2_STEPS * full_flops
    print(
        f"figure 2 = {FIGURE2_POINTS} x {FIGURE2_STEPS} point-steps = {total / 1e15:.0f} PFLOP; "
        f"memory per point {full_memory.per_point / 2**30:.2f} GiB (float32, the probe's "
        f"estimate; {memory.per_point / 2**30:.2f} GiB at batch {batch})"
    )
    fit = int((80 * 2**30 // 2 - full_memory.shared) // full_memory.per_point)
    print(f"an 80 GiB GPU (half its memory, as the executor sizes batches) fits {fit} points")
    for label, rate in (
        ("float32 (no TF32), 50% of an H100's 67 TFLOP/s", 0.5 * 67e12),
        ("--dtype bfloat16 autocast, 35% of an H100's 989 TFLOP/s", 0.35 * 989e12),
    ):
        point_step = full_flops / rate
        walls = ", ".join(
            f"N={n}: {_clock(projected_wall(n, fit, point_step, overhead))}"
            for n in (1, 2, 4, 8, 16)
        )
        print(
            f"projected wall, {label} ({point_step * 1e3:.1f} ms per point-step): {walls} "
            f"(+ once per worker: start, imports, data, compile)"
        )


def projected_wall(n_gpus: int, fit: int, point_step: float, overhead: float) -> float:
    """Figure 2's wall time on ``n_gpus`` GPUs, one task each, batches sized as the Ray
    executor sizes them (:func:`even_batches`): rounds of tasks, each a batch's points x
    steps x seconds per point-step (a saturated GPU: time linear in points) plus Ray's
    overhead per batch."""
    per_batch = even_batches(FIGURE2_POINTS, n_gpus, fit)
    rounds = math.ceil(math.ceil(FIGURE2_POINTS / per_batch) / n_gpus)
    return rounds * (per_batch * FIGURE2_STEPS * point_step + overhead)


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--points-per-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--figure2-steps", type=int, default=0)
    parser.add_argument("--figure2-batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import ray

    from stabcli.sweep.executor import ExecutorSpec
    from stabcli.sweep.ray_executor import RayExecutor

    setup, batches = tiny_char(args.points, args.points_per_batch, args.steps)
    # Ray starts its workers at nice 15, below every other process here: on a machine it
    # shares (a developer's) that would time the neighbours, not Ray. Both sides at 0.
    os.environ.setdefault("RAY_worker_niceness", "0")
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=args.threads,  # one task at a time, like the local executor
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    connect = time.perf_counter() - start
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} torch "
        f"thread(s); Ray {ray.__version__} local instance with {args.threads} CPU "
        f"(started in {connect:.1f} s)"
    )
    print(
        f"tiny-char: {args.points} points x {args.steps} steps in {len(batches)} batches of "
        f"{args.points_per_batch}; {args.repeats} repeats, alternating"
    )
    local = LocalExecutor()
    remote = RayExecutor(ExecutorSpec("ray"), "cpu")
    try:
        run_all(local, setup, batches)  # warm: kernels, allocator
        cold, _ = run_all(remote, setup, batches)
        print(f"first Ray run (cold workers: start, imports, data): {cold:.2f} s")
        walls: dict[str, list[float]] = {"local": [], "ray": []}  # per batch, each run
        inside: dict[str, list[float]] = {"local": [], "ray": []}  # run_batch, each batch
        outside: dict[str, list[float]] = {"local": [], "ray": []}  # the rest, per batch
        for r in range(args.repeats):
            order = [("local", local), ("ray", remote)]
            for name, executor in order if r % 2 == 0 else order[::-1]:
                wall, seconds = run_all(executor, setup, batches)
                walls[name].append(wall / len(batches))
                inside[name].extend(seconds)
                outside[name].append((wall - sum(seconds)) / len(batches))
    finally:
        remote.close()
        ray.shutdown()
    per_batch = {k: statistics.median(v) for k, v in walls.items()}
    cost = {k: statistics.median(v) for k, v in outside.items()}
    for name in ("local", "ray"):
        where = "here" if name == "local" else "in the worker"
        print(
            f"{name:>5}: {per_batch[name]:.3f} s per batch (median of runs), run_batch "
            f"{statistics.median(inside[name]):.3f} s {where} (median of batches), the "
            f"executor's own cost {cost[name] * 1e3:.1f} ms per batch"
        )
    overhead = cost["ray"] - cost["local"]  # compute noise cancels: same run_batch inside
    share = overhead / statistics.median(inside["local"])
    verdict = "meets" if share < TARGET else "misses"
    print(
        f"Ray's overhead per batch: {overhead * 1e3:+.1f} ms = {share:+.2%} of a local batch "
        f"({verdict} the target of < {TARGET:.0%}); wall per batch ray/local "
        f"{per_batch['ray'] / per_batch['local']:.3f}"
    )
    point_step = per_batch["local"] / (args.points_per_batch * args.steps)
    print(f"tiny-char here: {point_step * 1e3:.2f} ms per point-step (local)")
    if args.figure2_steps:
        figure2(args.figure2_steps, args.figure2_batch, max(overhead, 0.0))


if __name__ == "__main__":
    main()
