"""A factory's ``torch.nn.Module`` evaluated at P points: vmapped, or one point at a time.

Each point's parameters are named (P, *shape) views of the engine's flat (P, N) buffer
(:func:`stabcli.probe.backend.unflatten`); its buffers (BatchNorm's running statistics, a
causal mask) are per-point copies, (P, *shape), updated in place by the module as it would
update its own. The module runs with these tensors in place of its own through
``torch.func.functional_call``:

- ``vmap``: ``torch.func.vmap(functional_call)`` over the point dimension of parameters
  and buffers, inputs and targets shared (``in_dims=None``), with ``randomness="same"``:
  one dropout mask per call, shared by all points (docs/theory.md §10).
- ``sequential``: one point at a time on the same batch, torch's generator re-seeded
  before each point, so every point again draws the same masks.

:func:`choose_path` decides at set-up by running one vmapped forward/backward (and a
vmapped evaluation) on two copies of the initial weights: a model that cannot be vmapped
(``.item()`` or data-dependent control flow, in-place ops on its inputs, ops without a
batching rule that fail) raises there, and runs one point at a time.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call, vmap

from stabcli.probe.factory_load import FactoryParts, factory_error, one_line

Tensors = dict[str, torch.Tensor]

#: Relative agreement of the vmapped and the one-point-at-a-time loss and gradients at
#: set-up, per dtype: rounding of batched kernels differs from unbatched ones by a few ulps.
AGREE_RTOL = {torch.float64: 1e-9, torch.float32: 1e-4}


@dataclass
class PointModel:
    """The factory's module, seen as a function of per-point parameters and buffers."""

    parts: FactoryParts
    name: str  # the factory, for error messages
    param_names: list[str]  # trainable parameters, in the flat layout's order
    frozen: Tensors  # parameters with requires_grad=False: constants shared by all points
    buffers: Tensors  # the module's buffers as built: each point starts from a copy
    train_flags: dict[torch.nn.Module, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, parts: FactoryParts, name: str) -> PointModel:
        module = parts.model
        trainable, frozen = [], {}
        for param_name, param in module.named_parameters():  # tied weights once
            if param.requires_grad:
                trainable.append(param_name)
            else:
                frozen[param_name] = param.detach()
        buffers = {k: b.detach() for k, b in module.named_buffers()}
        flags = {m: m.training for m in module.modules()}  # the mode it was returned in
        return cls(parts, name, trainable, frozen, buffers, flags)

    def set_mode(self, training: bool) -> None:
        """Training: the modes the factory returned (train() unless it chose otherwise);
        evaluation: eval() throughout (dropout off, BatchNorm's running statistics)."""
        for module, flag in self.train_flags.items():
            module.training = flag and training

    def point_buffers(self, n_pt: int, device: torch.device, dtype: torch.dtype) -> Tensors:
        """(P, *shape) copies of every buffer, floating ones in ``dtype``."""
        return {
            k: _cast(b, device, dtype).expand(n_pt, *b.shape).clone()
            for k, b in self.buffers.items()
        }

    def shared_frozen(self, device: torch.device, dtype: torch.dtype) -> Tensors:
        return {k: _cast(p, device, dtype) for k, p in self.frozen.items()}

    def forward(self, params: Tensors, buffers: Tensors, frozen: Tensors, inputs: Any) -> Any:
        """The module's outputs with these tensors in place of its own (one point)."""
        args = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        return functional_call(self.parts.model, (params, buffers, frozen), args)

    def point_loss(
        self, params: Tensors, buffers: Tensors, frozen: Tensors, inputs: Any, targets: Any
    ) -> torch.Tensor:
        return self.parts.loss_fn(self.forward(params, buffers, frozen, inputs), targets)


def _cast(t: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's generators seeded with ``seed`` inside, restored afterwards (the caller's
    random state is untouched)."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), warnings.catch_warnings():
        # torch.func falls back to a loop for ops without a batching rule and says so
        warnings.filterwarnings("ignore", message="There is a performance drop")
        torch.manual_seed(seed)
        yield


def vmapped_losses(
    pm: PointModel, params: Tensors, buffers: Tensors, frozen: Tensors, inputs: Any, targets: Any
) -> torch.Tensor:
    """(P,) losses, all points in one vmapped call; params and buffers (P, *shape)."""

    def one(p: Tensors, b: Tensors) -> torch.Tensor:
        return pm.point_loss(p, b, frozen, inputs, targets)

    losses: torch.Tensor = vmap(one, in_dims=(0, 0), randomness="same")(params, buffers)
    return losses


def sequential_losses(
    pm: PointModel,
    params: Tensors,
    buffers: Tensors,
    frozen: Tensors,
    inputs: Any,
    targets: Any,
    seed: int,
) -> torch.Tensor:
    """(P,) losses, one point at a time; each point re-seeds torch's generator with
    ``seed``, so all points draw the same dropout masks."""
    n_pt = next(iter(params.values())).shape[0]
    losses = []
    for i in range(n_pt):
        torch.manual_seed(seed)
        p = {k: v[i] for k, v in params.items()}  # views: gradients reach the flat buffer
        b = {k: v[i] for k, v in buffers.items()}  # views: in-place updates land per point
        losses.append(pm.point_loss(p, b, frozen, inputs, targets))
    return torch.stack(losses)  # (P,)


