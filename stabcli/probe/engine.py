"""The probe engine: train P (β, γ) points at once and record ‖u_n‖∞ every step.

All points of a vectorized batch share the initial weights, the data batches and the
dropout masks, so only (β, γ) differ (docs/theory.md §10). Parameters live in one flat
(P, N) buffer; the model reads named views of it (:func:`stabcli.probe.models.unflatten`)
and :class:`stabcli.probe.optim.StackedAdam` updates it with one set of elementwise kernels.
Records stay on the device and are copied to the host once per block of steps.

:func:`run_batch` trains one vectorized batch of a resolved :class:`ProbeSetup` and is pure
(its own device and data, resolved from the setup; no callbacks needed), so batches can run
in other processes; :func:`run_probes` splits many points into batches that fit in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stabcli.errors import SettingError, StabcliError
from stabcli.probe.backend import BatchSource, ModelBackend, SharedDropout, build_model, unflatten
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream
from stabcli.probe.device import (
    auto_points_per_batch,
    check_memory,
    flush_denormals,
    resolve_device,
    resolve_dtype,
)
from stabcli.probe.optim import StackedAdam, adam_tables
from stabcli.probe.records import Records, build_frames, empty_evals
from stabcli.probe.setup import ProbeSetup, resolve_setup
from stabcli.theory.domain import HyperPoint

RECORD_BLOCK = 64  # steps between device -> host copies (and on_progress calls)


@dataclass
class ProbeResult:
    """Per-point summaries and per-step traces of a probe, as DataFrames.

    ``summary``: point, beta, gamma, diverged_step (Int64, <NA> if it never diverged),
    underflow_step (Int64: the first step whose max-update came from a second moment v
    below the dtype's normal range, where the exact bound, which assumes real arithmetic,
    no longer applies; <NA> if none), final_loss. ``traces``: point, step, max_update
    (‖θ_{n+1}−θ_n‖∞/η_n, NaN after divergence), max_tensor, loss, lr (η_n), wd_term
    (λ‖θ_n‖∞ for decoupled decay, else 0). ``evals``: point, step, test_loss. ``point``
    indexes the ``points`` given to run_probes (or run_batch).
    """

    summary: pd.DataFrame
    traces: pd.DataFrame
    evals: pd.DataFrame
    device: str  # where it ran, e.g. "cpu" or "cuda"
    dtype: str  # the preset's dtype name
    points_per_batch: int  # points trained together in one vectorized program
    seconds: float  # wall time

    def offset(self, first: int) -> ProbeResult:
        """The same result with point indices shifted by ``first`` (a batch of a larger list)."""
        return dataclasses.replace(
            self,
            summary=self.summary.assign(point=self.summary["point"] + first),
            traces=self.traces.assign(point=self.traces["point"] + first),
            evals=self.evals.assign(point=self.evals["point"] + first),
        )


def dropout_seed(seed: int, n: int) -> int:
    """Seed of the dropout masks of step n (shared with the sequential reference); kept in
    torch's 64-bit seed range."""
    return (seed * 1_000_003 + n + 1) % 2**64


