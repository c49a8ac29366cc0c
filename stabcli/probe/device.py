"""Device and precision choice, and how many points fit in one vectorized batch."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from stabcli.errors import StabcliError
from stabcli.probe.backend import ModelBackend
from stabcli.probe.config import Preset
from stabcli.probe.optim import buffers_per_point, trace_columns

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.float32}


def resolve_device(device: str | None) -> torch.device:
    """``None`` picks cuda, then mps, then cpu; an explicit name must be usable here."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise StabcliError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise StabcliError(f"device {device!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise StabcliError(f"device {device!r}: only {torch.cuda.device_count()} CUDA devices")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise StabcliError(f"device {device!r} requested but MPS is not available here")
    elif dev.type != "cpu":
        raise StabcliError(f"unsupported device {device!r}; use cpu, cuda, cuda:N or mps")
    return dev


def resolve_dtype(preset: Preset, device: torch.device) -> tuple[torch.dtype, bool]:
    """(parameter dtype, bf16 autocast?) for the preset's ``dtype`` on ``device``.

    bfloat16 means autocast of the forward/backward on CUDA; parameters and optimizer
    state stay float32.
    """
    name = preset.train.dtype
    if name == "bfloat16" and device.type != "cuda":
        raise StabcliError(f"dtype bfloat16 (autocast) needs a CUDA device, not {device.type}")
    if name == "bfloat16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise StabcliError(
            f"dtype bfloat16 needs a GPU with native bfloat16 (compute capability 8.0 or more); "
            f"{torch.cuda.get_device_name(device)} would emulate it, slower than float32: "
            "use --dtype float32"
        )
    if name == "float64" and device.type == "mps":
        raise StabcliError("dtype float64 is not supported on mps; use float32 or cpu")
    if preset.train.optimizer in ("hyperadam", "mada") and device.type == "mps":
        raise StabcliError(
            f"optimizer {preset.train.optimizer} keeps its hypergradient coefficients in "
            "float64, which mps lacks; use --device cpu"
        )
    return _DTYPES[name], name == "bfloat16"


def use_compile(preset: Preset, device: torch.device, model: ModelBackend) -> bool:
    """Whether a probe's step runs through ``torch.compile`` (``train.compile``).

    ``"auto"`` compiles on CUDA, where fusing the many small elementwise kernels of the
    forward, backward and stacked optimizer pays over a probe's run, and not on the CPU,
    where compiling a step (20-35 s cold, 3-5 s from torch's cache) costs more than it saves
    in a probe of the shipped presets (benchmarks/bench_probes.py --compile: see its
    output). ``"on"`` compiles anywhere and is a one-line error where torch.compile cannot
    run (e.g. no C++ compiler for the CPU). Only the built-in models (batched natively over
    points) compile; a factory model always runs eagerly.
    """
    choice = preset.train.compile
    if choice == "on" and model.batching != "native":
        raise StabcliError(
            f"train.compile = 'on' needs a built-in model (gpt, mlp, cnn); preset "
            f"{preset.name}'s model runs {model.batching} and is not compiled"
        )
    if choice == "off" or model.batching != "native":
        return False
    if choice == "auto" and device.type != "cuda":
        return False
    problem = compile_problem(device.type)
    if problem is None:
        return True
    if choice == "on":
        raise StabcliError(
            f"train.compile = 'on', but torch.compile cannot run on {device.type} here "
            f"({problem}); set train.compile = 'off'"
        )
    return False


@functools.cache
def compile_problem(device_type: str) -> str | None:
    """Why ``torch.compile`` cannot run on ``device_type`` here (one line), or None: a
    one-op function is compiled and run once per process."""
    try:
        double = torch.compile(lambda x: x * 2.0 + 1.0, dynamic=False)
        double(torch.zeros(4, device=device_type))
    except Exception as err:  # no C++ compiler, no triton, an unsupported platform...
        first = str(err).strip().splitlines()
        return f"{type(err).__name__}: {first[0] if first else ''}".strip().rstrip(":")
    return None


