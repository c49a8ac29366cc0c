"""The memory paper's Figures 1 and 2 (Cattaneo & Shigida, arXiv:2502.02132, "MEM"), CPU-sized.

Notation: MEM's β1 is γ and its β2 is β (torch's beta1, beta2), h is the learning rate η.

**Figure 1: Adam against its memoryless modified iteration.** MEM Example 1.3 writes AdamW
as θ_{n+1} = θ_n − h F^{(n)}(θ_n, …, θ_0) with

    F^{(n)} = m̂_n / sqrt(v̂_n + ε) + λθ_n,   m̂_n = (1−γ)/(1−γ^{n+1}) Σ_k γ^{n−k} ∇L(θ_k),
                                               v̂_n = (1−β)/(1−β^{n+1}) Σ_k β^{n−k} ∇L(θ_k)²

(ε inside the root, decoupled weight decay). Its memoryless iteration (MEM Lemma K.2, from
Theorem 3.2 and eq. (9); docs/theory.md (8.1), (8.4)), with g = ∇L(θ̃_n) and H = ∇²L(θ̃_n):

    θ̃_{n+1} = (1 − λh) θ̃_n − h [ g/sqrt(g² + ε) + M^{(n)}(θ̃_n) ],
    M_r^{(n)} = h (A_n − B_n + ε B_n/(g_r² + ε)) · [H (g/sqrt(g² + ε) + λθ̃_n)]_r / sqrt(g_r² + ε),
    A_n = γ/(1−γ) − (n+1)γ^{n+1}/(1−γ^{n+1}),   B_n = β/(1−β) − (n+1)β^{n+1}/(1−β^{n+1}),

using ∂_r‖∇L‖_{1,ε} = [H g/sqrt(g² + ε)]_r. MEM Corollary 3.3: over ⌊T/h⌋ steps,
max_n ‖θ_n − θ̃_n‖∞ ≤ C₂ h². The first-order approximation drops M (soft-sign descent with
weight decay) and is O(h) away. MEM's Figure 1 shows both distances over steps (MLP on
MNIST-10K, h ∈ {1e-4, 3e-4}, ε = 1e-6). Here the order in h is measured: both distances for
several h at a fixed horizon T, and the log-log slope of their maxima against h. The
problem is multinomial logistic regression on ``mlp-synthetic``'s generated data (numpy,
exact gradients and Hessian-vector products): the slope needs ⌊T/h⌋ ≥ 10/(1 − β) steps
(ten memories of v) at every h, which an MLP's double backward makes too slow for a CPU.

**Figure 2: generalization against the memory coefficient.** MEM §4: AdamW's memory adds
−hK‖∇L‖₁ to the loss, K = β/(1−β) − γ/(1−γ) (docs/theory.md (8.3); what ``stabcli check``
prints); MEM Figure 2a (ResNet-50, CIFAR-10, full-batch Adam, γ = 0.99, h = 10^-3.5,
λ = 0.005, ε = 1e-6) shows test accuracy at training loss 0.05 falling as β → 1. Here: the
``mlp-synthetic`` GELU MLP on 512 generated training examples, full-batch AdamW (torch's
ε placement, as MEM used ``torch.optim.AdamW``), the same h, λ, ε and threshold, a β sweep
at γ = 0.99 and a γ sweep at β = 0.99, two initial seeds, all points trained at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stabcli.reproduce.assessment import Assessment, Scale, plan_for
from stabcli.theory.exact import exact_stable
from stabcli.theory.memory import memory_coefficient

if TYPE_CHECKING:
    import torch

    from stabcli.reproduce.trajectory import FlatModel

# ---------------------------------------------------------------------------------------
# Figure 1
# ---------------------------------------------------------------------------------------

#: Corollary 3.3's order of the memoryless iteration's distance in h, and the tolerance on
#: the fitted log-log slope.
THEOREM_ORDER = 2.0
ORDER_TOLERANCE = 0.3
FIRST_ORDER = 1.0

FIGURE1_CLAIM = (
    "MEM Theorem 3.2, Corollary 3.3 and Figure 1: the memoryless modified iteration stays "
    "within C₂h² of Adam's trajectory over ⌊T/h⌋ steps (ℓ∞), closer than the first-order "
    "approximation (sign descent), which is O(h) away."
)


@dataclass(frozen=True)
class MemorylessFigure:
    """MEM Figure 1's data: ℓ∞ distances to Adam over steps, for several learning rates."""

    problem: str  # what was trained
    beta: float  # β = torch beta2 = MEM's β2
    gamma: float  # γ = torch beta1 = MEM's β1
    eps: float  # ε, inside the root (MEM Example 1.3)
    weight_decay: float  # λ, decoupled; fixed across h (the order is taken at fixed λ)
    horizon: float  # T: each h runs ⌊T/h⌋ steps
    lrs: np.ndarray  # (H,) h
    steps: tuple[np.ndarray, ...]  # per h: (N_h + 1,) n; time is n·h
    memoryless: tuple[np.ndarray, ...]  # per h: (N_h + 1,) ‖θ_n − θ̃_n‖∞
    first_order: tuple[np.ndarray, ...]  # per h: (N_h + 1,) ‖θ_n − θ̂_n‖∞ (sign descent)
    order: float  # log-log slope of max_n ‖θ_n − θ̃_n‖∞ against h
    first_order_order: float  # the same for the first-order approximation
    seconds: float
    assessment: Assessment

    @property
    def max_memoryless(self) -> np.ndarray:
        """(H,) max_n ‖θ_n − θ̃_n‖∞ per h."""
        return np.array([d.max() for d in self.memoryless])

    @property
    def max_first_order(self) -> np.ndarray:
        """(H,) max_n ‖θ_n − θ̂_n‖∞ per h."""
        return np.array([d.max() for d in self.first_order])