def check_points(points: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(β, γ) in the paper's order -> two float64 arrays, each point validated by
    :class:`~stabcli.theory.domain.HyperPoint` (the one place β and γ are range-checked)."""
    if len(points) == 0:
        raise StabcliError("no (β, γ) points to probe")
    try:
        valid = [HyperPoint(float(b), float(g)) for b, g in points]
    except (TypeError, ValueError):
        raise StabcliError("points must be (β, γ) pairs of numbers") from None
    beta = np.array([p.beta for p in valid], dtype=np.float64)
    gamma = np.array([p.gamma for p in valid], dtype=np.float64)
    return beta, gamma


def run_batch(
    setup: ProbeSetup,
    points: Sequence[tuple[float, float]],
    *,
    device: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProbeResult:
    """Train every (β, γ) of ``points`` together, in one vectorized program.

    Pure: it resolves its device (``device``, else the setup's) and reads its data by
    content here (:meth:`ProbeSetup.dataset`), so it can run in another process.
    ``on_progress`` gets the number of point-steps done since its last call.
    """
    start = time.perf_counter()
    beta, gamma = check_points(points)
    preset = setup.preset
    dev = resolve_device(device if device is not None else setup.device)
    dtype, autocast = resolve_dtype(preset, dev)
    data = setup.dataset()
    model = build_model(preset, data)
    stream = model.stream(dev, dtype) if model.stream else BatchStream(data, preset, dev, dtype)
    theta0 = model.initial().to(device=dev, dtype=dtype)  # (N,) shared initial weights
    with flush_denormals(dev):
        rec = _train_batch(preset, model, stream, theta0, beta, gamma, autocast, on_progress)
    summary, traces, evals = build_frames(rec, np.arange(len(beta)), beta, gamma, model.specs)
    seconds = time.perf_counter() - start
    return ProbeResult(summary, traces, evals, dev.type, preset.train.dtype, len(beta), seconds)


def run_probes(
    probe: Preset | ProbeSetup,
    points: Sequence[tuple[float, float]],
    *,
    device: str | None = None,
    points_per_batch: int | None = None,
    on_batch: Callable[[ProbeResult], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProbeResult:
    """Train a preset (or a resolved setup) at every (β, γ) of ``points`` (paper order;
    torch betas=(γ, β)).

    Points are run in vectorized batches of ``points_per_batch`` (default: from half the
    device's free memory); ``on_batch`` gets each batch's result, ``on_progress`` the
    number of point-steps done since its last call. ``device`` resolves a preset (a setup
    is already resolved).
    """
    start = time.perf_counter()
    setup = probe if isinstance(probe, ProbeSetup) else resolve_setup(probe, device)
    beta, gamma = check_points(points)
    dev = resolve_device(setup.device)
    memory = setup.memory(dev)
    if points_per_batch is None:
        ppb = auto_points_per_batch(memory, dev, len(beta))
    elif type(points_per_batch) is int and points_per_batch >= 1:
        ppb = min(points_per_batch, len(beta))
        check_memory(memory, dev, setup.preset, ppb)
    else:
        raise SettingError(
            "{points_per_batch} must be a positive integer, not {got!r}", got=points_per_batch
        )
    parts: list[ProbeResult] = []
    for lo in range(0, len(beta), ppb):
        chunk = list(zip(beta[lo : lo + ppb].tolist(), gamma[lo : lo + ppb].tolist(), strict=True))
        part = run_batch(setup, chunk, on_progress=on_progress).offset(lo)
        if on_batch is not None:
            on_batch(part)
        parts.append(part)

    def cat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    evals = cat([p.evals for p in parts]) if setup.preset.train.eval_every else empty_evals()
    return ProbeResult(
        summary=cat([p.summary for p in parts]),
        traces=cat([p.traces for p in parts]),
        evals=evals,
        device=dev.type,
        dtype=setup.preset.train.dtype,
        points_per_batch=ppb,
        seconds=time.perf_counter() - start,
    )


def _train_batch(
    preset: Preset,
    model: ModelBackend,
    stream: BatchSource,
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
    specs, loss_fn = model.specs, model.loss
    gen = torch.Generator(device=dev) if preset.model.uses_dropout else None
    drop = SharedDropout(preset.model.dropout, gen)
    no_drop = SharedDropout(0.0, None)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()

    rec = Records.allocate(steps, n_pt, flat.dtype, dev, lr=tables.lr_host, eval_every=t.eval_every)
    alive = torch.ones(n_pt, dtype=torch.bool, device=dev)  # (P,)
    tiny = torch.finfo(opt.v.dtype).tiny  # smallest normal number of the state's dtype

    def evaluate(n: int) -> None:
        with torch.no_grad(), amp:
            params = unflatten(flat, specs)
            batches = [stream.test_batch(k) for k in range(t.eval_batches)]
            loss = sum(loss_fn(params, x, y, no_drop) for x, y in batches) / t.eval_batches
            accuracy = None
            if model.accuracy is not None:
                correct = sum(model.accuracy(params, x, y) for x, y in batches)
                accuracy = torch.where(alive, correct / t.eval_batches, torch.nan)
        rec.store_eval(n, torch.where(alive, loss, torch.nan), accuracy)

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
        # The exact bound holds in real arithmetic. In float32, the second moment v of a
        # parameter whose gradient has vanished decays by β per step below float32's normal
        # range (1.2e-38; CPU flush-to-zero makes it 0 at once), while m still holds the
        # old gradient: m / (sqrt(v) + ε) then explodes (to ~1e27 with ε = 1e-30) past the
        # bound. torch.optim.Adam does the same; record the step (one gather per point).
        v_at_max = opt.v.gather(1, argmax[:, None])[:, 0]  # (P,)
        underflow = (v_at_max < tiny) & (max_update > 0)  # (P,)
        rec.store_step(n, alive, new_alive, max_update, argmax, losses, wd_norm, underflow)
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
