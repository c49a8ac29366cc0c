"""The float32 false alarm: a deep-unstable point whose second moment underflows.

At (β, γ) = (0.01, 0.999) a parameter whose gradient has vanished keeps its first moment m
(decaying by γ = 0.999 per step) while its second moment v decays by β = 0.01 per step:
below float32's normal range (1.2e-38) after ~19 steps, and to 0 under CPU flush-to-zero.
m / (sqrt(v) + ε) then jumps to ~1e27 (ε = 1e-30), far above the exact bound, which
assumes real arithmetic (docs/theory.md §3). The engine records that step; float64 keeps v
representable and stays within the bound.
"""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.probe import load_preset, run_probes
from stabcli.probe.reference import run_reference
from stabcli.theory.exact import exact_bound

DEEP = (0.01, 0.999)  # (β, γ)
CALM = (0.999, 0.9)
STEPS = 30


def _preset(dtype: str):
    return load_preset("tiny-char").with_overrides(
        steps=STEPS, dtype=dtype, eval_every=0, eval_batches=0
    )


def _ratios(result, point: int) -> np.ndarray:
    trace = result.traces[result.traces.point == point]
    beta, gamma = result.summary.loc[point, ["beta", "gamma"]]
    bound = exact_bound(beta, gamma, trace.step.to_numpy())
    return trace.max_update.to_numpy() / bound


@pytest.fixture(scope="module")
def float32():
    return run_probes(_preset("float32"), [CALM, DEEP], device="cpu")


def test_float32_underflow_is_recorded_and_the_bound_holds_before_it(float32) -> None:
    underflow = float32.summary["underflow_step"]
    assert str(underflow.dtype) == "Int64"
    assert underflow.isna().tolist() == [True, False]
    n = int(underflow.iloc[1])
    ratios = _ratios(float32, 1)
    assert np.nanmax(ratios[:n]) <= 1 + 1e-6  # before v left float32's range
    assert np.nanmax(ratios[n:]) > 1e3  # the blow-up this step marks
    assert np.nanmax(_ratios(float32, 0)) <= 1 + 1e-6


def test_float64_keeps_v_representable_and_within_the_bound() -> None:
    result = run_probes(_preset("float64"), [CALM, DEEP], device="cpu")
    assert result.summary["underflow_step"].isna().all()
    for point in (0, 1):
        assert np.nanmax(_ratios(result, point)) <= 1 + 1e-9


def test_torch_adam_in_float32_blows_up_at_the_same_step(float32) -> None:
    """Not a probe bug: torch.optim.Adam(betas=(γ, β)) computes the same float32 values."""
    n = int(float32.summary["underflow_step"].iloc[1])
    ref = run_reference(_preset("float32"), DEEP, device="cpu")
    bound = exact_bound(*DEEP, np.arange(STEPS))
    # the reference measures (θ_{n+1} − θ_n)/η in float32: θ ~ 0.02 against steps of
    # η = 1e-3 rounds to ~1e-4 relative
    assert np.all(ref.max_update[:n] / bound[:n] <= 1 + 1e-3)
    assert ref.max_update[n] / bound[n] > 1e3
    engine = float32.traces[float32.traces.point == 1].max_update.to_numpy()
    np.testing.assert_allclose(engine[: n + 1], ref.max_update[: n + 1], rtol=1e-3)
