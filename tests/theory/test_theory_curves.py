"""Level curves, normal curves and arc-length sampling (paper Section 3.1 and App. E).

Expected geometry is derived by hand: ∇C = (1/β², −2/γ²) for C = 2/γ − 1/β − 1, so a level
curve's tangent is (2β², γ²) up to scale, and a normal curve γ³ + 2β³ = k has tangent
(γ², −2β²), parallel to ∇C. The tests measure these from sampled points instead of
trusting the formulas in stabcli.theory.curves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stabcli.errors import StabcliError
from stabcli.theory import c_value
from stabcli.theory.curves import (
    level_gamma,
    level_section,
    normal_constant,
    normal_gamma,
    normal_section,
    sample_by_arc_length,
)


def hand_c(beta, gamma):
    return 2.0 / gamma - 1.0 / beta - 1.0


def as_arrays(points):
    return (np.array([p.beta for p in points]), np.array([p.gamma for p in points]))


def grad_c(beta, gamma, h=1e-7):
    """∇C by central finite differences of the hand formula (no use of the curves module)."""
    d_beta = (hand_c(beta + h, gamma) - hand_c(beta - h, gamma)) / (2 * h)
    d_gamma = (hand_c(beta, gamma + h) - hand_c(beta, gamma - h)) / (2 * h)
    return np.array([d_beta, d_gamma])


def spacings(points):
    b, g = as_arrays(points)
    return np.hypot(np.diff(b), np.diff(g))


THROUGH = [(0.999, 0.9), (0.95, 0.9), (0.4, 0.6), (0.5, 0.5), (0.9, 0.3), (0.3, 0.9)]
IDS = [f"{b:g},{g:g}" for b, g in THROUGH]


# --- Level curves ---------------------------------------------------------------------


@pytest.mark.parametrize("c", [-2.0, -1.0 / 6.0, 0.0, 0.145 / 0.855, 0.22122, 3.0])
def test_level_gamma_has_constant_c(c):
    beta = np.linspace(0.05, 0.99, 200)
    gamma = level_gamma(beta, c)
    inside = (gamma > 0) & (gamma < 1)
    assert inside.sum() > 10
    np.testing.assert_allclose(hand_c(beta[inside], gamma[inside]), c, atol=1e-9)
    # Scalars too.
    assert hand_c(0.7, level_gamma(0.7, c)) == pytest.approx(c, abs=1e-12)


@pytest.mark.parametrize(("beta0", "gamma0"), THROUGH, ids=IDS)
def test_level_section_samples_have_constant_c(beta0, gamma0):
    c = hand_c(beta0, gamma0)
    points = sample_by_arc_length(level_section(beta0, gamma0), 64)
    b, g = as_arrays(points)
    assert np.all((b > 0) & (b < 1) & (g >= 0) & (g < 1))
    np.testing.assert_allclose(hand_c(b, g), c, atol=1e-9 * max(1.0, abs(c)))


def test_level_section_through_rmsprop_is_an_error():
    with pytest.raises(StabcliError):
        level_section(0.9, 0.0)


# --- Normal curves --------------------------------------------------------------------


@pytest.mark.parametrize(("beta0", "gamma0"), THROUGH, ids=IDS)
def test_normal_section_lies_on_the_cubic(beta0, gamma0):
    k = 2 * beta0**3 + gamma0**3
    assert normal_constant(beta0, gamma0) == pytest.approx(k, rel=1e-15)
    assert normal_gamma(beta0, k) == pytest.approx(gamma0, rel=1e-12)
    b, g = as_arrays(sample_by_arc_length(normal_section(beta0, gamma0), 64))
    assert np.all((b > 0) & (b < 1) & (g >= 0) & (g < 1))
    np.testing.assert_allclose(g**3 + 2 * b**3, k, rtol=1e-12)


@pytest.mark.parametrize(("beta0", "gamma0"), THROUGH, ids=IDS)
def test_c_is_strictly_monotone_along_a_normal_curve(beta0, gamma0):
    b, g = as_arrays(sample_by_arc_length(normal_section(beta0, gamma0), 64))
    c = hand_c(b, g)
    steps = np.diff(c)
    assert np.all(steps > 0) or np.all(steps < 0)
    # C(β0, γ0) lies within the sampled range: the curve passes through the point.
    assert c.min() <= hand_c(beta0, gamma0) <= c.max()


@pytest.mark.parametrize(("beta0", "gamma0"), THROUGH, ids=IDS)
def test_normal_curve_crosses_level_curves_at_right_angles(beta0, gamma0):
    b, g = as_arrays(sample_by_arc_length(normal_section(beta0, gamma0), 64))
    chords = np.stack([np.diff(b), np.diff(g)], axis=1)  # (63, 2)
    mid_b, mid_g = (b[1:] + b[:-1]) / 2, (g[1:] + g[:-1]) / 2
    for chord, mb, mg in zip(chords, mid_b, mid_g, strict=True):
        if mg < 0.05:
            continue  # near γ = 0 C blows up and finite differences of C are meaningless
        gc = grad_c(mb, mg)
        level_tangent = np.array([-gc[1], gc[0]])  # ⊥ ∇C: the level curve's direction
        cos = chord @ level_tangent / (np.linalg.norm(chord) * np.linalg.norm(level_tangent))
        assert abs(cos) < 2e-3, (mb, mg, cos)


def test_normal_curve_through_default_spans_the_paper_section():
    # docs/theory.md (2.7): from β ≈ 0.952 (γ = 1) to β = 1 (γ ≈ 0.897).
    k = 2 * 0.999**3 + 0.9**3
    beta_at_gamma_one = ((k - 1) / 2) ** (1 / 3)
    gamma_at_beta_one = (k - 2) ** (1 / 3)
    assert beta_at_gamma_one == pytest.approx(0.952, abs=1e-3)  # 0.95151...
    assert gamma_at_beta_one == pytest.approx(0.897, abs=1e-3)  # 0.89753...
    section = normal_section(0.999, 0.9)
    end_hi = section.trace(np.array([section.t_hi]))
    end_lo = section.trace(np.array([section.t_lo]))
    ends = sorted(
        [(float(end_hi[0][0]), float(end_hi[1][0])), (float(end_lo[0][0]), float(end_lo[1][0]))]
    )
    assert ends[0] == pytest.approx((beta_at_gamma_one, 1.0), abs=1e-9)
    assert ends[1] == pytest.approx((1.0, gamma_at_beta_one), abs=1e-9)
    b, g = as_arrays(sample_by_arc_length(section, 64))
    assert b.min() > beta_at_gamma_one and b.max() < 1.0
    assert g.min() > gamma_at_beta_one and g.max() < 1.0
    # The 64 points are centres of equal pieces: the outermost sit half a spacing in.
    step = spacings(sample_by_arc_length(section, 64)).mean()
    first_gap = min(math.dist((b[0], g[0]), end) for end in ends)  # distance to the nearer end
    assert first_gap == pytest.approx(step / 2, rel=0.02)


# --- Arc-length sampling --------------------------------------------------------------


@pytest.mark.parametrize("n_points", [16, 64, 128])
@pytest.mark.parametrize(("beta0", "gamma0"), THROUGH, ids=IDS)
def test_arc_length_spacing_is_uniform(beta0, gamma0, n_points):
    for section in (normal_section(beta0, gamma0), level_section(beta0, gamma0)):
        d = spacings(sample_by_arc_length(section, n_points))
        assert d.max() / d.min() - 1 < 0.01, section.name


@pytest.mark.parametrize(
    ("make", "span"),
    [
        (lambda s: normal_section(0.999, 0.9, span=s), (0.96, 0.99)),
        (lambda s: normal_section(0.95, 0.9, span=s), (0.9, 0.99)),
        (lambda s: level_section(0.999, 0.9, span=s), (0.2, 0.99)),
        (lambda s: level_section(0.4, 0.6, span=s), (0.3, 0.8)),
    ],
)
def test_span_ends_are_included(make, span):
    points = sample_by_arc_length(make(span), 33)
    b, _ = as_arrays(points)
    assert sorted([b[0], b[-1]]) == pytest.approx(sorted(span), abs=1e-12)
    assert np.all((b >= span[0] - 1e-12) & (b <= span[1] + 1e-12))
    d = spacings(points)
    assert d.max() / d.min() - 1 < 0.01
    # An inverted span is refused (an empty or inverted range is an error).
    with pytest.raises(StabcliError, match="inverted"):
        make(span[::-1])


def test_span_ends_lie_on_the_curve():
    k = 2 * 0.999**3 + 0.9**3
    b, g = as_arrays(sample_by_arc_length(normal_section(0.999, 0.9, span=(0.96, 0.99)), 5))
    np.testing.assert_allclose(g**3 + 2 * b**3, k, rtol=1e-12)
    c = hand_c(0.4, 0.6)
    b, g = as_arrays(sample_by_arc_length(level_section(0.4, 0.6, span=(0.3, 0.8)), 5))
    np.testing.assert_allclose(hand_c(b, g), c, atol=1e-12)


@pytest.mark.parametrize(
    "span",
    [
        (0.5, 0.5),  # empty
        (0.0, 0.99),  # β = 0 is outside the domain
        (0.97, 1.0),  # β = 1 too
        (-0.1, 0.99),
        (0.97, 1.5),
        (math.nan, 0.99),
        (0.5, 0.99),  # γ(0.5) = 1.35 on this curve: leaves the square
    ],
)
def test_bad_spans_raise(span):
    with pytest.raises(StabcliError):
        sample_by_arc_length(normal_section(0.999, 0.9, span=span), 8)


@pytest.mark.parametrize("span", [(0.3, 0.3), (0.0, 0.5), (0.5, 0.95), (math.inf, 0.5)])
def test_bad_level_spans_raise(span):
    # The level curve through (0.4, 0.6) reaches γ = 1 at β = 1/(1 − C) ≈ 0.857.
    with pytest.raises(StabcliError):
        sample_by_arc_length(level_section(0.4, 0.6, span=span), 8)


def test_sampling_needs_a_point():
    with pytest.raises(StabcliError):
        sample_by_arc_length(normal_section(0.999, 0.9), 0)


def test_one_point_on_a_span_is_its_middle():
    (only,) = sample_by_arc_length(normal_section(0.999, 0.9, span=(0.96, 0.99)), 1)
    k = 2 * 0.999**3 + 0.9**3
    assert only.gamma**3 + 2 * only.beta**3 == pytest.approx(k, rel=1e-12)
    assert 0.96 < only.beta < 0.99


def test_sampled_c_values_match_the_library():
    # c_value on the sampled arrays agrees with the hand formula (array path).
    b, g = as_arrays(sample_by_arc_length(normal_section(0.95, 0.9), 16))
    np.testing.assert_allclose(c_value(b, g), hand_c(b, g), rtol=1e-12)
