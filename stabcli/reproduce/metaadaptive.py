"""The meta-adaptive effect (arXiv 2411.05746 §4.1, App. G, Figures 6-7), with and without
qk-norm.

Under qk-norm (``model.qk_norm``, :mod:`stabcli.probe.models`) the loss is scale invariant
under each query and key matrix W: L(αW) = L(W) for α > 0. Differentiating in α at 1 gives
eq. (6), ⟨W, g_W⟩ = 0, with g_W = ∇_W L (App. L; exact at every iterate, also in discrete
time). §4.1 builds on it and on two assumptions checked in App. G:

- **Figure 6** (Assumption 1, ⟨W(t), g_W(τ)⟩ ≈ 0 for τ ≤ t): the cosine similarity
  ``sim(W_m, g_n) := ⟨W_m, g_n⟩ / (‖W_m‖ ‖g_n‖)`` of each query/key matrix at iteration
  m = 100 with its gradient at every earlier iteration n = 1 .. m. With qk-norm it is ≈ 0
  at n = m and stays negligible for n < m; without qk-norm it "is no longer well behaved".
- **Figure 7** (Assumption 2, coarse-graining): training with each query/key matrix's
  second moment v_W replaced by ṽ_W, the same moving average of the mean squared entry of
  g_W (K̃_β = K_β/N, N the entries of W), moves 16 random query/key parameters almost as
  regular training does.
- **Eq. (8)** (λ = 0 here): with ⟨W, u_W⟩ ≈ 0, ‖W(t)‖² ≈ ‖W(0)‖² + η ∫_0^t ‖u_W‖² dτ, a
  moving sum of ‖u_W‖². In discrete time ‖W_{n+1}‖² = ‖W_n‖² − 2η⟨W_n, u_n⟩ + η²‖u_n‖²
  exactly, so eq. (8) with t = nη reads ‖W_1‖² + η² Σ_{j<n} ‖u_j‖² and misses exactly
  −2η Σ_{j<n} ⟨W_j, u_j⟩ (docs/theory.md §10).

Iterations are numbered as the paper's, n = 1 .. m: θ_1 is the initial weights, g_n the
gradient at θ_n on the preset's mini-batch n − 1, u_n Adam's update from g_1 .. g_n and
θ_{n+1} = θ_n − η u_n. Adam runs on one model (P = 1, float64, the probe's model through
:func:`stabcli.reproduce.trajectory.flat_model`, dropout off so gradients are
deterministic) with torch's ε placement, u_n = m̂_n / (sqrt(v̂_n) + ε); without
coarse-graining it is ``torch.optim.Adam(betas=(γ, β))`` (tested against it). The model has
no biases: with biases the loss is invariant under scaling (W_q, b_q) together, not W_q
alone, and eq. (6) would hold for the pair only. The paper's point is (β, γ) = (0.999, 0.9),
η = 10⁻³ (App. H, App. K), no weight decay.

The scale invariance itself is measured at the final weights of each run: the largest
relative change of the loss when one query/key matrix is scaled by c ∈ {0.1, 3, 17}.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stabcli.reproduce.assessment import Assessment, Scale, plan_for

if TYPE_CHECKING:
    import torch

    from stabcli.reproduce.trajectory import FlatModel

#: Figure 6 at n = m: |sim(W_m, g_m)| at most this under qk-norm (eq. (6) holds exactly;
#: this leaves room for float64 rounding only).
ORTHOGONAL = 1e-8
#: Figure 6 for n < m: "negligible" read as |sim(W_m, g_n)| at most this under qk-norm.
NEGLIGIBLE = 0.1
#: Without qk-norm eq. (6) fails visibly: some matrix has |sim(W_m, g_m)| above this.
NOT_ORTHOGONAL = 0.01
#: Figure 7: coarse-graining moves the shown parameters by at most this fraction of how far
#: regular training moved them (both the largest over parameters and iterations).
COARSE_TOLERANCE = 0.10
#: Eq. (8) misses at most this fraction of the growth of ‖W‖² under qk-norm (at n = m).
NORM_TOLERANCE = 0.10
#: The loss is scale invariant when scaling a query/key matrix changes it by at most this
#: (relative, float64).
INVARIANCE_RTOL = 1e-10
#: The factors c of the scale-invariance check.
SCALE_FACTORS = (0.1, 3.0, 17.0)

CLAIM = (
    "§4.1 and App. G (Figures 6-7): under qk-norm the loss is scale invariant under each "
    "query/key matrix W, so ⟨W, g_W⟩ = 0 (eq. (6)); sim(W_100, g_n) is ≈ 0 at n = 100 and "
    "remains negligible for earlier n, while without qk-norm it is no longer well behaved; "
    "coarse-graining v_W barely changes the trajectories (Figure 7), and ‖W‖² follows the "
    "moving sum of η‖u_W‖² (eq. (8))."
)


@dataclass(frozen=True)
class MetaRun:
    """One training run's measurements; M query/key matrices, iterations n = 1 .. m."""

    qk_norm: bool
    coarse: bool  # Assumption 2's coarse-grained v_W for the query/key matrices
    loss: np.ndarray  # (m,) training loss at θ_n on batch n − 1
    sim_past: np.ndarray  # (M, m) sim(W_m, g_n), Figure 6
    sim_update: np.ndarray  # (M, m − 1) sim(W_n, u_n): the weights against Adam's update
    norms: np.ndarray  # (M, m) ‖W_n‖²
    predicted_norms: np.ndarray  # (M, m) eq. (8): ‖W_1‖² + η² Σ_{j<n} ‖u_j‖²
    shown: np.ndarray  # (m, Q) θ_n of the Q parameters Figure 7 shows
    invariance: float  # max relative loss change, one matrix scaled by c (SCALE_FACTORS)
    seconds: float

    @property
    def sim_at_m(self) -> np.ndarray:
        """(M,) sim(W_m, g_m): eq. (6)'s quantity at the last iteration."""
        return self.sim_past[:, -1]

    @property
    def norm_miss(self) -> float:
        """Largest |eq. (8) − ‖W_m‖²| over matrices, as a fraction of ‖W_m‖² − ‖W_1‖²."""
        miss = np.abs(self.predicted_norms[:, -1] - self.norms[:, -1])
        growth = np.abs(self.norms[:, -1] - self.norms[:, 0])
        return float(np.max(miss / growth))


