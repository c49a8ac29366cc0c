"""The exact bounds hold at every step of k-Adam and HyperAdam probes.

k-Adam: each level is Adam's normalization of some input sequence, so ‖u_n^{(i)}‖∞ obeys
the exact bound of its own (β_i, γ_i) whatever level i − 1 feeds it (docs/theory.md §6;
paper App. S). HyperAdam: its betas move every step, and ‖u_n‖∞ obeys the path bound
c_n · sqrt(S_n) along the (β_n, γ_n) it recorded (docs/theory.md §5). A violation beyond
float rounding would be a bug in the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stabcli.probe import load_preset, run_probes
from stabcli.theory.exact import exact_bound
from stabcli.theory.path import first_unstable_step, path_bound

ROUNDING = {"float32": 1e-5, "float64": 1e-12}  # relative slack of the training dtype
# base pairs (β, γ): B+ default, B+ but exactly unstable, B− near (1, 1), paper-B− yet
# exactly stable, RMSprop-like γ = 0, and one whose inverse-exp levels are exactly unstable
SPREAD = [(0.999, 0.9), (0.9, 0.96), (0.95, 0.99), (0.4, 0.6), (0.99, 0.0), (0.5, 0.99)]

KADAM_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "gpt-inverse-exp": ("tiny-char", {"strategy": "inverse-exp"}),
    "gpt-naive": ("tiny-char", {"strategy": "naive"}),
    "mlp-exp": ("mlp-synthetic", {"strategy": "exp", "steps": 200}),
    "mlp-scaled": ("mlp-synthetic", {"strategy": "scaled", "steps": 200}),
    "mlp-adamw-naive-f64": (
        "mlp-synthetic",
        {
            "strategy": "naive",
            "steps": 200,
            "weight_decay_mode": "decoupled",
            "weight_decay": 0.5,
            "dtype": "float64",
        },
    ),
    "mlp-coupled-paper-eps": (
        "mlp-synthetic",
        {
            "strategy": "inverse-exp",
            "steps": 200,
            "weight_decay_mode": "coupled",
            "weight_decay": 0.5,
            "eps_placement": "paper",
            "eps": 1e-6,
        },
    ),
}


@pytest.mark.parametrize("case", list(KADAM_CASES), ids=list(KADAM_CASES))
def test_kadam_levels_obey_their_exact_bounds_at_every_step(case: str) -> None:
    name, overrides = KADAM_CASES[case]
    settings = {"steps": 120, "eval_every": 0, "eval_batches": 0, "optimizer": "kadam", "k": 3}
    preset = load_preset(name).with_overrides(**{**settings, **overrides})
    slack = 1.0 + ROUNDING[preset.train.dtype]
    result = run_probes(preset, SPREAD, device="cpu")
    assert result.summary.underflow_step.isna().all()  # else the real-arithmetic bound lapses
    grows = 0
    for row in result.summary.itertuples(index=False):
        trace = result.traces[result.traces.point == row.point]
        steps = trace.step.to_numpy()
        # App. P: every level of a strategy has the same (β_i, γ_i); the bound of (3.1)
        bound = exact_bound(row.level_beta, row.level_gamma, steps)
        for i in (1, 2, 3):
            measured = trace[f"max_update_l{i}"].to_numpy()
            ok = np.isfinite(measured)
            assert ok[:10].all()
            worst = np.max(measured[ok] / bound[ok])
            assert worst <= slack, (row.point, i, worst)
        step = trace.max_update.to_numpy() - trace.wd_term.to_numpy()  # the last level's u
        ok = np.isfinite(step)
        assert np.max(step[ok] / bound[ok]) <= slack
        grows += row.level_gamma**2 > row.level_beta
    # the strategies put some levels of the spread in the exactly unstable region γ² > β,
    # where the bound grows, except scaled (β̃/k, γ̃/k): γ̃²/k² < β̃/k for these points
    assert grows >= (0 if overrides["strategy"] == "scaled" else 1)


PATH_CASES: dict[str, tuple[str, float, dict[str, Any]]] = {
    "mlp-f32-fast": ("float32", 1.0, {}),
    "mlp-f32": ("float32", 0.1, {}),
    "mlp-f64-adamw": ("float64", 1.0, {"weight_decay_mode": "decoupled", "weight_decay": 0.5}),
    "mlp-f32-coupled": ("float32", 0.3, {"weight_decay_mode": "coupled", "weight_decay": 0.5}),
}
HYPER_SPREAD = [(0.95, 0.97), (0.9, 0.94), (0.99, 0.99), (0.999, 0.9), (0.6, 0.77)]


@pytest.mark.parametrize("case", list(PATH_CASES), ids=list(PATH_CASES))
def test_hyperadam_obeys_the_path_bound_at_every_step(case: str) -> None:
    dtype, kappa, overrides = PATH_CASES[case]
    preset = load_preset("mlp-synthetic").with_overrides(
        steps=200,
        eval_every=0,
        eval_batches=0,
        optimizer="hyperadam",
        hyper_lr=kappa,
        dtype=dtype,
        **overrides,
    )
    slack = 1.0 + ROUNDING[dtype]
    result = run_probes(preset, HYPER_SPREAD, device="cpu")
    assert result.summary.underflow_step.isna().all()
    entered, beyond_start = 0, 0
    for i, (beta0, gamma0) in enumerate(HYPER_SPREAD):
        trace = result.traces[result.traces.point == i]
        measured = trace.max_update.to_numpy() - trace.wd_term.to_numpy()
        ok = np.isfinite(measured)
        beta, gamma = trace.beta.to_numpy()[ok], trace.gamma.to_numpy()[ok]
        bound = path_bound(beta, gamma)  # bias correction by the path's products, as HyperAdam
        worst = np.max(measured[ok] / bound)
        assert worst <= slack, (i, worst, int(np.argmax(measured[ok] / bound)))
        entered += first_unstable_step(beta, gamma) is not None
        start = exact_bound(beta0, gamma0, trace.step.to_numpy()[ok])
        beyond_start += bool(np.any(measured[ok] > start * slack))
    assert entered >= 1  # some learned path crossed into γ² > β, where the bound grows
    if kappa >= 1.0:
        # the fixed-betas bound of the starting point does not cover the learned path
        assert beyond_start >= 1
