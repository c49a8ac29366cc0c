"""Stacked optimizers: P points' optimizer state over one flat (P, N) parameter buffer.

The engine knows an optimizer through :class:`StackedOptimizer`: built from the flat
parameters and the points' hyperparameters (:class:`PointHypers`), it performs step n for
every point with a fixed number of elementwise kernels and returns per-point statistics
(:class:`StepStats`), all on the device: no value goes back to the host. The update math
is the public optimizers' own kernels (:mod:`stabcli.optim`), driven with per-point (P, 1)
coefficient tensors, so each rule is written once:

- ``adam`` (:class:`StackedAdam`) and ``kadam`` (:class:`StackedKAdam`):
  :func:`stabcli.optim.kernels.kadam_direction`, docs/theory.md §1 and §6;
- ``hyperadam`` (:class:`StackedHyperAdam`): :func:`stabcli.optim.hyperadam.hyperadam_step`;
- ``mada`` (:class:`StackedMADA`): :func:`stabcli.optim.mada_kernel.mada_step`; both learn
  their coefficients per point by one-step hyper-gradients (docs/theory.md §7).

For each point with its own (β, γ), β decaying the second moment (PyTorch ``beta2``) and
γ the first (``beta1``), Adam's step is (paper Section 2; docs/theory.md §1)::

    g_n ← g_n + λ θ_n                                   (coupled weight decay only)
    m_n = γ m_{n−1} + (1−γ) g_n,     v_n = β v_{n−1} + (1−β) g_n²
    u_n = corr_n · m_n / (sqrt(v_n) + ε'),   corr_n = sqrt(1−β^{n+1}) / (1−γ^{n+1})
    θ_{n+1} = θ_n − η_n (u_n + λ θ_n)                   (λ θ_n for decoupled decay only)

ε placement: ``"paper"`` uses ε' = ε; ``"torch"`` adds ε after bias-correcting sqrt(v), as
``torch.optim.Adam``, which is ε' = ε · sqrt(1−β^{n+1}). The recorded max-update is
‖u_n + λθ_n‖∞ = ‖θ_{n+1} − θ_n‖∞ / η_n, computed before it is applied. η and λ are per
point (a grid of learning rates and weight decays trains as points, like β and γ).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

from stabcli.errors import StabcliError
from stabcli.optim.hyperadam import HYPERADAM_SCRATCH, HyperAdam, hyperadam_step
from stabcli.optim.hypergrad import Coefficient, parse_bounds, parse_hyper_lr
from stabcli.optim.kadam import resolve_level_betas
from stabcli.optim.kernels import STACKED, LevelCoeffs, kadam_direction
from stabcli.optim.mada import MADA
from stabcli.optim.mada_kernel import (
    MADA_COEFFICIENTS,
    MADA_SCRATCH,
    MadaCoefficients,
    MadaMoments,
    mada_step,
)
from stabcli.probe.config import TrainConfig
from stabcli.theory.paper import annealed_lr
from stabcli.theory.update import bias_correction, one_minus_power

#: MADA's coefficients at the start of a probe: Adam's vertex (β3 = 0, ρ = c = ω = 1), the
#: public optimizer's defaults; the point gives (β1, β2) = (γ, β).
MADA_START = {"beta3": 0.0, "rho": 1.0, "c": 1.0, "omega": 1.0}
#: Lion's fixed betas inside MADA (the public optimizer's default).
LION_BETAS = (0.9, 0.99)

T = TypeVar("T")


@dataclass(frozen=True)
class PointHypers:
    """The hyperparameters of a batch's P points, each a (P,) float64 array on the host."""

    beta: np.ndarray  # β: second-moment decay (PyTorch beta2); k-Adam: the base pair's
    gamma: np.ndarray  # γ: first-moment decay (PyTorch beta1)
    lr: np.ndarray  # η (η0 of a schedule)
    weight_decay: np.ndarray  # λ (0 where the preset has no weight decay)

    def __len__(self) -> int:
        return len(self.beta)


@dataclass(frozen=True)
class StepStats:
    """What one step of P points returns, every tensor on the device."""

    max_update: Tensor  # (P,) ‖u_n (+λθ_n)‖∞, the measured step over η_n; NaN propagates
    argmax: Tensor  # (P,) flat index of the parameter that held it
    wd_term: Tensor | None  # (P,) λ‖θ_n‖∞ under decoupled decay (the step's non-u part)
    alive: Tensor  # (P,) bool: finite so far; a point that is not is frozen from now on
    underflow: Tensor  # (P,) bool: the max came from a second moment below the normal range
    extra: Tensor | None  # (C, P) the optimizer's own trace columns (StackedOptimizer.columns)


class StackedOptimizer(Protocol):
    """An optimizer over P stacked points (the engine's seam).

    ``columns`` names the rows of :attr:`StepStats.extra` that every step records
    (empty for Adam). ``step`` updates ``flat`` (P, N) in place for step n = 0, 1, ...
    from ``grad`` (P, N) and the points' losses (P,); ``alive`` (P,) is the mask before
    the step. A point whose loss or update is not finite is frozen: its parameters keep
    their values (no NaN reaches them) and it stays dead afterwards.
    """

    columns: tuple[str, ...]

    def step(
        self, n: int, flat: Tensor, grad: Tensor, loss: Tensor, alive: Tensor
    ) -> StepStats: ...


