"""Hyper-gradient descent on an optimizer's own coefficients, shared by MADA and HyperAdam.

The seed's Algorithm 1 (MADA, arXiv 2401.08893, Section 3; Baydin et al. 2018; Chandra
et al. 2022): with x_{t−1} = x_{t−2} − η_{t−1} u_{t−1}(q), the loss of step t depends on the
coefficients q through the previous update only (one-step truncation, the moments before
it held fixed), so

    h_t = ∂f_t(x_{t−1})/∂q = ⟨∇f_t(x_{t−1}), ∂x_{t−1}/∂q⟩,   ∂x_{t−1}/∂q = −η_{t−1} ∂u_{t−1}/∂q,
    q_t = Π_D[q_{t−1} − κ ⊙ h_t]

with one hyper-learning rate κ per coefficient and Π_D the projection onto a box D. Each
update kernel returns ∂u/∂q analytically next to u; the optimizer stores −η ∂u/∂q per
parameter (``state["hyper_dir"]``, shape (K, *param.shape)) and takes the dot products with
the next gradient: O(N) work, no second backward pass, no autograd graph across steps.

Order: like Chandra et al. (whose code the seed's experiments build on), step t first moves
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
