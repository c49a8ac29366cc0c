"""The probe engine: train P (β, γ) points at once and record ‖u_n‖∞ every step.

All points of a vectorized batch share the initial weights, the data batches and the
dropout masks, so only (β, γ) differ (issue 4). Parameters live in one flat (P, N) buffer;
the model reads named views of it (:func:`stabcli.probe.models.unflatten`) and
:class:`stabcli.probe.optim.StackedAdam` updates it with one set of elementwise kernels.
Records stay on the device and are copied to the host once per block of steps.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stabcli.errors import StabcliError
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream, load_dataset
from stabcli.probe.device import (
    auto_points_per_batch,
    flush_denormals,
    resolve_device,
    resolve_dtype,
)
from stabcli.probe.models import (
    ParamSpec,
    SharedDropout,
    init_flat,
    loss_function,
    param_specs,
    unflatten,
)
from stabcli.probe.optim import StackedAdam, adam_tables
from stabcli.probe.records import Records, build_frames, empty_evals

RECORD_BLOCK = 64  # steps between device -> host copies (and on_progress calls)


@dataclass
class ProbeResult:
    """Per-point summaries and per-step traces of a probe, as DataFrames.

    ``summary``: point, beta, gamma, diverged_step (Int64, <NA> if it never diverged),
    final_loss. ``traces``: point, step, max_update (‖θ_{n+1}−θ_n‖∞/η_n, NaN after
    divergence), max_tensor, loss, lr (η_n), wd_term (λ‖θ_n‖∞ for decoupled decay, else 0).
    ``evals``: point, step, test_loss. ``point`` indexes the ``points`` given to run_probes.
    """

    summary: pd.DataFrame
    traces: pd.DataFrame
    evals: pd.DataFrame
    device: str  # where it ran, e.g. "cpu" or "cuda"
    dtype: str  # the preset's dtype name
    points_per_batch: int  # points trained together in one vectorized program
    seconds: float  # wall time


def dropout_seed(seed: int, n: int) -> int:
    """Seed of the dropout masks of step n (shared with the sequential reference)."""
    return seed * 1_000_003 + n + 1


def check_points(points: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(β, γ) in the paper's order -> two float64 arrays; StabcliError when out of range."""
    if len(points) == 0:
        raise StabcliError("no (β, γ) points to probe")
    try:
        arr = np.asarray([(float(b), float(g)) for b, g in points], dtype=np.float64)
    except (TypeError, ValueError):
        raise StabcliError("points must be (β, γ) pairs of numbers") from None
    beta, gamma = arr[:, 0], arr[:, 1]
    bad = ~((beta > 0) & (beta < 1) & (gamma >= 0) & (gamma < 1))
    if bad.any():
        b, g = arr[int(np.argmax(bad))]
        raise StabcliError(f"point (β={b}, γ={g}) is outside 0 < β < 1, 0 ≤ γ < 1")
    return beta, gamma


