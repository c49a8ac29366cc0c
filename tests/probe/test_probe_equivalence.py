"""The vectorized engine against sequential torch.optim.Adam / AdamW runs.

In float64 (float32 trajectories of chaotic training separate after ~100 steps whatever
the implementation), 3 points x 50 steps: per-step max-update and loss must agree to
relative 1e-6 with `torch.optim.Adam(betas=(γ, β))` on the same model, initial weights,
batches and dropout masks (docs/theory.md §10: only (β, γ) differ between points).
"""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.probe import load_preset, run_probes
from stabcli.probe.reference import run_reference

POINTS = [(0.999, 0.9), (0.95, 0.99), (0.6, 0.8)]  # (β, γ): B+, B− near (1, 1), far from it

CASES = {
    "adam-gpt": ("tiny-char", {}),
    "adamw-decoupled-gpt": (
        "tiny-char",
        # 2 layers, batch 16, lr 1e-3: at the preset's own lr the key bias (zero true
        # gradient) holds the max-update with rounding noise no two implementations share
        {
            "weight_decay_mode": "decoupled",
            "weight_decay": 0.1,
            "n_layer": 2,
            "batch_size": 16,
            "lr": 1e-3,
        },
    ),
    "adam-coupled-gpt": ("tiny-char", {"weight_decay_mode": "coupled", "weight_decay": 0.1}),
    "adam-gpt-dropout": ("tiny-char", {"dropout": 0.2}),
    "adam-gpt-dropout-fused-attention": ("tiny-char", {"dropout": 0.2, "attn_dropout": 0.0}),
    "adam-gpt-attention-dropout-only": ("tiny-char", {"dropout": 0.0, "attn_dropout": 0.2}),
    "adam-gpt-cosine": ("tiny-char", {"schedule": "cosine", "warmup_steps": 10}),
    "adam-mlp": ("mlp-synthetic", {}),
    "adamw-decoupled-mlp": (
        "mlp-synthetic",
        {"weight_decay_mode": "decoupled", "weight_decay": 1.0},
    ),
    "adam-mlp-large-eps": ("mlp-synthetic", {"eps": 1e-3}),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_engine_equivalence_with_torch_adam(case: str) -> None:
    name, overrides = CASES[case]
    settings = {"dtype": "float64", "steps": 50, "dropout": 0.0, "eval_every": 0}
    preset = load_preset(name).with_overrides(**{**settings, "eval_batches": 0, **overrides})
    result = run_probes(preset, POINTS, device="cpu")
    assert result.summary.diverged_step.isna().all()
    for i, point in enumerate(POINTS):
        ref = run_reference(preset, point, device="cpu")
        trace = result.traces[result.traces.point == i]
        np.testing.assert_allclose(trace.max_update.to_numpy(), ref.max_update, rtol=1e-6)
        np.testing.assert_allclose(trace.loss.to_numpy(), ref.loss, rtol=1e-6)


def test_equivalence_is_not_trivial() -> None:
    """Different (β, γ) really give different trajectories (the comparison can fail)."""
    preset = load_preset("mlp-synthetic").with_overrides(dtype="float64", steps=20)
    result = run_probes(preset, POINTS[:2], device="cpu")
    ref = run_reference(preset, POINTS[1], device="cpu")
    first = result.traces[result.traces.point == 0].max_update.to_numpy()
    assert np.max(np.abs(first / ref.max_update - 1)) > 1e-3
