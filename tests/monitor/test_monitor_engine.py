"""The monitor on torch.optim.Adam / AdamW records exactly what the probe engine records.

Two formulations of ‖u_n‖∞ (docs/theory.md (1.5)): the probe engine computes it from its
own Adam kernel over stacked points (stabcli.probe.run_probes); the monitor measures
‖θ_{n+1} − θ_n‖∞/η_n around PyTorch's optimizer. The plain loop is the probe's public
sequential reference (stabcli.probe.reference.run_reference: same model, initial weights,
batches and betas, torch.optim.Adam or AdamW), with a monitor attached to the optimizer it
builds. Float64, 50 steps: max-update, wd_term and lr per step to relative 1e-6, the
tensor holding the max by name, for each of PyTorch's implementations (foreach,
single-tensor, fused) and under a learning-rate schedule.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch

from stabcli.monitor import watch
from stabcli.probe import load_preset, run_probes
from stabcli.probe.data import load_dataset
from stabcli.probe.models import param_specs
from stabcli.probe.reference import run_reference

POINTS = [(0.999, 0.9), (0.95, 0.99)]  # (β, γ): PyTorch's default; exactly unstable
# tiny-char as it was (2 layers, batch 16, lr 1e-3): at the 1-layer preset's lr the attention
# key bias (zero true gradient) holds the max-update with pure rounding noise, which no two
# implementations reproduce alike
BASE = {
    "dtype": "float64",
    "steps": 50,
    "dropout": 0.0,
    "eval_every": 0,
    "eval_batches": 0,
    "n_layer": 2,
    "batch_size": 16,
    "lr": 1e-3,
}
DECOUPLED = {"weight_decay_mode": "decoupled", "weight_decay": 0.1}
pytestmark = pytest.mark.filterwarnings("ignore::stabcli.monitor.StabilityWarning")
CASES = {  # id: (preset overrides, optimizer implementation)
    "adam-foreach": ({}, {"foreach": True}),
    "adam-single-tensor": ({}, {"foreach": False}),
    "adam-fused": ({}, {"fused": True}),
    "adamw-foreach": (DECOUPLED, {"foreach": True}),
    "adamw-single-tensor": (DECOUPLED, {"foreach": False}),
    "adamw-fused": (DECOUPLED, {"fused": True}),
    "adam-cosine-schedule": ({"schedule": "cosine", "warmup_steps": 10}, {}),
}


@functools.cache
def _engine(overrides: tuple[tuple[str, object], ...]) -> pd.DataFrame:
    """The engine's traces of POINTS for the preset with ``overrides`` (computed once)."""
    preset = load_preset("tiny-char").with_overrides(**{**BASE, **dict(overrides)})
    result = run_probes(preset, POINTS, device="cpu")
    assert result.summary.diverged_step.isna().all()
    return result.traces


class Watching:
    """Makes torch.optim.Adam/AdamW watched, so that run_reference's optimizer is."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch
        self.monitors: list = []

    def _class(self, base: type, names: list[str], impl: dict) -> type:
        monitors = self.monitors

        class Watched(base):  # type: ignore[misc, valid-type]
            def __init__(self, params, **kwargs):
                leaves = list(params)
                super().__init__(leaves, **kwargs, **impl)
                model = dict(zip(names, leaves, strict=True))  # the engine's tensor names
                monitors.append(watch(self, model=model, sync_every=16))

        return Watched

    def run(self, case: str, point: tuple[float, float]):
        """run_reference at ``point`` under ``case``, watched: (its result, the summary)."""
        overrides, impl = CASES[case]
        preset = load_preset("tiny-char").with_overrides(**{**BASE, **overrides})
        data = load_dataset(preset)
        names = [s.name for s in param_specs(preset.model, data.n_in, data.n_out)]
        for name in ("Adam", "AdamW"):
            base = getattr(torch.optim, name)
            self.monkeypatch.setattr(torch.optim, name, self._class(base, names, impl))
        ref = run_reference(preset, point, device="cpu", dataset=data)
        self.monkeypatch.undo()
        (monitor,) = self.monitors
        self.monitors.clear()
        monitor.close()
        return ref, monitor.summary()


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> Watching:
    return Watching(monkeypatch)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("index", range(len(POINTS)), ids=["default", "unstable"])
def test_monitor_records_what_the_engine_records(watching: Watching, case: str, index: int) -> None:
    point = POINTS[index]
    ref, summary = watching.run(case, point)
    engine = _engine(tuple(sorted(CASES[case][0].items())))
    trace = engine[engine.point == index].sort_values("step")
    assert summary.step.tolist() == trace.step.tolist() == list(range(BASE["steps"]))
    np.testing.assert_allclose(summary.max_update, trace.max_update, rtol=1e-6)
    np.testing.assert_allclose(summary.wd_term, trace.wd_term, rtol=1e-6)
    np.testing.assert_allclose(summary.lr, trace.lr, rtol=1e-12)
    # at n = 0 every coordinate with a gradient has |u_0| = 1 up to ε (docs/theory.md (1.6)),
    # and under AdamW the LayerNorm weights tie at λ·1: rounding picks the tensor there
    assert summary.max_tensor[1:].tolist() == trace.max_tensor[1:].tolist()
    # and the same quantity as the reference's own measurement, computed independently
    np.testing.assert_allclose(summary.max_update, ref.max_update, rtol=1e-12)
    assert (summary.beta == point[0]).all() and (summary.gamma == point[1]).all()
    assert (summary.torch_beta1 == point[1]).all() and (summary.torch_beta2 == point[0]).all()
    if "weight_decay_mode" in CASES[case][0]:
        assert (summary.wd_term > 0).all()


def test_the_comparison_can_fail(watching: Watching) -> None:
    """Another point's engine trace differs: the agreement above is not trivial."""
    _, summary = watching.run("adam-foreach", POINTS[0])
    engine = _engine(())
    other = engine[engine.point == 1].sort_values("step").max_update.to_numpy()
    assert np.max(np.abs(summary.max_update.to_numpy() / other - 1)) > 1e-3
