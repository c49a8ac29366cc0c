"""The exact discrete results against Adam itself, simulated in float64.

A small reference loop (docs/theory.md (1.1)) runs Adam on random, adversarial and
vanishing gradient sequences; the measured max-update must respect ``exact_bound``, reach
it on the Cauchy-Schwarz-tight sequence, and its log-slope must follow ``exact_slope``.
Also: array inputs give the same values as scalar inputs.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabcli.theory import c_value, exact_bound, exact_slope, paper_bound

PROPERTY = settings(derandomize=True, deadline=None, max_examples=80)

PLACEMENTS = ("paper", "torch")


def adam_updates(
    grads: np.ndarray, beta: float, gamma: float, eps: float = 0.0, placement: str = "paper"
) -> np.ndarray:
    """u_n for n = 0..T−1 of Adam on ``grads`` (T, P): steps, parameters.

    paper: u_n = corr_n · m_n / (sqrt(v_n) + ε), corr_n = sqrt(1−β^{n+1}) / (1−γ^{n+1});
    torch: u_n = (m_n/(1−γ^{n+1})) / (sqrt(v_n/(1−β^{n+1})) + ε), as torch.optim.Adam.
    Where v_n = 0 the gradient has been 0 so far, so m_n = 0 and u_n is taken as 0.
    """
    m = np.zeros(grads.shape[1])
    v = np.zeros(grads.shape[1])
    out = np.zeros(grads.shape)  # (T, P)
    for n, g in enumerate(grads):
        m = gamma * m + (1.0 - gamma) * g
        v = beta * v + (1.0 - beta) * g * g
        bc1 = 1.0 - gamma ** (n + 1)
        bc2 = 1.0 - beta ** (n + 1)
        if placement == "paper":
            num, den = math.sqrt(bc2) / bc1 * m, np.sqrt(v) + eps
        else:
            num, den = m / bc1, np.sqrt(v) / math.sqrt(bc2) + eps
        safe = np.where(den > 0, den, 1.0)
        out[n] = np.where(den > 0, num / safe, 0.0)
    return out


def max_update(grads, beta, gamma, eps=0.0, placement="paper") -> np.ndarray:
    """‖u_n‖∞ over parameters, for every step: shape (T,)."""
    return np.abs(adam_updates(grads, beta, gamma, eps, placement)).max(axis=1)


# β in (0, 1) and γ in [0, 1), γ² > β included (e.g. β = 0.1, γ = 0.9). β >= 0.01 and
# T <= 60 keep β^T·g² far from underflow, so float64 rounding stays ~1e-14.
betas = st.floats(min_value=0.01, max_value=0.9999)
gammas = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=0.9999))
epsilons = st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1.0))
# Gradient entries: 0 or a magnitude in [1e-6, 1e6] with a sign (no subnormals, whose
# squares underflow and would make the simulation, not Adam, wrong).
entries = st.one_of(
    st.just(0.0),
    st.builds(
        lambda mag, sign: sign * mag,
        st.floats(min_value=1e-6, max_value=1e6),
        st.sampled_from([1.0, -1.0]),
    ),
)


def tight_sequence(ratio: float, n: int) -> np.ndarray:
    """g_j = ratio^{n−j} for j = 0..n, the Cauchy-Schwarz-tight sequence for step n.

    Terms below 1e-100 are set to 0: their squares would be subnormal (imprecise), and
    their share of m_n and v_n is below 1e-100 relative, far under the tolerances.
    """
    g = ratio ** (n - np.arange(n + 1.0))
    return np.where(g < 1e-100, 0.0, g)


def assert_within_bound(measured: np.ndarray, beta: float, gamma: float) -> None:
    steps = np.arange(len(measured))
    bound = np.array([exact_bound(beta, gamma, int(n)) for n in steps])
    assert np.all(np.isfinite(measured))
    excess = measured / bound - 1.0
    assert excess.max() <= 1e-9, f"step {int(excess.argmax())} exceeds the bound by {excess.max()}"


@given(
    beta=betas,
    gamma=gammas,
    eps=epsilons,
    placement=st.sampled_from(PLACEMENTS),
    rows=st.lists(st.lists(entries, min_size=2, max_size=2), min_size=1, max_size=60),
)
@PROPERTY
def test_bound_holds_on_hypothesis_sequences(beta, gamma, eps, placement, rows):
    grads = np.array(rows)  # (T, 2)
    assert_within_bound(max_update(grads, beta, gamma, eps, placement), beta, gamma)


def _sequence(kind: str, rng: np.random.Generator, beta: float, gamma: float, t: int):
    """A (T, 3) gradient array of the named family."""
    if kind == "gaussian":
        return rng.normal(size=(t, 3)) * np.exp(rng.uniform(-5, 5, size=(1, 3)))
    if kind == "heavy-tailed":
        return rng.standard_cauchy(size=(t, 3))
    if kind == "geometric":  # g_j = q^j: decaying or growing at a random ratio
        q = np.exp(rng.uniform(np.log(0.05), np.log(20.0), size=3))
        return q[None, :] ** np.arange(t)[:, None] * rng.choice([-1.0, 1.0], size=(t, 3))
    if kind == "tight-then-noise":  # Cauchy-Schwarz-tight up to a random step, then noise
        n0 = int(rng.integers(0, t))
        ratio = gamma / beta
        g = np.zeros((t, 3))
        g[: n0 + 1] = tight_sequence(ratio, n0)[:, None]
        g[n0 + 1 :] = rng.normal(size=(t - n0 - 1, 3)) * 1e-3
        return g
    if kind == "spike":  # long quiet stretch, then one large gradient, then quiet
        g = rng.normal(size=(t, 3)) * 1e-4
        g[int(rng.integers(0, t))] = 1e4
        return g
    if kind == "alternating":
        return np.where(np.arange(t)[:, None] % 2 == 0, 1.0, -1.0) * np.ones((t, 3))
    if kind == "vanishing":  # a few random gradients, then exactly zero
        g = np.zeros((t, 3))
        k = int(rng.integers(1, min(t, 5) + 1))
        g[:k] = rng.normal(size=(k, 3))
        return g
    raise AssertionError(kind)


KINDS = (
    "gaussian",
    "heavy-tailed",
    "geometric",
    "tight-then-noise",
    "spike",
    "alternating",
    "vanishing",
)


@given(
    beta=betas,
    gamma=gammas,
    eps=epsilons,
    placement=st.sampled_from(PLACEMENTS),
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**32 - 1),
    t=st.integers(1, 50),
)
@PROPERTY
def test_bound_holds_on_random_adversarial_and_vanishing_sequences(
    beta, gamma, eps, placement, kind, seed, t
):
    if kind == "tight-then-noise" and (gamma / beta) ** t > 1e100:
        beta = max(beta, gamma / 10.0)  # keep (γ/β)^T inside float64
    grads = _sequence(kind, np.random.default_rng(seed), beta, gamma, t)
    assert_within_bound(max_update(grads, beta, gamma, eps, placement), beta, gamma)


@given(
    beta=st.floats(min_value=0.05, max_value=0.9999),
    gamma=gammas,
    n=st.integers(0, 50),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    sign=st.sampled_from([1.0, -1.0]),
    placement=st.sampled_from(PLACEMENTS),
)
@PROPERTY
def test_bound_is_attained_by_the_cauchy_schwarz_sequence(beta, gamma, n, scale, sign, placement):
    # g_j = (γ/β)^{n−j} for j <= n makes Cauchy-Schwarz tight at step n (ε = 0).
    # β >= 0.05 and n <= 50 keep (γ/β)^n <= 20^50 ≈ 1e65 inside float64.
    grads = (sign * scale * tight_sequence(gamma / beta, n))[:, None]  # (n+1, 1)
    measured = max_update(grads, beta, gamma, 0.0, placement)
    assert measured[n] == pytest.approx(exact_bound(beta, gamma, n), rel=1e-6)
    assert_within_bound(measured, beta, gamma)


def test_first_update_has_unit_size():
    # n = 0 with ε = 0: u_0 = corr_0 (1−γ) g / sqrt((1−β) g²) = sign(g); the bound is 1.
    grads = np.array([[3.0, -0.2, 1e-5]])
    for beta, gamma in [(0.999, 0.9), (0.5, 0.9), (0.3, 0.0)]:
        np.testing.assert_allclose(np.abs(adam_updates(grads, beta, gamma)), 1.0, rtol=1e-12)
        assert exact_bound(beta, gamma, 0) == pytest.approx(1.0, rel=1e-12)


# --- The slope of log‖u_n‖∞ once the gradient has vanished ----------------------------


def log_u_model(beta: float, gamma: float, t):
    """log(corr_t · (γ/√β)^t) for real or complex t, written out independently."""
    return (
        0.5 * cmath.log(1 - beta ** (t + 1))
        - cmath.log(1 - gamma ** (t + 1))
        + t * (math.log(gamma) - 0.5 * math.log(beta))
    )


def model_slope(beta: float, gamma: float, n: int) -> float:
    """d/dn of log_u_model by complex-step differentiation (no cancellation error)."""
    h = 1e-30
    return log_u_model(beta, gamma, complex(n, h)).imag / h


vanish_betas = st.floats(min_value=0.3, max_value=0.999)
vanish_gammas = st.floats(min_value=0.3, max_value=0.95)


@given(
    beta=vanish_betas,
    gamma=vanish_gammas,
    k=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    placement=st.sampled_from(PLACEMENTS),
)
@settings(derandomize=True, deadline=None, max_examples=40)
def test_measured_log_slope_is_rho_n(beta, gamma, k, seed, placement):
    # k positive gradients (so m cannot cancel to 0), then zeros; ε = 0.
    n, h = 200, 1
    grads = np.zeros((n + h + 1, 1))
    grads[:k, 0] = np.random.default_rng(seed).uniform(0.1, 10.0, size=k)
    u = max_update(grads, beta, gamma, 0.0, placement)
    measured = (math.log(u[n + h]) - math.log(u[n - h])) / (2 * h)
    # Central-difference error is h²/6 · f''' <= ~1e-8 at n = 200 for these (β, γ).
    assert measured == pytest.approx(exact_slope(beta, gamma, n), abs=1e-6)


@given(
    beta=vanish_betas,
    gamma=vanish_gammas,
    k=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
@settings(derandomize=True, deadline=None, max_examples=30)
def test_vanished_gradient_update_follows_the_model(beta, gamma, k, seed):
    # Once g = 0, u_n ∝ corr_n (γ/√β)^n: every forward difference of log u matches.
    grads = np.zeros((120, 1))
    grads[:k, 0] = np.random.default_rng(seed).uniform(0.1, 10.0, size=k)
    log_u = np.log(max_update(grads, beta, gamma))
    for n in range(k - 1, 119):
        expected = (log_u_model(beta, gamma, n + 1) - log_u_model(beta, gamma, n)).real
        assert log_u[n + 1] - log_u[n] == pytest.approx(expected, abs=1e-9)


@given(
    beta=st.floats(min_value=0.01, max_value=0.9999),
    gamma=st.floats(min_value=0.01, max_value=0.9999),
    n=st.integers(0, 3000),
)
@PROPERTY
def test_exact_slope_is_the_exact_log_derivative(beta, gamma, n):
    assert exact_slope(beta, gamma, n) == pytest.approx(
        model_slope(beta, gamma, n), rel=1e-8, abs=1e-10
    )


def test_exact_slope_tends_to_the_asymptotic_rate():
    # (0.5, 0.9): log 0.9 − ½ log 0.5 = 0.2412; the drift terms die out for large n.
    assert exact_slope(0.5, 0.9, 10_000) == pytest.approx(0.24121, abs=1e-5)
    # Early on the bias correction's drift matters: at n = 0 the slope is lower.
    assert exact_slope(0.5, 0.9, 0) < exact_slope(0.5, 0.9, 10_000)


# --- Arrays give the same values as scalars -------------------------------------------

POINTS = [(0.999, 0.9), (0.95, 0.9), (0.5, 0.9), (0.4, 0.6), (0.5, 2.0 / 3.0), (0.25, 0.5)]
STEPS = [0, 1, 2, 10, 100, 999, 10_000]


@pytest.mark.parametrize(("beta", "gamma"), POINTS, ids=[f"{b:g},{g:.3g}" for b, g in POINTS])
def test_array_steps_match_scalar_steps(beta, gamma):
    steps = np.array(STEPS)
    with np.errstate(over="ignore"):
        for fn in (exact_bound, exact_slope, paper_bound):
            arr = fn(beta, gamma, steps)
            assert np.shape(arr) == steps.shape
            scalars = np.array([fn(beta, gamma, n) for n in STEPS])
            np.testing.assert_allclose(arr, scalars, rtol=1e-12, err_msg=fn.__name__)


def test_array_steps_at_rmsprop():
    steps = np.array(STEPS)
    np.testing.assert_allclose(
        exact_bound(0.9, 0.0, steps), [exact_bound(0.9, 0.0, n) for n in STEPS], rtol=1e-12
    )
    assert np.all(np.isinf(paper_bound(0.9, 0.0, steps)))


def test_c_value_arrays_match_scalars():
    beta = np.array([0.999, 0.95, 0.5, 0.4, 0.9, 0.01])
    gamma = np.array([0.9, 0.9, 0.9, 0.6, 0.0, 0.5])
    arr = c_value(beta, gamma)
    scalars = [c_value(float(b), float(g)) for b, g in zip(beta, gamma, strict=True)]
    np.testing.assert_allclose(arr, scalars, rtol=1e-12)
    # A 2-D grid broadcast from a column of β and a row of γ.
    grid = c_value(beta[:, None], gamma[None, :])
    assert grid.shape == (6, 6)
    assert grid[2, 0] == pytest.approx(c_value(0.5, 0.9))
