"""The path bound for moving betas (docs/theory.md §5) against Adam simulated in float64.

A plain reference loop runs Adam with a new (β_n, γ_n) every step on random gradients, in
both ε placements and with both bias corrections (the path's products, and PyTorch's
powers of the current betas); its max-update must respect ``path_bound`` at every step,
reach it on the Cauchy-Schwarz-tight sequence, and the bound must equal ``exact_bound``
at constant betas. S_n is also checked against its defining double sum.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabcli.errors import StabcliError
from stabcli.theory import exact_bound, exact_rate
from stabcli.theory.path import (
    average_rate,
    current_bias_correction,
    first_unstable_step,
    local_rate,
    log_path_bound,
    log_path_sum,
    mada_path_bound,
    path_bias_correction,
    path_bound,
)

PROPERTY = settings(derandomize=True, deadline=None, max_examples=80)
PLACEMENTS = ("paper", "torch")
CORRECTIONS = ("path", "current")


# --- an independent reference: Adam with moving betas, written out plainly ---------------


def corrections(beta: list[float], gamma: list[float], kind: str) -> tuple[list, list]:
    """(1 − Π_{j≤n} γ_j or 1 − γ_n^{n+1}, the same for β) for every step, by naive loops."""
    bc1, bc2 = [], []
    prod_g, prod_b = 1.0, 1.0
    for n, (b, g) in enumerate(zip(beta, gamma, strict=True)):
        prod_g, prod_b = prod_g * g, prod_b * b
        if kind == "path":
            bc1.append(1.0 - prod_g)
            bc2.append(1.0 - prod_b)
        else:
            bc1.append(1.0 - g ** (n + 1))
            bc2.append(1.0 - b ** (n + 1))
    return bc1, bc2


def reference_corr(beta: list[float], gamma: list[float], kind: str) -> np.ndarray:
    bc1, bc2 = corrections(beta, gamma, kind)
    return np.array([math.sqrt(v) / m for m, v in zip(bc1, bc2, strict=True)])


def moving_adam_max_update(
    grads: np.ndarray,
    beta: list[float],
    gamma: list[float],
    eps: float,
    placement: str,
    kind: str,
) -> np.ndarray:
    """‖u_n‖∞ of Adam on ``grads`` (T, P) with (β_n, γ_n) at step n: shape (T,).

    paper: u_n = c_n m_n/(sqrt(v_n) + ε); torch: u_n = (m_n/bc1_n)/(sqrt(v_n/bc2_n) + ε).
    Where v_n = 0 the gradient has been 0 so far, so m_n = 0 and u_n is taken as 0.
    """
    bc1, bc2 = corrections(beta, gamma, kind)
    m = np.zeros(grads.shape[1])
    v = np.zeros(grads.shape[1])
    out = np.zeros(len(grads))
    for n, g in enumerate(grads):
        m = gamma[n] * m + (1.0 - gamma[n]) * g
        v = beta[n] * v + (1.0 - beta[n]) * g * g
        if placement == "paper":
            num, den = math.sqrt(bc2[n]) / bc1[n] * m, np.sqrt(v) + eps
        else:
            num, den = m / bc1[n], np.sqrt(v) / math.sqrt(bc2[n]) + eps
        safe = np.where(den > 0, den, 1.0)
        out[n] = np.abs(np.where(den > 0, num / safe, 0.0)).max()
    return out


def direct_sum(beta: list[float], gamma: list[float], n: int) -> float:
    """S_n = Σ_k a_{n,k}²/b_{n,k} from the weights' definitions (docs/theory.md §5)."""
    total = 0.0
    for k in range(n + 1):
        a = (1.0 - gamma[k]) * math.prod(gamma[k + 1 : n + 1])
        b = (1.0 - beta[k]) * math.prod(beta[k + 1 : n + 1])
        total += a * a / b
    return total


