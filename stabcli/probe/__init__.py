"""Probes: short training runs of a preset model at many (β, γ) points at once.

The engine trains every point in one vectorized program and records the max-update
‖u_n‖∞ every step (THEORY.md, "Conventions"; issue 4). Public API::

    preset = load_preset("tiny-char").with_overrides(steps=300)
    result = run_probes(preset, [(0.999, 0.9), (0.95, 0.99)])   # (β, γ), paper order
    result.summary, result.traces, result.evals                  # pandas DataFrames
"""

from stabcli.probe.engine import ProbeResult, run_probes
from stabcli.probe.presets import Preset, PresetInfo, list_presets, load_preset

__all__ = ["Preset", "PresetInfo", "ProbeResult", "list_presets", "load_preset", "run_probes"]
