"""Your own model in the probe engine: ``[model] factory = "package.module:function"``.

A preset names a function that builds the model, its batches and its loss::

    [model]
    kind = "factory"
    factory = "small_cnn:build"   # "package.module:function"
    python_path = ["."]           # directories to import from, relative to the preset file
    kwargs = { width = 16 }       # keyword arguments of the function

The contract. ``function(seed=<train.seed>, **kwargs)`` (called with torch's generator
seeded by ``seed`` as well, and restored afterwards) returns ``(model, batches, loss_fn)``:

- ``model``: a ``torch.nn.Module``. Its trainable parameters (``named_parameters()`` with
  ``requires_grad``; tied weights once) are what every point trains, laid out in the
  engine's flat (P, N) buffer in that order and named as the module names them
  (``encoder.layers.3.norm.weight`` in "where the growth lives"); all points start from
  the module's weights as built. Frozen parameters are constants shared by all points.
  Buffers are copied per point: BatchNorm's running statistics evolve separately at each
  point. Every tensor the forward pass uses must be a parameter or a buffer, or be made in
  ``forward`` (on its input's device).
- ``batches(step) -> (inputs, targets)``: the training batch of step n = 0 .. steps−1,
  shared by every point and deterministic in ``step`` (set-up calls ``batches(0)`` twice
  and compares). ``inputs`` is a tensor, or a tuple of tensors passed as ``model(*inputs)``;
  ``targets`` is a tensor, or a tuple, list or dict of tensors, given to ``loss_fn`` as
  is. Tensors are moved to the probe's device, floating ones cast to its dtype.
- ``batches(k, split="test") -> (inputs, targets)``: needed only when
  ``train.eval_every = K > 0``: the k-th of ``train.eval_batches`` fixed test batches
  (k = 0 .. eval_batches−1). At steps 0, K, 2K, ... (and the last step when K divides
  ``steps``), the engine records each point's mean of ``loss_fn`` over these batches, with
  the model in ``eval()`` mode and no gradient (``test_loss`` in the evals).
- ``loss_fn(outputs, targets) -> scalar tensor``: the batch's loss, differentiable in the
  parameters.

Training runs the model in the mode the factory returned it in (``train()`` unless it
chose otherwise). Random ops (``nn.Dropout``) draw from torch's generator, seeded at each
step from (``train.seed``, n), so every point sees the same masks (docs/theory.md §10).
With a factory, ``[data]``, ``train.batch_size`` and the built-in models' ``[model]`` keys
are ignored, and ``--data`` is an error. The run's data identity (:class:`DataRef`) is the
sha256 of the factory's module source, its name and its keyword arguments.

P points run through ``torch.func.vmap`` when the model allows it, else one point at a time
on the same batches (:mod:`stabcli.probe.factory_call`); ``ModelBackend.batching`` and
``batching_reason`` say which ran and why.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stabcli.errors import SettingError, StabcliError
from stabcli.probe.backend import ModelBackend, Params, ParamSpec, SharedDropout
from stabcli.probe.config import Preset
from stabcli.probe.data import DataRef, Dataset
from stabcli.probe.engine import dropout_seed
from stabcli.probe.factory_call import (
    PathChoice,
    PointModel,
    check_loss,
    choose_path,
    seeded,
    sequential_losses,
    vmapped_losses,
)
from stabcli.probe.factory_load import (
    FactoryParts,
    call_factory,
    factory_error,
    find_factory,
    one_line,
)

__all__ = ["factory_backend", "force_sequential", "read_factory_data"]

_SEQUENTIAL_FORCED = False


@contextlib.contextmanager
def force_sequential() -> Iterator[None]:
    """Factory models built inside run one point at a time (to check the vmapped path
    against it)."""
    global _SEQUENTIAL_FORCED
    before, _SEQUENTIAL_FORCED = _SEQUENTIAL_FORCED, True
    try:
        yield
    finally:
        _SEQUENTIAL_FORCED = before


def read_factory_data(preset: Preset, path: Path | None) -> tuple[DataRef, Dataset]:
    """The identity of a factory preset's data: its factory, by content. The data set is
    empty: batches come from the factory (:attr:`ModelBackend.stream`)."""
    if preset.data.data_path is not None or path is not None:
        raise SettingError(
            "{data_path} is set, but preset {name} has a factory model ({factory}), which "
            "makes its own batches",
            name=preset.name,
            factory=preset.model.factory,
        )
    ref = find_factory(preset)
    empty = np.empty(0)
    return DataRef("factory", ref.sha256), Dataset("factory", 0, 0, empty, empty)


def _to(obj: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Tensors of a batch on ``device``, floating ones in ``dtype``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device=device, dtype=dtype) if obj.is_floating_point() else obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_to(o, device, dtype) for o in obj)
    return {k: _to(v, device, dtype) for k, v in obj.items()}


def _tensors(obj: Any, depth: int = 0) -> bool:
    """A tensor, or a tuple, list or dict of tensors (one level)."""
    if isinstance(obj, torch.Tensor):
        return True
    if depth == 0 and isinstance(obj, tuple | list):
        return all(_tensors(o, 1) for o in obj)
    if depth == 0 and isinstance(obj, dict):
        return all(_tensors(o, 1) for o in obj.values())
    return False


def fetch_batch(
    parts: FactoryParts,
    name: str,
    k: int,
    split: str,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Any, Any]:
    """``batches(k)`` (``split="train"``) or ``batches(k, split="test")``, checked."""
    call = f"batches({k})" if split == "train" else f"batches({k}, split='test')"
    try:
        got = parts.batches(k) if split == "train" else parts.batches(k, split="test")
    except Exception as err:
        raise factory_error(name, f": {call} raised {one_line(err)}") from None
    if not isinstance(got, tuple | list) or len(got) != 2:
        what = f"{len(got)} values" if isinstance(got, tuple | list) else type(got).__name__
        raise factory_error(name, f": {call} returned {what}; expected (inputs, targets)")
    inputs, targets = got
    if isinstance(inputs, list):
        inputs = tuple(inputs)  # model(*inputs)
    if not (isinstance(inputs, torch.Tensor) or (isinstance(inputs, tuple) and _tensors(inputs))):
        raise factory_error(name, f": {call} returned inputs that are not tensors")
    if not _tensors(targets):
        raise factory_error(name, f": {call} returned targets that are not tensors")
    return _to(inputs, device, dtype), _to(targets, device, dtype)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class _Built:
    """A factory called, checked and tried once per process (per seed, dtype, evaluation)."""

    name: str
    parts: FactoryParts
    point_model: PointModel
    choice: PathChoice
    specs: list[ParamSpec]
    activations: int  # elements saved for backward by one point, and its buffers


_BUILT: OrderedDict[tuple[str, int, str, bool], _Built] = OrderedDict()
_BUILT_MAX = 2


def _build(preset: Preset) -> _Built:
    ref = find_factory(preset)
    t = preset.train
    key = (ref.sha256, t.seed, t.dtype, t.eval_every > 0)
    if (found := _BUILT.get(key)) is not None:
        _BUILT.move_to_end(key)
        return found
    parts = call_factory(preset, ref)
    pm = PointModel.of(parts, ref.name)
    cpu, dtype = torch.device("cpu"), torch.float64 if t.dtype == "float64" else torch.float32
    train0 = fetch_batch(parts, ref.name, 0, "train", cpu, dtype)
    if not _same(train0, fetch_batch(parts, ref.name, 0, "train", cpu, dtype)):
        raise factory_error(
            ref.name,
            ": batches(0) returned different tensors on two calls; batches(step) must be "
            "deterministic in step (draw from a torch.Generator seeded by seed and step)",
        )
    activations = check_loss(pm, *train0, dtype, "train")
    test0 = None
    if t.eval_every > 0:
        test0 = fetch_batch(parts, ref.name, 0, "test", cpu, dtype)
        check_loss(pm, *test0, dtype, "test")
    choice = choose_path(pm, train0, test0, dtype)
    own = dict(parts.model.named_parameters())
    specs = [ParamSpec(n, tuple(own[n].shape), "module") for n in pm.param_names]
    built = _Built(ref.name, parts, pm, choice, specs, activations)
    _BUILT[key] = built
    while len(_BUILT) > _BUILT_MAX:
        _BUILT.popitem(last=False)
    return built


@dataclass
class _RunState:
    """What one backend's loss keeps between calls: the step of the last training batch
    (its dropout seed) and the per-point buffers."""

    step: int = 0
    buffers: dict[str, torch.Tensor] | None = None  # (P, *shape) each
    frozen: dict[str, torch.Tensor] | None = None


class FactoryStream:
    """The factory's batches on a device (:class:`stabcli.probe.backend.BatchSource`)."""

    def __init__(self, built: _Built, state: _RunState, device: torch.device, dtype: torch.dtype):
        self.built, self.state, self.device, self.dtype = built, state, device, dtype
        self.tests: dict[int, tuple[Any, Any]] = {}  # the fixed test batches, fetched once

    def train_batch(self, n: int) -> tuple[Any, Any]:
        """``batches(n)``; the next training loss call draws step n's dropout masks."""
        self.state.step = n
        b = self.built
        return fetch_batch(b.parts, b.name, n, "train", self.device, self.dtype)

    def test_batch(self, k: int) -> tuple[Any, Any]:
        if k not in self.tests:
            b = self.built
            self.tests[k] = fetch_batch(b.parts, b.name, k, "test", self.device, self.dtype)
        return self.tests[k]


