"""k-Adam as a ``torch.optim.Optimizer``: Adam's adaptive normalization applied k times.

The update math lives in :mod:`stabcli.optim.kernels`, shared with the probe engine; this
module holds the optimizer's bookkeeping (parameter groups, per-parameter state, argument
checks, ``state_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch
from torch import Tensor

from stabcli.errors import StabcliError
from stabcli.optim.kernels import (
    EPS_PLACEMENTS,
    FOREACH,
    SINGLE,
    EpsPlacement,
    LevelCoeffs,
    kadam_update_,
    level_coeffs,
)
from stabcli.theory.domain import HyperPoint
from stabcli.theory.kadam import kadam_levels, parse_strategy

TorchBetas = tuple[float, float]  # PyTorch's order: (beta1, beta2) = (γ, β)


class KAdam(torch.optim.Optimizer):
    r"""k-Adam (arXiv 2411.05746, Section 4.2 eq. 10; App. P, Q, R, S): Adam's adaptive
    normalization applied k times, each level with its own decays. ``k = 1`` is Adam
    (``decoupled=False``) or AdamW (``decoupled=True``).

    Symbols and arguments: η = ``lr``; λ = ``weight_decay``; ε = ``eps``; level i = 1..k
    has γ_i = its PyTorch ``beta1`` (first-moment decay) and β_i = its ``beta2``
    (second-moment decay). At step n = 0, 1, 2, ... with gradient g_n (App. R, Algorithm 1;
    docs/theory.md §6)::

        u^{(0)} = g_n                    (+ λθ_n if decoupled=False: coupled decay, Adam)
        for i = 1..k:
            m^{(i)} ← γ_i m^{(i)} + (1−γ_i) u^{(i−1)}
            v^{(i)} ← β_i v^{(i)} + (1−β_i) (u^{(i−1)})²
            u^{(i)} = corr_n^{(i)} · m^{(i)} / (sqrt(v^{(i)}) + ε'_i)
        θ_{n+1} = θ_n − η (u^{(k)} + λθ_n)   (λθ_n only if decoupled=True: AdamW's decay)

    with corr_n^{(i)} = sqrt(1 − β_i^{n+1}) / (1 − γ_i^{n+1}) (paper eq. 5) and m, v
    starting at 0. ε placement: ``eps_placement="torch"`` (default) adds ε after
    bias-correcting sqrt(v), as ``torch.optim.Adam`` does: ε'_i = ε·sqrt(1 − β_i^{n+1});
    ``"paper"`` uses App. R's ε'_i = ε. ``eps`` defaults to PyTorch's 1e-8; the paper's
    runs use 1e-30 (App. R).

    Level decays: ``betas``, when given, is a sequence of k PyTorch-order pairs
    ((beta1_1, beta2_1), ..., (beta1_k, beta2_k)). Otherwise ``strategy`` derives them from
    ``base_betas`` (PyTorch order) as paper App. P does and as ``stabcli check --k`` prints:
    ``"inverse-exp"`` 1 − (1 − b)^{1/k}, ``"exp"`` b^k, ``"scaled"`` b/k, ``"naive"`` b, for
    both decays b of the base pair, the same at every level. Each level obeys its own
    max-update bound (App. S): ‖u^{(i)}‖∞ is bounded by the (β_i, γ_i) bounds.

    Every argument may be overridden per parameter group. State per parameter: ``step``
    (steps taken, an int) and ``exp_avg`` / ``exp_avg_sq``, lists of the k levels' m and v.
    ``foreach=None`` picks the ``torch._foreach_*`` path when every parameter of a group is
    on CUDA, else one tensor at a time (faster on CPU, where it keeps each tensor in cache
    through all levels); both run the same kernel and agree to rounding. Memory: 2k state
    tensors per parameter, plus one work buffer that is not part of the state dict.
    Sparse gradients are refused.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        k: int = 2,
        betas: Sequence[TorchBetas] | None = None,
        strategy: str = "inverse-exp",
        base_betas: TorchBetas = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = True,
        eps_placement: EpsPlacement = "torch",
        foreach: bool | None = None,
    ):
        defaults = {
            "lr": lr,
            "k": k,
            "betas": betas,
            "strategy": strategy,
            "base_betas": base_betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled": decoupled,
            "eps_placement": eps_placement,
            "foreach": foreach,
        }
        _check_group(defaults)
        self._scratch: dict[Tensor, Tensor] = {}  # per parameter: the kernel's work buffer
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._scratch = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch's contract), refusing bad settings or parameters with a
        ``ValueError`` before anything is added."""
        _check_group({**self.defaults, **param_group})
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif not isinstance(params, set):  # torch refuses sets (unordered) itself
            params = param_group["params"] = list(params)  # a generator is read once
        for p in params:
            if isinstance(p, Tensor) and not p.is_floating_point():  # complex is not floating
                raise ValueError(f"KAdam optimizes real floating-point tensors, got {p.dtype}")
        super().add_param_group(param_group)

    def level_betas(self, group: int = 0) -> list[TorchBetas]:
        """The k levels' PyTorch-order (beta1_i, beta2_i) of parameter group ``group``."""
        return resolve_level_betas(self.param_groups[group])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One k-Adam step for every parameter that has a gradient; returns the closure's
        loss (evaluated with gradients enabled) when a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        levels = resolve_level_betas(group)
        k = len(levels)
        # buckets of parameters that share one set of scalars: same step n, device, dtype
        buckets: dict[tuple[int, torch.device, torch.dtype], list[Tensor]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("KAdam does not support sparse gradients")
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = [torch.zeros_like(p) for _ in range(k)]
                state["exp_avg_sq"] = [torch.zeros_like(p) for _ in range(k)]
            elif len(state["exp_avg"]) != k:
                raise ValueError(
                    f"a parameter has state for {len(state['exp_avg'])} k-Adam levels but "
                    f"its group now has k = {k}; levels cannot change during training"
                )
            buckets.setdefault((state["step"], p.device, p.dtype), []).append(p)
        foreach = group["foreach"]
        for (n, _, _), params in buckets.items():
            coeffs = [
                level_coeffs(beta2, beta1, n, group["eps"], group["eps_placement"])
                for beta1, beta2 in levels
            ]
            use_foreach = all(p.is_cuda for p in params) if foreach is None else foreach
            if use_foreach:
                self._update_foreach(group, params, coeffs)
            else:
                self._update_single(group, params, coeffs)
            for p in params:
                self.state[p]["step"] = n + 1

    def _work_buffer(self, p: Tensor) -> Tensor:
        """A persistent scratch tensor shaped like ``p`` (kept out of the state dict)."""
        buf = self._scratch.get(p)
        if buf is None or buf.shape != p.shape or buf.device != p.device or buf.dtype != p.dtype:
            buf = torch.empty_like(p, memory_format=torch.preserve_format)
            self._scratch[p] = buf
        return buf

    def _update_single(
        self, group: dict[str, Any], params: list[Tensor], coeffs: list[LevelCoeffs]
    ) -> None:
        for p in params:
            state = self.state[p]
            kadam_update_(
                SINGLE,
                p,
                cast(Tensor, p.grad),
                state["exp_avg"],
                state["exp_avg_sq"],
                coeffs,
                self._work_buffer(p),
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                decoupled=group["decoupled"],
            )

    def _update_foreach(
        self, group: dict[str, Any], params: list[Tensor], coeffs: list[LevelCoeffs]
    ) -> None:
        states = [self.state[p] for p in params]
        k = len(coeffs)
        kadam_update_(
            FOREACH,
            params,
            [cast(Tensor, p.grad) for p in params],
            [[s["exp_avg"][i] for s in states] for i in range(k)],
            [[s["exp_avg_sq"][i] for s in states] for i in range(k)],
            coeffs,
            [self._work_buffer(p) for p in params],
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            decoupled=group["decoupled"],
        )


def resolve_level_betas(group: dict[str, Any]) -> list[TorchBetas]:
    """A group's k levels as PyTorch-order (beta1_i, beta2_i) = (γ_i, β_i).

    Explicit ``betas`` as given; else paper App. P's strategy applied to ``base_betas``
    through :func:`stabcli.theory.kadam.kadam_levels`, which works in the paper's order
    (β, γ) = (beta2, beta1).
    """
    if group["betas"] is not None:
        return [(float(b1), float(b2)) for b1, b2 in group["betas"]]
    beta1, beta2 = group["base_betas"]
    base = HyperPoint.from_torch(beta1, beta2)
    levels = kadam_levels(base, group["k"], parse_strategy(group["strategy"]))
    return [level.torch_betas for level in levels]


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"KAdam: {name} must be a number, got {value!r}")
    return float(value)


def _check_group(group: dict[str, Any]) -> None:
    """Refuse a bad setting with a ``ValueError`` naming it (torch's optimizer convention)."""
    lr = _number("lr", group["lr"])
    if not 0.0 <= lr < math.inf:
        raise ValueError(f"KAdam: lr must be >= 0 and finite, got {lr}")
    eps = _number("eps", group["eps"])
    if not 0.0 <= eps < math.inf:
        raise ValueError(f"KAdam: eps must be >= 0 and finite, got {eps}")
    wd = _number("weight_decay", group["weight_decay"])
    if not 0.0 <= wd < math.inf:
        raise ValueError(f"KAdam: weight_decay must be >= 0 and finite, got {wd}")
    k = group["k"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"KAdam: k must be an integer >= 1 (number of levels), got {k!r}")
    if not isinstance(group["decoupled"], bool):
        raise ValueError(f"KAdam: decoupled must be True or False, got {group['decoupled']!r}")
    if group["foreach"] not in (None, True, False):
        raise ValueError(f"KAdam: foreach must be None, True or False, got {group['foreach']!r}")
    if group["eps_placement"] not in EPS_PLACEMENTS:
        raise ValueError(
            f"KAdam: eps_placement must be one of {EPS_PLACEMENTS}, got {group['eps_placement']!r}"
        )
    betas = group["betas"]
    if betas is not None:
        pairs = _pairs("betas", betas)
        if len(pairs) != k:
            raise ValueError(
                f"KAdam: betas must hold k = {k} (beta1, beta2) pairs, one per level, "
                f"got {len(pairs)}"
            )
        for i, (b1, b2) in enumerate(pairs, start=1):
            for name, b in (("beta1", b1), ("beta2", b2)):
                if not 0.0 <= b < 1.0:
                    raise ValueError(f"KAdam: level {i}'s {name} must be in [0, 1), got {b}")
        return
    (base,) = _pairs("base_betas", [group["base_betas"]])
    try:
        resolve_level_betas({**group, "base_betas": base})
    except StabcliError as exc:  # the theory's one-line messages, as torch's error type
        raise ValueError(f"KAdam: {exc}") from None


def _pairs(name: str, value: object) -> list[tuple[float, float]]:
    """``value`` as a list of (beta1, beta2) number pairs, or a ValueError naming it."""
    try:
        pairs = [tuple(pair) for pair in cast(Iterable[Iterable[object]], value)]
    except TypeError:
        raise ValueError(f"KAdam: {name} must be (beta1, beta2) pairs, got {value!r}") from None
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"KAdam: {name} must be (beta1, beta2) pairs, got {value!r}")
    return [(_number(name, b1), _number(name, b2)) for b1, b2 in pairs]
