"""The exact bound check (measure.bounds): ratios over all n and past the transient."""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.errors import StabcliError
from stabcli.measure import BoundStatus, measure_points, rounding_tolerance
from stabcli.measure.bounds import bound_status
from stabcli.theory.exact import exact_bound

S = 1500


def test_ratios_over_all_steps_and_past_the_transient_with_wd_term() -> None:
    """u_n = (bound_n + wd_n) · q_n with a known q: the ratios are q's maxima."""
    beta, gamma = 0.99, 0.9
    n = np.arange(S)
    q = 0.5 + 0.3 * np.cos(n / 50.0) ** 2  # at most 0.8 …
    q[20] = 0.97  # … except in the transient
    wd = 0.01 * (1 + np.sin(n / 30.0))  # λ‖θ_n‖∞
    u = (exact_bound(beta, gamma, n) + wd) * q
    m = measure_points([beta], [gamma], u[None, :], wd_term=wd[None, :], dtype="float64")
    point = m.points[0]
    window = slice(point.window.start, point.window.stop)
    assert point.window.start > 20
    assert point.bound.ratio_all == pytest.approx(0.97, rel=1e-12)
    assert point.bound.step_all == 20
    assert point.bound.ratio_window == pytest.approx(q[window].max(), rel=1e-12)
    assert point.bound.status is BoundStatus.WITHIN and point.bound.held
    without_wd = measure_points([beta], [gamma], u[None, :], dtype="float64").points[0]
    assert without_wd.bound.ratio_all > 0.97  # the wd term is part of what is allowed


def test_adamw_steps_stay_within_bound_plus_wd_term() -> None:
    """A numpy AdamW: its step u_n + λθ_n exceeds the bound alone, never bound + λ‖θ_n‖∞."""
    beta, gamma, lam, lr = 0.95, 0.9, 0.5, 0.1
    rng = np.random.default_rng(2)
    theta = np.full(3, 10.0)
    m, v = np.zeros(3), np.zeros(3)
    steps, wd = np.zeros(400), np.zeros(400)
    for k in range(400):
        g = rng.normal(size=3)
        m = gamma * m + (1 - gamma) * g
        v = beta * v + (1 - beta) * g * g
        u = np.sqrt(1 - beta ** (k + 1)) / (1 - gamma ** (k + 1)) * m / np.sqrt(v)
        wd[k] = lam * np.abs(theta).max()
        new = theta - lr * (u + lam * theta)
        steps[k] = np.abs(new - theta).max() / lr
        theta = new
    with_wd = measure_points([beta], [gamma], steps[None, :], wd_term=wd[None, :], dtype="float64")
    alone = measure_points([beta], [gamma], steps[None, :], dtype="float64")
    assert with_wd.points[0].bound.ratio_all <= 1.0
    assert alone.points[0].bound.ratio_all > 1.0


@pytest.mark.parametrize(
    ("point", "tight"),
    [((0.9, 0.99), True), ((0.95, 0.99), True), ((0.999, 0.9), False)],
    ids=["tight-fast", "tight-near-1", "noise-torch-default"],
)
def test_numpy_adam_stays_within_the_bound(adam_max_update, fading_grads, point, tight) -> None:
    beta, gamma = point
    grads = fading_grads(beta, gamma, 600, np.random.default_rng(4))
    u = adam_max_update(grads if tight else grads[:, 1:], beta, gamma)
    check = measure_points([beta], [gamma], u[None, :], dtype="float64").points[0].bound
    assert check.held
    assert check.ratio_all <= 1.0 + rounding_tolerance("float64")
    if tight:  # the fading gradient reaches the bound (Cauchy-Schwarz with equality)
        assert check.ratio_window == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    ("ratio", "dtype", "reason", "expected"),
    [
        (0.999, "float32", "", BoundStatus.WITHIN),
        (1.0, "float64", "", BoundStatus.WITHIN),
        (1 + 1.2e-7, "float32", "", BoundStatus.ROUNDING),  # float32 at n = 0, bound 1
        (1 + 1.2e-7, "bfloat16", "", BoundStatus.ROUNDING),  # autocast: float32 moments
        (1 + 1.2e-7, "float64", "", BoundStatus.ABOVE),
        (1.3, "float32", "", BoundStatus.ABOVE),
        (1.3, "float32", "float32 second moment underflowed", BoundStatus.INVALID),
        (float("nan"), "float32", "", BoundStatus.UNKNOWN),
    ],
    ids=["below", "equal", "f32-rounding", "bf16-rounding", "f64-above", "above", "flagged", "nan"],
)
def test_bound_status_words(ratio, dtype, reason, expected) -> None:
    assert bound_status(ratio, rounding_tolerance(dtype), reason) is expected


def test_flagged_point_is_not_a_falsification_but_an_unflagged_one_is() -> None:
    n = np.arange(S)
    u = exact_bound(0.99, 0.9, n) * 1.3
    u2 = np.stack([u, u])
    m = measure_points(
        [0.99, 0.99], [0.9, 0.9], u2, dtype="float32", invalid=["v_n underflow in float32", ""]
    )
    first, second = m.points
    assert first.bound.status is BoundStatus.INVALID and first.bound.note.startswith("v_n")
    assert second.bound.status is BoundStatus.ABOVE and not second.bound.held
    assert len(m.headline.falsifications) == 1
    assert m.headline.lines()[0].startswith("FALSIFIED (exact)")
    assert m.headline.n_invalid == 1


def test_unknown_dtype_is_a_user_error() -> None:
    with pytest.raises(StabcliError, match="unknown training dtype 'float8'"):
        rounding_tolerance("float8")
