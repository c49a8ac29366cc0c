"""What the monitor reads from an optimizer's param groups at every step: (β, γ), η and λ.

The paper writes a point as (β, γ): β is PyTorch's ``beta2`` (the second moment's decay) and
γ its ``beta1`` (docs/theory.md §1). The monitor reads them after each ``step()``, so it
sees the values that made that step: a schedule sets them before ``step()``, and stabcli's
MADA and HyperAdam move their learned betas before they update θ (docs/theory.md §7).

Optimizers are recognised by their param groups, not by class, so this module needs no
torch import and works with any Adam-like optimizer:

- ``torch.optim.Adam``/``AdamW`` and most others: ``betas = (beta1, beta2)``;
- stabcli's ``KAdam``: its last level's pair (``optimizer.level_betas(g)[-1]``), since the
  max-update is the last level's output and obeys that level's bound alone (docs/theory.md
  (6.3));
- stabcli's ``MADA``: also ρ, ω, c and β3, which decide its bound (docs/theory.md §7).

Values may be Python numbers or tensors (``lr`` and ``betas`` may be tensors in PyTorch);
a tensor is converted to a float only at the next host copy, so reading one never
synchronises with the device (:class:`Scalar`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stabcli.errors import StabcliError

#: A hyperparameter as found in a param group: a Python number, or a tensor (kept as is).
Scalar = Any

#: Columns of the per-step settings, in order; MADA adds MADA_FIELDS.
BASE_FIELDS = ("beta", "gamma", "lr", "weight_decay")
MADA_FIELDS = ("rho", "omega", "c", "beta3")


class Correction(StrEnum):
    """Which bias correction c_n the optimizer applies (docs/theory.md (5.4))."""

    CURRENT = "current betas"  # sqrt(1 − β_n^{n+1})/(1 − γ_n^{n+1}): torch Adam, KAdam
    PATH = "path products"  # sqrt(1 − Π β_j)/(1 − Π γ_j): stabcli's MADA and HyperAdam


@dataclass(frozen=True)
class OptimizerKind:
    """How to read and bound one optimizer's param groups."""

    name: str  # e.g. "torch.optim.adamw.AdamW"
    fields: tuple[str, ...]  # per-step settings recorded for every group
    correction: Correction
    mada: bool  # MADA: ρ, ω, c, β3 are recorded and decide the bound
    decoupled: tuple[bool, ...]  # per group: λθ_n is part of the measured step (AdamW-style)


def class_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _decoupled(optimizer: object, group: Mapping[str, Any]) -> bool:
    """Whether weight decay is decoupled (θ ← θ − ηλθ, docs/theory.md (1.4)) in a group."""
    for key in ("decoupled_weight_decay", "decoupled"):  # torch >= 2.6, MADA; KAdam
        if key in group:
            return bool(group[key])
    return type(optimizer).__name__ == "AdamW"  # older torch: AdamW has no such key


def optimizer_kind(optimizer: Any) -> OptimizerKind:
    """Recognise an Adam-like optimizer from its param groups; a one-line error otherwise."""
    groups = list(getattr(optimizer, "param_groups", ()))
    if not groups:
        raise StabcliError(
            "stabcli.monitor watches a torch optimizer with param groups, got "
            f"{class_name(optimizer)}"
        )
    for g, group in enumerate(groups):
        if "betas" not in group:
            raise StabcliError(
                f"stabcli.monitor watches Adam-type optimizers: param group {g} of "
                f"{class_name(optimizer)} has no betas"
            )
    first = groups[0]
    mada = all(key in first for key in MADA_FIELDS)
    learned = "hyper_lr" in first  # stabcli's HyperOptimizer subclasses (MADA, HyperAdam)
    return OptimizerKind(
        name=class_name(optimizer),
        fields=BASE_FIELDS + (MADA_FIELDS if mada else ()),
        correction=Correction.PATH if learned else Correction.CURRENT,
        mada=mada,
        decoupled=tuple(_decoupled(optimizer, group) for group in groups),
    )


class GroupReader:
    """Reads one row of settings per param group: (β, γ, η, λ[, ρ, ω, c, β3])."""

    def __init__(self, optimizer: Any, kind: OptimizerKind):
        self.optimizer = optimizer
        self.kind = kind
        self._levels = (
            hasattr(optimizer, "level_betas") and "base_betas" in optimizer.param_groups[0]
        )
        self._level_cache: dict[tuple[Any, ...], tuple[float, float]] = {}

    def torch_betas(self, g: int, group: Mapping[str, Any]) -> tuple[Scalar, Scalar]:
        """PyTorch's (beta1, beta2) of the update that is measured in group ``g``."""
        if not self._levels:
            beta1, beta2 = group["betas"]
            return beta1, beta2
        betas = group["betas"]
        key = (
            None if betas is None else tuple(tuple(pair) for pair in betas),
            tuple(group["base_betas"]),
            group["k"],
            group["strategy"],
        )
        found = self._level_cache.get(key)
        if found is None:  # k-Adam: the last level's pair (computed by the theory, cached)
            beta1, beta2 = self.optimizer.level_betas(g)[-1]
            found = self._level_cache[key] = (float(beta1), float(beta2))
        return found

    def row(self) -> list[tuple[Scalar, ...]]:
        """One tuple per group, in ``kind.fields`` order; tensors are kept as they are."""
        out = []
        for g, group in enumerate(self.optimizer.param_groups):
            beta1, beta2 = self.torch_betas(g, group)
            values: tuple[Scalar, ...] = (beta2, beta1, group["lr"], group["weight_decay"])
            if self.kind.mada:
                values += tuple(group[name] for name in MADA_FIELDS)
            out.append(values)
        return out


def is_number(value: Scalar) -> bool:
    """A Python (or numpy) number: readable on the host without touching a device."""
    return isinstance(value, int | float) or type(value).__module__ == "numpy"


def in_domain(beta: float, gamma: float) -> bool:
    """Whether the theory applies: β in (0, 1), γ in [0, 1) (docs/theory.md §1)."""
    return 0.0 < beta < 1.0 and 0.0 <= gamma < 1.0 and math.isfinite(beta + gamma)


def jsonable(value: Any) -> Any:
    """A param-group value as JSON (for config.json): numbers, text, lists and objects.

    Tensors become numbers (read once, when the monitor starts: not during training)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if is_number(value):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # a tensor
    if callable(tolist):
        return jsonable(tolist())
    return repr(value)


def group_settings(optimizer: Any) -> list[dict[str, Any]]:
    """Every group's hyperparameters as JSON, with its number of parameters (config.json)."""
    out = []
    for group in optimizer.param_groups:
        settings = {k: jsonable(v) for k, v in group.items() if k not in ("params", "param_names")}
        settings["parameters"] = int(sum(p.numel() for p in group["params"]))
        out.append(settings)
    return out