def tight_gradients(beta: list[float], gamma: list[float], n: int) -> np.ndarray:
    """g_k = a_{n,k}/b_{n,k} for k <= n: equality in Cauchy-Schwarz at step n."""
    g = []
    for k in range(n + 1):
        a = (1.0 - gamma[k]) * math.prod(gamma[k + 1 : n + 1])
        b = (1.0 - beta[k]) * math.prod(beta[k + 1 : n + 1])
        g.append(a / b)
    return np.array(g)


def assert_within(measured: np.ndarray, bound: np.ndarray) -> None:
    assert np.all(np.isfinite(measured))
    excess = measured / bound - 1.0
    assert excess.max() <= 1e-9, f"step {int(excess.argmax())} exceeds the bound by {excess.max()}"


# --- strategies -------------------------------------------------------------------------

# β in [0.02, 0.9999], γ in {0} ∪ [1e-6, 0.9999]: paths cross γ² = β freely. T <= 40 and
# β >= 0.02 keep products of β far from underflow, so float64 rounding stays ~1e-14.
betas = st.floats(min_value=0.02, max_value=0.9999)
gammas = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=0.9999))
epsilons = st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1.0))
entries = st.one_of(
    st.just(0.0),
    st.builds(
        lambda mag, sign: sign * mag,
        st.floats(min_value=1e-6, max_value=1e6),
        st.sampled_from([1.0, -1.0]),
    ),
)


@st.composite
def paths_with_gradients(draw, max_steps: int = 40):
    t = draw(st.integers(1, max_steps))
    beta = draw(st.lists(betas, min_size=t, max_size=t))
    gamma = draw(st.lists(gammas, min_size=t, max_size=t))
    rows = draw(st.lists(st.lists(entries, min_size=3, max_size=3), min_size=t, max_size=t))
    return beta, gamma, np.array(rows)  # (T,), (T,), (T, 3)


@st.composite
def smooth_paths(draw, max_steps: int = 40):
    """A random walk in (β, γ), the shape of a path that a learned optimizer takes."""
    t = draw(st.integers(1, max_steps))
    b0 = draw(st.floats(min_value=0.05, max_value=0.999))
    g0 = draw(st.floats(min_value=0.0, max_value=0.999))
    seed = draw(st.integers(0, 2**32 - 1))
    step = draw(st.floats(min_value=0.0, max_value=0.05))
    rng = np.random.default_rng(seed)
    beta = np.clip(b0 + np.cumsum(rng.normal(scale=step, size=t)), 0.05, 0.999)
    gamma = np.clip(g0 + np.cumsum(rng.normal(scale=step, size=t)), 0.0, 0.999)
    return beta.tolist(), gamma.tolist(), rng


# --- the bound holds ------------------------------------------------------------------


@given(
    path=paths_with_gradients(),
    eps=epsilons,
    placement=st.sampled_from(PLACEMENTS),
    kind=st.sampled_from(CORRECTIONS),
)
@PROPERTY
def test_bound_holds_on_hypothesis_paths_and_gradients(path, eps, placement, kind):
    beta, gamma, grads = path
    measured = moving_adam_max_update(grads, beta, gamma, eps, placement, kind)
    assert_within(measured, path_bound(beta, gamma, reference_corr(beta, gamma, kind)))


@given(
    path=smooth_paths(),
    eps=epsilons,
    placement=st.sampled_from(PLACEMENTS),
    kind=st.sampled_from(CORRECTIONS),
    family=st.sampled_from(["gaussian", "heavy-tailed", "decaying", "vanishing"]),
)
@PROPERTY
def test_bound_holds_on_random_walks_with_random_gradients(path, eps, placement, kind, family):
    beta, gamma, rng = path
    t = len(beta)
    if family == "gaussian":
        grads = rng.normal(size=(t, 4)) * np.exp(rng.uniform(-5, 5, size=(1, 4)))
    elif family == "heavy-tailed":
        grads = rng.standard_cauchy(size=(t, 4))
    elif family == "decaying":  # decays faster than sqrt(β): the regime that nears the bound
        grads = 0.05 ** np.arange(t)[:, None] * rng.choice([-1.0, 1.0], size=(t, 4))
        grads = np.where(np.abs(grads) < 1e-100, 0.0, grads)
    else:
        grads = np.zeros((t, 4))
        grads[0] = rng.normal(size=4)
    measured = moving_adam_max_update(grads, beta, gamma, eps, placement, kind)
    assert_within(measured, path_bound(beta, gamma, reference_corr(beta, gamma, kind)))


