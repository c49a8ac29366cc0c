"""The model seam: what the engine needs of a model, whatever builds it.

The engine trains a flat (P, N) parameter buffer (P points, N parameters) and knows a model
only through a :class:`ModelBackend`: the named parameter tensors of one model (the flat
layout), their initial values, and a loss over all P points at once. The built-in models
(:mod:`stabcli.probe.models`: ``gpt``, ``mlp``), the CNN (``cnn``) and users' own models
(``factory``) each provide one, chosen by the preset's ``model.kind``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from stabcli.probe.config import Preset

if TYPE_CHECKING:
    from stabcli.probe.data import Dataset


Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ParamSpec:
    """One named parameter tensor of a single model (no point dimension)."""

    name: str  # readable, stable: "h.0.attn.c_attn.weight"
    shape: tuple[int, ...]
    init: str  # "normal", "zeros" or "ones"
    std: float = 0.0  # for "normal"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def init_flat(specs: list[ParamSpec], seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Initial weights of one model as a flat (N,) tensor, identical on every device."""
    gen = torch.Generator().manual_seed(seed)
    chunks = []
    for spec in specs:
        if spec.init == "normal":
            chunk = torch.randn(spec.numel, generator=gen, dtype=torch.float64) * spec.std
        elif spec.init == "ones":
            chunk = torch.ones(spec.numel, dtype=torch.float64)
        else:
            chunk = torch.zeros(spec.numel, dtype=torch.float64)
        chunks.append(chunk)
    return torch.cat(chunks).to(dtype)


