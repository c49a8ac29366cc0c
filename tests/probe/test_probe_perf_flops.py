"""The roofline's FLOP count against brute-force counts of what the engine executes.

:func:`stabcli.probe.models.step_flops` counts one point-step's FLOPs from a preset's
shapes (a formula per model, and :func:`stabcli.probe.optim.elementwise_flops` per
parameter for the optimizer). Here the forward and backward matrix products are counted
by torch's ``FlopCounterMode`` while the engine's own loss runs forward and backward at P
points (divided by P), and the optimizer's elementwise work by a dispatch mode that tallies
every parameter-sized operation one stacked-optimizer step executes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from stabcli.probe import load_preset
from stabcli.probe.backend import SharedDropout, unflatten
from stabcli.probe.models import loss_function, param_specs, step_flops
from stabcli.probe.optim import PointHypers, elementwise_flops, lr_table, make_optimizer

torch.set_num_threads(1)

#: (preset, model overrides, train overrides): small shapes that differ in every term
MODELS = {
    "gpt-1x16": ("tiny-char", {"n_layer": 1, "n_head": 1, "n_embd": 16, "block_size": 8}, {}),
    "gpt-2x24-3heads": (
        "tiny-char",
        {"n_layer": 2, "n_head": 3, "n_embd": 24, "block_size": 5},
        {},
    ),
    "gpt-3x8-nobias": (
        "tiny-char",
        {"n_layer": 3, "n_head": 2, "n_embd": 8, "block_size": 12, "bias": False},
        {"batch_size": 3},
    ),
    "gpt-attention-dropout": (
        "tiny-char",
        {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.1},
        {},
    ),
    "mlp-2x32": ("mlp-synthetic", {}, {}),
    "mlp-3x7-nobias": (
        "mlp-synthetic",
        {"n_layer": 3, "n_embd": 7, "n_head": 1, "bias": False},
        {"batch_size": 5},
    ),
}
VOCAB, FEATURES, CLASSES = 11, 6, 4
N_POINTS = 3


def _preset(case: str):
    name, model, train = MODELS[case]
    return load_preset(name).with_overrides(**model, **train, steps=4, dtype="float64")


def _batch(preset) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    gen = torch.Generator().manual_seed(0)
    b = preset.train.batch_size
    if preset.model.kind == "gpt":
        t = preset.model.block_size
        x = torch.randint(VOCAB, (b, t), generator=gen)
        return x, torch.randint(VOCAB, (b, t), generator=gen), VOCAB, VOCAB
    x = torch.randn(b, FEATURES, generator=gen, dtype=torch.float64)
    return x, torch.randint(CLASSES, (b,), generator=gen), FEATURES, CLASSES


@pytest.mark.parametrize("case", list(MODELS), ids=list(MODELS))
def test_forward_and_backward_flops_match_flop_counter(case: str) -> None:
    preset = _preset(case)
    x, y, n_in, n_out = _batch(preset)
    specs = param_specs(preset.model, n_in, n_out)
    n_params = sum(s.numel for s in specs)
    flat = torch.randn(N_POINTS, n_params, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    loss = loss_function(preset.model)
    forward_counter, backward_counter = (
        FlopCounterMode(display=False),
        FlopCounterMode(display=False),
    )
    with forward_counter:
        losses = loss(unflatten(flat, specs), x, y, SharedDropout(preset.model.dropout, gen))
    with backward_counter:
        losses.sum().backward()
    counted = step_flops(preset, n_in, n_out)
    assert counted.forward * N_POINTS == forward_counter.get_total_flops()
    assert counted.backward * N_POINTS == backward_counter.get_total_flops()


#: FLOPs per element of the parameter-sized operations the stacked optimizers execute
OP_FLOPS = {
    "lerp_": 3,  # a + w (b − a)
    "mul": 1,
    "mul_": 1,
    "sqrt": 1,
    "add_": 1,
    "add": 1,  # 2 with a scale (alpha ≠ 1): counted below
    "div": 1,
    "abs": 1,
    "max": 1,  # the reduction: one comparison per element
    "amax": 1,
    "where": 1,
    "addcmul": 2,
    "addcmul_": 2,
    "linalg_vector_norm": 2,  # ‖·‖∞: |·| and max
}


class _ElementwiseTally(TorchDispatchMode):
    """Tallies FLOPs of operations on (P, N) buffers, by :data:`OP_FLOPS`: operations on
    a (P, N) tensor, or on a view into one (the chunks a reduction reads, counted by the
    elements the view holds); views themselves cost nothing."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.flops = 0
        self.unknown: set[str] = set()

    def _big(self, a: object) -> bool:
        if not isinstance(a, torch.Tensor):
            return False
        if tuple(a.shape) == self.shape:
            return True
        n_pt, n = self.shape  # a view into a parameter-sized buffer (not a new tensor)
        return a._base is not None and tuple(a._base.shape) == (n_pt, n)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        big = [a for a in args if self._big(a)]
        name = func.overloadpacket.__name__
        if big and name not in (
            "gather",
            "copy_",
            "zero_",
            "fill_",
            "clone",
            "empty_like",
            "new_zeros",
            "slice",
            "view",
            "select",
            "unsqueeze",
            "as_strided",
        ):
            if name not in OP_FLOPS:
                self.unknown.add(name)
            scaled = name == "add" and kwargs.get("alpha", 1) != 1
            self.flops += (OP_FLOPS.get(name, 0) + int(scaled)) * big[0].numel()
        return func(*args, **kwargs)


OPTIMIZERS = {
    "adam": {},
    "adamw-decoupled": {"weight_decay_mode": "decoupled", "weight_decay": 0.1},
    "adam-coupled": {"weight_decay_mode": "coupled", "weight_decay": 0.1},
    "kadam-k2": {"optimizer": "kadam", "k": 2},
    "kadam-k3-decoupled": {
        "optimizer": "kadam",
        "k": 3,
        "weight_decay_mode": "decoupled",
        "weight_decay": 0.1,
    },
}


@pytest.mark.parametrize("case", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_optimizer_flops_match_the_operations_a_step_executes(case: str) -> None:
    train = load_preset("mlp-synthetic").with_overrides(steps=3, **OPTIMIZERS[case]).train
    n_pt, n = 4, 257
    beta, gamma = np.linspace(0.9, 0.999, n_pt), np.full(n_pt, 0.9)
    hypers = PointHypers(beta, gamma, np.full(n_pt, 1e-3), np.full(n_pt, train.weight_decay))
    flat = torch.randn(n_pt, n)
    opt = make_optimizer(train, flat, hypers, lr_table(train, beta, gamma))
    alive = torch.ones(n_pt, dtype=torch.bool)
    opt.step(0, flat, torch.randn(n_pt, n), torch.ones(n_pt), alive)  # state exists
    tally = _ElementwiseTally((n_pt, n))
    with torch.no_grad(), tally:
        opt.step(1, flat, torch.randn(n_pt, n), torch.ones(n_pt), alive)
    assert not tally.unknown, f"operations without a FLOP count: {tally.unknown}"
    assert tally.flops == elementwise_flops(train) * n_pt * n
