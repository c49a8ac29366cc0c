"""Synthetic Adam traces: a float64 numpy Adam whose max-update reaches the exact bound.

One parameter's gradient fades as (β/γ)^k (faster than sqrt(β) per step when γ² > β), which
makes Cauchy-Schwarz an equality (docs/theory.md §3); another sees ordinary noise and holds
the max-update early on. Where growth is predicted, the measured rate must be within 3% of
ρ_n over the window; where it is not, the point must come out bounded.
"""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.measure import MeasuredClass, Verdict, measure_points
from stabcli.theory.exact import exact_slope

GROWTH = {
    # id: (β, γ, steps) with γ² > β; steps keep (β/γ)^{2k} far from float64 underflow
    "deep": (0.5, 0.9, 400),
    "mid": (0.9, 0.99, 1500),
    "near-1": (0.95, 0.99, 1500),
    "slow": (0.97, 0.995, 2000),
    "slowest": (0.99, 0.999, 4000),
}


@pytest.mark.parametrize("case", list(GROWTH))
def test_measured_rate_is_within_3_percent_of_rho(adam_max_update, fading_grads, case) -> None:
    beta, gamma, steps = GROWTH[case]
    u = adam_max_update(fading_grads(beta, gamma, steps, np.random.default_rng(1)), beta, gamma)
    point = measure_points([beta], [gamma], u[None, :], dtype="float64").points[0]
    rho = float(np.mean(exact_slope(beta, gamma, np.arange(point.rate.start, point.rate.stop))))
    assert point.measured_class is MeasuredClass.GROWING
    assert point.rate.rate == pytest.approx(rho, rel=0.03)
    assert point.exact.verdict is Verdict.PREDICTED_AND_SEEN and point.exact.rel_error < 0.03
    assert point.bound.held


def test_noisy_fading_gradient_still_gives_rho_within_3_percent(adam_max_update, fading_grads):
    """10% multiplicative noise on the fading gradient: below the bound, same rate."""
    beta, gamma, steps = GROWTH["mid"]
    grads = fading_grads(beta, gamma, steps, np.random.default_rng(2), fade_noise=0.1)
    point = measure_points([beta], [gamma], adam_max_update(grads, beta, gamma)[None, :]).points[0]
    rho = float(np.mean(exact_slope(beta, gamma, np.arange(point.rate.start, point.rate.stop))))
    assert point.rate.rate == pytest.approx(rho, rel=0.03)


@pytest.mark.parametrize(
    ("beta", "gamma", "paper_verdict"),
    [
        (0.999, 0.9, Verdict.BOUNDED_AS_PREDICTED),
        (0.99, 0.95, Verdict.BOUNDED_AS_PREDICTED),
        (0.4, 0.6, Verdict.NOT_REACHED),  # paper's B−, exactly stable
    ],
    ids=["torch-default", "stable", "paper-B-minus"],
)
def test_ordinary_noise_is_bounded(adam_max_update, beta, gamma, paper_verdict) -> None:
    grads = np.random.default_rng(3).normal(size=(1500, 8))
    point = measure_points([beta], [gamma], adam_max_update(grads, beta, gamma)[None, :]).points[0]
    assert point.measured_class is MeasuredClass.BOUNDED
    assert point.exact.verdict is Verdict.BOUNDED_AS_PREDICTED
    assert point.paper.verdict is paper_verdict
    assert point.bound.held


def test_many_points_at_once_equal_one_at_a_time(adam_max_update, fading_grads) -> None:
    """The vectorized (P, S) path gives each point what it gets alone."""
    points = [(0.9, 0.99), (0.95, 0.99), (0.999, 0.9), (0.4, 0.6)]
    rng = np.random.default_rng(4)
    traces = np.stack([adam_max_update(fading_grads(b, g, 1500, rng), b, g) for b, g in points])
    together = measure_points([b for b, _ in points], [g for _, g in points], traces)
    for i, (b, g) in enumerate(points):
        alone = measure_points([b], [g], traces[i : i + 1])
        assert _same(together.points[i], alone.points[0])
        assert np.allclose(together.profiles[i].slopes, alone.profiles[0].slopes, equal_nan=True)


def _same(a, b) -> bool:
    """Equal up to float rounding of the centred running sums (nan-aware)."""
    ra, rb = a.rate, b.rate
    close = np.allclose([ra.rate, ra.stderr], [rb.rate, rb.stderr], rtol=1e-9, equal_nan=True)
    return close and a.measured_class is b.measured_class and a.exact == b.exact