def correct_fraction(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(P,) fraction of the batch whose highest score (P, B, K) is the label y (B,), counted
    in float32 (float64 for float64 scores): never in bfloat16, which autocast gives the
    scores and which cannot hold counts like 45/300 exactly."""
    exact = torch.float64 if scores.dtype == torch.float64 else torch.float32
    return (scores.argmax(dim=-1) == y).to(exact).mean(dim=1)


def unflatten(flat: torch.Tensor, specs: list[ParamSpec]) -> Params:
    """Named (P, *shape) views of a flat (P, N) buffer; one split, so backward is one cat."""
    pieces = torch.split(flat, [s.numel for s in specs], dim=1)
    return {s.name: t.view(flat.shape[0], *s.shape) for s, t in zip(specs, pieces, strict=True)}


class SharedDropout:
    """Dropout whose mask is drawn for one point and broadcast to all P points.

    With ``p == 0``, or with neither a generator nor noise, it is the identity (evaluation,
    or dropout off). The mask of a call on x (P, *S) keeps where uniform noise (*S) is
    >= p: noise drawn from ``generator`` in call order, or, for a compiled step, taken in
    call order from ``noise``, tensors drawn beforehand from the same generator in the same
    order (:func:`noise_shapes`), so both give the same masks.
    """

    def __init__(
        self,
        p: float,
        generator: torch.Generator | None,
        noise: Iterator[torch.Tensor] | None = None,
    ):
        self.p = p
        self.generator = generator
        self.noise = noise

    @property
    def active(self) -> bool:
        return (self.generator is not None or self.noise is not None) and self.p > 0.0

    def sharing(self, p: float) -> SharedDropout:
        """Dropout with probability ``p`` drawing from the same source, in the same order
        (nanoGPT's attention dropout beside its residual dropout)."""
        return type(self)(p, self.generator, self.noise)

    def draw(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """The uniform noise (*S) of the next call."""
        if self.noise is not None:
            return next(self.noise)
        return torch.rand(shape, generator=self.generator, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # x: (P, *S)
        if not self.active:
            return x
        noise = self.draw(x.shape[1:], x.device)  # (*S)
        keep = (noise >= self.p).to(x.dtype) / (1.0 - self.p)
        return x * keep


class _NoiseRecorder(SharedDropout):
    """Records the shape of every noise draw instead of drawing (see :func:`noise_shapes`)."""

    def __init__(self, p: float, shapes: list[torch.Size]):
        super().__init__(p, None, None)
        self.shapes = shapes

    @property
    def active(self) -> bool:
        return self.p > 0.0

    def sharing(self, p: float) -> SharedDropout:
        return _NoiseRecorder(p, self.shapes)

    def draw(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        self.shapes.append(shape)
        return torch.ones(shape, device=device)  # keep everything: only the shapes matter


class BatchSource(Protocol):
    """Batches shared by every point: :class:`stabcli.probe.data.BatchStream` is one."""

    def train_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def test_batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]: ...


#: loss(params, inputs, targets, dropout) -> (P,) mean loss per point; params are named
#: (P, *shape) views of the flat buffer.
LossFn = Callable[[Params, torch.Tensor, torch.Tensor, SharedDropout], torch.Tensor]
#: accuracy(params, inputs, targets) -> (P,) fraction of correct predictions per point.
AccuracyFn = Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]
#: evaluate(params, inputs, targets) -> ((P,) loss, (P,) accuracy) from one forward pass
#: without dropout: a classifier's evaluation, which would otherwise compute its logits twice.
EvalFn = Callable[[Params, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def noise_shapes(
    loss: LossFn, params: Params, x: torch.Tensor, y: torch.Tensor, p: float
) -> list[torch.Size]:
    """The shapes of the noise one training step draws, in order: one forward pass of
    ``loss`` with dropout ``p`` that records its draws (no gradient kept)."""
    shapes: list[torch.Size] = []
    with torch.no_grad():
        loss(params, x, y, _NoiseRecorder(p, shapes))
    return shapes


@dataclass(frozen=True)
class StepFlops:
    """Floating-point operations of one point's training step (a multiply-add is 2)."""

    forward: int  # the forward pass's matrix products
    backward: int  # the backward pass's matrix products (gradients of their operands)
    optimizer: int = 0  # the stacked optimizer's elementwise work

    @property
    def total(self) -> int:
        return self.forward + self.backward + self.optimizer


@dataclass(frozen=True)
class ModelBackend:
    """A model as the engine sees it."""

    specs: list[ParamSpec]  # one model's parameter tensors, in the flat layout's order
    # () -> (N,) float64 on the CPU: the initial weights, shared by all points (built on
    # demand: a memory estimate needs only the specs)
    initial: Callable[[], torch.Tensor]
    loss: LossFn
    accuracy: AccuracyFn | None = None  # classification models: test accuracy at evaluations
    evaluate: EvalFn | None = None  # loss and accuracy in one forward (used at evaluations)
    # its own batches (a factory's), built for a device and dtype; None: the preset's data
    stream: Callable[[torch.device, torch.dtype], BatchSource] | None = None
    activations: int | None = None  # elements kept for backward per point (memory estimate)
    batching: str = "native"  # how P points run: "native", "vmap" or "sequential"
    batching_reason: str = ""  # why, when it is not the model's natural path
    # FLOPs of one point's step counted from the shapes (the roofline of
    # benchmarks/bench_probes.py); None: not counted (the benchmark counts a step instead)
    flops: StepFlops | None = None

    @property
    def n_params(self) -> int:
        return sum(s.numel for s in self.specs)


#: Where each model kind's builder lives, "module:function" taking (preset, data); imported
#: when used, so a kind's dependencies load only for presets that need them.
BUILDERS = {
    "gpt": "stabcli.probe.models:native_backend",
    "mlp": "stabcli.probe.models:native_backend",
    "cnn": "stabcli.probe.cnn:cnn_backend",
    "factory": "stabcli.probe.factory:factory_backend",
}


def build_model(preset: Preset, data: Dataset) -> ModelBackend:
    """The model of ``preset`` for ``data`` (its vocabulary or class count)."""
    module, _, function = BUILDERS[preset.model.kind].partition(":")
    builder = getattr(importlib.import_module(module), function)
    backend: ModelBackend = builder(preset, data)
    return backend
