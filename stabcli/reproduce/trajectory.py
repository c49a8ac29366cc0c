"""The paper's Figure 9 (App. I, App. K): discrete Adam beside the continuous-time trajectory.

arXiv 2411.05746, Section 2 and App. K: solving eq. (4) by App. I's method "closely agrees
with the true discrete-time trajectory". The paper trains nanoGPT for 100 iterations at
(β, γ) = (0.999, 0.9), η = 10⁻³, K = 100, p = 1, and plots 16 random parameters (Figure 9a)
and ‖W‖² of 16 query/key matrices (Figure 9b). Here the model is a preset's (by default the
``mlp-synthetic`` GELU MLP, seconds on a CPU): discrete Adam (``torch.optim.Adam``, or
``AdamW`` under decoupled weight decay) and :func:`stabcli.theory.ode.solve_adam_ode` see
the same gradients, the batch of discrete step n on the grid steps of [t_n, t_{n+1})
(docs/theory.md §11). Everything runs in float64.

Norm trajectories: for each weight matrix W (the MLP's weights; a GPT's per-layer query and
key blocks of ``c_attn``), ‖W_n‖² of discrete Adam, ‖W(t_n)‖² of the ODE, and App. J's
eq. (12) evaluated on the ODE's grid as App. I writes it,

    φ(jΔt) ≈ φ_0 e^{−2λjΔt} + Δt Σ_{i<j} e^{−2λ(j−i)Δt} f(iΔt),  f = η‖u_W‖² − 2⟨W, u_W⟩,

which neglects φ̈ and replaces ‖Ẇ‖² by ‖u_W‖² (App. J; it does not need scale invariance).

The claim is assessed on the whole parameter vector: d_n = ‖θ(t_n) − θ_n‖∞ against the
displacement D_n = ‖θ_n − θ_0‖∞; it holds when d_S ≤ 10% of D_S at the last step.
The model helper :class:`FlatModel` (a preset's model as a float64 function of a flat
parameter buffer) is shared with :mod:`stabcli.reproduce.memory_paper`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from stabcli.reproduce.assessment import Assessment, Scale, plan_for
from stabcli.theory.ode import OdeSettings, solve_adam_ode

if TYPE_CHECKING:
    import torch

    from stabcli.probe.backend import ModelBackend, ParamSpec
    from stabcli.probe.config import Preset
    from stabcli.probe.data import BatchStream, Dataset

#: The claim is held when the ODE's distance to discrete Adam at the last step is at most
#: this fraction of how far discrete Adam moved the parameters (both in ‖·‖∞).
RELATIVE_TOLERANCE = 0.10

CLAIM = (
    "Section 2 and App. K (Figure 9): the continuous-time trajectory of eq. (4) with p = 1, "
    "solved by App. I's method, closely agrees with the true discrete-time trajectory."
)


@dataclass(frozen=True)
class FlatModel:
    """A preset's model as a float64 function of a flat (P, N) parameter buffer.

    P points share the model's data; N is the number of parameters (the probe engine's
    flat layout, :mod:`stabcli.probe.backend`). Dropout is off: gradients are deterministic.
    """

    preset: Preset
    data: Dataset
    backend: ModelBackend
    stream: BatchStream  # the preset's mini-batch n for every n < preset.train.steps
    theta0: torch.Tensor = field(repr=False)  # (N,) the preset's initial weights

    @property
    def specs(self) -> list[ParamSpec]:
        return self.backend.specs

    @property
    def n_params(self) -> int:
        return int(self.theta0.numel())

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(P, N) parameters -> (P,) mean loss on the batch (x, y)."""
        from stabcli.probe.backend import SharedDropout, unflatten

        return self.backend.loss(unflatten(flat, self.specs), x, y, SharedDropout(0.0, None))

    def gradient(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(P, N) parameters -> (P, N) gradient of each point's loss (points are independent)."""
        import torch

        leaf = flat.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(self.loss(leaf, x, y).sum(), leaf)
        return g

    def accuracy(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(P, N) parameters -> (P,) fraction of correct labels (classification presets)."""
        from stabcli.probe.backend import unflatten

        if self.backend.accuracy is None:
            raise ValueError(f"preset {self.preset.name} has no accuracy (not a classifier)")
        return self.backend.accuracy(unflatten(flat, self.specs), x, y)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole "train" or "test" split as tensors (classification presets)."""
        import torch

        if name == "train":
            xs, ys = self.data.train_x, self.data.train_y
        else:
            xs, ys = self.data.test_x, self.data.test_y
        if ys is None:
            raise ValueError(f"preset {self.preset.name} has no labelled {name} split")
        return torch.as_tensor(xs, dtype=torch.float64), torch.as_tensor(ys)

    def coordinate_names(self, indices: np.ndarray) -> tuple[str, ...]:
        """Readable names of flat coordinates: ``fc.0.weight[3, 7]``."""
        offsets = np.cumsum([0] + [s.numel for s in self.specs])
        names = []
        for i in indices:
            k = int(np.searchsorted(offsets, i, side="right")) - 1
            spec = self.specs[k]
            where = np.unravel_index(int(i) - int(offsets[k]), spec.shape)
            names.append(f"{spec.name}[{', '.join(str(int(w)) for w in where)}]")
        return tuple(names)

    def matrices(self) -> dict[str, np.ndarray]:
        """Flat indices of each weight matrix: a GPT's per-layer query and key blocks of
        ``c_attn`` (the paper's Figure 9b), otherwise every 2-D weight."""
        out: dict[str, np.ndarray] = {}
        offset = 0
        for spec in self.specs:
            idx = offset + np.arange(spec.numel).reshape(spec.shape)
            offset += spec.numel
            if len(spec.shape) != 2 or not spec.name.endswith("weight"):
                continue
            if spec.name.endswith("attn.c_attn.weight"):  # (C, 3C): query, key, value columns
                c = spec.shape[0]
                layer = spec.name.removesuffix(".c_attn.weight")
                out[f"{layer}.query"] = idx[:, :c].ravel()
                out[f"{layer}.key"] = idx[:, c : 2 * c].ravel()
            elif self.preset.model.kind != "gpt":
                out[spec.name] = idx.ravel()
        return out


def flat_model(preset: str | Preset = "mlp-synthetic", **overrides: object) -> FlatModel:
    """Build a :class:`FlatModel` of a shipped preset (or a Preset), with overrides."""
    import torch

    from stabcli.probe import load_preset
    from stabcli.probe.backend import build_model
    from stabcli.probe.data import BatchStream, load_dataset

    loaded = load_preset(preset) if isinstance(preset, str) else preset
    if overrides:
        loaded = loaded.with_overrides(**overrides)
    data = load_dataset(loaded)
    backend = build_model(loaded, data)
    stream = BatchStream(data, loaded, torch.device("cpu"), torch.float64)
    theta0 = backend.initial().to(torch.float64)
    return FlatModel(loaded, data, backend, stream, theta0)


@dataclass(frozen=True)
class TrajectoryFigure:
    """Figure 9's data: discrete Adam and the ODE at t_n = nη, n = 0 .. S."""

    preset: str
    beta: float  # β = torch beta2
    gamma: float  # γ = torch beta1
    lr: float
    substeps: int  # K
    weight_decay: float
    full_batch: bool  # False: the preset's mini-batch n at step n (and on [t_n, t_{n+1}))
    steps: np.ndarray  # (S+1,) n
    names: tuple[str, ...]  # (Q,) the chosen parameters
    discrete: np.ndarray  # (S+1, Q): steps, chosen parameters; θ_n of discrete Adam
    continuous: np.ndarray  # (S+1, Q): θ(t_n) of eq. (4)
    matrices: tuple[str, ...]  # (M,)
    discrete_norms: np.ndarray  # (S+1, M): ‖W_n‖²
    continuous_norms: np.ndarray  # (S+1, M): ‖W(t_n)‖² of the ODE
    predicted_norms: np.ndarray  # (S+1, M): eq. (12) on the ODE's grid
    distance: np.ndarray  # (S+1,) ‖θ(t_n) − θ_n‖∞ over all parameters
    displacement: np.ndarray  # (S+1,) ‖θ_n − θ_0‖∞ over all parameters
    seconds_discrete: float
    seconds_continuous: float
    assessment: Assessment

    @property
    def relative_distance(self) -> float:
        """d_S / D_S at the last step (the assessed number)."""
        return float(self.distance[-1] / self.displacement[-1])

    @property
    def norm_error(self) -> float:
        """Largest |eq. (12) − ‖W(t_n)‖²| / ‖W(t_n)‖² over matrices and n (the ODE's own)."""
        rel = np.abs(self.predicted_norms - self.continuous_norms) / self.continuous_norms
        return float(rel.max())


@dataclass(frozen=True)
class _Plan:
    steps: int
    substeps: int
    n_params: int


_PLANS: dict[Scale, _Plan] = {
    "cpu": _Plan(steps=100, substeps=100, n_params=16),  # App. K: 100 iterations, K = 100, 16
    "test": _Plan(steps=20, substeps=100, n_params=8),
    # App. K's sizes, as "cpu"; the paper's model is the caller's preset (nanogpt-shakespeare)
    "paper": _Plan(steps=100, substeps=100, n_params=16),
}


def trajectory_figure(
    scale: str = "cpu",
    *,
    preset: str | Preset = "mlp-synthetic",
    beta: float = 0.999,  # App. K's point (β, γ) = (0.999, 0.9): torch betas (0.9, 0.999)
    gamma: float = 0.9,
    lr: float | None = None,  # None: the preset's (mlp-synthetic: 10⁻³, App. K's η)
    full_batch: bool = False,
    seed: int = 0,  # which parameters are shown
) -> TrajectoryFigure:
    """Run discrete Adam and eq. (4) side by side (module docstring) and assess App. K."""
    import torch

    plan = plan_for(_PLANS, scale, "Figure 9's trajectory")
    model = flat_model(preset, steps=max(plan.steps, 1))
    train = model.preset.train
    wd = train.weight_decay if train.weight_decay_mode != "none" else 0.0
    settings = OdeSettings(
        beta=beta,
        gamma=gamma,
        lr=train.lr if lr is None else lr,
        substeps=plan.substeps,
        weight_decay=wd,
        decoupled=train.weight_decay_mode != "coupled",
        eps=train.eps,
    )
    shown = np.sort(np.random.default_rng(seed).choice(model.n_params, plan.n_params, False))
    matrices = model.matrices()
    full = model.split("train") if full_batch else None

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return full if full is not None else model.stream.train_batch(n)

    started = time.perf_counter()
    discrete = _discrete_adam(model, settings, plan.steps, batch)  # (S+1, N)
    seconds_discrete = time.perf_counter() - started

    def grad(theta: np.ndarray, n: int) -> np.ndarray:
        flat = torch.from_numpy(theta)[None]
        return model.gradient(flat, *batch(n))[0].numpy()

    norms = _NormCheck(settings, matrices, model.theta0.numpy())
    started = time.perf_counter()
    solution = solve_adam_ode(
        grad, model.theta0.numpy(), settings, plan.steps, on_substep=norms.add
    )
    seconds_continuous = time.perf_counter() - started
    continuous = solution.observed  # (S+1, N)

    distance = np.abs(continuous - discrete).max(axis=1)
    displacement = np.abs(discrete - discrete[0]).max(axis=1)
    names = tuple(matrices)
    figure = TrajectoryFigure(
        preset=model.preset.name,
        beta=beta,
        gamma=gamma,
        lr=settings.lr,
        substeps=settings.substeps,
        weight_decay=wd,
        full_batch=full_batch,
        steps=np.arange(plan.steps + 1),
        names=model.coordinate_names(shown),
        discrete=discrete[:, shown],
        continuous=continuous[:, shown],
        matrices=names,
        discrete_norms=_squared_norms(discrete, matrices),
        continuous_norms=_squared_norms(continuous, matrices),
        predicted_norms=norms.predicted(),
        distance=distance,
        displacement=displacement,
        seconds_discrete=seconds_discrete,
        seconds_continuous=seconds_continuous,
        assessment=Assessment(CLAIM, "", None),
    )
    return _assessed(figure)


def _assessed(fig: TrajectoryFigure) -> TrajectoryFigure:
    import dataclasses

    rel = fig.relative_distance
    worst = int(np.argmax(fig.distance))
    measured = (
        f"{fig.preset}, (β, γ) = ({fig.beta}, {fig.gamma}), η = {fig.lr:g}, K = {fig.substeps}, "
        f"{len(fig.steps) - 1} steps: ‖θ(t_n) − θ_n‖∞ peaks at {fig.distance[worst]:.3g} "
        f"({fig.distance[worst] / fig.lr:.2f} η) at n = {worst}; at n = {len(fig.steps) - 1} "
        f"it is {100 * rel:.2f}% of the displacement ‖θ_n − θ_0‖∞ = {fig.displacement[-1]:.3g} "
        f"(tolerance {100 * RELATIVE_TOLERANCE:.0f}%); eq. (12) is within "
        f"{100 * fig.norm_error:.2f}% of the ODE's ‖W‖²"
    )
    held = bool(rel <= RELATIVE_TOLERANCE) if math.isfinite(rel) else None
    return dataclasses.replace(fig, assessment=Assessment(CLAIM, measured, held))


def _discrete_adam(
    model: FlatModel,
    settings: OdeSettings,
    steps: int,
    batch: object,
) -> np.ndarray:
    """(S+1, N) θ_n of torch.optim.Adam (AdamW under decoupled decay) on the same batches."""
    import torch

    param = torch.nn.Parameter(model.theta0.clone())
    kind = torch.optim.AdamW if settings.decoupled else torch.optim.Adam
    opt = kind(
        [param],
        lr=settings.lr,
        betas=(settings.gamma, settings.beta),  # torch order: (beta1, beta2) = (γ, β)
        eps=settings.eps,
        weight_decay=settings.weight_decay,
    )
    out = [model.theta0.numpy().copy()]
    for n in range(steps):
        x, y = batch(n)  # type: ignore[operator]
        param.grad = model.gradient(param.detach()[None], x, y)[0]
        opt.step()
        out.append(param.detach().numpy().copy())
    return np.stack(out)


def _squared_norms(theta: np.ndarray, matrices: dict[str, np.ndarray]) -> np.ndarray:
    """(S+1, N) trajectories -> (S+1, M) ‖W‖² per matrix."""
    cols = [np.square(theta[:, idx]).sum(axis=1) for idx in matrices.values()]
    return np.stack(cols, axis=1) if cols else np.zeros((theta.shape[0], 0))


class _NormCheck:
    """Eq. (12) on the ODE grid, accumulated as S_{j+1} = e^{−2λΔt}(S_j + Δt f_j)."""

    def __init__(self, settings: OdeSettings, matrices: dict[str, np.ndarray], theta0: np.ndarray):
        self.settings = settings
        self.matrices = list(matrices.values())
        self.phi0 = np.array([np.square(theta0[idx]).sum() for idx in self.matrices])  # (M,)
        self.sums = np.zeros(len(self.matrices))  # (M,)
        self.rows = [self.phi0.copy()]

    def add(self, j: int, theta: np.ndarray, u: np.ndarray) -> None:
        s = self.settings
        dt, lam = s.dt, s.weight_decay if s.decoupled else 0.0
        f = np.array(
            [s.lr * np.dot(u[i], u[i]) - 2.0 * np.dot(theta[i], u[i]) for i in self.matrices]
        )
        self.sums = math.exp(-2.0 * lam * dt) * (self.sums + dt * f)
        if (j + 1) % s.substeps == 0:
            t = (j + 1) * dt
            self.rows.append(self.phi0 * math.exp(-2.0 * lam * t) + self.sums)

    def predicted(self) -> np.ndarray:
        return np.stack(self.rows)
