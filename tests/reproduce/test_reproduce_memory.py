"""The memory paper's Figures 1 and 2 (stabcli.reproduce.memory_paper) at test scale, and
the pieces they are built from against independent formulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stabcli.reproduce.memory_paper import (
    ORDER_TOLERANCE,
    RANK_THRESHOLD,
    THEOREM_ORDER,
    MemSettings,
    adamw_direction,
    adamw_rows,
    first_order_direction,
    generalization_figure,
    memory_ages,
    memoryless_direction,
    memoryless_figure,
    spearman,
    synthetic_problem,
)
from stabcli.theory.memory import memory_coefficient

# ---------------------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(n_samples=512)


def test_softmax_gradient_and_hvp_against_finite_differences(problem) -> None:
    prob, theta0 = problem
    rng = np.random.default_rng(0)
    theta = (theta0 + 0.3 * rng.normal(size=theta0.shape))[None]  # (1, D)
    direction = rng.normal(size=theta.shape)
    h = 1e-5
    g, s = prob.gradient(theta)
    numeric = (prob.loss(theta + h * direction) - prob.loss(theta - h * direction)) / (2 * h)
    assert float(np.sum(g * direction)) == pytest.approx(float(numeric[0]), rel=1e-7)
    hv = prob.hvp(s, direction)
    g_plus, _ = prob.gradient(theta + h * direction)
    g_minus, _ = prob.gradient(theta - h * direction)
    np.testing.assert_allclose(hv, (g_plus - g_minus) / (2 * h), rtol=1e-6, atol=1e-11)


@pytest.mark.parametrize("x", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_memory_ages_are_the_bias_corrected_mean_age(x, n) -> None:
    """A_n = (1−x)/(1−x^{n+1}) Σ_{k=0..n} k x^k (MEM Lemma K.2's sums), summed directly."""
    k = np.arange(n + 1)
    direct = (1 - x) / (1 - x ** (n + 1)) * np.sum(k * x**k)
    assert memory_ages(x, n) == pytest.approx(direct, rel=1e-10, abs=1e-12)


def test_memory_ages_tend_to_the_memory_coefficients_terms() -> None:
    assert memory_ages(0.99, 100_000) - memory_ages(0.9, 100_000) == pytest.approx(
        memory_coefficient(0.99, 0.9), rel=1e-12
    )


def _one_step_residual_order(prob, theta0, s: MemSettings, direction) -> float:
    """Slope in h of ‖θ_{n+1} − θ_n + h F^{(n)}(θ_n, …, θ_0)‖∞ at a fixed time T = nh, for an
    iteration θ_{n+1} = θ_n − h·direction(θ_n, n, h), F^{(n)} being AdamW's own update (MEM
    Example 1.3) on the iteration's history. T spans ten memories at the largest h."""
    lrs = [1e-4, 5e-5, 2.5e-5]
    horizon = 10 * lrs[0] / (1 - max(s.beta, s.gamma))
    residuals = []
    for h in lrs:
        theta = theta0[None].copy()
        m = np.zeros_like(theta)
        v = np.zeros_like(theta)
        for n in range(round(horizon / h)):
            g, _ = prob.gradient(theta)  # at θ_n: the history Adam's F^{(n)} averages
            m = s.gamma * m + (1 - s.gamma) * g
            v = s.beta * v + (1 - s.beta) * g * g
            adam_step = h * adamw_direction(s, m, v, n, theta)
            new = theta - h * direction(theta, n, h)
            residual = np.abs(new - theta + adam_step).max()
            theta = new
        residuals.append(residual)
    return float(np.polyfit(np.log(lrs), np.log(residuals), 1)[0])


@pytest.mark.parametrize("beta_gamma", [(0.95, 0.9), (0.9, 0.95)], ids=["beta>gamma", "gamma>beta"])
def test_memoryless_iteration_satisfies_adams_recursion_to_third_order(problem, beta_gamma):
    """MEM Theorem 3.2: the memoryless iterates satisfy AdamW's recursion up to C₁h³ per
    step (measured slope ≈ 2.8 over h = 2.5e-5 .. 1e-4). Without the correction M (first
    order, sign descent) the residual is O(h²): the test tells the two apart."""
    prob, theta0 = problem
    s = MemSettings(*beta_gamma, eps=1e-6, weight_decay=0.1)
    with_m = _one_step_residual_order(
        prob, theta0, s, lambda th, n, h: memoryless_direction(s, prob, th, n, h)
    )
    without_m = _one_step_residual_order(
        prob, theta0, s, lambda th, n, h: first_order_direction(s, prob, th)
    )
    assert with_m >= 2.6
    assert without_m == pytest.approx(2.0, abs=0.2)


def test_adamw_rows_is_torch_adamw() -> None:
    gen = torch.Generator().manual_seed(0)
    theta0 = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    betas = torch.tensor([[0.999], [0.95]], dtype=torch.float64)  # β = torch beta2
    gammas = torch.tensor([[0.9], [0.99]], dtype=torch.float64)  # γ = torch beta1
    grads = torch.randn(30, 2, 5, generator=gen, dtype=torch.float64)
    theta, m, v = theta0.clone(), torch.zeros_like(theta0), torch.zeros_like(theta0)
    for n in range(30):
        theta, m, v = adamw_rows(theta, m, v, grads[n], n, betas, gammas, 1e-2, 0.05, 1e-6)
    for row in range(2):
        p = torch.nn.Parameter(theta0[row].clone())
        opt = torch.optim.AdamW(
            [p],
            lr=1e-2,
            betas=(float(gammas[row]), float(betas[row])),
            eps=1e-6,
            weight_decay=0.05,
        )
        for n in range(30):
            p.grad = grads[n, row].clone()
            opt.step()
        torch.testing.assert_close(theta[row], p.detach(), rtol=1e-12, atol=1e-14)


def test_spearman_against_ranks_by_hand() -> None:
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([10, 20, 25, 40.0])) == pytest.approx(1)
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0])) == pytest.approx(-1)
    # ties share ranks: a → (0, 1.5, 1.5, 3), b → (0, 1, 2, 3)
    expected = np.corrcoef([0, 1.5, 1.5, 3], [0, 1, 2, 3])[0, 1]
    assert spearman(np.array([1, 2, 2, 3.0]), np.array([1, 2, 3, 4.0])) == pytest.approx(expected)
    # non-finite pairs are dropped; fewer than three pairs give nan
    assert spearman(np.array([1, 2, np.nan, 3.0]), np.array([3, 2, 1, 0.0])) == pytest.approx(-1)
    assert math.isnan(spearman(np.array([1, 2.0]), np.array([1, 2.0])))


