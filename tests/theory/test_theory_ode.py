"""App. I's solver of the paper's eq. (4) (stabcli.theory.ode) against solutions found
without it.

- A constant gradient c: the kernel integrals (docs/theory.md (2.1)) are then
  m(t) = c(1 − e^{−a_γ t}) and v(t) = c²(1 − e^{−a_β t}), so u(t) is explicit, and eq. (4)
  is a linear ODE with constant coefficients, θ'' + bθ' + kθ = f(t), solved here by its
  Green's function G(τ) = (e^{r₁τ} − e^{r₂τ})/(r₁ − r₂) and Gauss-Legendre quadrature.
- A quadratic loss: the continuous system (θ, ψ, m, v) with ṁ = a_γ(g − m),
  v̇ = a_β(g² − v) (CT App. E), integrated by classical Runge-Kutta at a far finer step.

App. I's scheme is forward Euler with a left-end-point rule for the kernels: first order in
Δt = η^p/K, so halving Δt must halve the error.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from stabcli.theory.ode import (
    OdeSettings,
    decay_rate,
    grid_bias_correction,
    moving_average_step,
    solve_adam_ode,
)
from stabcli.theory.update import bias_correction

# ---------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------


def _gauss_panels(lo: float, hi: float, width: float, nodes: int = 20):
    """Nodes and weights of composite Gauss-Legendre on [lo, hi] with panels <= width."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    panels = max(1, math.ceil((hi - lo) / width))
    edges = np.linspace(lo, hi, panels + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    return (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()


def constant_gradient_solution(s: OdeSettings, c: float, theta0: float, t: float) -> float:
    """θ(t) of eq. (4) for g ≡ c, with m, v the exact kernel integrals (no App. I)."""
    assert s.timescale == 1.0 and s.decoupled and s.eps == 0.0
    eta = s.lr
    a_g = (1 - s.gamma) / (eta * s.gamma)
    a_b = (1 - s.beta) / (eta * s.beta)

    def u(tau):
        corr = np.sqrt(1 - s.beta ** (1 + tau / eta)) / (1 - s.gamma ** (1 + tau / eta))
        return corr * np.sign(c) * -np.expm1(-a_g * tau) / np.sqrt(-np.expm1(-a_b * tau))

    b, k = 2.0 / eta, 2.0 * s.weight_decay / eta  # θ'' + bθ' + kθ = −(2/η) u
    root = math.sqrt(b * b - 4 * k)
    r2 = (-b - root) / 2  # fast: half a step
    r1 = k / r2 if k else 0.0  # slow (r₁r₂ = k, without cancellation)

    def green(tau):
        return (np.exp(r1 * tau) - np.exp(r2 * tau)) / (r1 - r2)

    # u ~ sqrt(τ) near 0: on the first panel substitute τ = w²; elsewhere plain panels
    first = eta / 8
    w, wt = _gauss_panels(0.0, math.sqrt(first), math.sqrt(first))
    integral = np.sum(wt * 2 * w * green(t - w * w) * (-2 / eta) * u(w * w))
    x, xt = _gauss_panels(first, t, eta / 8)
    integral += np.sum(xt * green(t - x) * (-2 / eta) * u(x))
    homogeneous = theta0 * (r1 * math.exp(r2 * t) - r2 * math.exp(r1 * t)) / (r1 - r2)
    return float(homogeneous + integral)


def runge_kutta_solution(
    s: OdeSettings, grad, theta0: np.ndarray, steps: int, per_step: int = 400
) -> np.ndarray:
    """θ(t_n), n = 0..steps, of the continuous system by RK4 at Δt = η/per_step."""
    eta = s.lr
    a_g, a_b = (1 - s.gamma) / (eta * s.gamma), (1 - s.beta) / (eta * s.beta)

    def rhs(t, y):
        th, psi, m, v = y
        g = grad(th)
        corr = math.sqrt(1 - s.beta ** (1 + t / eta)) / (1 - s.gamma ** (1 + t / eta))
        root = np.sqrt(np.maximum(v, 0.0))
        u = np.where(root > 0, corr * m / np.where(root > 0, root, 1.0), 0.0)
        dpsi = -(2 / eta**2) * (s.weight_decay * eta * th + eta * psi + eta * u)
        return np.stack([psi, dpsi, a_g * (g - m), a_b * (g * g - v)])

    y = np.stack([theta0, np.zeros_like(theta0), np.zeros_like(theta0), np.zeros_like(theta0)])
    h = eta / per_step
    out = [theta0.copy()]
    t = 0.0
    for n in range(steps):
        for _ in range(per_step):
            k1 = rhs(t, y)
            k2 = rhs(t + h / 2, y + h / 2 * k1)
            k3 = rhs(t + h / 2, y + h / 2 * k2)
            k4 = rhs(t + h, y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += h
        out.append(y[0].copy())
        assert abs(t - (n + 1) * eta) < 1e-12
    return np.stack(out)


def _order(dts, errors) -> float:
    return float(np.polyfit(np.log(dts), np.log(errors), 1)[0])


# ---------------------------------------------------------------------------------------
# the moving averages (App. I's recursion for eq. (2))
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_s", [0.0, -3.0, 2.0], ids=["constant", "decaying", "growing"])
def test_moving_average_recursion_converges_at_first_order(rate_s) -> None:
    """m(t) = a ∫_0^t e^{−a(t−τ)} e^{sτ} dτ = a (e^{st} − e^{−at})/(s + a), at t = 1."""
    a, t = 5.0, 1.0
    exact = a * (math.exp(rate_s * t) - math.exp(-a * t)) / (rate_s + a)
    dts, errors = [], []
    for grid in (200, 400, 800, 1600):
        dt, m = t / grid, 0.0
        for j in range(grid):
            m = float(moving_average_step(m, math.exp(rate_s * j * dt), a, dt))
        dts.append(dt)
        errors.append(abs(m - exact))
    assert errors[-1] < 0.01 * abs(exact)
    assert _order(dts, errors) == pytest.approx(1.0, abs=0.05)


def test_grid_bias_correction_is_adams_at_discrete_steps() -> None:
    s = OdeSettings(beta=0.999, gamma=0.9, lr=1e-3, substeps=7)
    for n in (0, 1, 5, 40):
        assert grid_bias_correction(s, n * 7) == pytest.approx(
            bias_correction(0.999, 0.9, n), rel=1e-14
        )


def test_decay_rate_is_the_kernels() -> None:
    assert decay_rate(0.9, 1e-3) == pytest.approx(0.1 / (1e-3 * 0.9), rel=1e-15)
    assert decay_rate(0.9, 1e-2, timescale=2.0) == pytest.approx(0.1 / (1e-4 * 0.9), rel=1e-15)


# ---------------------------------------------------------------------------------------
# the whole solver
# ---------------------------------------------------------------------------------------

CONSTANT_CASES = [
    pytest.param(0.999, 0.9, 0.0, 1.0, id="paper-point"),
    pytest.param(0.95, 0.9, 0.0, -2.0, id="stable-negative-gradient"),
    pytest.param(0.999, 0.9, 5.0, 1.0, id="decoupled-weight-decay"),
]


@pytest.mark.parametrize(("beta", "gamma", "wd", "c"), CONSTANT_CASES)
def test_constant_gradient_against_greens_function(beta, gamma, wd, c) -> None:
    steps, theta0 = 20, 0.3
    dts, errors = [], []
    for k in (25, 50, 100, 200):
        s = OdeSettings(beta=beta, gamma=gamma, lr=1e-3, substeps=k, weight_decay=wd)
        sol = solve_adam_ode(lambda th, n: np.full_like(th, c), np.array([theta0]), s, steps)
        exact = [constant_gradient_solution(s, c, theta0, t) for t in sol.times[1:]]
        dts.append(s.dt)
        errors.append(np.max(np.abs(sol.observed[1:, 0] - exact)))
        if k == 100:  # the paper's K: within 0.2% of the displacement (measured: < 0.1%)
            moved = abs(exact[-1] - theta0)
            assert errors[-1] < 2e-3 * moved
    assert _order(dts, errors) == pytest.approx(1.0, abs=0.05)


def test_quadratic_loss_against_runge_kutta() -> None:
    """L = ½ Σ_i h_i (θ_i − c_i)²: gradients that change along the path, crossing zero."""
    curv = np.array([1.0, 30.0, 300.0])
    centre = np.array([0.01, -0.02, 0.005])

    def grad(th, n=0):
        return curv * (th - centre)

    theta0 = np.zeros(3)
    s0 = OdeSettings(beta=0.99, gamma=0.9, lr=1e-3, substeps=1)
    reference = runge_kutta_solution(s0, grad, theta0, steps=10)
    dts, errors = [], []
    for k in (25, 50, 100, 200):
        s = OdeSettings(beta=0.99, gamma=0.9, lr=1e-3, substeps=k)
        sol = solve_adam_ode(grad, theta0, s, 10)
        dts.append(s.dt)
        errors.append(np.max(np.abs(sol.observed - reference)))
    assert errors[2] < 2e-3 * np.max(np.abs(reference - theta0))  # K = 100 (measured: 0.1%)
    assert _order(dts, errors) == pytest.approx(1.0, abs=0.05)


def test_gradient_sees_the_discrete_step_of_its_interval() -> None:
    seen: list[int] = []

    def grad(th, n):
        seen.append(n)
        return np.ones_like(th)

    s = OdeSettings(beta=0.99, gamma=0.9, lr=1e-3, substeps=4)
    sol = solve_adam_ode(grad, np.zeros(2), s, 3, observe=lambda th: th[:1].copy())
    assert seen == [0] * 4 + [1] * 4 + [2] * 4
    assert sol.observed.shape == (4, 1)
    assert np.allclose(sol.times, [0.0, 1e-3, 2e-3, 3e-3])


def test_coupled_weight_decay_enters_the_moments() -> None:
    """Coupled decay: g + λθ drives m and v, and eq. (4) has no λη θ term. With g ≡ 0 and
    θ_0 > 0 the input is λθ > 0, so θ decreases; decoupled decay with g ≡ 0 leaves u = 0
    and only the λη θ term moves θ, by about e^{−λt}."""
    zero = lambda th, n: np.zeros_like(th)  # noqa: E731
    coupled = OdeSettings(0.99, 0.9, 1e-3, substeps=50, weight_decay=0.5, decoupled=False)
    decoupled = OdeSettings(0.99, 0.9, 1e-3, substeps=50, weight_decay=0.5, decoupled=True)
    a = solve_adam_ode(zero, np.array([1.0]), coupled, 50).observed[:, 0]
    b = solve_adam_ode(zero, np.array([1.0]), decoupled, 50).observed[:, 0]
    # coupled: sign descent on λθ, about η per step once the averages fill
    assert 0.95 - 50e-3 < a[-1] < 1.0 - 40e-3
    assert b[-1] == pytest.approx(math.exp(-0.5 * 0.05), rel=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": 1.0, "gamma": 0.9, "lr": 1e-3},
        {"beta": 0.9, "gamma": 0.0, "lr": 1e-3},
        {"beta": 0.9, "gamma": 0.9, "lr": 0.0},
        {"beta": 0.9, "gamma": 0.9, "lr": 1e-3, "substeps": 0},
        {"beta": 0.9, "gamma": 0.9, "lr": 1e-3, "eps": -1.0},
    ],
    ids=["beta-one", "gamma-zero", "lr-zero", "no-substeps", "negative-eps"],
)
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        OdeSettings(**kwargs)


def test_importing_the_solver_loads_no_numpy_or_torch() -> None:
    code = (
        "import json, sys\nimport stabcli.theory.ode\n"
        "print(json.dumps([m for m in ('numpy', 'torch') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