def test_default_correction_is_the_paths_products():
    rng = np.random.default_rng(0)
    beta = rng.uniform(0.3, 0.99, size=30).tolist()
    gamma = rng.uniform(0.0, 0.95, size=30).tolist()
    np.testing.assert_allclose(
        path_bias_correction(beta, gamma), reference_corr(beta, gamma, "path"), rtol=1e-13
    )
    np.testing.assert_allclose(
        current_bias_correction(beta, gamma), reference_corr(beta, gamma, "current"), rtol=1e-13
    )
    np.testing.assert_allclose(
        path_bound(beta, gamma),
        path_bound(beta, gamma, reference_corr(beta, gamma, "path")),
        rtol=1e-13,
    )


# --- the bound is attained --------------------------------------------------------------


@given(
    path=smooth_paths(max_steps=30),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    sign=st.sampled_from([1.0, -1.0]),
    placement=st.sampled_from(PLACEMENTS),
    kind=st.sampled_from(CORRECTIONS),
)
@PROPERTY
def test_bound_is_attained_by_the_cauchy_schwarz_sequence(path, scale, sign, placement, kind):
    beta, gamma, _ = path
    n = len(beta) - 1
    grads = (sign * scale * tight_gradients(beta, gamma, n))[:, None]  # (n+1, 1)
    measured = moving_adam_max_update(grads, beta, gamma, 0.0, placement, kind)
    bound = path_bound(beta, gamma, reference_corr(beta, gamma, kind))
    assert measured[n] == pytest.approx(bound[n], rel=1e-9)
    assert_within(measured, bound)


# --- the recursion against the definition, and constant betas ---------------------------


@given(path=paths_with_gradients(max_steps=25))
@PROPERTY
def test_log_path_sum_is_the_double_sum(path):
    beta, gamma, _ = path
    expected = np.log([direct_sum(beta, gamma, n) for n in range(len(beta))])
    np.testing.assert_allclose(log_path_sum(beta, gamma), expected, rtol=1e-12, atol=1e-12)


CONSTANT_POINTS = [
    pytest.param(0.999, 0.9, id="default-adam"),
    pytest.param(0.95, 0.9, id="gpt-betas"),
    pytest.param(0.4, 0.6, id="paper-B-minus-exactly-stable"),
    pytest.param(0.81, 0.9, id="on-gamma2-eq-beta"),
    pytest.param(0.5, 0.9, id="exactly-unstable"),
    pytest.param(0.1, 0.99, id="fast-overflow"),
    pytest.param(0.3, 0.0, id="rmsprop"),
    pytest.param(0.99999, 0.999, id="near-one-one"),
]


@pytest.mark.parametrize(("beta", "gamma"), CONSTANT_POINTS)
@pytest.mark.parametrize("steps", [1, 60, 2500], ids=lambda t: f"T{t}")
def test_constant_betas_give_exact_bound(beta, gamma, steps):
    bound = path_bound(np.full(steps, beta), np.full(steps, gamma))
    expected = np.array([exact_bound(beta, gamma, n) for n in range(steps)])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(bound[finite], expected[finite], rtol=1e-12)
    # exact_bound forms exp(½ ln S_n) before scaling by (1−γ)/sqrt(1−β), so it overflows a
    # few steps before the bound itself leaves the float range; the path bound does not.
    assert np.all(~np.isfinite(bound[~finite]) | (bound[~finite] > 1e300))


