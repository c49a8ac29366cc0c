"""Verdicts per theory and closer_theory (measure.verdicts): a table of cases, both theories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stabcli.measure import MeasuredClass, MeasureSettings, Verdict, measure_points
from stabcli.measure.classify import RateEstimate
from stabcli.measure.verdicts import Prediction, Theory, closer_theory, predictions, verdict
from stabcli.measure.window import plan_window
from stabcli.theory.exact import exact_slope

SETTINGS = MeasureSettings()  # growth_tol 1e-3, reach_tol 0.5, closer_tol 0.1
G, B = MeasuredClass.GROWING, MeasuredClass.BOUNDED


def _estimate(rate: float, half: float) -> RateEstimate:
    return RateEstimate(rate, half / 2, rate - half, rate + half, 1000, 0.0, 2000, 3000)


# id: (predicted rate, measured class, measured rate, half-width, verdict)
CASES = {
    "predicted-and-seen": (0.02, G, 0.019, 0.001, Verdict.PREDICTED_AND_SEEN),
    "predicted-and-seen-in-the-reach-band": (0.02, G, 0.011, 0.0005, Verdict.PREDICTED_AND_SEEN),
    "predicted-bound-not-reached-bounded": (0.02, B, 0.0, 0.0005, Verdict.NOT_REACHED),
    "predicted-bound-not-reached-slower": (0.02, G, 0.005, 0.001, Verdict.NOT_REACHED),
    "seen-faster-than-predicted": (0.004, G, 0.02, 0.001, Verdict.FASTER),
    "seen-but-not-predicted": (0.0, G, 0.01, 0.001, Verdict.SEEN_NOT_PREDICTED),
    "seen-where-predicted-growth-is-below-tolerance": (
        0.0005, G, 0.01, 0.001, Verdict.SEEN_NOT_PREDICTED,
    ),
    "bounded-as-predicted": (0.0, B, 0.0001, 0.0003, Verdict.BOUNDED_AS_PREDICTED),
    "bounded-where-predicted-growth-is-below-tolerance": (
        0.0005, B, 0.0, 0.0003, Verdict.BOUNDED_AS_PREDICTED,
    ),
    "undetermined": (0.02, MeasuredClass.UNDETERMINED, 0.001, 0.002, Verdict.UNDETERMINED),
    "diverged": (0.02, MeasuredClass.DIVERGED, 0.03, 0.001, Verdict.DIVERGED),
}  # fmt: skip


@pytest.mark.parametrize("theory", list(Theory))
@pytest.mark.parametrize("case", list(CASES))
def test_verdict_table(case: str, theory: Theory) -> None:
    predicted, measured, rate, half, expected = CASES[case]
    prediction = Prediction(theory, predicted, predicted > SETTINGS.growth_tol)
    got = verdict(prediction, measured, _estimate(rate, half), SETTINGS)
    assert got.theory is theory and got.verdict is expected
    assert got.predicted_rate == predicted
    if expected is Verdict.PREDICTED_AND_SEEN:
        assert got.rel_error == pytest.approx(abs(predicted - rate) / rate, rel=1e-12)
    else:
        assert math.isnan(got.rel_error)


CLOSER = {
    # id: (paper rate, exact rate, measured class, measured rate, expected)
    "exact-closer": (0.0214, 0.0173, G, 0.0170, "exact"),
    "paper-closer": (0.0214, 0.0173, G, 0.0210, "paper"),
    "neither-within-10-percent": (0.0214, 0.0173, G, 0.0300, ""),
    "neither-below": (0.0214, 0.0173, G, 0.0100, ""),
    "equal-rates": (0.0100, 0.0100, G, 0.0101, "both"),
    "not-growing": (0.0214, 0.0173, B, 0.0172, ""),
}


@pytest.mark.parametrize("case", list(CLOSER))
def test_closer_theory(case: str) -> None:
    paper, exact, measured, rate, expected = CLOSER[case]
    got = closer_theory(
        Prediction(Theory.PAPER, paper, True),
        Prediction(Theory.EXACT, exact, True),
        measured,
        _estimate(rate, 0.0002),
        SETTINGS,
    )
    assert got == expected


def test_predictions_use_half_c_and_the_window_mean_of_rho() -> None:
    beta, gamma = 0.95, 0.99
    window = plan_window(beta, gamma, 3000, SETTINGS)
    paper, exact = predictions(beta, gamma, window, SETTINGS)
    c = 2 / gamma - 1 / beta - 1
    assert paper.rate == pytest.approx(abs(c) / 2, rel=1e-12) and paper.grows
    rho = exact_slope(beta, gamma, np.arange(window.start, window.stop))
    assert exact.rate == pytest.approx(float(np.mean(rho)), rel=1e-12) and exact.grows


def test_paper_b_minus_point_that_is_exactly_stable() -> None:
    """(0.4, 0.6): C < 0 (paper predicts growth), γ² < β (exact predicts none)."""
    paper, exact = predictions(0.4, 0.6, plan_window(0.4, 0.6, 3000, SETTINGS), SETTINGS)
    assert paper.grows and paper.rate == pytest.approx(1 / 12, rel=1e-9)
    assert not exact.grows and exact.rate == 0.0


@pytest.mark.parametrize(
    ("slope", "paper_verdict", "exact_verdict"),
    [
        (0.0, Verdict.NOT_REACHED, Verdict.BOUNDED_AS_PREDICTED),
        (0.08, Verdict.PREDICTED_AND_SEEN, Verdict.SEEN_NOT_PREDICTED),
    ],
    ids=["bounded", "growing"],
)
def test_both_theories_judged_end_to_end(slope, paper_verdict, exact_verdict) -> None:
    n = np.arange(600)
    log_u = slope * n + 0.05 * np.random.default_rng(0).normal(size=600)
    m = measure_points([0.4], [0.6], np.exp(log_u)[None, :], dtype="float64").points[0]
    assert m.paper.verdict is paper_verdict and m.exact.verdict is exact_verdict