def run_probes(
    preset: Preset,
    points: Sequence[tuple[float, float]],
    *,
    device: str | None = None,
    points_per_batch: int | None = None,
    on_batch: Callable[[ProbeResult], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProbeResult:
    """Train ``preset`` at every (β, γ) of ``points`` (paper order; torch betas=(γ, β)).

    Points are run in vectorized batches of ``points_per_batch`` (default: from half the
    device's free memory); ``on_batch`` gets each batch's result, ``on_progress`` the
    number of point-steps done since its last call.
    """
    start = time.perf_counter()
    beta, gamma = check_points(points)
    dev = resolve_device(device)
    dtype, autocast = resolve_dtype(preset, dev)
    data = load_dataset(preset)
    specs = param_specs(preset.model, data.n_in, data.n_out)
    n_params = sum(s.numel for s in specs)
    elem = torch.empty((), dtype=dtype).element_size()
    if points_per_batch is None:
        ppb = auto_points_per_batch(preset, dev, n_params, data.n_out, elem, len(beta))
    elif type(points_per_batch) is int and points_per_batch >= 1:
        ppb = min(points_per_batch, len(beta))
    else:
        raise StabcliError(f"points_per_batch must be a positive integer, not {points_per_batch!r}")
    stream = BatchStream(data, preset, dev, dtype)
    theta0 = init_flat(specs, preset.train.seed, dtype).to(dev)  # (N,) shared initial weights

    parts: list[ProbeResult] = []
    for lo in range(0, len(beta), ppb):
        t0 = time.perf_counter()
        idx = np.arange(lo, min(lo + ppb, len(beta)))
        with flush_denormals(dev):
            rec = _train_batch(
                preset, specs, stream, theta0, beta[idx], gamma[idx], autocast, on_progress
            )
        summary, traces, evals = build_frames(rec, idx, beta[idx], gamma[idx], specs)
        seconds = time.perf_counter() - t0
        part = ProbeResult(summary, traces, evals, dev.type, preset.train.dtype, ppb, seconds)
        if on_batch is not None:
            on_batch(part)
        parts.append(part)

    def cat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    evals = cat([p.evals for p in parts]) if preset.train.eval_every else empty_evals()
    return ProbeResult(
        summary=cat([p.summary for p in parts]),
        traces=cat([p.traces for p in parts]),
        evals=evals,
        device=dev.type,
        dtype=preset.train.dtype,
        points_per_batch=ppb,
        seconds=time.perf_counter() - start,
    )


def _train_batch(
    preset: Preset,
    specs: list[ParamSpec],
    stream: BatchStream,
    theta0: torch.Tensor,
    beta: np.ndarray,
    gamma: np.ndarray,
    autocast: bool,
    on_progress: Callable[[int], None] | None,
) -> Records:
    """Train one vectorized batch of points; returns host-side records."""
    t = preset.train
    n_pt, steps, dev = len(beta), t.steps, theta0.device
    flat = theta0.expand(n_pt, -1).clone().requires_grad_(True)  # (P, N) leaf
    tables = adam_tables(t, beta, gamma, dev, flat.dtype)
    opt = StackedAdam(flat, beta, gamma, t, tables)
    loss_fn = loss_function(preset.model)
    gen = torch.Generator(device=dev) if preset.model.uses_dropout else None
    drop = SharedDropout(preset.model.dropout, gen)
    no_drop = SharedDropout(0.0, None)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()

    rec = Records.allocate(steps, n_pt, flat.dtype, dev, lr=tables.lr_host, eval_every=t.eval_every)
    alive = torch.ones(n_pt, dtype=torch.bool, device=dev)  # (P,)

    def evaluate(n: int) -> None:
        with torch.no_grad(), amp:
            params = unflatten(flat, specs)
            total = sum(
                loss_fn(params, *stream.test_batch(k), no_drop) for k in range(t.eval_batches)
            )
        rec.store_eval(n, torch.where(alive, total / t.eval_batches, torch.nan))

    flushed = 0
    for n in range(steps):
        if t.eval_every and n % t.eval_every == 0:
            evaluate(n)
        x, y = stream.train_batch(n)
        if gen is not None:
            gen.manual_seed(dropout_seed(t.seed, n))
        with amp:
            losses = loss_fn(unflatten(flat, specs), x, y, drop)  # (P,)
        flat.grad = None
        losses.sum().backward()  # points are independent: each gets its own gradient
        losses = losses.detach()
        assert flat.grad is not None
        max_update, argmax, wd_norm, new_alive = opt.step(n, flat, flat.grad, losses, alive)
        rec.store_step(n, alive, new_alive, max_update, argmax, losses, wd_norm)
        alive = new_alive
        if n + 1 - flushed == RECORD_BLOCK or n == steps - 1:
            rec.flush(flushed, n + 1)
            if on_progress is not None:
                on_progress((n + 1 - flushed) * n_pt)
            flushed = n + 1
    if t.eval_every and steps % t.eval_every == 0:
        evaluate(steps)
    rec.finish()
    return rec