def test_log_bound_is_finite_where_the_bound_overflows():
    beta, gamma = np.full(3000, 0.1), np.full(3000, 0.99)
    log_bound = log_path_bound(beta, gamma)
    assert np.all(np.isfinite(log_bound))
    assert not np.isfinite(path_bound(beta, gamma)[-1])
    # ln B_n = ln c_n + ½ ln S_n, with S_n's closed form at constant betas
    n = 2999
    r, w = 0.99**2 / 0.1, 0.01**2 / 0.9
    log_s = (n + 1) * math.log(r) + math.log1p(-(r ** -(n + 1))) - math.log(r - 1) + math.log(w)
    log_c = 0.5 * math.log1p(-(0.1 ** (n + 1))) - math.log1p(-(0.99 ** (n + 1)))
    assert log_bound[n] == pytest.approx(log_c + 0.5 * log_s, rel=1e-12)


# --- rates ------------------------------------------------------------------------------


@given(path=paths_with_gradients(max_steps=40))
@PROPERTY
def test_bound_grows_at_least_at_the_local_rate(path):
    # ½ ln(S_n/S_{n−1}) = ½ ln(r_n + w_n/S_{n−1}) >= ½ ln r_n (docs/theory.md §5)
    beta, gamma, _ = path
    increments = 0.5 * np.diff(log_path_sum(beta, gamma))
    assert np.all(increments >= local_rate(beta, gamma)[1:] - 1e-12)


def test_local_rate_values():
    np.testing.assert_allclose(
        local_rate([0.5, 0.81, 0.999], [0.9, 0.9, 0.9]),
        [math.log(0.9) - 0.5 * math.log(0.5), 0.0, math.log(0.9) - 0.5 * math.log(0.999)],
        atol=1e-15,
    )
    assert local_rate([0.5], [0.0])[0] == -math.inf


@pytest.mark.parametrize(
    ("b0", "b1", "gamma"),
    [
        pytest.param(0.5, 0.7, 0.9, id="beta-rises-inside-unstable"),
        pytest.param(0.7, 0.3, 0.95, id="beta-falls"),
        pytest.param(0.2, 0.6, 0.8, id="toward-the-boundary"),
    ],
)
def test_average_rate_is_the_bounds_slope_deep_in_the_unstable_region(b0, b1, gamma):
    # Once S is large, ln sqrt(S_n) − ln sqrt(S_{n0}) = Σ ½ ln(r_j + w_j/S_{j−1}): the gap to
    # Σ ½ ln r_j is at most Σ w_j/(2 r_j S_{j−1}), which is < 1e-9 after 400 steps here.
    t = 1000
    beta = np.linspace(b0, b1, t)
    gam = np.full(t, gamma)
    log_sum = log_path_sum(beta, gam)
    n0, n1 = 400, 999
    measured = 0.5 * (log_sum[n1] - log_sum[n0]) / (n1 - n0)
    assert measured == pytest.approx(average_rate(beta, gam, n0 + 1, n1 + 1), abs=1e-11)


@pytest.mark.parametrize(("beta", "gamma"), [(0.5, 0.9), (0.95, 0.99), (0.999, 0.9)])
def test_average_rate_of_a_constant_point(beta, gamma):
    rate = average_rate(np.full(100, beta), np.full(100, gamma))
    assert rate == pytest.approx(math.log(gamma) - 0.5 * math.log(beta), rel=1e-12)
    assert max(rate, 0.0) == pytest.approx(exact_rate(beta, gamma), abs=1e-15)