def _loss_function(
    preset: Preset, built: _Built, choice: PathChoice, state: _RunState
) -> Callable[[Params, Any, Any, SharedDropout], torch.Tensor]:
    pm, seed = built.point_model, preset.train.seed

    def loss(params: Params, x: Any, y: Any, drop: SharedDropout) -> torch.Tensor:
        """(P,) losses; training when gradients are on (the engine evaluates under
        no_grad), with step n's masks; params (P, *shape) views of the flat buffer."""
        first = next(iter(params.values()))  # (P, *shape)
        n_pt, dev, dtype = first.shape[0], first.device, first.dtype
        if state.buffers is None or next(iter(state.buffers.values()), first).shape[0] != n_pt:
            state.buffers = pm.point_buffers(n_pt, dev, dtype)
            state.frozen = pm.shared_frozen(dev, dtype)
        assert state.frozen is not None
        training = torch.is_grad_enabled()
        step_seed = dropout_seed(seed, state.step if training else -1)
        pm.set_mode(training)
        with seeded(step_seed, dev):
            try:
                if choice.path == "vmap":
                    return vmapped_losses(pm, params, state.buffers, state.frozen, x, y)
                return sequential_losses(pm, params, state.buffers, state.frozen, x, y, step_seed)
            except (StabcliError, torch.cuda.OutOfMemoryError):
                raise
            except Exception as err:
                when = f"at step {state.step}" if training else "in an evaluation"
                under = " (under torch.func.vmap)" if choice.path == "vmap" else ""
                message = f": its model raised {one_line(err)} {when}{under}"
                raise factory_error(built.name, message) from None

    return loss


def factory_backend(preset: Preset, data: Dataset) -> ModelBackend:
    """The model of a factory preset, as the engine sees it (``data`` is unused: the
    factory brings its own batches)."""
    built = _build(preset)
    choice = built.choice
    if _SEQUENTIAL_FORCED:
        choice = PathChoice("sequential", "one point at a time was asked for (force_sequential)")
    state = _RunState()
    own = dict(built.parts.model.named_parameters())

    def initial() -> torch.Tensor:  # (N,) float64: the module's weights as built
        flat = [
            own[n].detach().reshape(-1).to(torch.float64) for n in built.point_model.param_names
        ]
        return torch.cat(flat).cpu()

    return ModelBackend(
        specs=list(built.specs),
        initial=initial,
        loss=_loss_function(preset, built, choice, state),
        stream=lambda device, dtype: FactoryStream(built, state, device, dtype),
        activations=built.activations,
        batching=choice.path,
        batching_reason=choice.reason,
    )
