"""The valid window (measure.window) against a brute-force reading of the exact bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stabcli.measure.settings import MeasureSettings
from stabcli.measure.window import Regime, plan_sweep, plan_window, regime, settle_step
from stabcli.theory.exact import exact_bound, exact_slope

SETTINGS = MeasureSettings()
HORIZON = 8000

CASES = {
    "growth-near-1": (0.95, 0.99, Regime.GROWTH),
    "growth-fast": (0.5, 0.9, Regime.GROWTH),
    "growth-near-boundary": (0.95993, 0.9844, Regime.GROWTH),
    "torch-default": (0.999, 0.9, Regime.BOUNDED),
    "rmsprop": (0.9, 0.0, Regime.BOUNDED),
    "paper-B-minus-exactly-stable": (0.4, 0.6, Regime.BOUNDED),
    "boundary": (0.99, math.sqrt(0.99), Regime.BOUNDARY),
}


def _brute_force_settle(beta: float, gamma: float, rule: Regime) -> int:
    """First n after which the rule holds at every later step up to HORIZON (or where the
    bound overflows float64), read off exact_bound and exact_slope directly."""
    n = np.arange(HORIZON + 1)
    log_b = np.log(exact_bound(beta, gamma, n))
    n = n[np.isfinite(log_b)]
    log_b = log_b[: n.size]
    slope = np.diff(log_b)  # (HORIZON,)
    steps = n[:-1]
    if rule is Regime.GROWTH:
        limit = math.log(gamma) - 0.5 * math.log(beta)
        rho = exact_slope(beta, gamma, steps)
        bad = (abs(rho / limit - 1) > 0.02) | (abs(slope / limit - 1) > 0.02)
    elif rule is Regime.BOUNDARY:
        local = slope / np.diff(np.log(n + 1.0))
        bad = abs(local / 0.5 - 1) > 0.02
    else:
        bad = slope >= 1e-3
    failing = np.flatnonzero(bad)
    return int(failing[-1]) + 1 if failing.size else 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_settle_step_matches_a_brute_force_reading_of_the_bound(case: str) -> None:
    beta, gamma, rule = CASES[case]
    assert regime(beta, gamma, SETTINGS) is rule
    got = settle_step(beta, gamma, SETTINGS)
    assert got is not None
    assert abs(got - _brute_force_settle(beta, gamma, rule)) <= 1


@pytest.mark.parametrize("case", ["growth-near-1", "growth-fast", "growth-near-boundary"])
def test_growth_window_has_rho_and_the_bound_slope_within_2_percent(case: str) -> None:
    beta, gamma, _ = CASES[case]
    window = plan_window(beta, gamma, 2000, SETTINGS)  # the bound overflows float64 at 2900
    assert window.ok and (window.start, window.stop) == (1333, 2000)  # the last third
    n = np.arange(window.start, window.stop)
    limit = math.log(gamma) - 0.5 * math.log(beta)
    bound_slope = np.diff(np.log(exact_bound(beta, gamma, np.append(n, window.stop))))
    assert np.all(abs(exact_slope(beta, gamma, n) / limit - 1) <= 0.02)
    assert np.all(abs(bound_slope / limit - 1) <= 0.02)


def test_bounded_window_starts_after_the_bias_correction_ramp() -> None:
    """At PyTorch's default (0.999, 0.9) the bound's log-slope exceeds 1e-3 until n ≈ 400."""
    window = plan_window(0.999, 0.9, 3000, SETTINGS)
    n = np.arange(window.settle_step - 1, 3001)
    slope = np.diff(np.log(exact_bound(0.999, 0.9, n)))
    assert slope[0] >= 1e-3 and np.all(slope[1:] < 1e-3)
    assert 300 < window.settle_step < 500


@pytest.mark.parametrize("case", sorted(CASES))
def test_too_short_run_names_the_steps_that_suffice(case: str) -> None:
    beta, gamma, _ = CASES[case]
    needed = plan_window(beta, gamma, 100_000, SETTINGS).steps_needed
    assert needed is not None
    if needed > SETTINGS.min_window:
        short = plan_window(beta, gamma, needed - 1, SETTINGS)
        assert not short.ok
        assert short.reason.startswith("run too short")
        assert f"use steps ≥ {needed}" in short.reason
    enough = plan_window(beta, gamma, needed, SETTINGS)
    assert enough.ok and enough.length == SETTINGS.min_window


def test_torch_default_betas_in_a_100_step_run_are_too_short() -> None:
    window = plan_window(0.999, 0.9, 100, SETTINGS)
    assert not window.ok
    assert "falls below 0.001" in window.reason


def test_window_length_is_a_third_of_the_run_within_its_limits() -> None:
    assert [SETTINGS.window_length(s) for s in (150, 300, 600, 1500, 3000, 9000)] == [
        100, 100, 200, 500, 1000, 1000,
    ]  # fmt: skip


def test_window_is_the_last_block_and_is_cut_at_divergence() -> None:
    window = plan_window(0.95, 0.99, 3000, SETTINGS)
    assert (window.start, window.stop) == (2000, 3000)  # the last third
    cut = window.cut_at(2000, SETTINGS)
    assert (cut.start, cut.stop) == (1333, 2000) and cut.ok
    settled = window.settle_step
    assert settled is not None
    early = window.cut_at(settled + 50, SETTINGS)
    assert not early.ok and "diverged at n =" in early.reason


def test_plan_sweep_lists_short_points_and_the_steps_for_all() -> None:
    """The user's grid 0.9:0.999:4 × 0.85:0.99:4 at 200 steps: which points need more."""
    grid = [(b, g) for b in np.linspace(0.9, 0.999, 4) for g in np.linspace(0.85, 0.99, 4)]
    plan = plan_sweep(grid, 200, SETTINGS)
    needs = [plan_window(b, g, 200, SETTINGS).steps_needed for b, g in grid]
    assert plan.steps_needed == max(n for n in needs if n is not None)
    assert {(p.beta, p.gamma) for p in plan.short} == {
        (b, g) for (b, g), n in zip(grid, needs, strict=True) if n is not None and n > 200
    }
    assert plan.short and plan.lines()[0].endswith(
        f"use --steps {plan.steps_needed} to measure them all"
    )
    assert plan_sweep(grid, plan.steps_needed, SETTINGS).short == ()
    assert plan_sweep(grid, plan.steps_needed, SETTINGS).lines() == []