def test_average_rate_of_many_paths_and_an_empty_window():
    beta = np.array([[0.5, 0.81], [0.5, 0.81], [0.5, 0.81]])
    gamma = np.array([[0.9, 0.9], [0.9, 0.9], [0.9, 0.9]])
    np.testing.assert_allclose(
        average_rate(beta, gamma), [math.log(0.9) - 0.5 * math.log(0.5), 0.0], atol=1e-15
    )
    with pytest.raises(StabcliError, match="window"):
        average_rate(beta, gamma, 5)


# --- MADA's Adam-AVGrad-Lion face (docs/theory.md §7) -------------------------------------


def mada_face_max_update(
    grads: np.ndarray, beta, gamma, rho, omega, eps: float, lion=(0.9, 0.99)
) -> np.ndarray:
    """‖u_n‖∞ of MADA with β3 = 0, c = 1 and every coefficient moving (seed App. C.1):
    v̄ Adam's, v̂ = v̄/(1 − Πβ), ṽ the mean of v̂_0..v̂_n, V = ρ v̂ + (1−ρ) ṽ,
    u = ω (m/(1 − Πγ))/(sqrt(V) + ε) + (1−ω) sign(Lion's interpolated momentum)."""
    m = np.zeros(grads.shape[1])
    v = np.zeros(grads.shape[1])
    mean = np.zeros(grads.shape[1])
    lion_m = np.zeros(grads.shape[1])
    prod_b = prod_g = 1.0
    out = np.zeros(len(grads))
    for n, g in enumerate(grads):
        prod_b, prod_g = prod_b * beta[n], prod_g * gamma[n]
        m = gamma[n] * m + (1 - gamma[n]) * g
        v = beta[n] * v + (1 - beta[n]) * g * g
        v_hat = v / (1 - prod_b)
        mean = (n * mean + v_hat) / (n + 1)
        big_v = rho[n] * v_hat + (1 - rho[n]) * mean
        den = np.sqrt(big_v) + eps
        adaptive = np.where(den > 0, (m / (1 - prod_g)) / np.where(den > 0, den, 1.0), 0.0)
        sign = np.sign(lion[0] * lion_m + (1 - lion[0]) * g)
        lion_m = lion[1] * lion_m + (1 - lion[1]) * g
        out[n] = np.abs(omega[n] * adaptive + (1 - omega[n]) * sign).max()
    return out


@given(
    path=smooth_paths(),
    eps=epsilons,
    family=st.sampled_from(["gaussian", "decaying", "quiet-then-spike"]),
)
@PROPERTY
def test_mada_face_bound_holds_with_moving_rho_and_omega(path, eps, family):
    beta, gamma, rng = path
    t = len(beta)
    rho = rng.uniform(0.0, 1.0, size=t)
    omega = rng.uniform(0.0, 1.0, size=t)
    if family == "gaussian":
        grads = rng.normal(size=(t, 4)) * np.exp(rng.uniform(-5, 5, size=(1, 4)))
    elif family == "decaying":
        grads = 0.05 ** np.arange(t)[:, None] * rng.choice([-1.0, 1.0], size=(t, 4))
        grads = np.where(np.abs(grads) < 1e-100, 0.0, grads)
    else:  # AVGrad's worst case: nothing, then one large gradient
        grads = np.zeros((t, 4))
        grads[-1] = rng.normal(size=4) * 1e3
    measured = mada_face_max_update(grads, beta, gamma, rho, omega, eps)
    assert_within(measured, mada_path_bound(beta, gamma, rho, omega))


@given(path=smooth_paths(max_steps=30), scale=st.floats(1e-3, 1e3))
@PROPERTY
def test_mada_face_bound_is_attained_at_rho_one(path, scale):
    # ρ = 1: Adam's a mixed with Lion's sign; the tight (positive) sequence makes a reach
    # its bound and Lion's sign +1, so u_n = ω B_n + (1 − ω) exactly.
    beta, gamma, rng = path
    n = len(beta) - 1
    omega = rng.uniform(0.0, 1.0, size=n + 1)
    rho = np.ones(n + 1)
    grads = (scale * tight_gradients(beta, gamma, n))[:, None]
    measured = mada_face_max_update(grads, beta, gamma, rho, omega, 0.0)
    bound = mada_path_bound(beta, gamma, rho, omega)
    assert measured[n] == pytest.approx(bound[n], rel=1e-9)
    assert_within(measured, bound)