@dataclass(frozen=True)
class _Figure1Plan:
    beta: float
    gamma: float
    horizon: float
    lrs: tuple[float, ...]  # each with ⌊T/h⌋ >= 10/(1 − β)
    n_samples: int  # of mlp-synthetic's generated data (90% train)


_FIGURE1: dict[Scale, _Figure1Plan] = {
    # torch betas (0.9, 0.99): ten memories of v are 1000 steps, the largest h's run
    "cpu": _Figure1Plan(0.99, 0.9, horizon=0.1, lrs=(2.5e-5, 5e-5, 1e-4), n_samples=4096),
    # a shorter memory, torch betas (0.9, 0.95): 200 steps suffice
    "test": _Figure1Plan(0.95, 0.9, horizon=0.02, lrs=(2.5e-5, 5e-5, 1e-4), n_samples=512),
}


def memory_ages(x: float, n: int) -> float:
    """x/(1−x) − (n+1)x^{n+1}/(1−x^{n+1}): the mean age of an EMA's memory at step n.

    MEM Lemma K.2's A_n (x = γ) and B_n (x = β); docs/theory.md (8.4). 0 at n = 0.
    """
    power = x ** (n + 1)
    return x / (1.0 - x) - (n + 1) * power / (1.0 - power)


class SoftmaxRegression:
    """Mean cross-entropy of a linear softmax classifier, vectorized over P parameter rows.

    θ (P, D) holds W (F, K) row-major then b (K,): logits z = xW + b. Gradient
    Xᵀ(S − Y)/N; Hessian-vector product Xᵀ(S ⊙ δz − S ⊙ ⟨S, δz⟩)/N with δz = x V_W + v_b.
    """

    def __init__(self, x: np.ndarray, labels: np.ndarray, n_classes: int):
        self.x = x  # (N, F)
        self.onehot = np.eye(n_classes)[labels]  # (N, K)
        self.f, self.k = x.shape[1], n_classes

    @property
    def dim(self) -> int:
        return self.f * self.k + self.k

    def _split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = theta[:, : self.f * self.k].reshape(-1, self.f, self.k)  # (P, F, K)
        return w, theta[:, self.f * self.k :]  # (P, K)

    def _join(self, dw: np.ndarray, db: np.ndarray) -> np.ndarray:
        return np.concatenate([dw.reshape(len(dw), -1), db], axis=1)

    def probabilities(self, theta: np.ndarray) -> np.ndarray:
        """(P, N, K) softmax of the logits."""
        w, b = self._split(theta)
        z = np.matmul(self.x, w) + b[:, None, :]  # (P, N, K)
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def loss(self, theta: np.ndarray) -> np.ndarray:
        """(P,) mean cross-entropy."""
        s = self.probabilities(theta)
        return -np.mean(np.log(np.sum(s * self.onehot, axis=-1)), axis=-1)

    def gradient(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, D) gradient, and the (P, N, K) probabilities for :meth:`hvp`."""
        s = self.probabilities(theta)
        r = (s - self.onehot) / len(self.x)  # (P, N, K)
        return self._join(np.matmul(self.x.T, r), r.sum(axis=1)), s

    def hvp(self, probabilities: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(P, D) H v at the point whose probabilities are given."""
        s = probabilities
        vw, vb = self._split(v)
        dz = np.matmul(self.x, vw) + vb[:, None, :]  # (P, N, K)
        ds = (s * dz - s * np.sum(s * dz, axis=-1, keepdims=True)) / len(self.x)
        return self._join(np.matmul(self.x.T, ds), ds.sum(axis=1))


