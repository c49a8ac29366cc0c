"""The memory estimate that picks points per batch, against the memory a batch really takes.

For each preset, one vectorized batch of P points is trained for a few steps, in a fresh
subprocess per preset after a one-point warm-up (so the libraries' own buffers are already
there), and its peak memory measured above what was live before it: the allocator's peak,
``torch.cuda.max_memory_allocated`` on CUDA, and on the CPU the peak of the running sum of
the allocations and frees that torch.profiler records (``profile_memory=True``); on the
CPU also the process's resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` just before the batch; ``ru_maxrss`` where it cannot be reset),
which adds the C allocator's own retention and fragmentation. The estimate
(:meth:`stabcli.probe.setup.ProbeSetup.memory`) is compared without the data set on the CPU,
where the data were resident before the batch (the device is the host).

Prints, per preset, the estimate, the peaks and their ratios:

    <preset> P=<p> steps=<s> (cpu): estimate <e> MiB, allocator peak <a> MiB,
    estimate/allocated <r>; resident set <m> MiB (estimate/resident <q>)

Usage: python benchmarks/bench_memory.py [--presets tiny-char mlp-synthetic ...]
       [--points 8] [--steps 20] [--device cpu|cuda] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

PRESETS = ["tiny-char", "mlp-synthetic", "shakespeare-small", "cnn-synthetic"]


@dataclass(frozen=True)
class MemoryCheck:
    """One batch's estimated and measured memory, in bytes."""

    preset: str
    points: int
    steps: int
    device: str
    estimate: int  # what the probe plans with (without the data set on the CPU)
    allocated: int  # torch's allocator: the batch's peak of live tensor bytes above its start
    resident: int | None  # CPU: the process's resident-set peak above its start

    @property
    def ratio(self) -> float:
        """Estimate over the allocator's peak."""
        return self.estimate / self.allocated


def _resident() -> int:
    """Bytes resident now (Linux /proc/self/statm), else the high-water mark."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_high_water() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _high_water() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_allocator_peak(run: Callable[[], object]) -> int:
    """Peak live bytes of torch's CPU allocator while ``run()`` runs, above its start: the
    running sum of the allocations and frees torch.profiler records (profile_memory)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )  # fmt: skip
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def measure(
    name: str, points: int, steps: int, device: str, overrides: dict[str, object]
) -> MemoryCheck:
    """Train one batch of ``points`` points for ``steps`` steps here; estimate and peaks."""
    import dataclasses

    import torch

    from stabcli.probe import load_preset, resolve_setup
    from stabcli.probe.device import resolve_dtype
    from stabcli.probe.engine import run_batch
    from stabcli.probe.setup import device_bytes

    torch.set_num_threads(1)
    preset = load_preset(name)
    warmup = min(preset.train.warmup_steps, steps - 1)  # a shortened cosine schedule
    preset = preset.with_overrides(steps=steps, warmup_steps=warmup, **overrides)
    setup = resolve_setup(preset, device)
    data = setup.dataset()
    pts = [(0.999 - 0.09 * i / max(points - 1, 1), 0.9) for i in range(points)]  # γ² < β
    warm = dataclasses.replace(setup, preset=setup.preset.with_overrides(steps=2, warmup_steps=0))
    run_batch(warm, pts[:1])  # the libraries' buffers, kernels and thread pools
    dev = torch.device(device)
    planned = setup.memory(dev).total(points)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        run_batch(setup, pts)
        allocated = torch.cuda.max_memory_allocated(dev) - before
        return MemoryCheck(name, points, steps, dev.type, planned, allocated, None)
    dtype, _ = resolve_dtype(setup.preset, dev)
    planned -= device_bytes(data, torch.empty((), dtype=dtype).element_size())  # on the host
    before = _resident()
    if not _reset_high_water():
        before = _high_water()
    run_batch(setup, pts)
    resident = _high_water() - before
    allocated = cpu_allocator_peak(lambda: run_batch(setup, pts))
    return MemoryCheck(name, points, steps, dev.type, planned, allocated, resident)


def measure_in_subprocess(
    name: str, points: int, steps: int, device: str, overrides: dict[str, object]
) -> MemoryCheck:
    """:func:`measure` in a fresh Python process (its own high-water mark)."""
    call = json.dumps([name, points, steps, device, overrides])
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_memory as b; "
        "print(b.as_json(b.measure(*json.loads(sys.argv[2]))))"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, here, call], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {name} failed:\n{out.stderr}")
    return MemoryCheck(**json.loads(out.stdout.strip().splitlines()[-1]))


def as_json(check: MemoryCheck) -> str:
    return json.dumps(asdict(check))


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", nargs="*", default=[], help="preset overrides, key=value")
    args = parser.parse_args()
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    overrides.setdefault("eval_every", 0)
    overrides.setdefault("eval_batches", 0)
    mib = 2**20
    for name in args.presets:
        check = measure_in_subprocess(name, args.points, args.steps, args.device, overrides)
        resident = ""
        if check.resident is not None:
            ratio = check.estimate / check.resident
            resident = (
                f"; resident set {check.resident / mib:.1f} MiB (estimate/resident {ratio:.2f})"
            )
        print(
            f"{name} P={check.points} steps={check.steps} ({check.device}): estimate "
            f"{check.estimate / mib:.1f} MiB, allocator peak {check.allocated / mib:.1f} MiB, "
            f"estimate/allocated {check.ratio:.2f}{resident}"
        )


if __name__ == "__main__":
    main()
