"""The compiled step (``train.compile = "on"``) against the eager one.

torch.compile fuses the forward, backward and Adam/k-Adam update into other kernels, which
may round differently; in float64 the records of a dozen steps must still agree to a
relative 1e-9 (the tolerance asked of every float64 comparison here; torch.compile
documents no tighter bound, fusion reassociates sums). With dropout, the compiled step
replays the noise the eager step draws (:func:`stabcli.probe.backend.noise_shapes`), so the
masks, and the records, are the same. Skipped where torch.compile cannot run (no C++
compiler for the CPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stabcli.errors import StabcliError
from stabcli.probe import device as device_module
from stabcli.probe import load_preset, run_probes
from stabcli.probe.backend import ModelBackend, ParamSpec
from stabcli.probe.device import compile_problem, use_compile

torch.set_num_threads(1)

needs_compile = pytest.mark.skipif(
    compile_problem("cpu") is not None, reason=f"torch.compile cannot run: {compile_problem('cpu')}"
)

# without biases: the attention's key bias has an exactly zero gradient (softmax ignores a
# constant added to every score), computed as a sum that cancels to rounding noise, and
# Adam normalises that noise to updates of order 1; the two steps sum in different orders,
# so their records would differ wherever that bias holds the max-update
SMALL_GPT = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 16,
    "block_size": 8,
    "batch_size": 4,
    "bias": False,
}
CASES = {
    "gpt-dropout": ("tiny-char", {**SMALL_GPT, "dropout": 0.1}),
    "gpt-adamw-attention-dropout-only": (
        "tiny-char",
        {
            **SMALL_GPT,
            "attn_dropout": 0.2,
            "weight_decay_mode": "decoupled",
            "weight_decay": 0.1,
            "schedule": "cosine",
        },
    ),
    "mlp-kadam-coupled": (
        "mlp-synthetic",
        {"optimizer": "kadam", "k": 2, "weight_decay_mode": "coupled", "weight_decay": 0.01},
    ),
}
POINTS = [(0.999, 0.9), (0.95, 0.99), (0.6, 0.8)]  # (β, γ): B+, B− near (1, 1), far from it
COLUMNS = ["max_update", "loss", "lr", "wd_term"]


@needs_compile
@pytest.mark.parametrize(
    "case",  # compiling takes 20-40 s a case on a 2-core CPU: one case outside the slow set
    [pytest.param(c, marks=[] if c == "gpt-dropout" else [pytest.mark.slow]) for c in CASES],
    ids=list(CASES),
)
def test_compiled_step_gives_the_eager_records(case: str) -> None:
    name, overrides = CASES[case]
    settings = {"dtype": "float64", "steps": 12, "eval_every": 6, "eval_batches": 1}
    preset = load_preset(name).with_overrides(**settings, **overrides)
    eager = run_probes(preset.with_overrides(compile="off"), POINTS, device="cpu")
    compiled = run_probes(preset.with_overrides(compile="on"), POINTS, device="cpu")
    assert eager.summary.diverged_step.isna().all()
    extra = [c for c in eager.traces.columns if c.startswith("max_update_l")]
    for column in COLUMNS + extra:
        np.testing.assert_allclose(
            compiled.traces[column].to_numpy(), eager.traces[column].to_numpy(), rtol=1e-9
        )
    np.testing.assert_allclose(compiled.evals.test_loss, eager.evals.test_loss, rtol=1e-9)
    # the comparison can fail: the points' traces differ from one another
    first, second = (eager.traces[eager.traces.point == i].max_update.to_numpy() for i in (0, 1))
    assert np.max(np.abs(first[1:] / second[1:] - 1.0)) > 1e-3


def _backend(batching: str) -> ModelBackend:
    specs = [ParamSpec("w", (2,), "zeros")]
    return ModelBackend(
        specs=specs,
        initial=lambda: torch.zeros(2),
        loss=lambda *a: torch.zeros(1),
        batching=batching,
    )


def test_auto_compiles_on_cuda_only_and_never_a_factory_model() -> None:
    preset = load_preset("tiny-char")
    assert not use_compile(preset, torch.device("cpu"), _backend("native"))
    assert not use_compile(
        preset.with_overrides(compile="off"), torch.device("cpu"), _backend("native")
    )
    assert not use_compile(preset, torch.device("cuda"), _backend("vmap"))
    with pytest.raises(StabcliError, match="built-in model"):
        use_compile(preset.with_overrides(compile="on"), torch.device("cpu"), _backend("vmap"))


def test_compile_on_without_a_working_compiler_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(device_module, "compile_problem", lambda kind: "InvalidCxxCompiler: no g++")
    preset = load_preset("tiny-char").with_overrides(compile="on")
    with pytest.raises(StabcliError, match=r"cannot run on cpu here \(InvalidCxxCompiler") as err:
        use_compile(preset, torch.device("cpu"), _backend("native"))
    assert "\n" not in str(err.value)
    # auto falls back to the eager step where compiling cannot run
    assert not use_compile(
        preset.with_overrides(compile="auto"), torch.device("cuda"), _backend("native")
    )


def test_unknown_compile_setting_is_refused() -> None:
    with pytest.raises(StabcliError, match=r"train.compile = 'yes'; allowed: auto, on, off"):
        load_preset("tiny-char").with_overrides(compile="yes")