@dataclass(frozen=True)
class MemSettings:
    """The constants of MEM Example 1.3's AdamW."""

    beta: float  # β = MEM's β2 = torch beta2
    gamma: float  # γ = MEM's β1 = torch beta1
    eps: float  # ε, inside the root
    weight_decay: float  # λ, decoupled


def adamw_direction(
    s: MemSettings,
    m: np.ndarray,  # (P, D) m_n = γ m_{n−1} + (1−γ) g_n
    v: np.ndarray,  # (P, D) v_n = β v_{n−1} + (1−β) g_n²
    n: int,
    theta: np.ndarray,  # (P, D) θ_n
) -> np.ndarray:
    """F^{(n)} of MEM Example 1.3: m̂_n / sqrt(v̂_n + ε) + λθ_n, with the bias corrections."""
    m_hat = m / (1.0 - s.gamma ** (n + 1))
    v_hat = v / (1.0 - s.beta ** (n + 1))
    return m_hat / np.sqrt(v_hat + s.eps) + s.weight_decay * theta


def memoryless_direction(
    s: MemSettings, problem: SoftmaxRegression, theta: np.ndarray, n: int, h: np.ndarray | float
) -> np.ndarray:
    """F^{(n)}(θ) + M^{(n)}(θ) of MEM Lemma K.2 (module docstring); θ (P, D), h (P, 1) or scalar."""
    g, probabilities = problem.gradient(theta)
    root = np.sqrt(g * g + s.eps)
    soft_sign = g / root
    b_n = memory_ages(s.beta, n)
    coeff = memory_ages(s.gamma, n) - b_n + s.eps * b_n / (g * g + s.eps)
    push = problem.hvp(probabilities, soft_sign + s.weight_decay * theta)  # H(g/√(g²+ε) + λθ)
    return soft_sign + s.weight_decay * theta + h * coeff * push / root


def first_order_direction(
    s: MemSettings, problem: SoftmaxRegression, theta: np.ndarray
) -> np.ndarray:
    """The first-order approximation's F(θ) = g/sqrt(g² + ε) + λθ: soft-sign descent."""
    g, _ = problem.gradient(theta)
    return g / np.sqrt(g * g + s.eps) + s.weight_decay * theta


def synthetic_problem(n_samples: int = 4096, seed: int = 0) -> tuple[SoftmaxRegression, np.ndarray]:
    """``mlp-synthetic``'s generated training split as a softmax regression, and θ_0 (D,).

    ``n_samples`` examples are generated (the preset's 4096 by default), the first
    ``train_fraction`` train. θ_0: W ~ N(0, 1/F) as the MLP's first layer, b = 0.
    """
    from stabcli.probe import load_preset
    from stabcli.probe.corpus import synthetic_classes

    data = load_preset("mlp-synthetic").data
    x, y = synthetic_classes(data.corpus_seed, n_samples, data.n_features, data.n_classes)
    n_train = int(data.train_fraction * len(x))
    problem = SoftmaxRegression(x[:n_train], y[:n_train], data.n_classes)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=problem.f * problem.k) / math.sqrt(problem.f)
    return problem, np.concatenate([w, np.zeros(problem.k)])


