"""A public sequential reference: one point trained with ``torch.optim.Adam``/``AdamW``.

Part of the public API (not a test fixture): it lets a user check the vectorized engine
on their own preset against the optimizer they actually run. Same model, initial weights,
batches and dropout masks as the engine, but a single point (P = 1) and PyTorch's own
optimizer with ``betas=(γ, β)``. The project tests the engine against it (equivalence
tests) and benchmarks it against a loop of it (``benchmarks/bench_probes.py``). The
max-update is measured from the parameters themselves: ‖θ_{n+1} − θ_n‖∞ / η_n.

    from stabcli.probe.reference import run_reference
    ref = run_reference(load_preset("tiny-char"), (0.999, 0.9))   # (β, γ), paper order
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from stabcli.errors import StabcliError
from stabcli.probe.backend import SharedDropout, build_model
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream, Dataset, load_dataset
from stabcli.probe.device import flush_denormals, resolve_device, resolve_dtype
from stabcli.probe.engine import dropout_seed
from stabcli.probe.optim import lr_table


@dataclass
class ReferenceRun:
    """Per-step records of one sequential run."""

    max_update: np.ndarray  # (S,) ‖θ_{n+1} − θ_n‖∞ / η_n
    loss: np.ndarray  # (S,) training loss at step n


def run_reference(
    preset: Preset,
    point: tuple[float, float],
    *,
    device: str | None = "cpu",
    dataset: Dataset | None = None,
) -> ReferenceRun:
    """Train ``preset`` at (β, γ) = ``point`` with torch.optim.Adam(betas=(γ, β)).

    Weight decay "coupled" uses Adam's ``weight_decay``, "decoupled" uses AdamW. Only the
    "torch" ε placement exists in PyTorch, so the preset must use it.
    """
    t = preset.train
    if t.eps_placement != "torch":
        raise StabcliError("the torch.optim reference supports only eps_placement = 'torch'")
    beta, gamma = point
    dev = resolve_device(device)
    dtype, autocast = resolve_dtype(preset, dev)
    data = dataset if dataset is not None else load_dataset(preset)
    model = build_model(preset, data)
    specs = model.specs
    stream = model.stream(dev, dtype) if model.stream else BatchStream(data, preset, dev, dtype)
    flat0 = model.initial().to(device=dev, dtype=dtype)
    params = {
        s.name: chunk.view(1, *s.shape).clone().requires_grad_(True)
        for s, chunk in zip(specs, torch.split(flat0, [s.numel for s in specs]), strict=True)
    }
    leaves = list(params.values())
    wd = t.weight_decay if t.weight_decay_mode != "none" else 0.0
    kind = torch.optim.AdamW if t.weight_decay_mode == "decoupled" else torch.optim.Adam
    opt = kind(leaves, lr=t.lr, betas=(gamma, beta), eps=t.eps, weight_decay=wd)
    lrs = lr_table(t, np.array([beta]), np.array([gamma]))[:, 0]  # (S,)
    loss_fn = model.loss
    gen = torch.Generator(device=dev) if preset.model.uses_dropout else None
    drop = SharedDropout(preset.model.dropout, gen)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()

    max_update = torch.empty(t.steps, dtype=dtype, device=dev)  # kept on device
    losses = torch.empty(t.steps, dtype=dtype, device=dev)
    with flush_denormals(dev):
        for n in range(t.steps):
            x, y = stream.train_batch(n)
            if gen is not None:
                gen.manual_seed(dropout_seed(t.seed, n))
            for group in opt.param_groups:
                group["lr"] = float(lrs[n])
            opt.zero_grad(set_to_none=True)
            with amp:
                loss = loss_fn(params, x, y, drop)[0]
            loss.backward()
            before = [p.detach().clone() for p in leaves]
            opt.step()
            with torch.no_grad():
                deltas = [(p - b).abs().max() for p, b in zip(leaves, before, strict=True)]
                max_update[n] = torch.stack(deltas).max() / lrs[n]
                losses[n] = loss.detach()
    return ReferenceRun(max_update.cpu().double().numpy(), losses.cpu().double().numpy())
