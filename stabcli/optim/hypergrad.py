"""Hyper-gradient descent on an optimizer's own coefficients, shared by MADA and HyperAdam.

Algorithm 1 of the MADA paper (arXiv 2401.08893, Section 3; after Baydin et al. 2018,
arXiv 1703.04782, and Chandra et al. 2022, arXiv 1909.13371): with
x_{t−1} = x_{t−2} − η_{t−1} u_{t−1}(q), the loss of step t depends on the coefficients q
through the previous update only (one-step truncation, the moments before it held
fixed), so

    h_t = ∂f_t(x_{t−1})/∂q = ⟨∇f_t(x_{t−1}), ∂x_{t−1}/∂q⟩,   ∂x_{t−1}/∂q = −η_{t−1} ∂u_{t−1}/∂q,
    q_t = Π_D[q_{t−1} − κ ⊙ h_t]

with one hyper-learning rate κ per coefficient and Π_D the projection onto a box D. Each
update kernel returns ∂u/∂q analytically next to u; the optimizer stores −η ∂u/∂q per
parameter (``state["hyper_dir"]``, shape (K, *param.shape)) and takes the dot products with
the next gradient: O(N) work, no second backward pass, no autograd graph across steps.

Order: like Chandra et al. (whose code the paper's experiments build on), step t first moves
q with h_t and then updates x with the new q_t (Algorithm 1 as printed applies q_{t−1} to
x_t). So after ``step()`` a group holds the coefficients that made that step, which is
what a monitor reading ``group["betas"]`` must see to follow the (β, γ) path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from stabcli.errors import StabcliError


@dataclass(frozen=True)
class Coefficient:
    """A learnable coefficient: where it may ever lie, and its defaults."""

    name: str  # key in the optimizer's param groups ("beta1", "beta2": inside "betas")
    low: float  # hard domain: low <= q (or low < q when low_open)
    high: float  # hard domain: q <= high (or q < high when high_open)
    low_open: bool
    high_open: bool
    bounds: tuple[float, float]  # default box D for the projection
    hyper_lr: float  # default hyper-learning rate κ

    def admits(self, value: float) -> bool:
        """Whether ``value`` lies in the hard domain."""
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def domain_text(self) -> str:
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


#: The two betas as learnable coefficients, shared by MADA and HyperAdam. The paper projects
#: onto the unit hypercube (Section 3); the betas stay below 1 here so that the bias
#: corrections stay finite, and β2 >= 0.5 by default as in the paper's GPT runs. Default κ:
#: 1e-4 (App. C.2, vision tasks; Section 5.2 searches 1e-4 to 1e-3 for the betas).
BETA1 = Coefficient("beta1", 0.0, 1.0, False, True, (0.0, 0.999), 1e-4)
BETA2 = Coefficient("beta2", 0.0, 1.0, True, True, (0.5, 0.9999), 1e-4)


def get_coefficient(group: Mapping[str, Any], name: str) -> float:
    """q's value in a param group: ``beta1``/``beta2`` are PyTorch's ``betas`` pair."""
    if name == "beta1":
        return float(group["betas"][0])
    if name == "beta2":
        return float(group["betas"][1])
    return float(group[name])


def set_coefficient(group: dict[str, Any], name: str, value: float) -> None:
    if name == "beta1":
        group["betas"] = (value, float(group["betas"][1]))
    elif name == "beta2":
        group["betas"] = (float(group["betas"][0]), value)
    else:
        group[name] = value


def parse_hyper_lr(
    hyper_lr: float | Mapping[str, float], coefficients: Sequence[Coefficient]
) -> dict[str, float]:
    """κ per coefficient: one number for all, or a mapping (coefficients left out: 0)."""
    names = [c.name for c in coefficients]
    if isinstance(hyper_lr, Mapping):
        unknown = sorted(set(hyper_lr) - set(names))
        if unknown:
            raise StabcliError(f"hyper_lr names unknown coefficient(s) {unknown}; known: {names}")
        rates = {name: float(hyper_lr.get(name, 0.0)) for name in names}
    else:
        rates = dict.fromkeys(names, float(hyper_lr))
    for name, rate in rates.items():
        if not (math.isfinite(rate) and rate >= 0.0):
            raise StabcliError(f"hyper_lr for {name} must be a finite number >= 0, got {rate}")
    return rates


def parse_bounds(
    bounds: Mapping[str, tuple[float, float]] | None, coefficients: Sequence[Coefficient]
) -> dict[str, tuple[float, float]]:
    """The projection box D per coefficient: the defaults, overridden by ``bounds``."""
    known = {c.name: c for c in coefficients}
    given = dict(bounds or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise StabcliError(f"bounds names unknown coefficient(s) {unknown}; known: {list(known)}")
    out: dict[str, tuple[float, float]] = {}
    for name, coef in known.items():
        low, high = (float(x) for x in given.get(name, coef.bounds))
        if not (coef.admits(low) and coef.admits(high) and low <= high):
            raise StabcliError(
                f"bounds for {name} must satisfy low <= high inside {coef.domain_text()}, "
                f"got ({low}, {high})"
            )
        out[name] = (low, high)
    return out


def check_group(group: Mapping[str, Any], coefficients: Sequence[Coefficient]) -> None:
    """Every coefficient of ``group`` inside its box D, or a one-line error."""
    for coef in coefficients:
        value = get_coefficient(group, coef.name)
        low, high = group["bounds"][coef.name]
        if not low <= value <= high:
            raise StabcliError(
                f"{coef.name} = {value} lies outside its bounds [{low}, {high}]"
                " (change the value or pass bounds=...)"
            )


def learned_names(group: Mapping[str, Any], coefficients: Sequence[Coefficient]) -> list[str]:
    """The coefficients with κ > 0, in the optimizer's fixed order."""
    return [c.name for c in coefficients if group["hyper_lr"][c.name] > 0.0]