def memoryless_figure(
    scale: str = "cpu", *, eps: float = 1e-6, weight_decay: float = 0.1, seed: int = 0
) -> MemorylessFigure:
    """Adam, its memoryless iteration and sign descent for each h of the scale (module doc)."""
    plan = plan_for(_FIGURE1, scale, "the memory paper's Figure 1")
    problem, theta0 = synthetic_problem(plan.n_samples, seed)
    beta, gamma, lam = plan.beta, plan.gamma, weight_decay
    settings = MemSettings(beta, gamma, eps, lam)
    lrs = np.array(plan.lrs)
    h = lrs[:, None]  # (H, 1)
    counts = np.array([round(plan.horizon / lr) for lr in plan.lrs])  # (H,) N_h
    started = time.perf_counter()
    adam = np.tile(theta0, (len(lrs), 1))  # (H, D): one run per h
    free = adam.copy()  # θ̃: memoryless
    first = adam.copy()  # θ̂: first order
    m, v = np.zeros_like(adam), np.zeros_like(adam)
    d_free = np.zeros((len(lrs), counts.max() + 1))
    d_first = np.zeros_like(d_free)
    for n in range(int(counts.max())):
        live = (n < counts)[:, None]  # runs past their N_h stop
        g, _ = problem.gradient(adam)
        m = gamma * m + (1.0 - gamma) * g
        v = beta * v + (1.0 - beta) * g * g
        step = h * adamw_direction(settings, m, v, n, adam)
        adam = np.where(live, adam - step, adam)
        step = h * memoryless_direction(settings, problem, free, n, h)
        free = np.where(live, free - step, free)
        step = h * first_order_direction(settings, problem, first)
        first = np.where(live, first - step, first)
        d_free[:, n + 1] = np.abs(adam - free).max(axis=1)
        d_first[:, n + 1] = np.abs(adam - first).max(axis=1)
    seconds = time.perf_counter() - started

    steps = tuple(np.arange(c + 1) for c in counts)
    free_runs = tuple(d_free[i, : c + 1] for i, c in enumerate(counts))
    first_runs = tuple(d_first[i, : c + 1] for i, c in enumerate(counts))
    log_h = np.log(lrs)
    figure = MemorylessFigure(
        problem=(
            f"softmax regression on mlp-synthetic's data ({len(problem.x)} examples, "
            f"{problem.dim} parameters), full batch, float64"
        ),
        beta=beta,
        gamma=gamma,
        eps=eps,
        weight_decay=lam,
        horizon=plan.horizon,
        lrs=lrs,
        steps=steps,
        memoryless=free_runs,
        first_order=first_runs,
        order=float(np.polyfit(log_h, np.log([d.max() for d in free_runs]), 1)[0]),
        first_order_order=float(np.polyfit(log_h, np.log([d.max() for d in first_runs]), 1)[0]),
        seconds=seconds,
        assessment=Assessment(FIGURE1_CLAIM, "", None),
    )
    return _assessed_figure1(figure)


def _assessed_figure1(fig: MemorylessFigure) -> MemorylessFigure:
    import dataclasses

    closer = fig.max_memoryless < fig.max_first_order
    ratios = ", ".join(
        f"h = {h:g}: {a:.2e} vs {b:.2e}"
        for h, a, b in zip(fig.lrs, fig.max_memoryless, fig.max_first_order, strict=True)
    )
    measured = (
        f"{fig.problem}; (β, γ) = ({fig.beta}, {fig.gamma}), ε = {fig.eps:g}, λ = "
        f"{fig.weight_decay:g}, T = {fig.horizon:g}. Max ℓ∞ distance to Adam, memoryless vs "
        f"first order: {ratios}. Log-log slope in h: {fig.order:.2f} (theorem: "
        f"{THEOREM_ORDER:.0f}, tolerance ±{ORDER_TOLERANCE}); first order: "
        f"{fig.first_order_order:.2f} (expected {FIRST_ORDER:.0f})."
    )
    held = bool(abs(fig.order - THEOREM_ORDER) <= ORDER_TOLERANCE and closer.all())
    return dataclasses.replace(fig, assessment=Assessment(FIGURE1_CLAIM, measured, held))


