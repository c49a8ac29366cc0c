"""The probe engine: train P points at once and record ‖u_n‖∞ every step.

A point is (β, γ), optionally with its own learning rate η and weight decay λ
(:class:`ProbePoint`). All points of a vectorized batch share the initial weights, the
data batches and the dropout masks, so only their hyperparameters differ
(docs/theory.md §10). Parameters live in one flat (P, N) buffer; the model reads named
views of it (:func:`stabcli.probe.backend.unflatten`) and the preset's optimizer
(``[train] optimizer``: Adam, k-Adam, HyperAdam or MADA, :mod:`stabcli.probe.optim`)
updates it with one set of elementwise kernels. Records stay on the device and are copied
to the host once per block of steps.

:func:`run_batch` trains one vectorized batch of a resolved :class:`ProbeSetup` and is pure
(its own device and data, resolved from the setup; no callbacks needed), so batches can run
in other processes; :func:`run_probes` splits many points into batches that fit in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stabcli.errors import SettingError, StabcliError
from stabcli.probe.backend import (
    BatchSource,
    ModelBackend,
    SharedDropout,
    build_model,
    noise_shapes,
    unflatten,
)
from stabcli.probe.config import Preset, TrainConfig
from stabcli.probe.data import BatchStream
from stabcli.probe.device import (
    auto_points_per_batch,
    check_memory,
    flush_denormals,
    resolve_device,
    resolve_dtype,
    use_compile,
)
from stabcli.probe.optim import (
    PointHypers,
    check_start,
    kadam_point_levels,
    lr_table,
    make_optimizer,
)
from stabcli.probe.records import Records, build_frames, empty_evals
from stabcli.probe.setup import ProbeSetup, resolve_setup
from stabcli.theory.domain import HyperPoint

RECORD_BLOCK = 64  # steps between device -> host copies (and on_progress calls)


@dataclass(frozen=True)
class ProbePoint:
    """One probe point: (β, γ) in the paper's order, optionally with its own η and λ.

    ``run_probes(preset, [ProbePoint(0.999, 0.9, lr=3e-3, weight_decay=0.1)])`` trains
    ``torch.optim.AdamW(lr=3e-3, betas=(0.9, 0.999), weight_decay=0.1)`` under the preset's
    schedule and weight-decay mode. A plain (β, γ) pair is a point with the preset's η, λ.
    """

    beta: float  # β: second-moment decay, PyTorch beta2 (k-Adam: the base pair's)
    gamma: float  # γ: first-moment decay, PyTorch beta1
    lr: float | None = None  # η (η0 of the schedule); None: the preset's train.lr
    weight_decay: float | None = None  # λ; None: the preset's train.weight_decay


PointLike = ProbePoint | tuple[float, float]


@dataclass
class ProbeResult:
    """Per-point summaries and per-step traces of a probe, as DataFrames.

    ``summary``, one row per point:

    - ``point``: index into the ``points`` given to run_probes (or run_batch);
    - ``beta``, ``gamma``: the point's (β, γ), paper order (torch betas = (gamma, beta));
      for HyperAdam and MADA the starting pair, for k-Adam the base pair of its strategy;
    - ``lr``, ``weight_decay``: the point's η and λ; only when the points were given as
      :class:`ProbePoint` (whether or not they override the preset);
    - ``level_beta``, ``level_gamma``: k-Adam only, the decays (β_i, γ_i) of every level
      (paper App. P: each strategy gives all k levels the same pair);
    - ``diverged_step``: Int64, the first step whose loss or max-update was not finite,
      <NA> if none;
    - ``underflow_step``: Int64, the first step whose max-update came from a second moment
      below the dtype's normal range, where the exact bound (which assumes real arithmetic)
      no longer applies; <NA> if none;
    - ``final_loss``: training loss at the last step.

    ``traces``, one row per point and step n (point-major):

    - ``point``, ``step``;
    - ``max_update``: ‖θ_{n+1} − θ_n‖∞/η_n = ‖u_n + λθ_n‖∞ (the λθ_n only under decoupled
      decay), NaN after divergence;
    - ``max_tensor``: name of the parameter tensor that held it;
    - ``loss``: training loss at step n; ``lr``: η_n; ``wd_term``: λ‖θ_n‖∞ under decoupled
      decay (the part of the measured step that is not u_n), else 0;
    - k-Adam: ``max_update_l1`` .. ``max_update_lk``, ‖u_n^{(i)}‖∞ of each level i before
      λθ_n (docs/theory.md §6: each obeys the exact bound of its (β_i, γ_i));
    - HyperAdam: ``beta``, ``gamma``, the (β_n, γ_n) that made step n (learned per point;
      docs/theory.md §5: ``max_update − wd_term`` obeys
      :func:`stabcli.theory.path.path_bound` along them);
    - MADA: ``beta``, ``gamma``, ``beta3``, ``rho``, ``c``, ``omega``, its coefficients q of
      step n (docs/theory.md §7).

    Learned coefficients and level maxima read NaN after divergence, like ``max_update``.
    ``evals``: point, step, test_loss, and test_accuracy for classifiers.
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


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StabcliError(f"a point's {what} must be a finite number, got {value!r}")
    return float(value)