def hyper_index(learned: Sequence[str], coefficients: Sequence[Coefficient]) -> tuple[int, ...]:
    """Positions of the learned names among ``coefficients``: what a state records of them.

    (Integers, not names: ``Optimizer.load_state_dict`` rebuilds every iterable in the
    state element by element, which turns strings into garbage.)
    """
    order = [c.name for c in coefficients]
    return tuple(order.index(name) for name in learned)


def hyper_step(
    group: dict[str, Any],
    learned: Sequence[str],
    coefficients: Sequence[Coefficient],
    pairs: Iterable[tuple[torch.Tensor, dict[str, Any]]],
) -> dict[str, float]:
    """Move the group's learned coefficients by q ← Π_D[q − κ h] and return h.

    ``pairs`` holds (gradient, state) for each parameter with a gradient this step; a
    state's ``hyper_dir`` is ∂x_{t−1}/∂q for the coefficients at positions
    ``hyper_index`` (a parameter not updated at the previous step has none, and
    contributes 0). One host sync per group.
    """
    parts: list[torch.Tensor] = []
    wanted = hyper_index(learned, coefficients)
    row_of = {position: k for k, position in enumerate(wanted)}
    for grad, state in pairs:
        dirs = state.get("hyper_dir")
        if dirs is None:
            continue
        dots = dirs.reshape(dirs.shape[0], -1).mv(grad.reshape(-1))  # (K',) ⟨∇f_t, ∂x/∂q_k⟩
        stored = tuple(state["hyper_index"])
        if stored == wanted:
            parts.append(dots.to(torch.float64))
            continue
        part = torch.zeros(len(learned), dtype=torch.float64, device=dots.device)  # (K,)
        for k, position in enumerate(stored):
            if position in row_of:
                part[row_of[position]] = dots[k]
        parts.append(part)
    if not parts:
        return {}
    device = parts[0].device
    total = torch.stack([part.to(device) for part in parts]).sum(dim=0).tolist()
    h = dict(zip(learned, total, strict=True))
    for name, grad_q in h.items():
        if not math.isfinite(grad_q):
            continue  # a non-finite loss gradient: leave q where it is
        low, high = group["bounds"][name]
        value = get_coefficient(group, name) - group["hyper_lr"][name] * grad_q
        set_coefficient(group, name, min(max(value, low), high))
    return h


