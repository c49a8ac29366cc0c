"""Known values and closed forms of stabcli.theory, checked against hand formulas.

Every expected value here is derived independently of the implementation: from the
formulas of docs/theory.md written out again in plain Python (direct sums instead of closed
forms, naive powers instead of expm1), or from numbers computed by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabcli.errors import StabcliError
from stabcli.theory import (
    Region,
    analyze_point,
    c_value,
    exact_bound,
    exact_limit_bound,
    exact_rate,
    exact_slope,
    exact_stable,
    paper_bound,
    paper_limit_bound,
    paper_rate,
    region,
)
from stabcli.theory.analysis import first_step_exceeding
from stabcli.theory.domain import HyperPoint
from stabcli.theory.exact import exact_rate_at, log_geometric_sum
from stabcli.theory.kadam import KAdamStrategy, kadam_levels, kadam_table, parse_strategy
from stabcli.theory.memory import memory_coefficient
from stabcli.theory.paper import annealed_lr

PROPERTY = settings(derandomize=True, deadline=None, max_examples=60)

# Valid domain: β in (0, 1), γ in [0, 1).
betas = st.floats(min_value=1e-3, max_value=0.9999)
# γ = 0 (RMSprop) and γ >= 1e-300; subnormal γ has its own test below.
gammas = st.one_of(st.just(0.0), st.floats(min_value=1e-300, max_value=0.9999))


def hand_corr(beta: float, gamma: float, n: int) -> float:
    """corr_n = sqrt(1 − β^{n+1}) / (1 − γ^{n+1}), with naive powers."""
    return math.sqrt(1.0 - beta ** (n + 1)) / (1.0 - gamma ** (n + 1))


def hand_c(beta: float, gamma: float) -> float:
    """C = 2/γ − 1/β − 1 (the second form in docs/theory.md (2.2))."""
    return 2.0 / gamma - 1.0 / beta - 1.0


def hand_exact_bound(beta: float, gamma: float, n: int) -> float:
    """corr_n · (1−γ)/sqrt(1−β) · sqrt(S_n) with S_n summed term by term."""
    r = gamma * gamma / beta
    try:
        s_n = math.fsum(r**k for k in range(n + 1))
    except OverflowError:
        return math.inf
    return hand_corr(beta, gamma, n) * (1.0 - gamma) / math.sqrt(1.0 - beta) * math.sqrt(s_n)


# --- C and the paper's regions --------------------------------------------------------


def test_c_at_default_like_points():
    # C(0.95, 0.9) = (2·0.95·0.1 − 0.9·0.05)/(0.95·0.9) = (0.19 − 0.045)/0.855 = 0.145/0.855
    assert c_value(0.95, 0.9) == pytest.approx(0.145 / 0.855, rel=1e-12)
    # C(0.999, 0.9) = 2/0.9 − 1/0.999 − 1 = 0.221221...
    assert c_value(0.999, 0.9) == pytest.approx(0.22122, abs=5e-6)
    assert region(0.999, 0.9) is Region.B_PLUS
    assert region(0.95, 0.9) is Region.B_PLUS


@given(beta=betas, gamma=st.floats(min_value=1e-3, max_value=0.9999))
@PROPERTY
def test_c_two_forms_agree(beta, gamma):
    # docs/theory.md (2.2) writes C twice: (2β(1−γ) − γ(1−β))/(βγ) and 2/γ − 1/β − 1.
    first = (2 * beta * (1 - gamma) - gamma * (1 - beta)) / (beta * gamma)
    assert c_value(beta, gamma) == pytest.approx(first, rel=1e-9, abs=1e-9)
    assert c_value(beta, gamma) == pytest.approx(hand_c(beta, gamma), rel=1e-9, abs=1e-9)


def test_c_is_plus_infinity_at_rmsprop():
    for beta in (0.001, 0.5, 0.999):
        assert c_value(beta, 0.0) == math.inf
        assert c_value(beta, 0) == math.inf
    arr = c_value(np.array([0.5, 0.9, 0.99]), np.array([0.0, 0.5, 0.0]))
    assert arr[0] == np.inf and arr[2] == np.inf
    assert arr[1] == pytest.approx(hand_c(0.9, 0.5))


def test_paper_b_minus_point_that_is_exactly_stable():
    beta, gamma = 0.4, 0.6
    assert c_value(beta, gamma) == pytest.approx(-1.0 / 6.0, rel=1e-12)  # 2/0.6 − 2.5 − 1
    assert region(beta, gamma) is Region.B_MINUS
    assert gamma**2 < beta  # 0.36 < 0.4
    assert exact_stable(beta, gamma)
    assert exact_rate(beta, gamma) == 0.0
    assert paper_rate(beta, gamma) == pytest.approx(1.0 / 12.0, rel=1e-12)
    assert math.isfinite(exact_limit_bound(beta, gamma))
    assert paper_limit_bound(beta, gamma) == math.inf


def test_exact_and_paper_rates_at_half_and_point_nine():
    # docs/theory.md (3.12)-(3.14): exact rate log γ − ½ log β = 0.2412, paper rate |C|/2 = 0.389.
    assert round(exact_rate(0.5, 0.9), 4) == 0.2412
    assert exact_rate(0.5, 0.9) == pytest.approx(math.log(0.9) - 0.5 * math.log(0.5), rel=1e-12)
    assert paper_rate(0.5, 0.9) == pytest.approx(abs(hand_c(0.5, 0.9)) / 2, rel=1e-12)
    assert round(paper_rate(0.5, 0.9), 3) == 0.389


@given(beta=betas, gamma=gammas)
@PROPERTY
def test_exact_stability_is_gamma_squared_below_beta(beta, gamma):
    assert exact_stable(beta, gamma) == (gamma * gamma < beta)
    rate = exact_rate(beta, gamma)
    if gamma * gamma < beta:
        assert rate == 0.0
    else:
        assert rate == pytest.approx(math.log(gamma) - 0.5 * math.log(beta), abs=1e-12)


@pytest.mark.parametrize("beta", [1e-3, 0.01, 0.1, 0.3, 0.5, 0.9, 0.95, 0.999, 0.9999])
def test_b0_boundary_is_recognized_within_tolerance(beta):
    gamma = 2 * beta / (1 + beta)  # C = 0 (paper Section 3.1)
    assert region(beta, gamma) is Region.B_ZERO
    # Off the boundary by much more than rounding: larger γ means smaller C.
    assert region(beta, gamma * (1 + 1e-6)) is Region.B_MINUS
    assert region(beta, gamma * (1 - 1e-6)) is Region.B_PLUS
    assert paper_rate(beta, gamma) == 0.0


def test_b0_tolerance_is_honoured_relative_to_the_terms_of_c():
    # B0 when |C| <= tol · (2/γ + 1/β + 1): the scale of C's rounding error
    c = hand_c(0.95, 0.9)  # ≈ 0.1696
    scale = 2 / 0.9 + 1 / 0.95 + 1  # ≈ 4.275
    assert region(0.95, 0.9, tol=1.01 * c / scale) is Region.B_ZERO
    assert region(0.95, 0.9, tol=0.99 * c / scale) is Region.B_PLUS
    c2, scale2 = hand_c(0.4, 0.6), 2 / 0.6 + 1 / 0.4 + 1  # C = −1/6
    assert region(0.4, 0.6, tol=1.01 * abs(c2) / scale2) is Region.B_ZERO
    assert region(0.4, 0.6, tol=0.99 * abs(c2) / scale2) is Region.B_MINUS


def test_b0_boundary_is_recognized_for_small_beta():
    missed = []
    for beta in np.geomspace(1e-6, 1e-3, 40):
        beta = float(beta)
        gamma = 2 * beta / (1 + beta)
        if region(beta, gamma) is not Region.B_ZERO:
            missed.append(beta)
    assert missed == []


# --- The paper's max-update bound (eq. 5) ---------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 100, 1000])
def test_paper_bound_piecewise(n):
    def prefactor(beta, gamma):
        return (1 - gamma) / gamma * math.sqrt(beta / (1 - beta))

    # B+: 1/sqrt(C)
    b, g = 0.999, 0.9
    expected = hand_corr(b, g, n) * prefactor(b, g) / math.sqrt(hand_c(b, g))
    assert paper_bound(b, g, n) == pytest.approx(expected, rel=1e-12)
    # B0: sqrt(n); γ = 2β/(1+β) with β = 0.5 is γ = 2/3
    b, g = 0.5, 2.0 / 3.0
    assert region(b, g) is Region.B_ZERO
    expected = hand_corr(b, g, n) * prefactor(b, g) * math.sqrt(n)
    assert paper_bound(b, g, n) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    # B−: exp(n|C|/2)/sqrt(|C|)
    b, g = 0.5, 0.9
    c = abs(hand_c(b, g))
    expected = hand_corr(b, g, n) * prefactor(b, g) * math.exp(n * c / 2) / math.sqrt(c)
    assert paper_bound(b, g, n) == pytest.approx(expected, rel=1e-12)


def test_paper_limit_bound():
    b, g = 0.999, 0.9
    expected = (1 - g) / g * math.sqrt(b / (1 - b)) / math.sqrt(hand_c(b, g))
    assert paper_limit_bound(b, g) == pytest.approx(expected, rel=1e-12)
    assert paper_bound(b, g, 10**9) == pytest.approx(expected, rel=1e-9)
    assert paper_limit_bound(0.5, 2.0 / 3.0) == math.inf  # B0
    assert paper_limit_bound(0.5, 0.9) == math.inf  # B−


def test_paper_bound_at_rmsprop_is_infinite_not_nan():
    # γ → 0: (1−γ)/γ · 1/sqrt(C) ~ 1/sqrt(2γ) diverges; the tool reports +inf.
    assert paper_bound(0.9, 0.0, 10) == math.inf
    arr = paper_bound(0.9, 0.0, np.arange(5))
    assert np.all(np.isinf(arr))


def test_paper_bound_rejects_negative_steps():
    with pytest.raises(ValueError):
        paper_bound(0.95, 0.9, -1)
    with pytest.raises(ValueError):
        exact_bound(0.95, 0.9, -1)


# --- Exact discrete bound -------------------------------------------------------------


@given(beta=betas, gamma=gammas, n=st.integers(min_value=0, max_value=150))
@PROPERTY
def test_exact_bound_matches_direct_sum(beta, gamma, n):
    expected = hand_exact_bound(beta, gamma, n)
    if expected < 1e150:  # above, S_n itself nears the float range (see the xfail below)
        assert exact_bound(beta, gamma, n) == pytest.approx(expected, rel=1e-9)


def hand_log10_exact_bound(beta: float, gamma: float, n: int) -> float:
    """log10 of the exact bound for r = γ²/β > 1, with S_n = r^n · Σ_j r^{−j} (no overflow)."""
    r = gamma * gamma / beta
    log_s = n * math.log(r) + math.log(math.fsum(r ** (-j) for j in range(n + 1)))
    log_bound = (
        math.log(hand_corr(beta, gamma, n))
        + math.log((1 - gamma) / math.sqrt(1 - beta))
        + 0.5 * log_s
    )
    return log_bound / math.log(10)


@pytest.mark.parametrize(("beta", "gamma", "n"), [(0.5, 0.9, 2000), (0.001, 0.96875, 103)])
def test_exact_bound_is_finite_where_the_bound_is(beta, gamma, n):
    expected = hand_log10_exact_bound(beta, gamma, n)  # 208.87 and 151.59
    assert expected < 300
    assert math.log10(exact_bound(beta, gamma, n)) == pytest.approx(expected, rel=1e-9)


@given(beta=betas, gamma=gammas)
@PROPERTY
def test_exact_bound_is_one_at_step_zero(beta, gamma):
    # n = 0: corr_0 = sqrt(1−β)/(1−γ) cancels the prefactor and S_0 = 1.
    assert exact_bound(beta, gamma, 0) == pytest.approx(1.0, rel=1e-12)


def test_exact_bound_when_r_is_one():
    # γ² = β exactly (0.5² = 0.25): S_n = n + 1, so the bound grows like sqrt(n).
    for n in (0, 3, 1000):
        expected = hand_corr(0.25, 0.5, n) * 0.5 / math.sqrt(0.75) * math.sqrt(n + 1)
        assert exact_bound(0.25, 0.5, n) == pytest.approx(expected, rel=1e-12)


def test_exact_bound_at_rmsprop():
    # γ = 0: u_n = corr_n g_n / sqrt(v_n) and |g_n| <= sqrt(v_n/(1−β)).
    for beta in (0.1, 0.9, 0.999):
        for n in (0, 5, 500):
            expected = math.sqrt((1 - beta ** (n + 1)) / (1 - beta))
            assert exact_bound(beta, 0.0, n) == pytest.approx(expected, rel=1e-12)


@given(beta=st.floats(0.05, 0.99), gamma=gammas)
@PROPERTY
def test_exact_limit_bound_formula(beta, gamma):
    if gamma * gamma < beta * (1 - 1e-3):
        expected = (1 - gamma) * math.sqrt(beta) / math.sqrt((1 - beta) * (beta - gamma**2))
        assert exact_limit_bound(beta, gamma) == pytest.approx(expected, rel=1e-12)
        # It is the limit of the bound: far out, the bound sits on it.
        assert exact_bound(beta, gamma, 10**7) == pytest.approx(expected, rel=1e-9)
    elif gamma * gamma >= beta:
        assert exact_limit_bound(beta, gamma) == math.inf


# --- Annealing, memory ----------------------------------------------------------------


def test_annealed_lr_appendix_o():
    # B−: η_n = η0 · exp(−n|C|/2) (App. O, eq. 15).
    c = abs(hand_c(0.5, 0.9))
    for n in (0, 1, 10, 500):
        assert annealed_lr(1e-3, 0.5, 0.9, n) == pytest.approx(1e-3 * math.exp(-n * c / 2))
    steps = np.array([0, 1, 10, 500])
    np.testing.assert_allclose(
        annealed_lr(1e-3, 0.5, 0.9, steps), 1e-3 * np.exp(-steps * c / 2), rtol=1e-12
    )
    # B+ and B0: nothing to undo, the learning rate is constant.
    assert annealed_lr(1e-3, 0.999, 0.9, 1000) == pytest.approx(1e-3)
    assert annealed_lr(2e-3, 0.5, 2.0 / 3.0, 1000) == pytest.approx(2e-3)
    assert annealed_lr(2e-3, 0.5, 0.0, 1000) == pytest.approx(2e-3)


def test_memory_coefficient():
    # β/(1−β) − γ/(1−γ): 0.999 → 999, 0.9 → 9.
    assert memory_coefficient(0.999, 0.9) == pytest.approx(990.0, rel=1e-9)
    assert memory_coefficient(0.95, 0.9) == pytest.approx(19.0 - 9.0, rel=1e-9)
    assert memory_coefficient(0.6, 0.6) == pytest.approx(0.0, abs=1e-12)
    assert memory_coefficient(0.5, 0.9) == pytest.approx(1.0 - 9.0, rel=1e-9)  # β < γ
    assert memory_coefficient(0.5, 0.0) == pytest.approx(1.0)
    np.testing.assert_allclose(
        memory_coefficient(np.array([0.999, 0.5]), np.array([0.9, 0.9])), [990.0, -8.0]
    )


# --- k-Adam ---------------------------------------------------------------------------

BASE = HyperPoint(0.999, 0.9)


def hand_level(strategy: str, base: float, k: int) -> float:
    return {
        "inverse-exp": 1 - (1 - base) ** (1 / k),
        "exp": base**k,
        "scaled": base / k,
        "naive": base,
    }[strategy]


@pytest.mark.parametrize("strategy", ["inverse-exp", "exp", "scaled", "naive"])
@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_kadam_strategies(strategy, k):
    levels = kadam_levels(BASE, k, parse_strategy(strategy))
    assert len(levels) == k
    for level in levels:
        assert level.beta == pytest.approx(hand_level(strategy, 0.999, k), rel=1e-12)
        assert level.gamma == pytest.approx(hand_level(strategy, 0.9, k), rel=1e-12)
    if k == 1:  # 1-Adam is Adam
        assert levels[0].beta == pytest.approx(0.999, rel=1e-12)
        assert levels[0].gamma == pytest.approx(0.9, rel=1e-12)


def test_kadam_known_numbers():
    (inv,) = set(kadam_levels(BASE, 2, KAdamStrategy.INVERSE_EXP))
    assert inv.beta == pytest.approx(1 - math.sqrt(0.001)) and inv.beta == pytest.approx(0.968377)
    assert inv.gamma == pytest.approx(0.683772, abs=1e-6)
    (ex,) = set(kadam_levels(BASE, 2, KAdamStrategy.EXP))
    assert (ex.beta, ex.gamma) == pytest.approx((0.998001, 0.81))
    (sc,) = set(kadam_levels(BASE, 2, KAdamStrategy.SCALED))
    assert (sc.beta, sc.gamma) == pytest.approx((0.4995, 0.45))


def test_kadam_table_is_per_level_analysis():
    table = kadam_table(BASE, 3, KAdamStrategy.EXP, step=100)
    assert len(table) == 3
    for row in table:
        assert row.beta == pytest.approx(0.999**3)
        assert row.gamma == pytest.approx(0.9**3)
        assert row.step == 100
        assert row.c_value == pytest.approx(hand_c(0.999**3, 0.9**3))


def test_kadam_bad_input():
    with pytest.raises(StabcliError, match="strategy"):
        parse_strategy("cubic")
    for k in (0, -1, True, 2.0):
        with pytest.raises(StabcliError):
            kadam_levels(BASE, k, KAdamStrategy.NAIVE)


# --- Steps until the bound exceeds a threshold ----------------------------------------


def brute_first_step(bound, threshold: float, horizon: int) -> int | None:
    """First n < horizon with bound(n) > threshold, by evaluating every single step."""
    with np.errstate(over="ignore"):  # the array path warns where the bound overflows to inf
        values = bound(np.arange(horizon))
    above = np.nonzero(values > threshold)[0]
    return int(above[0]) if above.size else None


# (β, γ, threshold, horizon of the brute-force scan)
SCAN_CASES = [
    (0.5, 0.9, 1e3, 10_000),  # both unstable, fast growth
    (0.95, 0.99, 1e3, 100_000),  # both unstable, slow growth
    (0.25, 0.5, 1e3, 4_000_000),  # γ² = β: sqrt(n) growth, crossing near 3e6
    (0.999, 0.9, 5.0, 100_000),  # stable, limit 7.27 > threshold
    (0.81, math.sqrt(0.81 - 1e-8), 1e3, 3_000_000),  # stable, limit ≈ 2e3
    (0.4, 0.6, 1.5, 100_000),  # paper B−, exactly stable with limit 1.63
    (0.98, 0.99, 1.2, 100_000),  # bias correction makes the early bound non-monotone
]


@pytest.mark.parametrize(("beta", "gamma", "threshold", "horizon"), SCAN_CASES)
def test_first_step_exceeding_matches_brute_force(beta, gamma, threshold, horizon):
    with np.errstate(over="ignore"):
        for bound, limit in (
            (lambda n: exact_bound(beta, gamma, n), exact_limit_bound(beta, gamma)),
            (lambda n: paper_bound(beta, gamma, n), paper_limit_bound(beta, gamma)),
        ):
            expected = brute_first_step(bound, threshold, horizon)
            got = first_step_exceeding(bound, threshold, limit)
            if expected is None:
                assert got is None or got >= horizon
            else:
                assert got == expected


def test_first_step_exceeding_never_for_low_limits():
    # (0.999, 0.9): exact limit ≈ 7.27 < 1e3, so never; a brute scan agrees.
    a = analyze_point(0.999, 0.9, threshold=1e3)
    assert a.exact.steps_to_threshold is None
    assert brute_first_step(lambda n: exact_bound(0.999, 0.9, n), 1e3, 100_000) is None
    # Through analyze_point, with its own threshold
    a = analyze_point(0.5, 0.9, threshold=1e3)
    assert a.exact.steps_to_threshold == brute_first_step(
        lambda n: exact_bound(0.5, 0.9, n), 1e3, 10_000
    )
    assert a.paper.steps_to_threshold == brute_first_step(
        lambda n: paper_bound(0.5, 0.9, n), 1e3, 10_000
    )


# --- analyze_point ---------------------------------------------------------------------


def test_analysis_says_the_theories_disagree_at_04_06():
    a = analyze_point(0.4, 0.6)
    assert a.paper.label == "B-" and not a.paper.stable
    assert a.exact.label == "stable" and a.exact.stable
    assert not a.theories_agree
    assert "disagree" in a.verdict.lower()


def test_analysis_agrees_on_stable_and_unstable_points():
    stable = analyze_point(0.999, 0.9)
    assert stable.theories_agree and stable.paper.stable and stable.exact.stable
    assert "disagree" not in stable.verdict.lower()
    assert stable.torch_betas == (0.9, 0.999)
    unstable = analyze_point(0.5, 0.9, step=50)
    assert unstable.theories_agree and not unstable.paper.stable and not unstable.exact.stable
    assert unstable.exact.bound_at_step == pytest.approx(hand_exact_bound(0.5, 0.9, 50))
    assert unstable.exact.rate == pytest.approx(math.log(0.9) - 0.5 * math.log(0.5))
    assert unstable.paper.rate == pytest.approx(abs(hand_c(0.5, 0.9)) / 2)


def test_analysis_json_keys():
    d = analyze_point(0.95, 0.9).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    for key in ("beta", "gamma", "torch_beta1", "torch_beta2", "C", "memory_coefficient"):
        assert key in back
    assert back["torch_beta1"] == 0.9 and back["torch_beta2"] == 0.95
    assert back["C"] == pytest.approx(0.145 / 0.855)
    assert back["exact"]["stable"] is True and back["paper"]["label"] == "B+"


def _numbers(a) -> list[float]:
    out = [a.c_value, a.memory_coefficient]
    for v in (a.paper, a.exact):
        out += [v.rate, v.rate_at_step, v.bound_at_step, v.limit_bound]
        if v.steps_to_threshold is not None:
            out.append(float(v.steps_to_threshold))
    return out


@pytest.mark.parametrize("beta", [0.01, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("step", [0, 1, 1000])
def test_analysis_handles_rmsprop(beta, step):
    a = analyze_point(beta, 0.0, step=step)
    assert a.c_value == math.inf
    assert not any(math.isnan(x) for x in _numbers(a))
    assert "nan" not in a.verdict.lower()
    json.dumps(a.to_dict(), allow_nan=False)  # non-finite values become null
    assert a.exact.stable and a.exact.limit_bound == pytest.approx(1 / math.sqrt(1 - beta))
    assert a.exact.bound_at_step == pytest.approx(math.sqrt((1 - beta ** (step + 1)) / (1 - beta)))
    assert a.memory_coefficient == pytest.approx(beta / (1 - beta))
    table = kadam_table(HyperPoint(beta, 0.0), 2, KAdamStrategy.INVERSE_EXP)
    assert all(not any(math.isnan(x) for x in _numbers(row)) for row in table)


def test_theory_functions_handle_rmsprop():
    for beta in (0.01, 0.5, 0.999):
        values = [
            c_value(beta, 0.0),
            paper_rate(beta, 0.0),
            paper_bound(beta, 0.0, 3),
            paper_limit_bound(beta, 0.0),
            exact_bound(beta, 0.0, 3),
            exact_limit_bound(beta, 0.0),
            exact_rate(beta, 0.0),
            exact_slope(beta, 0.0, 3),
            annealed_lr(1e-3, beta, 0.0, 3),
            memory_coefficient(beta, 0.0),
        ]
        assert not any(math.isnan(v) for v in values), values
        assert region(beta, 0.0) is Region.B_PLUS


@given(beta=betas, gamma=gammas, step=st.integers(0, 5000))
@settings(derandomize=True, deadline=None, max_examples=40)
def test_analysis_is_consistent(beta, gamma, step):
    a = analyze_point(beta, gamma, step=step)
    assert not any(math.isnan(x) for x in _numbers(a))
    # stable: γ² below β by more than the rounding margin of docs/theory.md (3.5)
    assert a.exact.stable == (gamma * gamma < beta * (1.0 - 8 * 2.0**-53))
    assert a.exact.bound_at_step == pytest.approx(exact_bound(beta, gamma, step))
    assert a.paper.rate >= 0 and a.exact.rate >= 0
    c = hand_c(beta, gamma) if gamma > 0 else math.inf
    if abs(c) > 1e-9:
        assert a.paper.label == ("B+" if c > 0 else "B-")
    # γ² >= β implies C = 2/γ − 1/β − 1 <= −(1/γ − 1)² <= 0: whatever the exact theory
    # calls unstable, the paper does too.
    if not a.exact.stable:
        assert not a.paper.stable
    if a.exact.steps_to_threshold is not None:
        assert exact_bound(beta, gamma, a.exact.steps_to_threshold) > a.threshold
        if a.exact.steps_to_threshold > 0:
            assert exact_bound(beta, gamma, a.exact.steps_to_threshold - 1) <= a.threshold


@pytest.mark.parametrize(
    ("beta", "gamma"),
    [
        (0.999, 0.9),
        (0.4, 0.6),
    ],
)
def test_stable_verdicts_have_finite_limits(beta, gamma):
    # (γ = 0 is the one exception, for the paper: see test_rmsprop_paper_bound_is_infinite)
    a = analyze_point(beta, gamma)
    for verdict in (a.paper, a.exact):
        if verdict.stable:
            assert math.isfinite(verdict.limit_bound)
            assert math.isfinite(verdict.bound_at_step)


def test_verdict_on_the_exact_boundary_does_not_claim_exponential_growth():
    a = analyze_point(0.25, 0.5)  # 0.5² == 0.25 exactly in binary
    assert not a.exact.stable
    assert "exponentially" not in a.verdict


@pytest.mark.parametrize("beta", [0.5, 0.75])
@pytest.mark.parametrize("gamma", [5e-324, 1e-310])
def test_analysis_handles_subnormal_gamma(beta, gamma):
    # Valid input (γ in [0, 1)): C is finite-but-huge or +inf, never an exception or NaN.
    a = analyze_point(beta, gamma)
    assert a.c_value > 1e300
    assert not any(math.isnan(x) for x in _numbers(a))


def test_analysis_rejects_bad_input():
    with pytest.raises(StabcliError):
        analyze_point(1.0, 0.9)
    with pytest.raises(StabcliError):
        analyze_point(0.9, 1.0)
    with pytest.raises(StabcliError):
        analyze_point(math.nan, 0.9)
    with pytest.raises((ValueError, StabcliError)):
        analyze_point(0.9, 0.5, step=-1)


@pytest.mark.parametrize("beta", [0.5, 0.999])
def test_rmsprop_paper_bound_is_infinite_but_predicts_no_growth(beta):
    # At γ = 0, C = +inf (B+), and eq. 5's bound is its limit γ → 0⁺, which is +inf: the
    # paper bounds nothing there, but predicts no growth either, so no threshold step.
    a = analyze_point(beta, 0.0)
    assert a.paper.label == "B+" and a.paper.stable and a.paper.rate == 0.0
    assert a.paper.bound_at_step == math.inf and a.paper.limit_bound == math.inf
    assert a.paper.steps_to_threshold is None
    for gamma in (1e-4, 1e-8, 1e-12):  # the bound grows without limit as γ → 0
        assert paper_limit_bound(beta, gamma) > 0.1 / math.sqrt(gamma)


def hand_drift(x: float, n: int) -> float:
    """x^{n+1} ln x / (1 − x^{n+1}) with naive powers (docs/theory.md (3.8))."""
    power = x ** (n + 1)
    return power * math.log(x) / (1.0 - power)


ON_BOUNDARY_AS_TYPED = [(0.81, 0.9), (0.64, 0.8), (0.49, 0.7), (0.9801, 0.99), (0.25, 0.5)]


@pytest.mark.parametrize(("beta", "gamma"), ON_BOUNDARY_AS_TYPED)
def test_decimal_points_on_the_boundary_are_marginal_whatever_their_last_bit(beta, gamma):
    # In binary, 0.7² < 0.49 and 0.8² > 0.64 by one rounding: neither is stable, nor growing
    a = analyze_point(beta, gamma)
    assert not a.exact.stable
    assert a.exact.rate == 0.0 and a.exact.limit_bound == math.inf
    assert a.verdict.startswith("Marginal")
    # a pair off the boundary by far more than rounding is decided by the sign of β − γ²
    assert exact_stable(beta * (1 + 1e-12), gamma)
    assert not exact_stable(beta * (1 - 1e-12), gamma)
    assert exact_rate(beta * (1 - 1e-12), gamma) > 0.0


@pytest.mark.parametrize(("beta", "gamma"), ON_BOUNDARY_AS_TYPED)
@pytest.mark.parametrize("n", [0, 10, 1000])
def test_rate_on_the_boundary_is_the_drift_alone(beta, gamma, n):
    # γ² = β in exact arithmetic, so log γ − ½ log β = 0; in floats it rounds to ±1e-17,
    # which must not stand in for a rate (ρ_1000 at (0.81, 0.9) is −1.7e-47, all drift).
    expected = hand_drift(gamma, n) - 0.5 * hand_drift(beta, n)
    assert exact_rate_at(beta, gamma, n) == pytest.approx(expected, rel=1e-9, abs=0.0)
    assert exact_rate(beta, gamma) == 0.0


@pytest.mark.parametrize("beta", [1e-320, 5e-324, 1e-310])
@pytest.mark.parametrize("gamma", [0.5, 0.999])
def test_subnormal_beta_is_answered_not_overflowed(beta, gamma):
    # r = γ²/β overflows a float, and so do 1/β and C: every figure must still be given.
    a = analyze_point(beta, gamma)
    assert not any(math.isnan(x) for x in _numbers(a))
    log_r = 2.0 * math.log(gamma) - math.log(beta)  # > 700: r itself is not a float
    for n in (0, 1, 50):
        # S_n = r^n (1 + 1/r + ...), and 1/r < 1e-300 is below float resolution
        assert log_geometric_sum(beta, gamma, n) == pytest.approx(n * log_r, rel=1e-15, abs=1e-300)
    assert a.exact.rate == pytest.approx(math.log(gamma) - 0.5 * math.log(beta), rel=1e-15)
    assert a.paper.rate == math.inf
    assert (a.paper.steps_to_threshold, a.exact.steps_to_threshold) == (1, 1)
    assert a.paper.bound_at_step == math.inf and a.exact.bound_at_step == math.inf