# --- learning rates ------------------------------------------------------------------------


def lr_table(
    train: TrainConfig, beta: np.ndarray, gamma: np.ndarray, lr: np.ndarray | None = None
) -> np.ndarray:
    """η_n for every step and point, (S, P) float64; ``lr`` (P,) is each point's η
    (default: the preset's).

    ``constant``: η. ``cosine``: nanoGPT's linear warm-up to η, then cosine decay to
    η · min_lr/lr at the last step (paper App. H, Figure 3: the preset's floor, scaled with
    a point's own η). ``anneal``: paper App. O eq. (15), η_n = η · exp(−n|C|/2) for points
    in B− (:func:`stabcli.theory.paper.annealed_lr`).
    """
    eta = np.full(len(beta), train.lr) if lr is None else np.asarray(lr, dtype=np.float64)
    n = np.arange(train.steps, dtype=np.float64)[:, None]  # (S, 1)
    if train.schedule == "constant":
        return np.ones_like(n) * eta[None, :]
    if train.schedule == "anneal":
        steps = np.arange(train.steps)
        points = zip(eta.tolist(), beta.tolist(), gamma.tolist(), strict=True)
        return np.stack([annealed_lr(e, b, g, steps) for e, b, g in points], axis=1)
    floor = train.min_lr * (eta / train.lr)[None, :]  # (1, P): min_lr where η is the preset's
    warm = max(train.warmup_steps, 0)
    span = max(train.steps - 1 - warm, 1)
    progress = np.clip((n - warm) / span, 0.0, 1.0)  # (S, 1)
    cosine = floor + 0.5 * (1.0 + np.cos(math.pi * progress)) * (eta[None, :] - floor)
    warmup = eta[None, :] * (n + 1) / (warm + 1)
    return np.where(n < warm, warmup, cosine)  # (S, P)


