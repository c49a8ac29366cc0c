"""The √n laws on both boundaries (stabcli.theory.paper.sqrt_n_law, docs/theory.md §4) and
Figure 5's analysis (stabcli.reproduce.boundary) against simulated gradient sequences.

The simulations here are a plain float64 numpy Adam written for these tests (ε = 0,
docs/theory.md (1.1)), run on unscaled gradients, independent of the module's scaled
recursion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stabcli.measure.power import GrowthShape
from stabcli.reproduce.boundary import b0_betas, boundary_figure, simulate_max_update
from stabcli.theory import exact, paper

BETAS = [pytest.param(b, id=f"beta={b}") for b in (0.5, 0.9, 0.99, 0.999)]


def adam_updates(grads: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    """(S,) |u_n| of Adam on a 1-D gradient sequence (S,)."""
    m = v = 0.0
    out = np.empty(len(grads))
    for n, g in enumerate(grads):
        m = gamma * m + (1 - gamma) * g
        v = beta * v + (1 - beta) * g * g
        corr = math.sqrt(1 - beta ** (n + 1)) / (1 - gamma ** (n + 1))
        out[n] = abs(corr * m / math.sqrt(v))
    return out


def log_log_slope(y: np.ndarray, lo: int, hi: int) -> float:
    n = np.arange(lo, hi)
    return float(np.polyfit(np.log(n + 1.0), np.log(y[lo:hi]), 1)[0])


# ---------------------------------------------------------------------------------------
# the laws (theory)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", BETAS)
def test_paper_law_is_eq5_on_b0(beta) -> None:
    """(4.1) against eq. (5) evaluated by paper_bound at (β, 2β/(1+β)) (its B0 branch)."""
    n = np.arange(1, 100_000, 37)
    law = paper.sqrt_n_law(beta, "paper")
    assert law.gamma == pytest.approx(2 * beta / (1 + beta), rel=1e-15)
    assert paper.region(beta, law.gamma) is paper.Region.B_ZERO
    np.testing.assert_allclose(law.bound(n), paper.paper_bound(beta, law.gamma, n), rtol=1e-12)
    np.testing.assert_allclose(paper.b0_bound(beta, n), law.bound(n), rtol=0)


@pytest.mark.parametrize("beta", BETAS)
def test_exact_law_is_the_exact_bound_on_the_exact_boundary(beta) -> None:
    """(4.2) against exact_bound at (β, √β), the Cauchy-Schwarz sum S_n = n + 1."""
    n = np.arange(0, 100_000, 37)
    law = paper.sqrt_n_law(beta, "exact")
    assert law.gamma**2 == pytest.approx(beta, rel=1e-15)
    np.testing.assert_allclose(law.bound(n), exact.exact_bound(beta, law.gamma, n), rtol=1e-10)


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99])
def test_exact_law_is_attained_by_gradients_fading_like_gamma(beta) -> None:
    """g_j = γ^j = (√β)^j makes every |u_n| equal to the law (docs/theory.md (4.2))."""
    law = paper.sqrt_n_law(beta, "exact")
    steps = 400  # γ^{2n} stays a normal float64 at β = 0.5
    u = adam_updates(law.gamma ** np.arange(steps), beta, law.gamma)
    np.testing.assert_allclose(u, law.bound(np.arange(steps)), rtol=1e-9)


@pytest.mark.parametrize("boundary", ["paper", "exact"])
@pytest.mark.parametrize("beta", BETAS)
def test_both_laws_grow_as_sqrt_n_once_corrected(beta, boundary) -> None:
    """d log bound/d log n → ½ once corr_n → 1 (n ≫ 1/(1 − β))."""
    law = paper.sqrt_n_law(beta, boundary)
    n0 = int(200 / (1 - beta))
    lo, hi = np.log(n0), np.log(4 * n0)
    slope = (np.log(law.bound(4 * n0)) - np.log(law.bound(n0))) / (hi - lo)
    assert slope == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("beta", BETAS)
def test_exact_theory_bounds_b0_by_one_over_sqrt_one_minus_beta(beta) -> None:
    """(4.3): U_∞ at (β, 2β/(1+β)) is 1/sqrt(1 − β)."""
    gamma = paper.sqrt_n_law(beta, "paper").gamma
    assert exact.exact_stable(beta, gamma)
    assert exact.exact_limit_bound(beta, gamma) == pytest.approx(1 / math.sqrt(1 - beta), rel=1e-9)


def test_bad_boundary_or_beta_is_refused() -> None:
    with pytest.raises(ValueError):
        paper.sqrt_n_law(0.9, "B0")
    with pytest.raises(ValueError):
        paper.sqrt_n_law(1.0)


# ---------------------------------------------------------------------------------------
# simulated sequences on B0
# ---------------------------------------------------------------------------------------


def test_scaled_simulation_matches_plain_adam() -> None:
    """boundary's recursion in m/q^n, v/q^{2n} against plain Adam on g_j = q^j ξ_j."""
    rng = np.random.default_rng(3)
    steps, beta = 600, 0.95
    cases = [(beta, 2 * beta / (1 + beta)), (beta, math.sqrt(beta))]
    xi = 1 + 0.1 * rng.normal(size=(steps, len(cases), 1))
    betas = np.array([c[0] for c in cases])
    gammas = np.array([c[1] for c in cases])
    ratios = betas / gammas
    draws = iter(xi)
    scaled = simulate_max_update(betas, gammas, ratios, lambda: next(draws), steps)
    for i, (b, g) in enumerate(cases):
        plain = adam_updates(ratios[i] ** np.arange(steps) * xi[:, i, 0], b, g)
        np.testing.assert_allclose(scaled[i], plain, rtol=1e-11)


