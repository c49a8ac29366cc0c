"""√n growth on the boundary (measure.power) against a float64 numpy Adam at γ² = β."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stabcli.measure import GrowthShape, measure_points

S = 4000


def _gradients(beta: float, gamma: float, seed: int, noise: float = 0.1) -> np.ndarray:
    """(S, 1) gradient fading as (β/γ)^k, times (1 + noise·N(0, 1)): near the bound's equality.

    At γ² = β the fade is sqrt(β) per step and the bound grows as sqrt(n + 1)."""
    rng = np.random.default_rng(seed)
    k = np.arange(S)
    return ((beta / gamma) ** k * (1.0 + noise * rng.normal(size=S)))[:, None]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [0.9, 0.95, 0.99])
def test_adam_on_the_exact_boundary_grows_as_sqrt_n(adam_max_update, beta, seed) -> None:
    gamma = math.sqrt(beta)
    u = adam_max_update(_gradients(beta, gamma, seed), beta, gamma)
    power = measure_points([beta], [gamma], u[None, :], dtype="float64").points[0].power
    assert power.shape is GrowthShape.POWER
    assert power.sqrt_n
    assert power.exponent == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("beta", "gamma"), [(0.95, 0.99), (0.9, 0.97), (0.99, 0.9975)], ids=["fast", "mid", "slow"]
)
def test_adam_past_the_boundary_grows_exponentially_not_as_sqrt_n(adam_max_update, beta, gamma):
    u = adam_max_update(_gradients(beta, gamma, seed=3), beta, gamma)
    power = measure_points([beta], [gamma], u[None, :], dtype="float64").points[0].power
    assert power.shape is GrowthShape.EXPONENTIAL and not power.sqrt_n


@pytest.mark.parametrize(
    ("beta", "gamma"),
    [(0.999, 0.9), (0.99, 0.9), (0.99, 2 * 0.99 / 1.99)],
    ids=["torch-default", "stable", "paper-B0"],
)
def test_adam_on_ordinary_noise_is_bounded(adam_max_update, beta, gamma) -> None:
    """Random gradients: bounded, including on the paper's B0 (App. F: bounded in practice)."""
    grads = np.random.default_rng(5).normal(size=(S, 4))
    u = adam_max_update(grads, beta, gamma)
    power = measure_points([beta], [gamma], u[None, :], dtype="float64").points[0].power
    assert power.shape is GrowthShape.BOUNDED and not power.sqrt_n


def test_other_power_laws_are_not_sqrt_n() -> None:
    """n^0.2 and n^1 are power laws, not √n (exponent outside ½ ± power_tol)."""
    n = np.arange(S, dtype=float)
    noise = 0.02 * np.random.default_rng(6).normal(size=S)
    beta = 0.99
    for exponent in (0.2, 1.0):
        u = np.exp(exponent * np.log(n + 1.0) + noise)
        power = measure_points([beta], [math.sqrt(beta)], u[None, :], dtype="float64").points[0]
        assert power.power.shape is GrowthShape.POWER
        assert power.power.exponent == pytest.approx(exponent, abs=0.02)
        assert not power.power.sqrt_n