# ---------------------------------------------------------------------------------------
# Figure 2
# ---------------------------------------------------------------------------------------

#: The trend holds when Spearman's ρ between K and test accuracy over the β sweep is at
#: most −RANK_THRESHOLD; it fails when ρ >= 0; in between the run is undetermined.
RANK_THRESHOLD = 0.5
#: Fewest β-sweep points that must reach the training-loss threshold for a verdict.
MIN_REACHED = 4

FIGURE2_CLAIM = (
    "MEM §4-5 and Figure 2a: with γ (torch beta1) fixed at 0.99, full-batch Adam's test "
    "accuracy at a fixed training-loss threshold drops as β (torch beta2) approaches 1, i.e. "
    "as the memory coefficient K = β/(1−β) − γ/(1−γ), the strength of the implicit "
    "anti-penalty on ‖∇L‖₁, grows."
)


@dataclass(frozen=True)
class GeneralizationFigure:
    """MEM Figure 2a's data in shape: test accuracy at a training-loss threshold against K."""

    preset: str
    n_train: int
    n_test: int
    lr: float  # h
    weight_decay: float  # λ, decoupled (AdamW)
    eps: float  # ε, torch placement
    threshold: float  # training loss at which test accuracy is read
    seeds: tuple[int, ...]  # (R,) initial weights
    betas: np.ndarray  # (Q,) β = torch beta2
    gammas: np.ndarray  # (Q,) γ = torch beta1
    sweep: tuple[str, ...]  # (Q,) "beta" (at fixed γ) or "gamma" (at fixed β)
    memory_coefficient: np.ndarray  # (Q,) K = β/(1−β) − γ/(1−γ)
    exact_stable: np.ndarray  # (Q,) γ² < β (docs/theory.md (3.5))
    accuracy: np.ndarray  # (Q, R) test accuracy once the loss fell below threshold; nan: never
    steps_to_threshold: np.ndarray  # (Q, R) that step; −1: never within max_steps
    max_steps: int
    rank_correlation: float  # Spearman's ρ(K, mean accuracy) over the β sweep
    rank_correlation_all: float  # the same over every point
    rank_correlation_stable: float  # over the β sweep's exactly stable points (γ² < β)
    seconds: float
    assessment: Assessment

    @property
    def mean_accuracy(self) -> np.ndarray:
        """(Q,) accuracy averaged over the seeds that reached the threshold (nan: none did)."""
        return _seed_mean(self.accuracy)


def _seed_mean(accuracy: np.ndarray) -> np.ndarray:
    """(Q, R) -> (Q,) mean over the finite entries of each row; nan for a row with none."""
    return np.array([np.nan if np.isnan(a).all() else float(np.nanmean(a)) for a in accuracy])


@dataclass(frozen=True)
class _Figure2Plan:
    overrides: dict[str, object]  # of mlp-synthetic: the data set
    lr: float
    threshold: float
    max_steps: int
    seeds: tuple[int, ...]
    beta_sweep: tuple[float, ...]  # at γ = fixed_gamma
    fixed_gamma: float
    gamma_sweep: tuple[float, ...]  # at β = fixed_beta
    fixed_beta: float