def test_b0_worst_case_follows_sqrt_n_before_the_crossover() -> None:
    """At β = 0.99, 1/(1−β) = 100 ≪ n ≪ ((1+β)/(1−β))² ≈ 39,600: the attaining sequence's
    |u_n| = U_n grows with the paper's log-log slope, and U_n ≈ (2√β/(1+β)) P_n."""
    beta = 0.99
    gamma = 2 * beta / (1 + beta)
    steps = 4000
    u = adam_updates((beta / gamma) ** np.arange(steps), beta, gamma)
    n = np.arange(steps)
    paper_law = paper.b0_bound(beta, n)
    assert log_log_slope(u, 1000, 4000) == pytest.approx(
        log_log_slope(paper_law, 1000, 4000), abs=0.02
    )
    assert log_log_slope(u, 1000, 4000) == pytest.approx(0.5, abs=0.1)
    ratio = u[1000:] / paper_law[1000:]
    assert np.all(ratio <= 2 * math.sqrt(beta) / (1 + beta) * math.sqrt(1001 / 1000) + 1e-12)
    assert np.all(ratio >= 0.9)


def test_b0_worst_case_saturates_at_the_exact_limit_after_the_crossover() -> None:
    """At β = 0.9 the crossover is ((1.9)/(0.1))² = 361 steps: by n = 20,000 the attaining
    sequence's |u_n| has stopped growing and sits at 1/sqrt(1 − β) (docs/theory.md (4.3))."""
    beta = 0.9
    gamma = 2 * beta / (1 + beta)
    steps = 20_000
    ratio = beta / gamma
    # in scaled variables: ξ = 1 for every j (the attaining sequence), no underflow
    u = simulate_max_update(
        np.array([beta]), np.array([gamma]), np.array([ratio]), lambda: np.ones((1, 1)), steps
    )[0]
    assert u[-1] == pytest.approx(1 / math.sqrt(1 - beta), rel=1e-6)
    assert abs(log_log_slope(u, 5000, 20_000)) < 1e-3


def test_b0_betas_span_the_stated_range() -> None:
    betas = b0_betas()
    assert len(betas) == 11 and betas[0] == 0.9 and betas[-1] == 0.999
    gaps = np.log(1 - np.array(betas))
    # β is rounded to 12 decimals: log(1 − β) moves by up to 1e-12/1e-3 = 1e-9 at β = 0.999
    np.testing.assert_allclose(np.diff(gaps), np.diff(gaps)[0], rtol=5e-9)


# ---------------------------------------------------------------------------------------
# Figure 5's analysis at test scale
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def figure():
    return boundary_figure("test")


def test_exact_boundary_worst_case_is_measured_as_sqrt_n(figure) -> None:
    traces = figure.select("exact", "worst case")
    assert len(traces) == len(figure.betas) == 3
    for t in traces:
        assert t.power.shape is GrowthShape.POWER and t.power.sqrt_n
        assert t.power.exponent == pytest.approx(0.5, abs=0.02)


def test_b0_noise_is_never_sqrt_n_and_worst_case_follows_its_bound(figure) -> None:
    for t in figure.select("paper", "noise"):
        assert not t.power.sqrt_n
        assert t.power.shape in (GrowthShape.BOUNDED, GrowthShape.UNDETERMINED)
    for t in figure.select("paper", "worst case") + figure.select("exact", "worst case"):
        assert t.power.exponent == pytest.approx(t.bound_exponent, abs=0.02)
        assert t.tracking > 0.8  # near-attaining: within 20% of U_n over the window


def test_no_trace_exceeds_the_exact_bound(figure) -> None:
    for t in figure.traces:
        assert t.bound_ratio <= 1 + 1e-12


def test_figure_data_is_complete(figure) -> None:
    s = len(figure.steps)
    b = len(figure.betas)
    assert len(figure.traces) == 2 * 2 * b
    assert all(t.max_update.shape == (s,) for t in figure.traces)
    assert figure.paper_law.shape == figure.exact_on_b0.shape == figure.exact_law.shape == (b, s)
    np.testing.assert_allclose(figure.exact_limit_on_b0, 1 / np.sqrt(1 - np.array(figure.betas)))
    np.testing.assert_allclose(
        figure.crossover, ((1 + np.array(figure.betas)) / (1 - np.array(figure.betas))) ** 2
    )


def test_assessment_states_claim_and_measurement(figure) -> None:
    a = figure.assessment
    assert "App. F" in a.claim and "B0" in a.claim
    assert "√n" in a.measured and "1/sqrt(1−β)" in a.measured
    undetermined = [
        t for t in figure.select("paper", "noise") if t.power.shape is GrowthShape.UNDETERMINED
    ]
    assert a.held is (None if undetermined else True)