@dataclass(frozen=True)
class MetaAdaptiveFigure:
    """Figures 6-7's data: the same model and batches with qk-norm, without it, and with
    qk-norm and coarse-grained v_W."""

    preset: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    beta: float  # β = torch beta2
    gamma: float  # γ = torch beta1
    lr: float
    iterations: int  # m
    matrices: tuple[str, ...]  # (M,) "h.0.attn.query", ...
    shown_names: tuple[str, ...]  # (Q,) Figure 7's parameters, e.g. "h.1.attn.c_attn.weight[3, 70]"
    qk: MetaRun  # with qk-norm (Figure 6a)
    plain: MetaRun  # without qk-norm (Figure 6b)
    coarse: MetaRun  # with qk-norm and coarse-grained v_W (Figure 7)
    assessment: Assessment

    @property
    def coarse_distance(self) -> float:
        """max_{n,q} |θ_n^coarse − θ_n| / max_{n,q} |θ_n − θ_1| over the shown parameters."""
        moved = np.abs(self.qk.shown - self.qk.shown[0]).max()
        return float(np.abs(self.coarse.shown - self.qk.shown).max() / moved)

    @property
    def coarse_correlation(self) -> float:
        """Correlation of the shown parameters' displacements θ_m − θ_1 in the two runs."""
        regular = self.qk.shown[-1] - self.qk.shown[0]
        coarse = self.coarse.shown[-1] - self.coarse.shown[0]
        return float(np.corrcoef(regular, coarse)[0, 1])


