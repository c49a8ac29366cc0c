"""Probes: short training runs of a preset model at many (β, γ) points at once.

The engine trains every point in one vectorized program and records the max-update
‖u_n‖∞ every step (docs/theory.md §1). Public API::

    preset = load_preset("tiny-char").with_overrides(steps=300)
    result = run_probes(preset, [(0.999, 0.9), (0.95, 0.99)])   # (β, γ), paper order
    result.summary, result.traces, result.evals                  # pandas DataFrames

    setup = resolve_setup(preset, device="cpu")   # device, dtype, data (by sha256): once
    part = run_batch(setup, [(0.999, 0.9)])       # one vectorized batch; picklable inputs
    run_probes(preset, [ProbePoint(0.999, 0.9, lr=3e-3, weight_decay=0.1)])  # per-point η, λ
"""

from stabcli.probe.data import DataRef
from stabcli.probe.engine import ProbePoint, ProbeResult, run_batch, run_probes
from stabcli.probe.presets import Preset, PresetInfo, list_presets, load_preset
from stabcli.probe.setup import ProbeSetup, resolve_setup

__all__ = [
    "DataRef",
    "Preset",
    "PresetInfo",
    "ProbePoint",
    "ProbeResult",
    "ProbeSetup",
    "list_presets",
    "load_preset",
    "resolve_setup",
    "run_batch",
    "run_probes",
]