def free_memory(device: torch.device) -> int:
    """Bytes the probe may use on ``device``: free CUDA memory, or available host RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
        except (AttributeError, RuntimeError):
            return 4 << 30
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"


#: (B, T, C) activations a GPT block keeps for its backward pass (per point)
BLOCK_ACTIVATIONS = 20
#: the same with ``model.qk_norm``: the normalised queries and keys and their norms add
#: 3.25 (B, T, C) per block, measured against the CPU allocator's peak at 1, 2 and 3 layers
#: (benchmarks/bench_memory.py), counted as 4 so that the estimate errs on the large side
QK_NORM_BLOCK_ACTIVATIONS = 24


@dataclass(frozen=True)
class MemoryEstimate:
    """Rough memory of a vectorized probe batch: a part per point and a shared part."""

    per_point: int  # bytes: weights, grads, Adam state, scratch, activations, records
    shared: int  # bytes: the data on the device, the batch offsets, the initial weights

    def total(self, n_points: int) -> int:
        return self.shared + n_points * self.per_point


def estimate_memory(
    preset: Preset,
    n_params: int,
    vocab: int,
    data_bytes: int,
    elem: int,
    activations: int | None = None,
) -> MemoryEstimate:
    """Memory of a probe of ``preset`` with ``n_params`` parameters per point, from its shapes.

    Per point: θ, g and the optimizer's state and scratch, each (N,)
    (:func:`stabcli.probe.optim.buffers_per_point`: 6 for Adam, 4 + 2k for k-Adam, more for
    HyperAdam and MADA, which keep ∂θ/∂q per learned coefficient); activations kept for the
    backward pass (a GPT block keeps :data:`BLOCK_ACTIVATIONS` (B, T, C) tensors, with
    qk-norm :data:`QK_NORM_BLOCK_ACTIVATIONS`, plus its attention internals, the logits
    3 (B·T, V)); the per-step records, (S,) each, on the device and the host,
    with the optimizer's own trace columns (k-Adam's levels, the learned coefficients).
    Shared: the data set on the device (``data_bytes``, as the batches read it: token ids
    and labels int64, features in the probe's dtype, images uint8), the batch offsets
    (S, B) and (E, B), and θ_0.
    ``activations`` (elements per point) replaces the GPT/MLP formula for other models.
    """
    m, t = preset.model, preset.train
    if activations is not None:
        acts = activations
    elif m.kind == "gpt":
        tokens = t.batch_size * m.block_size
        block = (QK_NORM_BLOCK_ACTIVATIONS if m.qk_norm else BLOCK_ACTIVATIONS) * m.n_embd
        acts = tokens * (m.n_layer * (block + 2 * m.n_head * m.block_size) + 3 * vocab)
    else:
        acts = t.batch_size * (m.n_layer * 4 * m.n_embd + 3 * vocab)
    columns = len(trace_columns(t))  # device (S,), host (S,) and a frame column each
    records = t.steps * (3 * elem + 8 + 4 * 8 + 64 + columns * (elem + 16))
    per_point = (buffers_per_point(t) * n_params + acts) * elem + records
    offsets = (t.steps + t.eval_batches) * t.batch_size * 8
    shared = data_bytes + offsets + n_params * elem
    return MemoryEstimate(per_point=per_point, shared=shared)


def check_memory(
    estimate: MemoryEstimate, device: torch.device, preset: Preset, n_points: int = 1
) -> None:
    """Refuse, with the estimate, a batch of ``n_points`` that cannot fit in ``device``'s
    free memory (before anything is allocated or written)."""
    need, free = estimate.total(n_points), free_memory(device)
    if need > free:
        what = "one probe point" if n_points == 1 else f"{n_points} probe points"
        verb = "needs" if n_points == 1 else "need"
        raise StabcliError(
            f"{what} of preset {preset.name} {verb} about {_gib(need)} of {device.type} memory, "
            f"more than the {_gib(free)} available; use a smaller model, batch, block or run"
        )


def auto_points_per_batch(
    estimate: MemoryEstimate, device: torch.device, n_points: int, share: float = 1.0
) -> int:
    """Points per vectorized batch from a budget of half the free memory (at least 1), or
    half of ``share`` of it where that many batches run side by side on the device (a Ray
    task with 0.5 GPU shares its GPU with another)."""
    budget = int(free_memory(device) * share) // 2 - estimate.shared
    fit = max(1, budget // max(estimate.per_point, 1))
    return int(min(fit, n_points))


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """On CPU, flush subnormal floats to zero for the duration of a probe.

    Gradients of parameters that a model has learnt to ignore fade geometrically into the
    subnormal range, where CPU kernels run 10-100x slower. Flushing changes only values
    below ~1e-38 (float32). PyTorch has no getter for the flag; it is reset to its
    default (off) afterwards.
    """
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