def _device(a: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(a, device=device).to(dtype)


# --- Adam and k-Adam ----------------------------------------------------------------------


@dataclass(frozen=True)
class LevelTable:
    """One level's decays for P points and its per-step scalars, on the device."""

    beta: Tensor  # (P, 1) β_i
    one_minus_beta: Tensor  # (P, 1) 1 − β_i (formed in float64, then cast)
    one_minus_gamma: Tensor  # (P, 1) 1 − γ_i
    corr: Tensor  # (S, P, 1) corr_n = sqrt(1−β_i^{n+1}) / (1−γ_i^{n+1}); (P, 1) rows: one index
    eps: Tensor  # (S, P, 1) ε' (depends on the ε placement)

    @classmethod
    def build(
        cls,
        train: TrainConfig,
        beta: np.ndarray,
        gamma: np.ndarray,
        device: torch.device,
        dtype: torch.dtype,
    ) -> LevelTable:
        """Tables for decays (β, γ) = (beta[p], gamma[p]), from the theory's closed forms."""
        steps = np.arange(train.steps)
        points = list(zip(beta.tolist(), gamma.tolist(), strict=True))
        corr = np.stack([bias_correction(b, g, steps) for b, g in points], axis=1)  # (S, P)
        bc2 = np.stack([one_minus_power(b, steps) for b, _ in points], axis=1)  # 1 − β^{n+1}
        eps = train.eps * (np.sqrt(bc2) if train.eps_placement == "torch" else np.ones_like(bc2))

        def col(a: np.ndarray) -> Tensor:
            return _device(a, device, dtype)[:, None]  # (P, 1)

        return cls(
            beta=col(beta),
            one_minus_beta=col(1.0 - beta),
            one_minus_gamma=col(1.0 - gamma),
            corr=_device(corr, device, dtype)[:, :, None],
            eps=_device(eps, device, dtype)[:, :, None],
        )

    def coeffs(self, n: int, copy: bool = False) -> LevelCoeffs:
        """The kernel's coefficients at step n, each (P, 1): views of the tables, or copies."""
        corr, eps = self.corr[n], self.eps[n]
        return LevelCoeffs(
            beta=self.beta,
            one_minus_beta=self.one_minus_beta,
            one_minus_gamma=self.one_minus_gamma,
            corr=corr.clone() if copy else corr,
            eps=eps.clone() if copy else eps,
        )


@dataclass
class AdamTables:
    """Per-step, per-point scalars of Adam's update, precomputed on the device: each (S, P)."""

    lr: Tensor  # η_n
    lr_host: np.ndarray  # η_n in float64 on the host, for the traces
    corr: Tensor  # corr_n = sqrt(1−β^{n+1}) / (1−γ^{n+1})
    eps: Tensor  # ε' (depends on the ε placement)


def adam_tables(
    train: TrainConfig,
    beta: np.ndarray,
    gamma: np.ndarray,
    device: torch.device,
    dtype: torch.dtype,
    lr: np.ndarray | None = None,
) -> AdamTables:
    """Build :class:`AdamTables` for points (β, γ) = (beta[i], gamma[i]) with η = lr[i]."""
    level = LevelTable.build(train, beta, gamma, device, dtype)
    eta = lr_table(train, beta, gamma, lr)
    lr_dev = _device(eta, device, dtype)
    return AdamTables(lr=lr_dev, lr_host=eta, corr=level.corr[:, :, 0], eps=level.eps[:, :, 0])


def kadam_point_levels(
    train: TrainConfig, beta: np.ndarray, gamma: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-Adam's per-level (β_i, γ_i) of every point, as k pairs of (P,) arrays.

    Each point's (β, γ) is the base pair, and its levels are derived exactly as
    :class:`stabcli.optim.KAdam` derives them from ``base_betas = (γ, β)`` with the preset's
    ``k`` and ``strategy`` (paper App. P; :func:`stabcli.optim.kadam.resolve_level_betas`).
    """
    per_point = [
        resolve_level_betas(
            {"betas": None, "base_betas": (g, b), "k": train.k, "strategy": train.strategy}
        )
        for b, g in zip(beta.tolist(), gamma.tolist(), strict=True)
    ]
    return [
        (
            np.array([levels[i][1] for levels in per_point]),  # β_i = torch beta2
            np.array([levels[i][0] for levels in per_point]),  # γ_i = torch beta1
        )
        for i in range(train.k)
    ]


def _wd_operand(
    weight_decay: np.ndarray, device: torch.device, dtype: torch.dtype
) -> float | Tensor:
    """λ as the kernels take it: a float when every point shares it (one fused kernel), else
    a (P, 1) tensor."""
    if np.all(weight_decay == weight_decay[0]):
        return float(weight_decay[0])
    return _device(weight_decay, device, dtype)[:, None]


class _Stacked:
    """Buffers and bookkeeping shared by the stacked optimizers."""

    columns: tuple[str, ...] = ()

    def __init__(
        self, flat: Tensor, train: TrainConfig, lr: Tensor, weight_decay: np.ndarray
    ) -> None:
        self.dtype = flat.dtype  # float32 even under bf16 autocast
        self.lr = lr  # (S, P) η_n
        self.mode = train.weight_decay_mode
        use_wd = self.mode != "none" and bool(np.any(weight_decay != 0.0))
        self.wd: float | Tensor = (
            _wd_operand(weight_decay, flat.device, flat.dtype) if use_wd else 0.0
        )
        self.decoupled = self.mode == "decoupled"
        self.tiny = torch.finfo(self.dtype).tiny  # smallest normal number of the state's dtype

    def _grad(self, grad: Tensor) -> Tensor:
        return grad if grad.dtype == self.dtype else grad.to(self.dtype)

    def _wd_term(self, flat: Tensor, scratch: Tensor) -> Tensor | None:
        """λ‖θ_n‖∞ (P,) under decoupled decay, before θ moves; None otherwise."""
        if not (self.decoupled and _nonzero(self.wd)):
            return None
        return decay_term(flat, self.wd, scratch)

    def _apply(
        self,
        n: int,
        flat: Tensor,
        u: Tensor,
        scratch: Tensor,
        loss: Tensor,
        alive: Tensor,
        moments: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:func:`measure_and_step` with step n's learning rates."""
        return measure_and_step(
            flat, u, scratch, self.lr[n][:, None], loss, alive, moments, self.tiny
        )


def decay_term(flat: Tensor, wd: float | Tensor, scratch: Tensor) -> Tensor:
    """λ‖θ_n‖∞ (P,) of θ_n (P, N); λ a float or (P, 1); ``scratch`` (P, N) is overwritten."""
    norm = torch.abs(flat, out=scratch).amax(dim=1)  # (P,) ‖θ_n‖∞
    return norm * (wd[:, 0] if isinstance(wd, Tensor) else wd)


#: elements per chunk of :func:`row_max`'s first pass
ROW_MAX_CHUNK = 256


def row_max(x: Tensor, chunk: int = ROW_MAX_CHUNK) -> tuple[Tensor, Tensor]:
    """The maximum of each row of x (P, N) and its first index, as ``x.max(dim=1)``: NaN
    propagates (its first index is returned), ties give the first index.

    In two passes instead of one index-tracking reduction, which PyTorch's CPU kernels do
    not vectorize (~10x slower than ``amax`` on the engine's (P, N) buffers): the maxima of
    chunks of ``chunk`` elements (a vectorized ``amax``, (P, K) with the tail its own
    chunk), the first chunk holding the row's maximum, then the first index of the
    maximum within that chunk ((P, chunk) gathered).
    """
    n_pt, n = x.shape
    full = n - n % chunk  # elements in whole chunks
    parts = []
    if full:
        parts.append(x[:, :full].view(n_pt, full // chunk, chunk).amax(dim=2))  # (P, K)
    if full < n:
        parts.append(x[:, full:].amax(dim=1, keepdim=True))  # (P, 1) the tail
    maxima = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (P, K')
    first = maxima.argmax(dim=1)  # (P,) first chunk holding the max (NaN counts as max)
    offsets = torch.arange(chunk, device=x.device)  # (chunk,)
    # the chunk's indices, (P, chunk); the tail's run past N and repeat N − 1, which comes
    # after every real index of the chunk, so the first index of the maximum is unchanged
    index = (first[:, None] * chunk + offsets).clamp_(max=n - 1)
    values = x.gather(1, index)  # (P, chunk)
    at = values.argmax(dim=1, keepdim=True)  # (P, 1)
    return values.gather(1, at)[:, 0], index.gather(1, at)[:, 0]


def measure_and_step(
    flat: Tensor,
    u: Tensor,
    scratch: Tensor,
    lr: Tensor,
    loss: Tensor,
    alive: Tensor,
    moments: Sequence[Tensor],
    tiny: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Measure the step u (P, N) and take it: θ ← θ − η_n u for the live points; ``lr``
    (P, 1) is η_n.

    Returns (max_update, argmax, alive, underflow), each (P,). ``scratch`` is overwritten.
    The exact bound holds in real arithmetic; in float32, the second moment of a parameter
    whose gradient has vanished decays below the normal range (CPU flush-to-zero makes it 0
    at once) while m still holds the old gradient, and m / (sqrt(v) + ε) then explodes
    past the bound. ``underflow`` marks points whose max sits where one of ``moments``
    (second moments, (P, N)) is below ``tiny``, the dtype's smallest normal number.
    """
    torch.abs(u, out=scratch)
    max_update, argmax = row_max(scratch)  # (P,), (P,); NaN and inf propagate
    alive = alive & torch.isfinite(loss) & torch.isfinite(max_update)
    # θ ← θ − η_n (u_n + λθ_n), frozen points kept as they are (no step, no NaN): the mask
    # and the step in two passes over (P, N) (a multiply, mask and subtract took three)
    torch.where(alive[:, None], u, u.new_zeros(()), out=scratch)
    flat.addcmul_(scratch, lr, value=-1.0)
    at = argmax[:, None]  # (P, 1)
    low = [v.gather(1, at)[:, 0] < tiny for v in moments]  # (P,) each
    underflow = low[0] if len(low) == 1 else torch.stack(low).any(dim=0)
    return max_update, argmax, alive, underflow & (max_update > 0)


def _nonzero(wd: float | Tensor) -> bool:
    return isinstance(wd, Tensor) or wd != 0.0


class StackedKAdam(_Stacked):
    """k-Adam for P points (paper Section 4.2, App. R; docs/theory.md §6), one level table
    per level: u^{(0)} = g (+λθ coupled), u^{(i)} = A_{γ_i,β_i}(u^{(i−1)}), step by
    u^{(k)} (+λθ decoupled), through :func:`stabcli.optim.kernels.kadam_direction`.

    With ``record_levels`` every step records ‖u^{(i)}‖∞ of each level (before λθ), the
    trace columns ``max_update_l1`` .. ``max_update_lk``: each level obeys its own exact
    bound (App. S). State: m^{(i)}, v^{(i)} (P, N) per level, and two (P, N) scratch buffers.
    """

    def __init__(
        self,
        flat: Tensor,
        levels: Sequence[LevelTable],
        lr: Tensor,
        train: TrainConfig,
        weight_decay: np.ndarray,
        record_levels: bool = True,
        compiled: bool = False,
    ) -> None:
        super().__init__(flat, train, lr, weight_decay)
        self.compiled = compiled  # the update through torch.compile (fused loops)
        self.levels = list(levels)
        self.m = [torch.zeros_like(flat, dtype=self.dtype) for _ in levels]  # (P, N) each
        self.v = [torch.zeros_like(flat, dtype=self.dtype) for _ in levels]  # (P, N) each
        self.tmp = torch.empty_like(self.m[0])  # (P, N) scratch: g², then u_n
        self.tmp_abs = torch.empty_like(self.m[0])  # (P, N) scratch: |u_n|
        self.record_levels = record_levels
        if record_levels:
            self.columns = tuple(f"max_update_l{i}" for i in range(1, len(levels) + 1))

    @torch.no_grad()
    def step(self, n: int, flat: Tensor, grad: Tensor, loss: Tensor, alive: Tensor) -> StepStats:
        """One step for all points; see :class:`StackedOptimizer`."""
        # compiled: step n's rows copied out of the tables, so that one graph serves every
        # step (views at another offset of the tables would each be compiled again)
        coeffs = [level.coeffs(n, copy=self.compiled) for level in self.levels]
        lr = self.lr[n][:, None]  # (P, 1) η_n
        if self.compiled:
            lr = lr.clone()
        update = _compiled(kadam_update) if self.compiled else kadam_update
        stats = update(
            flat,
            self._grad(grad),
            self.m,
            self.v,
            coeffs,
            lr,
            loss,
            alive,
            self.wd,
            self.decoupled,
            self.record_levels,
            self.tiny,
            self.tmp,
            self.tmp_abs,
        )
        return StepStats(*stats)


def kadam_update(
    flat: Tensor,
    grad: Tensor,
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    coeffs: list[LevelCoeffs],
    lr: Tensor,
    loss: Tensor,
    alive: Tensor,
    wd: float | Tensor,
    decoupled: bool,
    record_levels: bool,
    tiny: float,
    u: Tensor,
    scratch: Tensor,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor, Tensor | None]:
    """k-Adam's step n for P points, in place on θ (``flat``) and the moments, as a pure
    function of tensors (so ``torch.compile`` can fuse it into a few loops): the direction
    (:func:`stabcli.optim.kernels.kadam_direction`), λ‖θ_n‖∞ under decoupled decay, then
    :func:`measure_and_step` with η_n = ``lr`` (P, 1).

    Returns the fields of :class:`StepStats` in order; ``u`` and ``scratch`` (P, N) are
    overwritten.
    """
    level_max: list[Tensor] | None = [] if record_levels else None
    kadam_direction(
        STACKED,
        grad,
        exp_avg,
        exp_avg_sq,
        coeffs,
        u,
        theta=flat,
        weight_decay=wd,
        decoupled=decoupled,
        level_max=level_max,
    )
    wd_term = decay_term(flat, wd, scratch) if decoupled and _nonzero(wd) else None  # θ_n
    max_update, argmax, new_alive, underflow = measure_and_step(
        flat, u, scratch, lr, loss, alive, exp_avg_sq, tiny
    )
    extra = torch.stack(level_max) if level_max else None  # (k, P)
    return max_update, argmax, wd_term, new_alive, underflow, extra


@functools.cache
def _compiled(function: Callable[..., T]) -> Callable[..., T]:
    """``torch.compile`` of a module-level update function, built once per process (its
    graphs are cached by the shapes they saw; a second shape compiles a dynamic one)."""
    return torch.compile(function)


class StackedAdam(StackedKAdam):
    """Adam/AdamW for P points: k-Adam's kernel with one level and no level columns."""

    def __init__(
        self,
        flat: Tensor,
        beta: np.ndarray,
        gamma: np.ndarray,
        train: TrainConfig,
        tables: AdamTables,
        weight_decay: np.ndarray | None = None,
        compiled: bool = False,
    ) -> None:
        dev, dtype = flat.device, flat.dtype
        level = LevelTable(
            beta=_device(beta, dev, dtype)[:, None],
            one_minus_beta=_device(1.0 - beta, dev, dtype)[:, None],
            one_minus_gamma=_device(1.0 - gamma, dev, dtype)[:, None],
            corr=tables.corr[:, :, None],  # views of the (S, P) tables
            eps=tables.eps[:, :, None],
        )
        wd = np.full(len(beta), train.weight_decay) if weight_decay is None else weight_decay
        super().__init__(
            flat, [level], tables.lr, train, wd, record_levels=False, compiled=compiled
        )


# --- optimizers that learn their coefficients -------------------------------------------------


class _StackedHyper(_Stacked):
    """Per-point coefficients q learned by one-step hyper-gradients (MADA paper, Section 3,
    eq. (4); :mod:`stabcli.optim.hypergrad`), for P points at once and without a host sync.

    As the public optimizers (Chandra et al.'s order): at step n ≥ 1, first
    q ← Π_D[q − κ ⊙ h] with h_p = ⟨g_n, ∂θ_n/∂q⟩ over point p's parameters (where h is not
    finite, q stays), then the step with the new q, which also writes ∂θ_{n+1}/∂q =
    −η_n ∂u_n/∂q for the next step. q is kept in float64 (κh can be far below float32's
    resolution near 1); each step uses q rounded to the parameters' dtype, and the bias
    corrections 1 − Π_{j≤n} β_j are formed in float64 from those rounded values, so they
    are the exact total weights of the decays actually applied (docs/theory.md §5).
    Subclasses name their :attr:`coefficients` and implement :meth:`_direction`.
    """

    coefficients: tuple[Coefficient, ...] = ()
    scratch_count = 0
    abs_slot = 0  # a scratch slot that is free once the kernel has returned

    def __init__(
        self,
        flat: Tensor,
        train: TrainConfig,
        lr: Tensor,
        hypers: PointHypers,
        start: dict[str, np.ndarray],
    ) -> None:
        super().__init__(flat, train, lr, hypers.weight_decay)
        self.eps = train.eps  # ε, after the square root as torch.optim.Adam (config enforces it)
        dev, n_pt = flat.device, flat.shape[0]
        names = [c.name for c in self.coefficients]
        rates = parse_hyper_lr(hyper_rates(train, self.coefficients), self.coefficients)
        bounds = parse_bounds(None, self.coefficients)
        self.learned = [name for name in names if rates[name] > 0.0]
        rows = [names.index(name) for name in self.learned]
        f64 = torch.float64

        def col(values: list[float]) -> Tensor:
            return torch.tensor(values, dtype=f64, device=dev)[:, None]  # (K, 1)

        self.rows = torch.tensor(rows, dtype=torch.int64, device=dev)  # (K,)
        self.kappa = col([rates[name] for name in self.learned])  # (K, 1) κ
        self.low = col([bounds[name][0] for name in self.learned])  # (K, 1)
        self.high = col([bounds[name][1] for name in self.learned])  # (K, 1)
        # (C, P) float64: the coefficients in the optimizer's order
        self.q = torch.stack([torch.as_tensor(start[name], dtype=f64) for name in names]).to(dev)
        self.fixed = {  # not learned and equal at every point: a float, as the public optimizer
            name: float(start[name][0])
            for name in names
            if name not in self.learned and np.all(start[name] == start[name][0])
        }
        self.prod = torch.ones((2, n_pt), dtype=f64, device=dev)  # Π_{j<n} β1_j, Π_{j<n} β2_j
        shape = (self.scratch_count, *flat.shape)
        self.scratch = list(torch.empty(shape, dtype=self.dtype, device=dev))  # (P, N) each
        # ∂θ/∂q as (P, K, N), so the hyper-gradient is one batched product; the kernels
        # write row k through the (K, P, N) view
        k = len(self.learned)
        self.hyper_dir = torch.zeros((n_pt, k, flat.shape[1]), dtype=self.dtype, device=dev)
        coupled = self.mode == "coupled" and _nonzero(self.wd)
        self.grad_wd = torch.empty_like(flat, dtype=self.dtype) if coupled else None  # (P, N)
        order = ["beta2", "beta1", *names[2:]]  # trace order: β, γ, then the rest
        self.record = torch.tensor([names.index(c) for c in order], device=dev)  # (C,)
        self.columns = ("beta", "gamma", *names[2:])

    def _hyper_step(self, grad: Tensor) -> None:
        """q ← Π_D[q − κ h], h = ⟨g, ∂θ/∂q⟩ per point; q stays where h is not finite."""
        h = torch.bmm(self.hyper_dir, grad[:, :, None])[:, :, 0].T.to(torch.float64)  # (K, P)
        q = self.q.index_select(0, self.rows)  # (K, P)
        moved = torch.clamp(q - self.kappa * h, min=self.low, max=self.high)
        self.q.index_copy_(0, self.rows, torch.where(torch.isfinite(h), moved, q))

    @torch.no_grad()
    def step(self, n: int, flat: Tensor, grad: Tensor, loss: Tensor, alive: Tensor) -> StepStats:
        """One step for all points; see :class:`StackedOptimizer`."""
        g = self._grad(grad)
        if n > 0 and self.learned:
            self._hyper_step(g)
        used = self.q.to(self.dtype)  # (C, P): q as the kernels apply it
        betas = used[:2].to(torch.float64)  # (2, P) β1, β2 as applied
        bc = (1.0 - self.prod * betas).to(self.dtype)[:, :, None]  # (2, P, 1) 1 − Π_{j≤n} β_j
        prod = self.prod.to(self.dtype)[:, :, None]  # (2, P, 1), may be self.prod itself
        x = g
        if self.grad_wd is not None:  # coupled decay: the kernel sees g + λθ
            STACKED.add_product(g, flat, self.wd, self.grad_wd)
            x = self.grad_wd
        out_scale = -self.lr[n][:, None]  # (P, 1): store ∂θ_{n+1}/∂q = −η_n ∂u_n/∂q
        u = self._direction(n, x, used, prod, bc, out_scale)
        self.prod.mul_(betas)  # Π_{j≤n} β_j, after the kernel has read Π_{j<n}
        scratch = self.scratch[self.abs_slot]  # free now that the kernel has returned
        wd_term = self._wd_term(flat, scratch)  # θ_n: it moves in _apply
        if self.decoupled and _nonzero(self.wd):
            STACKED.add_product(u, flat, self.wd, u)  # the measured step contains λθ_n
        max_update, argmax, new_alive, underflow = self._apply(
            n, flat, u, scratch, loss, alive, [self.second_moment]
        )
        return StepStats(
            max_update, argmax, wd_term, new_alive, underflow, used.index_select(0, self.record)
        )

    def _coefficient(self, used: Tensor, name: str) -> float | Tensor:
        """A coefficient as the kernel takes it: (P, 1), or a float when fixed."""
        if name in self.fixed:
            return self.fixed[name]
        return used[[c.name for c in self.coefficients].index(name)][:, None]

    @property
    def second_moment(self) -> Tensor:
        raise NotImplementedError

    def _direction(
        self, n: int, grad: Tensor, used: Tensor, prod: Tensor, bc: Tensor, out_scale: Tensor
    ) -> Tensor:
        """u_n (P, N) in a scratch buffer; −η_n ∂u_n/∂q into the hyper directions."""
        raise NotImplementedError


class StackedHyperAdam(_StackedHyper):
    """HyperAdam for P points (:class:`stabcli.optim.HyperAdam`): Adam with β1 = γ and
    β2 = β learned per point, through :func:`stabcli.optim.hyperadam.hyperadam_step`.

    Records the (β_n, γ_n) that made each step (trace columns ``beta``, ``gamma``): the
    path obeys :func:`stabcli.theory.path.path_bound` (docs/theory.md §5). State per point:
    m, v, the learned rows of ∂θ/∂q and three scratch buffers, each (P, N).
    """

    coefficients = HyperAdam.coefficients
    scratch_count = HYPERADAM_SCRATCH
    abs_slot = 2  # the kernel's D = sqrt(v̂) + ε, free after it returns

    def __init__(self, flat: Tensor, train: TrainConfig, lr: Tensor, hypers: PointHypers):
        start = {"beta1": hypers.gamma, "beta2": hypers.beta}
        super().__init__(flat, train, lr, hypers, start)
        self.m = torch.zeros_like(flat, dtype=self.dtype)  # (P, N)
        self.v = torch.zeros_like(flat, dtype=self.dtype)  # (P, N)

    @property
    def second_moment(self) -> Tensor:
        return self.v

    def _direction(
        self, n: int, grad: Tensor, used: Tensor, prod: Tensor, bc: Tensor, out_scale: Tensor
    ) -> Tensor:
        return hyperadam_step(
            self.m,
            self.v,
            grad,
            self._coefficient(used, "beta1"),
            self._coefficient(used, "beta2"),
            prod[0],
            prod[1],
            self.eps,
            self.learned,
            self.hyper_dir.transpose(0, 1) if self.learned else None,  # (K, P, N) view
            self.scratch,
            out_scale=out_scale,
            ops=STACKED,
            bias_corrections=(bc[0], bc[1]),
        )


class StackedMADA(_StackedHyper):
    """MADA for P points (:class:`stabcli.optim.MADA`), starting at Adam's vertex with the
    point's (β1, β2) = (γ, β), every coefficient learned per point, through
    :func:`stabcli.optim.mada_kernel.mada_step` (Lion's betas fixed at (0.9, 0.99)).

    Records q = (β, γ, β3, ρ, c, ω) of each step (trace columns ``beta``, ``gamma``,
    ``beta3``, ``rho``, ``c``, ``omega``); on the Adam-AVGrad-Lion face the max-update obeys
    :func:`stabcli.theory.path.mada_path_bound` (docs/theory.md §7). State per point: six
    moments, the learned rows of ∂θ/∂q and twelve scratch buffers, each (P, N).
    """

    coefficients = MADA.coefficients
    scratch_count = MADA_SCRATCH
    abs_slot = 0  # the kernel's gradient difference d, free after it returns

    def __init__(self, flat: Tensor, train: TrainConfig, lr: Tensor, hypers: PointHypers):
        n_pt = len(hypers)
        start = {"beta1": hypers.gamma, "beta2": hypers.beta}
        start.update({name: np.full(n_pt, value) for name, value in MADA_START.items()})
        super().__init__(flat, train, lr, hypers, start)
        self.moments = MadaMoments.zeros_like(torch.zeros_like(flat, dtype=self.dtype))

    @property
    def second_moment(self) -> Tensor:
        return self.moments.exp_avg_sq

    def _direction(
        self, n: int, grad: Tensor, used: Tensor, prod: Tensor, bc: Tensor, out_scale: Tensor
    ) -> Tensor:
        q = MadaCoefficients(*(self._coefficient(used, name) for name in MADA_COEFFICIENTS))
        return mada_step(
            self.moments,
            grad,
            q,
            n + 1,  # the kernel counts steps from t = 1
            prod[0],
            prod[1],
            self.eps,
            LION_BETAS,
            self.learned,
            self.hyper_dir.transpose(0, 1) if self.learned else None,  # (K, P, N) view
            self.scratch,
            out_scale=out_scale,
            bias_corrections=(bc[0], bc[1]),
        )


def hyper_rates(
    train: TrainConfig, coefficients: Sequence[Coefficient]
) -> float | dict[str, float]:
    """κ of a hyper-optimizer probe: the preset's ``hyper_lr`` for every coefficient, else
    the public optimizer's defaults per coefficient."""
    if train.hyper_lr is not None:
        return train.hyper_lr
    return {c.name: c.hyper_lr for c in coefficients}


# --- the seam ---------------------------------------------------------------------------------


def check_start(train: TrainConfig, beta: np.ndarray, gamma: np.ndarray) -> None:
    """Refuse, in one line, points that the preset's optimizer cannot start from.

    HyperAdam and MADA project their betas onto a box (:mod:`stabcli.optim.hypergrad`:
    β = beta2 in [0.5, 0.9999], γ = beta1 in [0, 0.999]); a point must start inside it.
    k-Adam's strategy must give valid levels (e.g. ``exp`` with a large k underflows).
    """
    if train.optimizer == "kadam":
        kadam_point_levels(train, beta, gamma)
        return
    if train.optimizer not in ("hyperadam", "mada"):
        return
    coefficients = HyperAdam.coefficients if train.optimizer == "hyperadam" else MADA.coefficients
    bounds = parse_bounds(None, coefficients)
    for name, values, paper in (("beta2", beta, "β"), ("beta1", gamma, "γ")):
        low, high = bounds[name]
        bad = (values < low) | (values > high)
        if bad.any():
            raise StabcliError(
                f"{train.optimizer} learns its betas inside a box: {paper} (torch {name}) must "
                f"be in [{low:g}, {high:g}], got {float(values[bad][0]):g}"
            )


def make_optimizer(
    train: TrainConfig,
    flat: Tensor,
    hypers: PointHypers,
    lr_host: np.ndarray,
    compiled: bool = False,
) -> StackedOptimizer:
    """The stacked optimizer of ``train.optimizer`` for points ``hypers``; ``lr_host`` is the
    (S, P) η_n table (:func:`lr_table`). ``compiled``: Adam's and k-Adam's update through
    ``torch.compile`` (HyperAdam and MADA run their kernels eagerly either way)."""
    dev, dtype = flat.device, flat.dtype
    lr = _device(lr_host, dev, dtype)
    if train.optimizer == "adam":
        level = LevelTable.build(train, hypers.beta, hypers.gamma, dev, dtype)
        tables = AdamTables(
            lr=lr, lr_host=lr_host, corr=level.corr[:, :, 0], eps=level.eps[:, :, 0]
        )
        return StackedAdam(
            flat, hypers.beta, hypers.gamma, train, tables, hypers.weight_decay, compiled
        )
    if train.optimizer == "kadam":
        built: dict[tuple[bytes, bytes], LevelTable] = {}  # the strategies repeat one level
        levels = []
        for beta_i, gamma_i in kadam_point_levels(train, hypers.beta, hypers.gamma):
            key = (beta_i.tobytes(), gamma_i.tobytes())
            if key not in built:
                built[key] = LevelTable.build(train, beta_i, gamma_i, dev, dtype)
            levels.append(built[key])
        return StackedKAdam(flat, levels, lr, train, hypers.weight_decay, compiled=compiled)
    if train.optimizer == "hyperadam":
        return StackedHyperAdam(flat, train, lr, hypers)
    if train.optimizer == "mada":
        return StackedMADA(flat, train, lr, hypers)
    raise StabcliError(f"unknown optimizer {train.optimizer!r}")


def trace_columns(train: TrainConfig) -> tuple[str, ...]:
    """The extra trace columns a probe of ``train`` records (see ProbeResult)."""
    if train.optimizer == "kadam":
        return tuple(f"max_update_l{i}" for i in range(1, train.k + 1))
    if train.optimizer == "hyperadam":
        return ("beta", "gamma")
    if train.optimizer == "mada":
        return ("beta", "gamma", *MADA_COEFFICIENTS[2:])
    return ()


def elementwise_flops(train: TrainConfig) -> int:
    """Floating-point operations per parameter of one stacked-optimizer step, counted op by
    op from the update (docs/theory.md §1, §6; :func:`kadam_update`).

    Per level: m ← m + (1−γ)(x − m) 3, x² 1, v ← v + (1−β)(x² − v) 3, sqrt 1, + ε' 1,
    ÷ 1, × corr_n 1 (11); k-Adam's recorded ‖u^{(i)}‖∞ 2 per level (|·|, max); then |u| 1,
    max 1, the frozen-point mask 1 and θ − η·u 2 (5); weight decay: g + λθ (coupled) or
    u + λθ and λ‖θ_n‖∞ (decoupled) 2 or 4. HyperAdam and MADA: Adam's count plus 4 per
    learned coefficient (⟨g, ∂θ/∂q⟩ and the update of ∂θ/∂q, a multiply-add each): a
    lower bound, their kernels' other terms are not counted.
    """
    decay = {"none": 0, "coupled": 2, "decoupled": 4}[train.weight_decay_mode]
    if train.weight_decay == 0.0:
        decay = 0
    if train.optimizer == "kadam":
        return (11 + 2) * train.k + 5 + decay
    if train.optimizer in ("hyperadam", "mada"):
        coefficients = (
            HyperAdam.coefficients if train.optimizer == "hyperadam" else MADA.coefficients
        )
        rates = parse_hyper_lr(hyper_rates(train, coefficients), coefficients)
        learned = sum(1 for rate in rates.values() if rate > 0.0)
        return 11 + 5 + decay + 4 * learned
    return 11 + 5 + decay


def buffers_per_point(train: TrainConfig) -> int:
    """Parameter-sized (N,) buffers a point holds while it trains: θ and its gradient, plus
    the optimizer's state and scratch (what :func:`make_optimizer` allocates).

    Adam: m, v, u, |u| (6 in all); k-Adam: 2k moments, u, |u|; HyperAdam: m, v, three
    scratch, one row of ∂θ/∂q per learned beta; MADA: six moments, twelve scratch, one row
    per learned coefficient; both hyper-optimizers one more for g + λθ under coupled decay.
    """
    if train.optimizer == "kadam":
        return 4 + 2 * train.k
    if train.optimizer in ("hyperadam", "mada"):
        coefficients = (
            HyperAdam.coefficients if train.optimizer == "hyperadam" else MADA.coefficients
        )
        rates = parse_hyper_lr(hyper_rates(train, coefficients), coefficients)
        learned = sum(1 for rate in rates.values() if rate > 0.0)
        state = 2 + HYPERADAM_SCRATCH if train.optimizer == "hyperadam" else 6 + MADA_SCRATCH
        coupled = train.weight_decay_mode == "coupled"
        return 2 + state + learned + int(coupled)
    return 6
