"""No host synchronisation inside the engine's step loop between its record flushes.

The step loop keeps every value on the device and copies records to the host once per
block of ``RECORD_BLOCK`` steps (:meth:`stabcli.probe.records.Records.flush`). On the CPU
the Tensor methods through which a value reaches the host are instrumented while the loop
runs (from the first training forward to :meth:`Records.finish`), outside the flushes; on
CUDA the same loop runs under ``torch.cuda.set_sync_debug_mode("error")``, which raises on
any synchronising call.
"""

from __future__ import annotations

import math

import pytest
import torch

from stabcli.probe import engine as engine_module
from stabcli.probe import load_preset, run_probes
from stabcli.probe.records import Records

torch.set_num_threads(1)

#: Tensor methods through which a value reaches the host (each one a sync on a device).
TO_HOST = (
    "item", "cpu", "tolist", "numpy", "__array__",
    "__float__", "__int__", "__bool__", "__index__",
)  # fmt: skip
STEPS = 2 * engine_module.RECORD_BLOCK + 5  # two full blocks and a partial one

CASES = {
    "gpt-adam": ("tiny-char", {}),
    "gpt-dropout-eval": ("tiny-char", {"dropout": 0.1, "eval_every": 50, "eval_batches": 1}),
    "gpt-adamw-per-point-decay": (
        "tiny-char",
        {"weight_decay_mode": "decoupled", "weight_decay": 0.1, "schedule": "cosine"},
    ),
    "mlp-kadam": (
        "mlp-synthetic",
        {"optimizer": "kadam", "k": 2, "eval_every": 40, "eval_batches": 2},
    ),
    "mlp-hyperadam": ("mlp-synthetic", {"optimizer": "hyperadam"}),
    "mlp-mada-coupled": (
        "mlp-synthetic",
        {"optimizer": "mada", "weight_decay_mode": "coupled", "weight_decay": 0.01},
    ),
    "cnn": ("cnn-synthetic", {"warmup_steps": 10, "eval_every": 60, "eval_batches": 1}),
}
SMALL = {  # models shrunk so that 133 steps take a second or two
    "tiny-char": {"n_layer": 1, "n_embd": 16, "block_size": 8, "batch_size": 4},
    "mlp-synthetic": {},
    "cnn-synthetic": {"n_layer": 2, "n_embd": 4, "batch_size": 8},
}


def _preset(case: str):
    name, overrides = CASES[case]
    settings = {"steps": STEPS, "eval_every": 0, "eval_batches": 0, **SMALL[name], **overrides}
    return load_preset(name).with_overrides(**settings)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_step_loop_reaches_the_host_only_in_flushes(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = _preset(case)
    state = {"looping": False, "flushing": False}
    reached: list[str] = []
    flushes: list[tuple[int, int]] = []

    def instrument(name: str) -> None:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, **kwargs):
            if state["looping"] and not state["flushing"]:
                reached.append(name)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    forward = engine_module.TrainingLoss.__call__
    flush, finish = Records.flush, Records.finish

    def first_forward(self, *args, **kwargs):
        state["looping"] = True  # from the first training step on
        return forward(self, *args, **kwargs)

    def watched_flush(self, lo: int, hi: int) -> None:
        flushes.append((lo, hi))
        state["flushing"] = True
        try:
            flush(self, lo, hi)
        finally:
            state["flushing"] = False

    def watched_finish(self) -> None:
        state["looping"] = False
        finish(self)

    monkeypatch.setattr(engine_module.TrainingLoss, "__call__", first_forward)
    monkeypatch.setattr(Records, "flush", watched_flush)
    monkeypatch.setattr(Records, "finish", watched_finish)
    for name in TO_HOST:
        instrument(name)
    points = [(0.999, 0.9), (0.95, 0.99), (0.9, 0.6)]  # (β, γ)
    result = run_probes(preset, points, device="cpu", points_per_batch=3)
    monkeypatch.undo()
    assert reached == []
    block = engine_module.RECORD_BLOCK
    assert flushes == [(lo, min(lo + block, STEPS)) for lo in range(0, STEPS, block)]
    assert len(result.traces) == len(points) * STEPS


def test_instrumentation_sees_a_host_read() -> None:
    """The instrumented methods are the ones a host read goes through (the test can fail)."""
    seen: list[str] = []
    original = torch.Tensor.item
    try:
        torch.Tensor.item = lambda self: seen.append("item") or original(self)  # type: ignore[method-assign]
        value = torch.ones(()).item()
    finally:
        torch.Tensor.item = original  # type: ignore[method-assign]
    assert seen == ["item"] and math.isclose(value, 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("compile", ["off", "on"])
def test_step_loop_does_not_synchronise_on_cuda(
    case: str, compile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = _preset(case).with_overrides(compile=compile)
    forward = engine_module.TrainingLoss.__call__
    flush, finish = Records.flush, Records.finish
    state = {"looping": False}

    def error_mode() -> None:
        torch.cuda.set_sync_debug_mode("error" if state["looping"] else "default")

    def first_forward(self, *args, **kwargs):
        state["looping"] = True
        error_mode()
        return forward(self, *args, **kwargs)

    def watched_flush(self, lo: int, hi: int) -> None:
        torch.cuda.set_sync_debug_mode("default")
        try:
            flush(self, lo, hi)
        finally:
            error_mode()

    def watched_finish(self) -> None:
        state["looping"] = False
        error_mode()
        finish(self)

    monkeypatch.setattr(engine_module.TrainingLoss, "__call__", first_forward)
    monkeypatch.setattr(Records, "flush", watched_flush)
    monkeypatch.setattr(Records, "finish", watched_finish)
    try:  # raises on any synchronising call inside the loop
        result = run_probes(preset, [(0.999, 0.9), (0.95, 0.99)], device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.summary.diverged_step.isna().all()
    assert len(result.traces) == 2 * STEPS
