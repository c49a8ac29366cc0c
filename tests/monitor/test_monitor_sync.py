"""No host synchronisation inside the monitor's hooks between its copies to the host.

The hooks are bracketed by hooks of the test's own, registered before and after the
monitor's (hooks run in registration order), so that only the monitor's work is watched,
not the optimizer's (torch.optim.Adam itself reads its step count with ``.item()``). On CPU
the Tensor methods that copy to the host are instrumented; on CUDA the same steps run under
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from monitor_models import regression, train

from stabcli.monitor import device, watch
from stabcli.optim import KAdam

#: Tensor methods through which a value reaches the host (each one a sync on a device).
TO_HOST = (
    "item", "cpu", "to", "tolist", "numpy", "__array__",
    "__float__", "__int__", "__bool__", "__index__",
)  # fmt: skip
SYNC_EVERY = 8

OPTIMIZERS: dict[str, Callable] = {
    "adam-foreach": lambda ps: torch.optim.Adam(ps, lr=1e-2, foreach=True),
    "adamw-decay": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adam-tensor-lr": lambda ps: torch.optim.Adam(ps, lr=torch.tensor(1e-2), foreach=False),
    "kadam": lambda ps: KAdam(ps, lr=1e-2, k=2),
}


def _bracket(opt: torch.optim.Optimizer, start: Callable, stop: Callable, **options):
    """watch(opt) with ``start()`` run just before each monitor hook and ``stop()`` after."""
    opt.register_step_pre_hook(lambda *_: start())
    opt.register_step_post_hook(lambda *_: start())
    mon = watch(opt, **options)
    opt.register_step_pre_hook(lambda *_: stop())
    opt.register_step_post_hook(lambda *_: stop())
    return mon


@pytest.mark.parametrize("case", list(OPTIMIZERS), ids=list(OPTIMIZERS))
@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("per_tensor", [False, True], ids=["foreach", "per-tensor"])
def test_hooks_reach_the_host_only_when_they_copy(
    case: str, every: int, per_tensor: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device, "PER_TENSOR_FROM", 0 if per_tensor else 1 << 60)
    model, loss = regression()
    opt = OPTIMIZERS[case](model.parameters())
    inside = {"now": False, "step": 0}
    calls: list[tuple[str, int]] = []

    def instrument(name: str) -> None:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, **kwargs):
            if inside["now"]:
                calls.append((name, inside["step"]))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def stop() -> None:
        inside["now"] = False

    mon = _bracket(opt, lambda: inside.update(now=True), stop, sync_every=SYNC_EVERY, every=every)
    for name in TO_HOST:
        instrument(name)  # (after the monitor's buffers were made)
    steps = 3 * SYNC_EVERY * every
    for n in range(steps):
        inside["step"] = n
        train(opt, loss, 1)
    monkeypatch.undo()
    copies = {n for _, n in calls}
    # a copy after every SYNC_EVERY measured steps, and no host access at any other step
    assert copies == {(k * SYNC_EVERY - 1) * every for k in (1, 2, 3)}
    assert len(mon.summary()) == steps // every


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", ["adam-foreach", "adamw-decay", "adam-fused"])
@pytest.mark.parametrize("per_tensor", [False, True], ids=["foreach", "per-tensor"])
def test_hooks_do_not_synchronise_on_cuda(
    case: str, per_tensor: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device, "PER_TENSOR_FROM", 0 if per_tensor else 1 << 60)
    model, loss = regression(device="cuda")
    make = OPTIMIZERS.get(case, lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True))
    opt = make(model.parameters())
    train(opt, loss, 1)  # the optimizer's first step creates its state (not the monitor's)

    def stop() -> None:
        torch.cuda.set_sync_debug_mode("default")

    mon = _bracket(opt, lambda: torch.cuda.set_sync_debug_mode("error"), stop, sync_every=1000)
    try:
        train(opt, loss, 20)  # raises on any synchronising call inside the monitor's hooks
    finally:
        stop()
    assert len(mon.summary()) == 20