def check_points(points: Sequence[PointLike], train: TrainConfig) -> PointHypers:
    """Points -> their hyperparameters as (P,) float64 arrays, validated.

    (β, γ) by :class:`~stabcli.theory.domain.HyperPoint` (the one place β and γ are
    range-checked); η > 0 and λ >= 0, defaulting to the preset's; a nonzero λ needs the
    preset's weight decay mode (coupled or decoupled); the preset's optimizer must be able
    to start from every point (:func:`stabcli.probe.optim.check_start`).
    """
    if len(points) == 0:
        raise StabcliError("no (β, γ) points to probe")
    try:
        given = [p if isinstance(p, ProbePoint) else ProbePoint(*p) for p in points]
        valid = [HyperPoint(float(p.beta), float(p.gamma)) for p in given]
    except (TypeError, ValueError):
        raise StabcliError("points must be (β, γ) pairs of numbers or ProbePoints") from None
    lr = [train.lr if p.lr is None else _number(p.lr, "lr") for p in given]
    wd = [
        train.weight_decay if p.weight_decay is None else _number(p.weight_decay, "weight_decay")
        for p in given
    ]
    if min(lr) <= 0.0:
        raise StabcliError(f"a point's lr must be > 0, got {min(lr)!r}")
    if min(wd) < 0.0:
        raise StabcliError(f"a point's weight_decay must be >= 0, got {min(wd)!r}")
    if train.weight_decay_mode == "none" and max(wd) > 0.0:
        raise StabcliError(
            "a point has weight_decay > 0 but the preset's train.weight_decay_mode is 'none'; "
            "set it to 'coupled' (Adam) or 'decoupled' (AdamW)"
        )
    hypers = PointHypers(
        beta=np.array([p.beta for p in valid], dtype=np.float64),
        gamma=np.array([p.gamma for p in valid], dtype=np.float64),
        lr=np.array(lr, dtype=np.float64),
        weight_decay=np.array(wd, dtype=np.float64),
    )
    check_start(train, hypers.beta, hypers.gamma)
    return hypers


def _point_columns(points: Sequence[PointLike], train: TrainConfig, hypers: PointHypers):
    """The summary's optional per-point columns (see :class:`ProbeResult`)."""
    columns: dict[str, np.ndarray] = {}
    if any(isinstance(p, ProbePoint) for p in points):
        columns["lr"] = hypers.lr
        columns["weight_decay"] = hypers.weight_decay
    if train.optimizer == "kadam":
        level_beta, level_gamma = kadam_point_levels(train, hypers.beta, hypers.gamma)[0]
        columns["level_beta"] = level_beta
        columns["level_gamma"] = level_gamma
    return columns