_FIGURE2: dict[Scale, _Figure2Plan] = {
    "cpu": _Figure2Plan(
        overrides={"n_samples": 4096, "train_fraction": 0.125},  # 512 train, 3584 test
        lr=10**-3.5,  # MEM Figure 2a
        threshold=0.05,  # MEM Figure 2a
        max_steps=6000,
        seeds=(0, 1),
        beta_sweep=(0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995),
        fixed_gamma=0.99,  # MEM Figure 2a
        gamma_sweep=(0.5, 0.8, 0.9, 0.95),
        fixed_beta=0.99,
    ),
    "test": _Figure2Plan(
        overrides={"n_samples": 1024, "train_fraction": 0.25},  # 256 train, 768 test
        lr=3e-3,
        threshold=0.3,
        max_steps=1500,
        seeds=(0,),
        beta_sweep=(0.95, 0.99, 0.999, 0.9999),
        fixed_gamma=0.9,
        gamma_sweep=(0.5,),
        fixed_beta=0.99,
    ),
}


def generalization_figure(
    scale: str = "cpu", *, weight_decay: float = 0.005, eps: float = 1e-6
) -> GeneralizationFigure:
    """Train every (β, γ, seed) at once to the loss threshold and read test accuracy there."""
    import torch

    from stabcli.reproduce.trajectory import flat_model

    plan = plan_for(_FIGURE2, scale, "the memory paper's Figure 2")
    points = [(b, plan.fixed_gamma, "beta") for b in plan.beta_sweep]
    points += [(plan.fixed_beta, g, "gamma") for g in plan.gamma_sweep]
    models = [flat_model("mlp-synthetic", seed=s, **plan.overrides) for s in plan.seeds]
    model = models[0]
    x, y = model.split("train")
    x_test, y_test = model.split("test")
    # (Q·R, N): points, then seeds within a point; every row trains independently
    theta = torch.stack([mm.theta0 for _ in points for mm in models])
    betas = torch.tensor([p[0] for p in points for _ in models], dtype=torch.float64)[:, None]
    gammas = torch.tensor([p[1] for p in points for _ in models], dtype=torch.float64)[:, None]
    started = time.perf_counter()
    acc, reached = _train_to_threshold(
        model, theta, betas, gammas, plan, weight_decay, eps, (x, y), (x_test, y_test)
    )
    seconds = time.perf_counter() - started

    q, r = len(points), len(models)
    beta_arr = np.array([p[0] for p in points])
    gamma_arr = np.array([p[1] for p in points])
    k = np.array([memory_coefficient(b, g) for b, g in zip(beta_arr, gamma_arr, strict=True)])
    accuracy = acc.reshape(q, r)
    mean = _seed_mean(accuracy)
    in_beta = np.array([p[2] == "beta" for p in points])
    stable = np.array([exact_stable(b, g) for b, g in zip(beta_arr, gamma_arr, strict=True)])
    figure = GeneralizationFigure(
        preset=model.preset.name,
        n_train=len(x),
        n_test=len(x_test),
        lr=plan.lr,
        weight_decay=weight_decay,
        eps=eps,
        threshold=plan.threshold,
        seeds=plan.seeds,
        betas=beta_arr,
        gammas=gamma_arr,
        sweep=tuple(p[2] for p in points),
        memory_coefficient=k,
        exact_stable=stable,
        accuracy=accuracy,
        steps_to_threshold=reached.reshape(q, r),
        max_steps=plan.max_steps,
        rank_correlation=spearman(k[in_beta], mean[in_beta]),
        rank_correlation_all=spearman(k, mean),
        rank_correlation_stable=spearman(k[in_beta & stable], mean[in_beta & stable]),
        seconds=seconds,
        assessment=Assessment(FIGURE2_CLAIM, "", None),
    )
    return _assessed_figure2(figure)