class HyperOptimizer(torch.optim.Optimizer):
    """PyTorch optimizer plumbing shared by MADA and HyperAdam.

    Subclasses name their learnable :attr:`coefficients` and implement :meth:`_update`,
    which steps one parameter with the group's current coefficients and, when ``out`` is
    given, writes ∂θ_t/∂q_k = −η_t ∂u_t/∂q_k (k over the learned names) into it. This
    class validates the param groups, takes the hyper-gradient step before the parameter
    step, and keeps ``out`` as ``state["hyper_dir"]`` for the next step.
    """

    coefficients: tuple[Coefficient, ...] = ()
    scratch_count = 0  # parameter-shaped work tensors that :meth:`_update` needs

    def _scratch(self, p: torch.Tensor) -> list[torch.Tensor]:
        """``scratch_count`` work tensors shaped like ``p``, views of buffers kept across
        steps: fresh parameter-sized temporaries at every step cost more than the
        arithmetic on a CPU (page faults). Not part of ``state_dict``.
        """
        pool: dict[tuple[torch.device, torch.dtype], torch.Tensor] = self.__dict__.setdefault(
            "_scratch_pool", {}
        )
        key = (p.device, p.dtype)
        flat = pool.get(key)
        if flat is None or flat.shape[1] < p.numel():
            flat = torch.empty((self.scratch_count, p.numel()), dtype=p.dtype, device=p.device)
            pool[key] = flat  # (S, N_max): scratch slots, elements of the largest parameter
        return [row[: p.numel()].view(p.shape) for row in flat]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (PyTorch's API), normalising and validating its settings."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key in ("lr", "eps", "weight_decay"):
            value = float(group[key])
            if not (math.isfinite(value) and value >= 0.0):
                raise StabcliError(f"{key} must be a finite number >= 0, got {group[key]}")
        if len(group["betas"]) != 2:
            raise StabcliError(f"betas must be a pair (beta1, beta2), got {group['betas']}")
        group["betas"] = tuple(float(b) for b in group["betas"])
        group["hyper_lr"] = parse_hyper_lr(group["hyper_lr"], self.coefficients)
        group["bounds"] = parse_bounds(group["bounds"], self.coefficients)
        for coef in self.coefficients:
            value = get_coefficient(group, coef.name)
            if not coef.admits(value):
                raise StabcliError(f"{coef.name} must be in {coef.domain_text()}, got {value}")
        check_group(group, self.coefficients)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One projected hyper-gradient step on each group's q, then the parameter step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            check_group(group, self.coefficients)
            learned = learned_names(group, self.coefficients)
            params = [p for p in group["params"] if p.grad is not None]
            for p in group["params"]:
                if p.grad is None and p in self.state:
                    self.state[p].pop("hyper_dir", None)  # θ did not move: ∂θ/∂q = 0
            if learned:
                hyper_step(
                    group, learned, self.coefficients, [(p.grad, self.state[p]) for p in params]
                )
            for p in params:
                if p.grad.is_sparse or torch.is_complex(p):
                    raise StabcliError(f"{type(self).__name__} supports dense real parameters only")
                state = self.state[p]
                out = None
                if learned:
                    out = state.get("hyper_dir")
                    if out is None or out.shape[0] != len(learned):
                        out = torch.empty((len(learned), *p.shape), dtype=p.dtype, device=p.device)
                self._update(p, group, state, learned, out)
                if out is not None:
                    state["hyper_dir"] = out  # ∂θ_t/∂q = −η_t ∂u_t/∂q
                    state["hyper_index"] = hyper_index(learned, self.coefficients)
                else:
                    state.pop("hyper_dir", None)
                    state.pop("hyper_index", None)
        return loss

    def _update(
        self,
        p: torch.Tensor,
        group: dict[str, Any],
        state: dict[str, Any],
        learned: list[str],
        out: torch.Tensor | None,
    ) -> None:
        """Step ``p`` in place with the group's coefficients; −η_t ∂u_t/∂q into ``out``."""
        raise NotImplementedError