def run_batch(
    setup: ProbeSetup,
    points: Sequence[PointLike],
    *,
    device: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProbeResult:
    """Train every point of ``points`` together, in one vectorized program.

    A point is a (β, γ) pair (paper order; torch betas = (γ, β)) or a :class:`ProbePoint`
    with its own η (``lr``, η0 of the preset's schedule: warm-up and cosine decay to
    η · min_lr/lr, or App. O's annealing) and λ (``weight_decay``, under the preset's
    weight-decay mode); what it leaves out comes from the preset. The preset's
    ``[train] optimizer`` (with ``k``, ``strategy``, ``hyper_lr``) trains them all.

    Pure: it resolves its device (``device``, else the setup's) and reads its data by
    content here (:meth:`ProbeSetup.dataset`), so it can run in another process.
    ``on_progress`` gets the number of point-steps done since its last call.
    """
    start = time.perf_counter()
    preset = setup.preset
    hypers = check_points(points, preset.train)
    dev = resolve_device(device if device is not None else setup.device)
    dtype, autocast = resolve_dtype(preset, dev)
    data = setup.dataset()
    model = build_model(preset, data)
    compiled = use_compile(preset, dev, model)
    stream = model.stream(dev, dtype) if model.stream else BatchStream(data, preset, dev, dtype)
    theta0 = model.initial().to(device=dev, dtype=dtype)  # (N,) shared initial weights
    model_key = json.dumps(dataclasses.asdict(preset.model), sort_keys=True, default=str)
    key = (model_key, setup.data.sha256, preset.train.dtype, str(dev))
    forward = TrainingLoss(preset, model, dev, autocast, compiled, key=key)
    try:
        with flush_denormals(dev):
            rec = _train_batch(preset, model, stream, theta0, hypers, forward, on_progress)
    except torch.OutOfMemoryError:
        raise StabcliError(
            f"out of {dev.type} memory training {len(hypers)} points of preset {preset.name} "
            "at once (the memory estimate fell short); pass --points-per-batch with fewer"
        ) from None
    summary, traces, evals = build_frames(
        rec,
        np.arange(len(hypers)),
        hypers.beta,
        hypers.gamma,
        model.specs,
        _point_columns(points, preset.train, hypers),
    )
    seconds = time.perf_counter() - start
    return ProbeResult(summary, traces, evals, dev.type, preset.train.dtype, len(hypers), seconds)


def run_probes(
    probe: Preset | ProbeSetup,
    points: Sequence[PointLike],
    *,
    device: str | None = None,
    points_per_batch: int | None = None,
    on_batch: Callable[[ProbeResult], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProbeResult:
    """Train a preset (or a resolved setup) at every point of ``points``: (β, γ) pairs
    (paper order; torch betas=(γ, β)) or :class:`ProbePoint` with their own η and λ
    (see :func:`run_batch`).

    Points are run in vectorized batches of ``points_per_batch`` (default: from half the
    device's free memory); ``on_batch`` gets each batch's result, ``on_progress`` the
    number of point-steps done since its last call. ``device`` resolves a preset (a setup
    is already resolved). Every point is validated before the first batch runs.
    """
    start = time.perf_counter()
    setup = probe if isinstance(probe, ProbeSetup) else resolve_setup(probe, device)
    points = list(points)
    n_points = len(check_points(points, setup.preset.train))
    dev = resolve_device(setup.device)
    memory = setup.memory(dev)
    if points_per_batch is None:
        ppb = auto_points_per_batch(memory, dev, n_points)
    elif type(points_per_batch) is int and points_per_batch >= 1:
        ppb = min(points_per_batch, n_points)
        check_memory(memory, dev, setup.preset, ppb)
    else:
        raise SettingError(
            "{points_per_batch} must be a positive integer, not {got!r}", got=points_per_batch
        )
    parts: list[ProbeResult] = []
    for lo in range(0, n_points, ppb):
        part = run_batch(setup, points[lo : lo + ppb], on_progress=on_progress).offset(lo)
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


class TrainingLoss:
    """The training losses (P,) of step n, with step n's dropout masks: eagerly, or through
    ``torch.compile`` (forward and backward; :func:`stabcli.probe.device.use_compile`).

    Compiled, the dropout noise of the step is drawn before the call, from the same
    generator, seed and order as the eager forward draws it
    (:func:`stabcli.probe.backend.noise_shapes`), and passed in: the compiled step sees the
    same masks, and the graph holds no generator. Compiled functions are kept per model,
    data, dtype and device (``key``), so every batch of a sweep reuses one compilation.
    """

    def __init__(
        self,
        preset: Preset,
        model: ModelBackend,
        device: torch.device,
        autocast: bool,
        compiled: bool,
        key: Hashable = None,
    ) -> None:
        self.seed = preset.train.seed
        self.p = preset.model.dropout
        self.loss, self.specs = model.loss, model.specs
        self.device = device
        self.generator = torch.Generator(device=device) if preset.model.uses_dropout else None
        self.autocast = autocast
        self.compiled = compiled
        self.key = key
        self.shapes: list[torch.Size] | None = None  # noise drawn per step (compiled)

    def amp(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast of the forward on CUDA, or nothing."""
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, n: int):
        """(P,) losses of step n at θ = ``flat`` (P, N), graph kept for backward."""
        if self.generator is not None:
            self.generator.manual_seed(dropout_seed(self.seed, n))
        if self.compiled:
            return self._compiled(flat, x, y)
        with self.amp():
            return self.loss(
                unflatten(flat, self.specs), x, y, SharedDropout(self.p, self.generator)
            )

    def _compiled(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.shapes is None:  # one forward of one point records the draws (the same at any P)
            with self.amp():
                self.shapes = noise_shapes(self.loss, unflatten(flat[:1], self.specs), x, y, self.p)
        gen = self.generator
        noise = (
            []
            if gen is None
            else [torch.rand(s, generator=gen, device=self.device) for s in self.shapes]
        )
        return _compiled_forward(self)(flat, x, y, noise)

    def forward(
        self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, noise: list[torch.Tensor]
    ) -> torch.Tensor:
        """The losses with the step's noise given: the function torch.compile traces."""
        with self.amp():
            drop = SharedDropout(self.p, None, iter(noise))
            return self.loss(unflatten(flat, self.specs), x, y, drop)


_COMPILED: dict[Hashable, Callable[..., torch.Tensor]] = {}
_COMPILED_KEEP = 4  # setups whose compiled forward a process keeps


def _compiled_forward(loss: TrainingLoss) -> Callable[..., torch.Tensor]:
    """torch.compile of ``loss.forward``, one per setup, device and dtype in this process."""
    if loss.key is None:
        return torch.compile(loss.forward, dynamic=False)
    if loss.key not in _COMPILED:
        while len(_COMPILED) >= _COMPILED_KEEP:
            del _COMPILED[next(iter(_COMPILED))]
        _COMPILED[loss.key] = torch.compile(loss.forward, dynamic=False)
    return _COMPILED[loss.key]


def _train_batch(
    preset: Preset,
    model: ModelBackend,
    stream: BatchSource,
    theta0: torch.Tensor,
    hypers: PointHypers,
    forward: TrainingLoss,
    on_progress: Callable[[int], None] | None,
) -> Records:
    """Train one vectorized batch of points; returns host-side records.

    The step loop stays on the device: nothing in it reads a value back to the host (no
    ``.item()``, no ``.cpu()``, no Python conditions on tensors) until the records of a
    block of :data:`RECORD_BLOCK` steps are copied out (:meth:`Records.flush`), so a GPU
    runs ahead of the Python loop.
    """
    t = preset.train
    n_pt, steps, dev = len(hypers), t.steps, theta0.device
    flat = theta0.expand(n_pt, -1).clone().requires_grad_(True)  # (P, N) leaf
    lr_host = lr_table(t, hypers.beta, hypers.gamma, hypers.lr)  # (S, P)
    opt = make_optimizer(t, flat, hypers, lr_host, compiled=forward.compiled)
    specs, loss_fn = model.specs, model.loss
    no_drop = SharedDropout(0.0, None)

    rec = Records.allocate(
        steps, n_pt, flat.dtype, dev, lr=lr_host, eval_every=t.eval_every, columns=opt.columns
    )
    alive = torch.ones(n_pt, dtype=torch.bool, device=dev)  # (P,)

    def evaluate(n: int) -> None:
        with torch.no_grad(), forward.amp():
            params = unflatten(flat, specs)
            batches = [stream.test_batch(k) for k in range(t.eval_batches)]
            accuracy = None
            if model.evaluate is not None:  # one forward per batch for loss and accuracy
                pairs = [model.evaluate(params, x, y) for x, y in batches]
                loss = sum(pair[0] for pair in pairs) / t.eval_batches
                correct = sum(pair[1] for pair in pairs)
                accuracy = torch.where(alive, correct / t.eval_batches, torch.nan)
            else:
                loss = sum(loss_fn(params, x, y, no_drop) for x, y in batches) / t.eval_batches
                if model.accuracy is not None:
                    correct = sum(model.accuracy(params, x, y) for x, y in batches)
                    accuracy = torch.where(alive, correct / t.eval_batches, torch.nan)
        rec.store_eval(n, torch.where(alive, loss, torch.nan), accuracy)

    flushed = 0
    for n in range(steps):
        if t.eval_every and n % t.eval_every == 0:
            evaluate(n)
        x, y = stream.train_batch(n)
        losses = forward(flat, x, y, n)  # (P,)
        flat.grad = None
        losses.sum().backward()  # points are independent: each gets its own gradient
        losses = losses.detach()
        assert flat.grad is not None
        st = opt.step(n, flat, flat.grad, losses, alive)
        rec.store_step(
            n, alive, st.alive, st.max_update, st.argmax, losses, st.wd_term, st.underflow, st.extra
        )
        alive = st.alive
        if n + 1 - flushed == RECORD_BLOCK or n == steps - 1:
            rec.flush(flushed, n + 1)
            if on_progress is not None:
                on_progress((n + 1 - flushed) * n_pt)
            flushed = n + 1
    if t.eval_every and steps % t.eval_every == 0:
        evaluate(steps)
    rec.finish()
    return rec