def _train_to_threshold(
    model: FlatModel,
    theta: torch.Tensor,  # (P, N)
    betas: torch.Tensor,  # (P, 1)
    gammas: torch.Tensor,  # (P, 1)
    plan: _Figure2Plan,
    weight_decay: float,
    eps: float,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch AdamW on every row until its training loss is below the threshold.

    torch.optim.AdamW's update, per row: θ ← (1 − hλ)θ − h m̂/(sqrt(v̂) + ε). Returns (P,)
    test accuracy at the first step n whose θ_n has loss < threshold (nan: never), and n.
    """
    import torch

    lr = plan.lr
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    acc = np.full(len(theta), np.nan)
    reached = np.full(len(theta), -1)
    for n in range(plan.max_steps):
        leaf = theta.detach().requires_grad_(True)
        loss = model.loss(leaf, *train)  # (P,)
        hit = (loss.detach().numpy() < plan.threshold) & (reached < 0)
        if hit.any():
            with torch.no_grad():
                acc[hit] = model.accuracy(theta, *test).numpy()[hit]
            reached[hit] = n
        if (reached >= 0).all():
            break
        (g,) = torch.autograd.grad(loss.sum(), leaf)
        theta, m, v = adamw_rows(theta, m, v, g, n, betas, gammas, lr, weight_decay, eps)
    return acc, reached


def adamw_rows(
    theta: torch.Tensor,  # (P, N) θ_n, one row per point
    m: torch.Tensor,  # (P, N) m_{n−1}
    v: torch.Tensor,  # (P, N) v_{n−1}
    g: torch.Tensor,  # (P, N) g_n
    n: int,
    betas: torch.Tensor,  # (P, 1) β = torch beta2
    gammas: torch.Tensor,  # (P, 1) γ = torch beta1
    lr: float,
    weight_decay: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of torch.optim.AdamW on every row: (θ_{n+1}, m_n, v_n).

    θ ← (1 − hλ)θ − h m̂_n/(sqrt(v̂_n) + ε), m̂_n = m_n/(1 − γ^{n+1}), v̂_n = v_n/(1 − β^{n+1}).
    """
    m = gammas * m + (1.0 - gammas) * g
    v = betas * v + (1.0 - betas) * g * g
    m_hat = m / (1.0 - gammas ** (n + 1))
    v_hat = v / (1.0 - betas ** (n + 1))
    theta = theta * (1.0 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps)
    return theta, m, v


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of the finite pairs (ties get their average rank)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return math.nan
    ra, rb = _ranks(a[keep]), _ranks(b[keep])
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0 .. n−1 of x, ties sharing the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    _, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def _assessed_figure2(fig: GeneralizationFigure) -> GeneralizationFigure:
    import dataclasses

    in_beta = np.array([s == "beta" for s in fig.sweep])
    mean = fig.mean_accuracy
    reached = int(np.isfinite(mean[in_beta]).sum())
    rho = fig.rank_correlation
    rows = ", ".join(
        f"β = {b:g}: K = {k:.4g}, {100 * a:.1f}%"
        for b, k, a in zip(
            fig.betas[in_beta], fig.memory_coefficient[in_beta], mean[in_beta], strict=True
        )
    )
    unstable = ", ".join(
        f"{b:g}"
        for b, ok in zip(fig.betas[in_beta], fig.exact_stable[in_beta], strict=True)
        if not ok
    )
    measured = (
        f"{fig.preset} MLP, {fig.n_train} training / {fig.n_test} test examples, full-batch "
        f"AdamW h = {fig.lr:.3g}, λ = {fig.weight_decay:g}, ε = {fig.eps:g}, accuracy at "
        f"training loss < {fig.threshold:g}, mean of {len(fig.seeds)} seed(s); γ = "
        f"{fig.gammas[in_beta][0]:g}: {rows}. Spearman ρ(K, accuracy) = {rho:.2f} over the β "
        f"sweep (holds at ρ ≤ −{RANK_THRESHOLD}, fails at ρ ≥ 0), "
        f"{fig.rank_correlation_all:.2f} over all {len(fig.betas)} points"
        + (
            f"; exactly unstable (γ² > β) at β = {unstable}, and ρ = "
            f"{fig.rank_correlation_stable:.2f} over the stable rest of the sweep"
            if unstable
            else ""
        )
        + "."
    )
    if reached < MIN_REACHED or not math.isfinite(rho):
        held: bool | None = None
    elif rho <= -RANK_THRESHOLD:
        held = True
    elif rho >= 0:
        held = False
    else:
        held = None
    return dataclasses.replace(fig, assessment=Assessment(FIGURE2_CLAIM, measured, held))
