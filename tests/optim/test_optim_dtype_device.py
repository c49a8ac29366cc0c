"""KAdam, HyperAdam and MADA keep their state on each parameter's device and in its dtype.

A model trained in bfloat16 or float16 on a GPU hands these optimizers low-precision
parameters and gradients; a state tensor made on the CPU or in float32 would either raise
on the first step (devices) or silently change the arithmetic (dtypes). Checked here:

- every state tensor (moments, k-Adam's level lists, the hyper-gradient directions) has the
  parameter's dtype and device, for bfloat16, float16 and float64 parameters, on the CPU
  and on the ``meta`` device (which, like CUDA, refuses CPU tensors that are not 0-dim:
  ``tests/probe/test_probe_gpu_ready.py``);
- the first step against its closed form θ_1 = θ_0(1 − ηλ) − η u_0 (decoupled decay;
  coupled: g ← g + λθ_0), evaluated in float64 and compared with the parameters to the
  rounding of their own dtype. At n = 0 one level maps x to x/(|x| + ε) for every (β, γ)
  (docs/theory.md §1: m_0 = (1−γ)x, v_0 = (1−β)x², corr_0 = sqrt(1−β)/(1−γ), and
  torch's ε' = ε·sqrt(1−β)), so Adam's u_0 is that of g and k-Adam's (§6) is it applied k
  times. θ_0 lies in [1, 2), where one rounding of the dtype is at most eps/2 of θ.
- on CUDA (skipped without one), the same with bfloat16 parameters and the foreach path
  that ``KAdam(foreach=None)`` takes there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from stabcli.optim import MADA, HyperAdam, KAdam

LR, WD, EPS = 1e-2, 0.1, 1e-8

Make = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
#: id: (make(params), weight decay decoupled?, levels: k for k-Adam, else 1)
OPTIMIZERS: dict[str, tuple[Make, bool, int]] = {
    "kadam-single-decoupled": (
        lambda ps: KAdam(ps, lr=LR, k=2, eps=EPS, weight_decay=WD, foreach=False),
        True,
        2,
    ),
    "kadam-foreach-coupled": (
        lambda ps: KAdam(ps, lr=LR, k=3, eps=EPS, weight_decay=WD, decoupled=False, foreach=True),
        False,
        3,
    ),
    "hyperadam-coupled": (lambda ps: HyperAdam(ps, lr=LR, eps=EPS, weight_decay=WD), False, 1),
    "hyperadam-decoupled": (
        lambda ps: HyperAdam(ps, lr=LR, eps=EPS, weight_decay=WD, decoupled_weight_decay=True),
        True,
        1,
    ),
    "mada-decoupled": (lambda ps: MADA(ps, lr=LR, eps=EPS, weight_decay=WD), True, 1),
    "mada-coupled": (
        lambda ps: MADA(ps, lr=LR, eps=EPS, weight_decay=WD, decoupled_weight_decay=False),
        False,
        1,
    ),
}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def _params(dtype: torch.dtype, device: torch.device | str) -> list[torch.Tensor]:
    """A matrix and a vector in [1, 2), with gradients set."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (7,)]
    params = [
        (1.0 + torch.rand(s, generator=gen, dtype=torch.float64)).to(device=device, dtype=dtype)
        for s in shapes
    ]
    for p in params:
        p.requires_grad_(True)
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(device, dtype)
    return params


def _state_tensors(
    opt: torch.optim.Optimizer, p: torch.Tensor
) -> Iterator[tuple[str, torch.Tensor]]:
    for key, value in opt.state[p].items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, torch.Tensor):
                yield key, item


def _first_step(p0: torch.Tensor, g: torch.Tensor, decoupled: bool, levels: int) -> torch.Tensor:
    """θ_1 in float64 (module docstring)."""
    theta, u = p0.double(), g.double()
    if not decoupled:
        u = u + WD * theta
    for _ in range(levels):
        u = u / (u.abs() + EPS)
    return theta * (1 - LR * WD if decoupled else 1.0) - LR * u


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("name", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_state_follows_the_parameters_dtype_and_the_first_step_is_exact(
    name: str, dtype: torch.dtype
) -> None:
    make, decoupled, levels = OPTIMIZERS[name]
    params = _params(dtype, "cpu")
    before = [(p.detach().clone(), p.grad.clone()) for p in params]  # type: ignore[union-attr]
    opt = make(params)
    opt.step()
    eps = torch.finfo(dtype).eps
    for p, (p0, g) in zip(params, before, strict=True):
        assert p.dtype == dtype
        expected = _first_step(p0, g, decoupled, levels)
        # θ in [1, 2): the result rounded once to the dtype is within eps/2 of θ; the
        # arithmetic before it (in the dtype) moves η·u by a few eps·η, far less
        torch.testing.assert_close(p.detach().double(), expected, rtol=eps, atol=0.0)
    for _ in range(2):  # later steps (the hyper-gradient from step 2) keep dtypes too
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    for p in params:
        found = list(_state_tensors(opt, p))
        assert found, "no state tensors"
        for key, tensor in found:
            assert (key, tensor.dtype, tensor.device) == (key, dtype, p.device)


@pytest.mark.parametrize("name", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_state_is_made_on_the_parameters_device(name: str) -> None:
    """On the meta device a CPU tensor mixed into the step raises. One step: HyperAdam's
    and MADA's second step reads the hyper-gradient on the host (one sync per group, by
    design), which a meta tensor cannot give."""
    make, _, _ = OPTIMIZERS[name]
    params = _params(torch.bfloat16, "meta")
    opt = make(params)
    opt.step()
    for p in params:
        for key, tensor in _state_tensors(opt, p):
            assert (key, tensor.device, tensor.dtype) == (key, p.device, p.dtype)


def test_kadam_steps_on_meta_repeatedly() -> None:
    """KAdam never reads a value back to the host: several steps run on the meta device."""
    params = _params(torch.float16, "meta")
    opt = KAdam(params, lr=LR, k=3, foreach=True)
    for _ in range(3):
        opt.step()
    assert all(opt.state[p]["step"] == 3 for p in params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_cuda_bfloat16_parameters(name: str) -> None:
    """bfloat16 parameters on CUDA: state there, the first step as on the CPU, and
    ``KAdam(foreach=None)`` takes the foreach path there."""
    make, decoupled, levels = OPTIMIZERS[name]
    params = _params(torch.bfloat16, "cuda")
    before = [(p.detach().clone(), p.grad.clone()) for p in params]  # type: ignore[union-attr]
    opt = make(params)
    opt.step()
    eps = torch.finfo(torch.bfloat16).eps
    for p, (p0, g) in zip(params, before, strict=True):
        expected = _first_step(p0, g, decoupled, levels)
        torch.testing.assert_close(p.detach().double(), expected, rtol=eps, atol=0.0)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    for p in params:
        for key, tensor in _state_tensors(opt, p):
            assert (key, tensor.device, tensor.dtype) == (key, p.device, torch.bfloat16)
