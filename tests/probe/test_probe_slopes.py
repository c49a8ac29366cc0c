"""Measured growth against the exact theory on real(istic) training (docs/theory.md §3).

Where γ² > β, once a parameter's gradient fades faster than sqrt(β)^n its update grows as
corr_n · (γ/sqrt(β))^n, i.e. with slope ρ_n; near (1, 1) real training reaches it. The
slope is measured as the paper does (App. H: from n−5 and n+5), as the median over a
window of steps so that a single disturbed step cannot decide the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stabcli.probe import load_preset, run_probes
from stabcli.theory.exact import exact_bound, exact_limit_bound, exact_slope

GROWING = (0.97, 0.995)  # (β, γ): γ² = 0.990 > β, near (1, 1)
BOUNDED = (0.999, 0.9)  # B+ and exactly stable


def _local_slope_ratio(max_update: np.ndarray, beta: float, gamma: float, window: range) -> float:
    n = np.asarray(window)
    log_u = np.log(max_update)
    measured = (log_u[n + 5] - log_u[n - 5]) / 10.0
    return float(np.median(measured / exact_slope(beta, gamma, n)))


def test_tiny_char_growth_matches_exact_slope_and_b_plus_stays_bounded() -> None:
    preset = load_preset("tiny-char").with_overrides(steps=310, eval_every=0, eval_batches=0)
    result = run_probes(preset, [GROWING, BOUNDED], device="cpu")
    assert result.summary.diverged_step.isna().all()
    grow = result.traces[result.traces.point == 0].max_update.to_numpy()
    calm = result.traces[result.traces.point == 1].max_update.to_numpy()

    ratio = _local_slope_ratio(grow, *GROWING, range(150, 300))
    assert abs(ratio - 1.0) < 0.05, ratio
    assert grow[300] > 2.0 * grow[150]  # it really grows

    assert calm.max() <= exact_limit_bound(*BOUNDED)
    assert calm[150:].max() < 1.5 * calm[:150].max()  # no growth in the second half


@pytest.mark.slow
def test_shakespeare_small_bound_and_growth(shakespeare_path: Path) -> None:
    """The real text, CPU-sized: bound at every step; the B− point outgrows the B+ one."""
    preset = load_preset("shakespeare-small").with_overrides(
        data_path=str(shakespeare_path), steps=300, eval_every=0, eval_batches=0
    )
    result = run_probes(preset, [GROWING, BOUNDED], device="cpu")
    for i, (beta, gamma) in enumerate([GROWING, BOUNDED]):
        trace = result.traces[result.traces.point == i]
        bound = exact_bound(beta, gamma, trace.step.to_numpy())
        assert np.all(trace.max_update.to_numpy() <= bound * (1 + 1e-5))
    grow = result.traces[result.traces.point == 0].max_update.to_numpy()
    calm = result.traces[result.traces.point == 1].max_update.to_numpy()
    assert grow[250:].max() > 2 * calm.max()
