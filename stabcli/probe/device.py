"""Device and precision choice, and how many points fit in one vectorized batch."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from stabcli.errors import StabcliError
from stabcli.probe.config import Preset

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
    state stay float32 (issue 4).
    """
    name = preset.train.dtype
    if name == "bfloat16" and device.type != "cuda":
        raise StabcliError(f"dtype bfloat16 (autocast) needs a CUDA device, not {device.type}")
    if name == "float64" and device.type == "mps":
        raise StabcliError("dtype float64 is not supported on mps; use float32 or cpu")
    return _DTYPES[name], name == "bfloat16"


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


def bytes_per_point(preset: Preset, n_params: int, vocab: int, elem: int) -> int:
    """Rough memory of one point: weights, grads, Adam state, scratch and activations."""
    m, t = preset.model, preset.train
    state = 6 * n_params * elem  # θ, g, m, v and two scratch buffers, each (N,)
    if m.kind == "gpt":
        tokens = t.batch_size * m.block_size
        # per layer ~ 20 saved (B, T, C) activations plus attention internals; logits x 3
        acts = tokens * (m.n_layer * (20 * m.n_embd + 2 * m.n_head * m.block_size) + 3 * vocab)
    else:
        acts = t.batch_size * (m.n_layer * 4 * m.n_embd + 3 * vocab)
    return state + acts * elem


def auto_points_per_batch(
    preset: Preset, device: torch.device, n_params: int, vocab: int, elem: int, n_points: int
) -> int:
    """Points per vectorized batch from a budget of half the free memory."""
    budget = free_memory(device) // 2
    fit = max(1, budget // max(bytes_per_point(preset, n_params, vocab, elem), 1))
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
