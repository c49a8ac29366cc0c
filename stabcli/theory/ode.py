"""The paper's continuous-time trajectory of Adam/AdamW: eq. (4) solved by App. I's method.

arXiv 2411.05746 eq. (4) (docs/theory.md (11.1)), with ψ := θ̇ (App. I; docs/theory.md (11.2)):

    θ̇ = ψ,
    ψ̇ = −(2/η^{2p}) · (λη θ + η^p ψ + η u(t)),
    u(t) = corr(t) · m(t) / (sqrt(v(t)) + ε),   corr(t) = sqrt(1 − β^{1+t/η^p}) / (1 − γ^{1+t/η^p}),

where m and v are the kernel integrals of eq. (2)-(3) (docs/theory.md (2.1)) of the gradient
g(τ) = ∇L(θ(τ)) with decay rates a_α = (1 − α)/(η^p α).

App. I's scheme (docs/theory.md (11.3)-(11.4)): forward Euler on the grid t_j = jΔt,
Δt = η^p/K (the paper: p = 1, K = 100), state (θ_j, ψ_j, m_j, v_j) from θ_0, ψ_0 = 0,
m_0 = v_0 = 0; for j = 0, 1, 2, …

1. g_j = ∇L(θ_j) (+ λθ_j under coupled weight decay);
2. u_j = corr(t_j) m_j/(sqrt(v_j) + ε) (0 where v_j = 0 and ε = 0: no input yet);
3. ψ̇_j = −(2/η^{2p})(λη θ_j [decoupled only] + η^p ψ_j + η u_j);
4. θ_{j+1} = θ_j + Δt ψ_j,   ψ_{j+1} = ψ_j + Δt ψ̇_j;
5. m_{j+1} = e^{−a_γΔt}(m_j + Δt a_γ g_j),   v_{j+1} = e^{−a_βΔt}(v_j + Δt a_β g_j²)
   (App. I's one-interval recursion for the kernel integrals: the integral over the last
   interval by its left end point).

The scheme is first order in Δt: steps 4 and 5 each make an O(Δt²) error per grid step.
θ(t_n) = θ_{nK} is the point to compare with the discrete θ_n. With mini-batches, the grid
steps of the interval [t_n, t_{n+1}) use the batch of discrete step n (docs/theory.md
(11.3), "Cost and data"), which is why the gradient field receives n.

Pure numpy (imported inside the functions, as the rest of ``stabcli.theory``): the
gradient field is any callable on numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stabcli.theory.update import bias_correction

if TYPE_CHECKING:
    import numpy as np

#: ∇L at (θ, n): θ (N,) float64, n the discrete step whose interval holds the grid time
#: (the mini-batch index); returns g (N,).
GradientField = Callable[["np.ndarray", int], "np.ndarray"]
#: What is recorded of θ at each t_n (default: a copy of θ); any array of fixed shape.
Observer = Callable[["np.ndarray"], Any]
#: Called at every grid step with (j, θ_j, u_j) before the Euler step (e.g. to accumulate
#: the norm check of App. I, eq. (12), on the fine grid).
SubstepHook = Callable[[int, "np.ndarray", "np.ndarray"], None]


@dataclass(frozen=True)
class OdeSettings:
    """The constants of eq. (4) and of App. I's grid."""

    beta: float  # β: decay of v (torch beta2), in (0, 1)
    gamma: float  # γ: decay of m (torch beta1), in (0, 1): a_γ is infinite at γ = 0
    lr: float  # η > 0
    substeps: int = 100  # K: grid steps per discrete step (App. I, App. K: K = 100)
    timescale: float = 1.0  # p: t_n = n η^p (App. K: p = 1)
    weight_decay: float = 0.0  # λ
    decoupled: bool = True  # AdamW's λη θ term in eq. (4); False: coupled, g + λθ enters m, v
    eps: float = 0.0  # ε in u = corr · m/(sqrt(v) + ε); eq. (3) has none

    def __post_init__(self) -> None:
        if not 0.0 < self.beta < 1.0 or not 0.0 < self.gamma < 1.0:
            raise ValueError(f"need 0 < β, γ < 1, got β = {self.beta}, γ = {self.gamma}")
        if not (self.lr > 0.0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate must be finite and > 0, got {self.lr}")
        if self.substeps < 1:
            raise ValueError(f"substeps K must be >= 1, got {self.substeps}")
        if not (self.weight_decay >= 0.0 and self.eps >= 0.0):
            raise ValueError("weight decay and ε must be >= 0")

    @property
    def unit(self) -> float:
        """η^p, the continuous time of one discrete step."""
        return self.lr**self.timescale

    @property
    def dt(self) -> float:
        """Δt = η^p/K."""
        return self.unit / self.substeps


@dataclass(frozen=True)
class OdeSolution:
    """θ(t) of eq. (4) at the discrete times t_n = nη^p, n = 0 .. steps."""

    times: np.ndarray  # (S+1,) t_n = n η^p
    observed: np.ndarray  # (S+1, *O): the observer's value of θ(t_n)
    final: np.ndarray  # (N,) θ at the last grid point, t_S


def decay_rate(x: float, lr: float, timescale: float = 1.0) -> float:
    """a_x = (1 − x)/(η^p x), the rate of the kernel K_x (paper eq. (3); docs/theory.md (2.1))."""
    return (1.0 - x) / (lr**timescale * x)


def moving_average_step(average: np.ndarray, signal: np.ndarray, rate: float, dt: float) -> Any:
    """One grid step of a kernel integral, App. I: e^{−aΔt}(average + Δt·a·signal).

    docs/theory.md (11.4): the integral of K_x over the last interval by its left end point.
    """
    import numpy as np

    return math.exp(-rate * dt) * (np.asarray(average) + dt * rate * np.asarray(signal))


def grid_bias_correction(settings: OdeSettings, j: int) -> float:
    """corr(t_j) = sqrt(1 − β^{1+t_j/η^p}) / (1 − γ^{1+t_j/η^p}), t_j/η^p = j/K (eq. (3))."""
    return float(bias_correction(settings.beta, settings.gamma, j / settings.substeps))


def solve_adam_ode(
    grad: GradientField,
    theta0: np.ndarray,  # (N,) initial parameters
    settings: OdeSettings,
    steps: int,  # S: integrate to t_S = S η^p
    *,
    observe: Observer | None = None,
    on_substep: SubstepHook | None = None,
) -> OdeSolution:
    """Integrate eq. (4) by App. I's forward-Euler scheme (module docstring) for S steps.

    ``grad(θ, n)`` is called K times per discrete step, with n = ⌊j/K⌋. Returns the
    observer's value of θ_{nK} for n = 0 .. S.
    """
    import numpy as np

    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    s = settings
    look = observe if observe is not None else (lambda th: th.copy())
    theta = np.array(theta0, dtype=np.float64)  # (N,)
    psi = np.zeros_like(theta)  # ψ_0 = 0: the paper leaves it unstated (docs/theory.md §11)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    a_gamma = decay_rate(s.gamma, s.lr, s.timescale)
    a_beta = decay_rate(s.beta, s.lr, s.timescale)
    dt, unit = s.dt, s.unit
    force = 2.0 / unit**2  # 2/η^{2p}
    observed = [np.asarray(look(theta))]
    for j in range(steps * s.substeps):
        g = np.asarray(grad(theta, j // s.substeps), dtype=np.float64)
        if s.weight_decay and not s.decoupled:
            g = g + s.weight_decay * theta
        root = np.sqrt(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = m / (root + s.eps)
        ratio = np.where(root + s.eps > 0.0, ratio, 0.0)  # no input yet: u = 0
        u = grid_bias_correction(s, j) * ratio
        if on_substep is not None:
            on_substep(j, theta, u)
        pull = unit * psi + s.lr * u
        if s.weight_decay and s.decoupled:
            pull = pull + s.lr * s.weight_decay * theta
        theta = theta + dt * psi
        psi = psi - dt * force * pull
        m = moving_average_step(m, g, a_gamma, dt)
        v = moving_average_step(v, g * g, a_beta, dt)
        if (j + 1) % s.substeps == 0:
            observed.append(np.asarray(look(theta)))
    times = np.arange(steps + 1, dtype=np.float64) * unit
    return OdeSolution(times=times, observed=np.stack(observed), final=theta)