def test_mada_face_bound_reduces_to_the_path_bound_and_grows_for_avgrad():
    beta, gamma = np.full(50, 0.99), np.full(50, 0.9)
    ones, zeros = np.ones(50), np.zeros(50)
    np.testing.assert_allclose(
        mada_path_bound(beta, gamma, ones, ones), path_bound(beta, gamma), rtol=1e-15
    )
    avgrad = mada_path_bound(beta, gamma, zeros, ones)  # ρ = 0: V >= v̂/(n+1)
    np.testing.assert_allclose(avgrad, path_bound(beta, gamma) * np.sqrt(np.arange(1, 51)))
    lion = mada_path_bound(beta, gamma, ones, zeros)  # ω = 0: |sign| <= 1
    np.testing.assert_array_equal(lion, np.ones(50))
    with pytest.raises(StabcliError, match="rho"):
        mada_path_bound(beta, gamma, np.full(50, 1.5), ones)


# --- entering the exact-unstable region ------------------------------------------------


def test_first_unstable_step_of_a_path_that_crosses():
    # γ = 0.9 fixed, β falls by 0.01 per step from 0.955: γ² = 0.81 > β first at β = 0.805,
    # the 16th step (n = 15); n = 14 has β = 0.815.
    beta = 0.955 - 0.01 * np.arange(30)
    gamma = np.full(30, 0.9)
    assert first_unstable_step(beta, gamma) == 15
    assert first_unstable_step(np.full(10, 0.999), np.full(10, 0.9)) is None
    assert first_unstable_step(np.full(10, 0.81), np.full(10, 0.9)) is None  # on γ² = β


def test_first_unstable_step_of_many_paths():
    beta = np.array([[0.999, 0.5, 0.9], [0.999, 0.5, 0.7], [0.5, 0.5, 0.7]])  # (T, P)
    gamma = np.full((3, 3), 0.9)
    np.testing.assert_array_equal(first_unstable_step(beta, gamma), [2, 0, 1])
    np.testing.assert_array_equal(
        first_unstable_step(np.full((4, 2), 0.99), np.full((4, 2), 0.9)), [-1, -1]
    )


# --- input errors and imports ------------------------------------------------------------


@pytest.mark.parametrize(
    ("beta", "gamma", "message"),
    [
        pytest.param([0.9, 1.0], [0.9, 0.9], "beta must be in", id="beta-one"),
        pytest.param([0.9, 0.0], [0.9, 0.9], "beta must be in", id="beta-zero"),
        pytest.param([0.9, 0.9], [0.9, 1.0], "gamma must be in", id="gamma-one"),
        pytest.param([0.9, 0.9], [-0.1, 0.9], "gamma must be in", id="gamma-negative"),
        pytest.param([0.9, math.nan], [0.9, 0.9], "beta must be in", id="nan"),
        pytest.param([0.9, 0.9], [0.9], "one shape", id="shapes"),
        pytest.param([], [], "one shape", id="empty"),
    ],
)
def test_invalid_paths_are_user_errors(beta, gamma, message):
    with pytest.raises(StabcliError, match=message):
        path_bound(beta, gamma)


def test_a_corr_of_the_wrong_shape_is_refused():
    with pytest.raises(StabcliError, match="corr"):
        path_bound([0.9, 0.9], [0.5, 0.5], [1.0])


def test_importing_the_path_module_loads_no_heavy_module():
    code = (
        "import json, sys, stabcli.theory.path\n"
        "print(json.dumps(sorted(m for m in ('numpy', 'torch', 'pandas', 'plotly')"
        " if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