# ---------------------------------------------------------------------------------------
# Figure 1 at test scale
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def figure1():
    return memoryless_figure("test")


def test_memoryless_distance_has_the_theorems_order(figure1) -> None:
    assert figure1.order == pytest.approx(THEOREM_ORDER, abs=ORDER_TOLERANCE)
    assert np.all(figure1.max_memoryless < figure1.max_first_order)
    assert figure1.first_order_order < figure1.order - 0.5  # sign descent: a lower order
    assert figure1.assessment.held is True


def test_figure1_data_is_complete(figure1) -> None:
    for h, steps, free, first in zip(
        figure1.lrs, figure1.steps, figure1.memoryless, figure1.first_order, strict=True
    ):
        assert len(steps) == round(figure1.horizon / h) + 1
        assert free.shape == first.shape == steps.shape
        assert free[0] == first[0] == 0.0
    assert "Corollary 3.3" in figure1.assessment.claim
    assert "Log-log slope" in figure1.assessment.measured


# ---------------------------------------------------------------------------------------
# Figure 2 at test scale
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def figure2():
    return generalization_figure("test")


def test_figure2_points_and_memory_coefficient(figure2) -> None:
    q, r = len(figure2.betas), len(figure2.seeds)
    assert figure2.accuracy.shape == figure2.steps_to_threshold.shape == (q, r)
    for b, g, k in zip(figure2.betas, figure2.gammas, figure2.memory_coefficient, strict=True):
        assert k == pytest.approx(b / (1 - b) - g / (1 - g), rel=1e-12)
    assert figure2.exact_stable.tolist() == [
        g * g < b for b, g in zip(figure2.betas, figure2.gammas, strict=True)
    ]


def test_figure2_reads_accuracy_at_the_threshold(figure2) -> None:
    reached = figure2.steps_to_threshold >= 0
    assert reached.all()  # the test scale's threshold is reached by every point
    assert np.all((figure2.accuracy >= 0) & (figure2.accuracy <= 1))
    assert np.all(figure2.steps_to_threshold < figure2.max_steps)


def test_figure2_assessment_follows_the_stated_rule(figure2) -> None:
    rho = figure2.rank_correlation
    in_beta = np.array([s == "beta" for s in figure2.sweep])
    assert rho == pytest.approx(
        spearman(figure2.memory_coefficient[in_beta], figure2.mean_accuracy[in_beta])
    )
    expected = True if rho <= -RANK_THRESHOLD else (False if rho >= 0 else None)
    assert figure2.assessment.held is expected
    assert "Spearman" in figure2.assessment.measured
