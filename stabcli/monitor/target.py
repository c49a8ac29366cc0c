"""What the monitor watches: the torch optimizer inside wrappers, its tensors and their names,
and the step count it has reached.

Tensors are named by the model (``model.named_parameters()``, or a mapping of names to
tensors), else by the optimizer's own names (``Adam(model.named_parameters())``, torch >=
2.6), else "group g, param i". Wrappers that hold the optimizer as ``optimizer``
(accelerate's ``AcceleratedOptimizer``) or ``_optimizer`` (Lightning's
``LightningOptimizer``) are unwrapped, since their ``step`` calls the inner one, whose
hooks fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from stabcli.errors import StabcliError

ModelLike = torch.nn.Module | Mapping[str, torch.Tensor]


def unwrap(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside wrappers (accelerate's, Lightning's), or a one-line error."""
    for _ in range(8):
        inner = getattr(optimizer, "optimizer", None)
        if inner is None:
            inner = getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise StabcliError(
            f"stabcli.monitor.watch needs a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return optimizer


def tensor_names(optimizer: torch.optim.Optimizer, model: ModelLike | None) -> dict[int, str]:
    """Tensor names by id: the model's, else the optimizer's own (named param groups)."""
    known: dict[int, str] = {}
    if isinstance(model, torch.nn.Module):
        for name, p in model.named_parameters():
            known.setdefault(id(p), name)
    elif isinstance(model, Mapping):
        for name, t in model.items():
            known.setdefault(id(t), str(name))
    elif model is not None:
        raise StabcliError(
            f"model must be a torch.nn.Module or a mapping of names to tensors, got "
            f"{type(model).__name__}"
        )
    for group in optimizer.param_groups:  # torch >= 2.6: optimizer(model.named_parameters())
        for name, p in zip(group.get("param_names", ()), group["params"], strict=False):
            known.setdefault(id(p), str(name))
    return known


def steps_taken(optimizer: torch.optim.Optimizer) -> int:
    """The optimizer's step count when watching begins (read once, from its state)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and "step" in state:
                return int(float(state["step"]))
    return 0
