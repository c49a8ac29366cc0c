"""Synthetic traces for the measurement tests: AR(1) noise and a float64 numpy Adam.

The Adam here is written for these tests (docs/theory.md §1): m_n = γ m_{n−1} + (1−γ) g_n,
v_n = β v_{n−1} + (1−β) g_n², u_n = corr_n · m_n / sqrt(v_n) with
corr_n = sqrt(1 − β^{n+1}) / (1 − γ^{n+1}) and ε = 0, so that a gradient g_k = (β/γ)^k
makes every u_n equal to the exact bound (Cauchy-Schwarz with equality, docs/theory.md §3).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def ar1_noise(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """(trials, steps) stationary AR(1) noise x_t = φ x_{t−1} + e_t with unit marginal variance."""
    trials, steps = shape
    e = rng.normal(size=(trials, steps)) * np.sqrt(1.0 - phi * phi)
    x = np.empty((trials, steps))
    x[:, 0] = rng.normal(size=trials)  # stationary start
    for t in range(1, steps):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def numpy_adam_updates(grads: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    """(T, K) updates u_n of Adam (ε = 0) on gradients (T, K): steps, parameters; float64."""
    m = np.zeros(grads.shape[1])
    v = np.zeros(grads.shape[1])
    out = np.zeros(grads.shape)
    for n, g in enumerate(grads):
        m = gamma * m + (1.0 - gamma) * g
        v = beta * v + (1.0 - beta) * g * g
        corr = np.sqrt(1.0 - beta ** (n + 1)) / (1.0 - gamma ** (n + 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[n] = np.where(v > 0, corr * m / np.sqrt(v), 0.0)
    return out


def fading_and_noise_grads(
    beta: float, gamma: float, steps: int, rng: np.random.Generator, fade_noise: float = 0.0
) -> np.ndarray:
    """(steps, 2) gradients: one fading as (β/γ)^k (reaches the bound), one ordinary noise.

    ``fade_noise`` multiplies the fading gradient by (1 + fade_noise · N(0, 1)): close to,
    but no longer exactly on, the Cauchy-Schwarz equality.
    """
    k = np.arange(steps)
    fading = (beta / gamma) ** k * (1.0 + fade_noise * rng.normal(size=steps))
    return np.stack([fading, rng.normal(size=steps)], axis=1)


@pytest.fixture
def adam_max_update() -> Callable[[np.ndarray, float, float], np.ndarray]:
    """‖u_n‖∞ over parameters, (T,), of the numpy Adam above."""

    def run(grads: np.ndarray, beta: float, gamma: float) -> np.ndarray:
        return np.abs(numpy_adam_updates(grads, beta, gamma)).max(axis=1)

    return run


@pytest.fixture
def ar1() -> Callable[[np.random.Generator, tuple[int, int], float], np.ndarray]:
    """The AR(1) noise generator above."""
    return ar1_noise


@pytest.fixture
def fading_grads() -> Callable[..., np.ndarray]:
    """The fading-plus-noise gradient generator above."""
    return fading_and_noise_grads