def check_loss(pm: PointModel, inputs: Any, targets: Any, dtype: torch.dtype, split: str) -> int:
    """Run one point's forward (and backward, in training) on the CPU and check the
    factory's model and loss_fn; returns the elements saved for backward (memory estimate).
    Errors are one-line StabcliErrors naming the factory."""
    training = split == "train"
    cpu = torch.device("cpu")
    params = {k: _cast(p, cpu, dtype) for k, p in pm.parts.model.named_parameters()}
    params = {k: params[k].detach().requires_grad_(True) for k in pm.param_names}
    buffers = {k: _cast(b, cpu, dtype).clone() for k, b in pm.buffers.items()}
    frozen = pm.shared_frozen(cpu, dtype)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel()
        return t

    pm.set_mode(training)
    grad = torch.enable_grad() if training else torch.no_grad()
    with seeded(0, cpu), grad, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        try:
            outputs = pm.forward(params, buffers, frozen, inputs)
        except Exception as err:
            message = f": its model raised {one_line(err)} on a {split} batch"
            raise factory_error(pm.name, message) from None
        try:
            loss = pm.parts.loss_fn(outputs, targets)
        except Exception as err:
            raise factory_error(pm.name, f": its loss_fn raised {one_line(err)}") from None
    if not isinstance(loss, torch.Tensor):
        raise factory_error(
            pm.name, f": its loss_fn returned a {type(loss).__name__}; expected a scalar tensor"
        )
    if loss.dim() != 0:
        raise factory_error(
            pm.name,
            f": its loss_fn returned a tensor of shape {tuple(loss.shape)}; expected a scalar "
            "(0-dim) tensor, e.g. the batch's mean loss",
        )
    if not loss.is_floating_point():
        raise factory_error(pm.name, f": its loss_fn returned a {loss.dtype} tensor")
    if training:
        if not loss.requires_grad:
            raise factory_error(
                pm.name, ": its loss_fn's result does not depend on the model's parameters"
            )
        try:
            loss.backward()
        except Exception as err:
            raise factory_error(pm.name, f": the backward pass raised {one_line(err)}") from None
    return saved + sum(b.numel() for b in buffers.values())


@dataclass(frozen=True)
class PathChoice:
    """How P points run, and why."""

    path: str  # "vmap" or "sequential"
    reason: str  # empty when vmap simply works


def _two_points(pm: PointModel, dtype: torch.dtype) -> tuple[Tensors, Tensors]:
    cpu = torch.device("cpu")
    own = dict(pm.parts.model.named_parameters())
    params = {
        k: _cast(own[k].detach(), cpu, dtype).expand(2, *own[k].shape).clone().requires_grad_()
        for k in pm.param_names
    }
    return params, pm.point_buffers(2, cpu, dtype)


def _train_both(
    pm: PointModel, batch: tuple[Any, Any], dtype: torch.dtype, vmapped: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(2,) losses and (2, N) gradients at the initial weights, by one path."""
    params, buffers = _two_points(pm, dtype)
    frozen = pm.shared_frozen(torch.device("cpu"), dtype)
    pm.set_mode(True)
    with seeded(seed, torch.device("cpu")):
        if vmapped:
            losses = vmapped_losses(pm, params, buffers, frozen, *batch)
        else:
            losses = sequential_losses(pm, params, buffers, frozen, *batch, seed)
    losses.sum().backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params.values()]
    return losses.detach(), torch.cat([g.reshape(2, -1) for g in grads], dim=1)


def _differ(a: torch.Tensor, b: torch.Tensor, rtol: float) -> float:
    """Largest difference relative to b's scale (0 when they agree within rtol)."""
    scale = float(b.abs().max()) or 1.0
    worst = float((a - b).abs().max()) / scale
    return worst if not worst <= rtol else 0.0


def choose_path(
    pm: PointModel,
    train_batch: tuple[Any, Any],
    test_batch: tuple[Any, Any] | None,
    dtype: torch.dtype,
) -> PathChoice:
    """Try the vmapped path on two copies of the initial weights, on the CPU in ``dtype``:
    a forward/backward in training mode (and a forward in evaluation mode when the preset
    evaluates). An error there means one point at a time, with the error as the reason;
    losses or gradients that differ from one point at a time also do, unless the model
    draws random numbers (dropout), whose masks vmap may lay out differently: the points
    then still share every mask, and the reason says so."""
    dtype = dtype if dtype in AGREE_RTOL else torch.float32
    try:
        losses, grads = _train_both(pm, train_batch, dtype, vmapped=True, seed=1)
        if test_batch is not None:
            params, buffers = _two_points(pm, dtype)
            pm.set_mode(False)
            with seeded(1, torch.device("cpu")), torch.no_grad():
                frozen = pm.shared_frozen(torch.device("cpu"), dtype)
                vmapped_losses(pm, params, buffers, frozen, *test_batch)
    except Exception as err:
        return PathChoice("sequential", f"torch.func.vmap failed at set-up: {one_line(err)}")
    ref_losses, ref_grads = _train_both(pm, train_batch, dtype, vmapped=False, seed=1)
    rtol = AGREE_RTOL[dtype]
    worst = max(_differ(losses, ref_losses, rtol), _differ(grads, ref_grads, rtol))
    if worst == 0.0:
        return PathChoice("vmap", "")
    other, _ = _train_both(pm, train_batch, dtype, vmapped=True, seed=2)
    if _differ(other, losses, rtol) > 0.0:  # it draws random numbers
        return PathChoice(
            "vmap",
            "its random draws (dropout masks) under vmap differ from one point at a time; "
            "all points still share each one",
        )
    return PathChoice(
        "sequential",
        f"vmapped losses or gradients differ from one point at a time by {worst:.1e} "
        "(relative) at set-up",
    )
