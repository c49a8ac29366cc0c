"""The live monitor (measure.stream) equals the batch measurement on the same trace."""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.measure import GrowthMonitor, MeasuredClass, MeasureSettings, measure_points

S = 3000


def _trace(kind: str) -> tuple[float, float, np.ndarray]:
    """(β, γ, ‖u_n‖∞ (S,)) synthetic traces: growth after a plateau, bounded noise."""
    rng = np.random.default_rng(8)
    n = np.arange(S)
    noise = 0.1 * rng.normal(size=S)
    if kind == "growing":
        return 0.95, 0.99, np.exp(np.where(n < 800, 0.0, 0.015 * (n - 800)) + noise)
    if kind == "bounded":
        return 0.999, 0.9, np.exp(noise)
    u = np.exp(0.02 * n + noise)  # diverging
    u[2400:] = np.nan
    return 0.95, 0.99, u


@pytest.mark.parametrize("kind", ["growing", "bounded", "diverging"])
@pytest.mark.parametrize("at", [450, 1200, 3000])
def test_monitor_equals_batch_on_the_same_trace(kind: str, at: int) -> None:
    beta, gamma, u = _trace(kind)
    monitor = GrowthMonitor(beta, gamma)
    for step in range(at):
        monitor.update(step, u[step])
    live = monitor.status()
    batch = measure_points([beta], [gamma], u[None, :at], dtype="float64").points[0]
    assert live.measured_class is batch.measured_class
    assert live.step == at - 1
    if batch.measured_class is MeasuredClass.DIVERGED:
        return
    assert (live.rate.start, live.rate.stop) == (batch.rate.start, batch.rate.stop)
    assert live.reason == batch.reason
    if np.isfinite(batch.rate.rate):
        assert live.rate.rate == pytest.approx(batch.rate.rate, rel=1e-9, abs=1e-12)
        assert live.rate.stderr == pytest.approx(batch.rate.stderr, rel=1e-6)
        assert live.rate.low == pytest.approx(batch.rate.low, rel=1e-6, abs=1e-12)
    assert live.paper_rate == batch.paper.predicted_rate
    assert live.exact_rate == pytest.approx(batch.exact.predicted_rate, rel=1e-12)


def test_blocks_of_steps_equal_single_steps() -> None:
    beta, gamma, u = _trace("growing")
    one, blocks = GrowthMonitor(beta, gamma), GrowthMonitor(beta, gamma)
    for step in range(S):
        one.update(step, u[step])
    for start in range(0, S, 250):
        blocks.update(start, u[start : start + 250])
    a, b = one.status(), blocks.status()
    assert a.rate == b.rate and a.measured_class is b.measured_class is MeasuredClass.GROWING
    assert "growing" in a.line() and f"n = {S - 1}" in a.line()


def test_monitor_memory_is_bounded_by_the_window() -> None:
    settings = MeasureSettings()
    monitor = GrowthMonitor(0.999, 0.9, settings)
    monitor.update(0, np.ones(50_000))
    assert monitor.held == settings.max_window
    assert monitor.status().measured_class is MeasuredClass.BOUNDED


def test_monitor_reports_a_short_run_and_refuses_going_back() -> None:
    monitor = GrowthMonitor(0.999, 0.9)
    monitor.update(0, np.ones(100))
    status = monitor.status()
    assert status.measured_class is MeasuredClass.UNDETERMINED
    assert status.reason.startswith("run too short")
    with pytest.raises(ValueError, match="steps must increase"):
        monitor.update(50, 1.0)