@dataclass(frozen=True)
class MetaPlan:
    """One scale's setup: the preset, its overrides and m."""

    preset: str
    iterations: int  # m
    overrides: dict[str, object]
    shown: int = 16  # Figure 7's parameters


_SMALL = {"corpus_chars": 20_000, "eval_every": 0}
PLANS: dict[Scale, MetaPlan] = {
    # tiny-char (generated text, nothing downloaded) widened to 6 blocks as App. H's nanoGPT
    # (12 query/key matrices of 96 x 96), context 64, batch 16; m = 100 as Figure 6
    "cpu": MetaPlan(
        "tiny-char",
        100,
        {"n_layer": 6, "n_head": 6, "n_embd": 96, "block_size": 64, "batch_size": 16, **_SMALL},
    ),
    "test": MetaPlan(
        "tiny-char",
        12,
        {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4, **_SMALL},
        shown=8,
    ),
    # App. H's nanoGPT (6 x 6 x 384, context 256, batch 64) on tiny Shakespeare, m = 100
    "paper": MetaPlan("nanogpt-shakespeare", 100, {"eval_every": 0}),
}


def metaadaptive_figure(
    scale: str = "cpu",
    *,
    out: Path | None = None,
    beta: float = 0.999,  # the paper's (β, γ) = (0.999, 0.9): torch betas (0.9, 0.999)
    gamma: float = 0.9,
    lr: float = 1e-3,
    device: str = "cpu",
    seed: int = 0,  # which parameters Figure 7 shows
) -> MetaAdaptiveFigure:
    """Train with qk-norm, without it, and with qk-norm and coarse-grained v_W; measure
    Figures 6-7 and eq. (8) (module docstring). With ``out``, the plotted numbers are saved
    there as ``metaadaptive.npz``."""
    plan = plan_for(PLANS, scale, "the meta-adaptive figure (Figures 6-7)")
    # the same weights θ_1 and batches with and without qk-norm (it adds no parameter)
    models = {qk: figure_model(plan, qk) for qk in (True, False)}
    matrices = models[True].matrices()
    pool = np.concatenate(list(matrices.values()))
    shown = np.sort(np.random.default_rng(seed).choice(pool, plan.shown, replace=False))
    settings = _Adam(beta, gamma, lr, models[True].preset.train.eps)
    runs = {
        (qk, coarse): _run(models[qk], settings, plan.iterations, matrices, shown, coarse, device)
        for qk, coarse in ((True, False), (False, False), (True, True))
    }
    m = models[True].preset.model
    figure = MetaAdaptiveFigure(
        preset=models[True].preset.name,
        n_layer=m.n_layer,
        n_head=m.n_head,
        n_embd=m.n_embd,
        block_size=m.block_size,
        batch_size=models[True].preset.train.batch_size,
        beta=beta,
        gamma=gamma,
        lr=lr,
        iterations=plan.iterations,
        matrices=tuple(matrices),
        shown_names=models[True].coordinate_names(shown),
        qk=runs[True, False],
        plain=runs[False, False],
        coarse=runs[True, True],
        assessment=Assessment(CLAIM, "", None),
    )
    figure = _assessed(figure)
    if out is not None:
        save_figure(figure, out / "metaadaptive.npz")
    return figure


def figure_model(plan: MetaPlan, qk_norm: bool) -> FlatModel:
    """The plan's GPT, without biases, with or without qk-norm, as a flat float64 model."""
    from stabcli.reproduce.trajectory import flat_model

    return flat_model(
        plan.preset, qk_norm=qk_norm, bias=False, steps=plan.iterations, **plan.overrides
    )


@dataclass(frozen=True)
class _Adam:
    beta: float  # β = torch beta2
    gamma: float  # γ = torch beta1
    lr: float
    eps: float


