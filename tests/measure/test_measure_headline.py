"""The sweep headline (measure.headline): counts, rate errors, falsifications first."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from stabcli.measure import MeasuredClass, Verdict, measure_points
from stabcli.measure.verdicts import Theory
from stabcli.theory.exact import exact_bound

S = 1500


@pytest.fixture
def sweep(adam_max_update, fading_grads):
    """Six points with known outcomes (β, γ; what the trace does)."""
    rng = np.random.default_rng(0)
    n = np.arange(S)
    noise = rng.normal(size=(S, 4))
    rows = {
        "tight-mid": (0.9, 0.99, adam_max_update(fading_grads(0.9, 0.99, S, rng), 0.9, 0.99)),
        "tight-near-1": (0.95, 0.99, adam_max_update(fading_grads(0.95, 0.99, S, rng), 0.95, 0.99)),
        "torch-default": (0.999, 0.9, adam_max_update(noise, 0.999, 0.9)),
        "paper-B-minus": (0.4, 0.6, adam_max_update(noise, 0.4, 0.6)),
        "impossible-growth": (0.999, 0.9, np.exp(0.01 * n)),  # beyond the exact bound
        "diverged": (0.95, 0.99, np.where(n < 900, 0.5 * exact_bound(0.95, 0.99, n), np.nan)),
    }
    betas = [b for b, _, _ in rows.values()]
    gammas = [g for _, g, _ in rows.values()]
    return list(rows), measure_points(betas, gammas, np.stack([u for *_, u in rows.values()]))


def test_counts_per_class_and_verdict(sweep) -> None:
    _, m = sweep
    h = m.headline
    assert h.n_points == 6
    assert dict(h.classes) == {
        MeasuredClass.GROWING: 3,
        MeasuredClass.BOUNDED: 2,
        MeasuredClass.DIVERGED: 1,
        MeasuredClass.UNDETERMINED: 0,
    }
    assert h.exact.count(Verdict.PREDICTED_AND_SEEN) == 2
    assert h.exact.count(Verdict.SEEN_NOT_PREDICTED) == 1
    assert h.exact.count(Verdict.BOUNDED_AS_PREDICTED) == 2
    assert h.paper.count(Verdict.NOT_REACHED) == 1  # (0.4, 0.6): B−, bounded
    assert h.paper.count(Verdict.DIVERGED) == h.exact.count(Verdict.DIVERGED) == 1
    assert sum(n for _, n in h.paper.counts) == sum(n for _, n in h.exact.counts) == 6


def test_median_rate_error_is_over_predicted_and_seen_points_only(sweep) -> None:
    _, m = sweep
    for theory, tally in ((Theory.PAPER, m.headline.paper), (Theory.EXACT, m.headline.exact)):
        seen = [
            p for p in m.points if getattr(p, theory.value).verdict is Verdict.PREDICTED_AND_SEEN
        ]
        c = [2 / p.gamma - 1 / p.beta - 1 for p in seen]
        predicted = (
            [abs(x) / 2 for x in c]
            if theory is Theory.PAPER
            else [getattr(p, theory.value).predicted_rate for p in seen]
        )
        errors = [abs(r - p.rate.rate) / p.rate.rate for r, p in zip(predicted, seen, strict=True)]
        assert tally.median_rel_error == pytest.approx(statistics.median(errors), rel=1e-9)
    assert m.headline.exact.median_rel_error < 0.03


def test_falsifications_come_first_bound_before_rate(sweep) -> None:
    _, m = sweep
    lines = m.headline.lines()
    falsified = [line for line in lines if line.startswith("FALSIFIED")]
    assert lines[: len(falsified)] == falsified
    assert "max-update / (bound + wd term)" in falsified[0]
    assert all("(β, γ) = (0.999, 0.9)" in line for line in falsified)
    assert {f.theory for f in m.headline.falsifications} == {Theory.PAPER, Theory.EXACT}
    assert any("median rate error" in line for line in lines)
    assert any(line.startswith("closer theory on 3 growing points") for line in lines)


def test_short_grid_does_not_call_the_bias_correction_ramp_growth() -> None:
    """The user's --grid 0.9:0.999:4,0.85:0.99:4 --steps 200, every trace riding half its
    exact bound (ramp included): no exactly stable point is called growing, and the points
    whose window does not fit in 200 steps say how many steps they need."""
    grid = [(b, g) for b in np.linspace(0.9, 0.999, 4) for g in np.linspace(0.85, 0.99, 4)]
    rng = np.random.default_rng(1)
    n = np.arange(200)
    u = np.stack([0.5 * exact_bound(b, g, n) for b, g in grid])
    u *= np.exp(0.02 * rng.normal(size=u.shape))
    m = measure_points([b for b, _ in grid], [g for _, g in grid], u)
    stable = [p for p in m.points if p.gamma**2 < p.beta]
    assert stable and all(p.measured_class is not MeasuredClass.GROWING for p in stable)
    assert m.headline.exact.count(Verdict.SEEN_NOT_PREDICTED) == 0
    assert any(p.reason.startswith("run too short") for p in stable)
    needed = max(p.window.steps_needed for p in m.points if not p.window.ok)
    assert m.headline.steps_needed == needed
    assert m.headline.lines()[-1].endswith(f"use steps ≥ {needed} for a valid window")