def _run(
    model: FlatModel,
    adam: _Adam,
    iterations: int,
    matrices: dict[str, np.ndarray],
    shown: np.ndarray,
    coarse: bool,
    device: str,
) -> MetaRun:
    """Adam from θ_1 for ``iterations`` iterates, recording what :class:`MetaRun` holds."""
    import torch

    started = time.perf_counter()
    dev = torch.device(device)
    blocks = [torch.as_tensor(idx, device=dev) for idx in matrices.values()]  # M x (N_W,)
    theta = model.theta0.to(dev)  # (N,)
    m_state = torch.zeros_like(theta)
    v_state = torch.zeros_like(theta)
    weights, grads, updates, losses, shown_rows = [], [], [], [], []
    shown_t = torch.as_tensor(shown, device=dev)
    for n in range(1, iterations + 1):
        x, y = (t.to(dev) for t in model.stream.train_batch(n - 1))
        leaf = theta[None].detach().requires_grad_(True)  # (1, N)
        loss = model.loss(leaf, x, y)
        (g,) = torch.autograd.grad(loss.sum(), leaf)
        g = g[0]  # (N,)
        losses.append(float(loss.detach()[0]))
        weights.append(torch.stack([theta[b] for b in blocks]).cpu())  # (M, N_W)
        grads.append(torch.stack([g[b] for b in blocks]).cpu())
        shown_rows.append(theta[shown_t].cpu())
        if n == iterations:
            break
        # Adam's moments (paper eq. (1)-(3)); Assumption 2 replaces g_W² by its mean
        m_state.mul_(adam.gamma).add_(g, alpha=1 - adam.gamma)
        square = g * g
        if coarse:
            for b in blocks:
                square[b] = square[b].mean()
        v_state.mul_(adam.beta).add_(square, alpha=1 - adam.beta)
        m_hat = m_state / (1 - adam.gamma**n)
        v_hat = v_state / (1 - adam.beta**n)
        u = m_hat / (v_hat.sqrt() + adam.eps)  # torch's ε placement
        updates.append(torch.stack([u[b] for b in blocks]).cpu())
        theta = theta - adam.lr * u
    w = torch.stack(weights).numpy()  # (m, M, N_W): iterations, matrices, entries
    gr = torch.stack(grads).numpy()  # (m, M, N_W)
    up = torch.stack(updates).numpy() if updates else np.zeros((0, *w.shape[1:]))  # (m−1, ...)
    norms = np.square(w).sum(axis=2).T  # (M, m)
    steps = adam.lr**2 * np.square(up).sum(axis=2).T  # (M, m−1): η²‖u_n‖²
    predicted = norms[:, :1] + np.concatenate(
        [np.zeros((norms.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1
    )
    return MetaRun(
        qk_norm=model.preset.model.qk_norm,
        coarse=coarse,
        loss=np.array(losses),
        sim_past=cosine(w[-1][None], gr).T,  # (M, m)
        sim_update=cosine(w[:-1], up).T,  # (M, m−1)
        norms=norms,
        predicted_norms=predicted,
        shown=torch.stack(shown_rows).numpy(),
        invariance=_invariance(model, theta, blocks, dev),
        seconds=time.perf_counter() - started,
    )


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """⟨a, b⟩ / (‖a‖ ‖b‖) over the last axis, broadcasting the others (App. G's sim)."""
    dot = (a * b).sum(axis=-1)
    return dot / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _invariance(
    model: FlatModel, theta: torch.Tensor, blocks: list[torch.Tensor], dev: torch.device
) -> float:
    """Largest |L(θ with one matrix × c) / L(θ) − 1| over the matrices and c, on batch 0."""
    import torch

    x, y = (t.to(dev) for t in model.stream.train_batch(0))
    with torch.no_grad():
        base = float(model.loss(theta[None], x, y)[0])
        worst = 0.0
        for b in blocks:
            for c in SCALE_FACTORS:
                scaled = theta.clone()
                scaled[b] *= c
                worst = max(worst, abs(float(model.loss(scaled[None], x, y)[0]) / base - 1))
    return worst


def _assessed(fig: MetaAdaptiveFigure) -> MetaAdaptiveFigure:
    qk, plain = fig.qk, fig.plain
    at_m_qk = float(np.abs(qk.sim_at_m).max())
    past_qk = float(np.abs(qk.sim_past).max())
    at_m_plain = float(np.abs(plain.sim_at_m).max())
    past_plain = float(np.abs(plain.sim_past).max())
    late = max(1, fig.iterations // 10)  # n > m/10: past the first iterations
    late_qk = float(np.abs(qk.sim_past[:, late:]).max())
    parts = {
        "invariance": qk.invariance <= INVARIANCE_RTOL,
        "orthogonal": at_m_qk <= ORTHOGONAL,
        "negligible": past_qk <= NEGLIGIBLE,
        "plain": at_m_plain > NOT_ORTHOGONAL,
        "coarse": fig.coarse_distance <= COARSE_TOLERANCE,
        "norms": qk.norm_miss <= NORM_TOLERANCE,
    }
    numbers = [at_m_qk, past_qk, at_m_plain, fig.coarse_distance, qk.norm_miss]
    failed = [name for name, ok in parts.items() if not ok]
    measured = (
        f"{fig.preset} ({fig.n_layer} x {fig.n_head} x {fig.n_embd}, no biases, "
        f"{len(fig.matrices)} query/key matrices), Adam at (β, γ) = ({fig.beta}, {fig.gamma}), "
        f"η = {fig.lr:g}, m = {fig.iterations}, float64: scaling one query/key matrix by "
        f"c ∈ {{0.1, 3, 17}} changes the loss by at most {qk.invariance:.1e} with qk-norm "
        f"(tolerance {INVARIANCE_RTOL:.0e}) and {plain.invariance:.2g} without; "
        f"max |sim(W_m, g_m)| = {at_m_qk:.1e} with qk-norm (tolerance {ORTHOGONAL:.0e}) and "
        f"{at_m_plain:.3f} without (> {NOT_ORTHOGONAL} required); max over n ≤ m of "
        f"|sim(W_m, g_n)| = {past_qk:.3f} with qk-norm (negligible: ≤ {NEGLIGIBLE}; "
        f"{late_qk:.3f} for n > {late}) and {past_plain:.3f} without; coarse-grained v_W "
        f"moves the {len(fig.shown_names)} shown parameters by up to "
        f"{100 * fig.coarse_distance:.1f}% of their largest displacement (tolerance "
        f"{100 * COARSE_TOLERANCE:.0f}%; displacements correlate at "
        f"{fig.coarse_correlation:.2f}); eq. (8) misses {100 * qk.norm_miss:.1f}% of the "
        f"growth of ‖W‖² with qk-norm (tolerance {100 * NORM_TOLERANCE:.0f}%) and "
        f"{100 * plain.norm_miss:.0f}% without"
        + (f"; not held: {', '.join(failed)}" if failed else "")
    )
    held = None if not all(math.isfinite(v) for v in numbers) else not failed
    return dataclasses.replace(fig, assessment=Assessment(CLAIM, measured, held))


def save_figure(fig: MetaAdaptiveFigure, path: Path) -> Path:
    """The plotted numbers as one ``.npz`` (runs prefixed ``qk_``, ``plain_``, ``coarse_``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "matrices": np.array(fig.matrices),
        "shown_names": np.array(fig.shown_names),
    }
    for name, run in (("qk", fig.qk), ("plain", fig.plain), ("coarse", fig.coarse)):
        for f in dataclasses.fields(run):
            value = getattr(run, f.name)
            arrays[f"{name}_{f.name}"] = np.asarray(value)
    np.savez(path, allow_pickle=False, **arrays)
    return path
