"""qk-norm in the batched GPT (``model.qk_norm``, stabcli.probe.models' docstring).

Under qk-norm the loss is scale invariant under each query and key matrix (arXiv
2411.05746 §4.1 and App. G): scaling W_q or W_k of a layer by c leaves the float64 loss
equal to relative 1e-10, and without qk-norm it does not (the control). The batched model
is checked against an independent single-model forward pass written here (nanoGPT's
blocks, with qk-norm as RMS normalisation, q / √mean(q²)), against itself one point at a
time, and its fused-attention path against its explicit one.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stabcli.errors import StabcliError
from stabcli.probe import load_preset, run_probes
from stabcli.probe.backend import SharedDropout, unflatten
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream, Dataset, load_dataset
from stabcli.probe.models import init_flat, loss_function, param_specs
from stabcli.probe.reference import run_reference
from stabcli.store import fingerprint

N_HEAD = 2
N_EMBD = 16
SCALES = [0.1, 3.0, 17.0]


def _preset(qk_norm: bool, bias: bool = False) -> Preset:
    """A small float64 GPT whose attention is far from uniform at initialisation (init std
    0.3), so that the control (no qk-norm) really depends on the scale of W_q and W_k."""
    return load_preset("tiny-char").with_overrides(
        qk_norm=qk_norm,
        bias=bias,
        n_layer=2,
        n_head=N_HEAD,
        n_embd=N_EMBD,
        block_size=12,
        batch_size=4,
        init_std=0.3,
        corpus_chars=5000,
        dtype="float64",
        dropout=0.0,
    )


def _setup(preset: Preset, n_points: int = 1) -> tuple[Dataset, torch.Tensor, tuple]:
    """The data, (P, N) parameters (θ_0 plus a different perturbation per point) and a batch."""
    data = load_dataset(preset)
    specs = param_specs(preset.model, data.n_in, data.n_out)
    theta0 = init_flat(specs, 0, torch.float64)  # (N,)
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(n_points, theta0.numel(), generator=gen, dtype=torch.float64)
    flat = theta0[None] + 0.05 * noise  # (P, N): points, parameters
    batch = BatchStream(data, preset, torch.device("cpu"), torch.float64).train_batch(0)
    return data, flat, batch


def _loss(preset: Preset, data: Dataset, flat: torch.Tensor, batch: tuple) -> torch.Tensor:
    """(P, N) parameters -> (P,) losses of the batched model."""
    specs = param_specs(preset.model, data.n_in, data.n_out)
    fn = loss_function(preset.model)
    return fn(unflatten(flat, specs), *batch, SharedDropout(0.0, None))


def _scaled(
    preset: Preset, data: Dataset, flat: torch.Tensor, which: str, c: float, head: int | None
) -> torch.Tensor:
    """A copy of ``flat`` with layer 1's query or key map scaled by c: its weight columns
    (and bias entries, if any); only head ``head``'s block when given."""
    specs = param_specs(preset.model, data.n_in, data.n_out)
    out = flat.clone()
    params = unflatten(out, specs)  # views into ``out``
    block = {"query": 0, "key": 1}[which]
    d = N_EMBD // N_HEAD
    lo, hi = block * N_EMBD, (block + 1) * N_EMBD
    if head is not None:
        lo, hi = lo + head * d, lo + (head + 1) * d
    params["h.1.attn.c_attn.weight"][:, :, lo:hi] *= c  # (P, C, 3C)
    if "h.1.attn.c_attn.bias" in params:
        params["h.1.attn.c_attn.bias"][:, lo:hi] *= c  # (P, 3C)
    return out


CASES = [
    pytest.param(which, c, bias, id=f"{which}-x{c:g}-{'bias' if bias else 'nobias'}")
    for which in ("query", "key")
    for c in SCALES
    for bias in (False, True)
]


@pytest.mark.parametrize(("which", "c", "bias"), CASES)
def test_qk_norm_loss_is_invariant_to_scaling_a_query_or_key_matrix(
    which: str, c: float, bias: bool
) -> None:
    preset = _preset(qk_norm=True, bias=bias)
    data, flat, batch = _setup(preset)
    base = _loss(preset, data, flat, batch)
    scaled = _loss(preset, data, _scaled(preset, data, flat, which, c, None), batch)
    torch.testing.assert_close(scaled, base, rtol=1e-10, atol=0.0)


@pytest.mark.parametrize(("which", "c", "bias"), CASES)
def test_without_qk_norm_the_loss_depends_on_the_scale(which: str, c: float, bias: bool) -> None:
    """The control: the same scaling changes the loss of the model without qk-norm."""
    preset = _preset(qk_norm=False, bias=bias)
    data, flat, batch = _setup(preset)
    base = _loss(preset, data, flat, batch)
    scaled = _loss(preset, data, _scaled(preset, data, flat, which, c, None), batch)
    assert torch.all((scaled / base - 1).abs() > 1e-4)


@pytest.mark.parametrize("which", ["query", "key"])
def test_qk_norm_is_per_head(which: str) -> None:
    """Scaling one head's block of W_q (W_k) leaves the loss unchanged: the queries (keys)
    are normalised per head, not over all heads at once."""
    preset = _preset(qk_norm=True)
    data, flat, batch = _setup(preset)
    base = _loss(preset, data, flat, batch)
    scaled = _loss(preset, data, _scaled(preset, data, flat, which, 5.0, head=1), batch)
    torch.testing.assert_close(scaled, base, rtol=1e-10, atol=0.0)


def _reference_loss(
    p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, qk_norm: bool
) -> torch.Tensor:
    """One model's loss, nanoGPT's forward pass written afresh (no point dimension);
    qk-norm as q / √mean(q²) per head and softmax(q̂k̂ᵀ/√D)."""
    b, t = x.shape
    c, h = N_EMBD, N_HEAD
    d = c // h

    def ln(z: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(z, (c,), p[f"{name}.weight"], p.get(f"{name}.bias"), eps=1e-5)

    def lin(z: torch.Tensor, name: str) -> torch.Tensor:
        out = z @ p[f"{name}.weight"]
        return out + p[f"{name}.bias"] if f"{name}.bias" in p else out

    z = p["wte"][x] + p["wpe"][:t]  # (B, T, C)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(2):
        q, k, v = lin(ln(z, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn").split(c, dim=-1)
        q, k, v = (a.view(b, t, h, d).permute(0, 2, 1, 3) for a in (q, k, v))  # (B, H, T, D)
        if qk_norm:
            q = q / q.pow(2).mean(dim=-1, keepdim=True).sqrt()
            k = k / k.pow(2).mean(dim=-1, keepdim=True).sqrt()
        att = (q @ k.transpose(-1, -2) / math.sqrt(d)).masked_fill(~causal, float("-inf"))
        a = (att.softmax(dim=-1) @ v).permute(0, 2, 1, 3).reshape(b, t, c)
        z = z + lin(a, f"h.{i}.attn.c_proj")
        z = z + lin(F.gelu(lin(ln(z, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")), f"h.{i}.mlp.c_proj")
    logits = ln(z, "ln_f") @ p["wte"].T  # (B, T, V), head tied to the embedding
    return F.cross_entropy(logits.reshape(b * t, -1), y.reshape(-1))


@pytest.mark.parametrize(
    ("qk_norm", "bias"),
    [(False, False), (False, True), (True, False), (True, True)],
    ids=["off-nobias", "off-bias", "on-nobias", "on-bias"],
)
def test_batched_gpt_equals_an_independent_forward_pass(qk_norm: bool, bias: bool) -> None:
    """Loss and gradient of 3 points of the batched model against the reference, point by
    point; with qk-norm off this is the GPT as it was before qk-norm existed."""
    preset = _preset(qk_norm, bias)
    data, flat, batch = _setup(preset, n_points=3)
    specs = param_specs(preset.model, data.n_in, data.n_out)
    leaf = flat.clone().requires_grad_(True)
    losses = _loss(preset, data, leaf, batch)  # (P,)
    (grads,) = torch.autograd.grad(losses.sum(), leaf)  # (P, N)
    for i in range(3):
        one = flat[i : i + 1].clone().requires_grad_(True)
        params = {k: v[0] for k, v in unflatten(one, specs).items()}
        ref = _reference_loss(params, *batch, qk_norm)
        (ref_grad,) = torch.autograd.grad(ref, one)
        torch.testing.assert_close(losses[i].detach(), ref.detach(), rtol=1e-12, atol=0.0)
        torch.testing.assert_close(grads[i], ref_grad[0], rtol=1e-9, atol=1e-13)


def test_qk_norm_batched_equals_each_point_alone() -> None:
    preset = _preset(qk_norm=True, bias=True)
    data, flat, batch = _setup(preset, n_points=3)
    leaf = flat.clone().requires_grad_(True)
    losses = _loss(preset, data, leaf, batch)
    (grads,) = torch.autograd.grad(losses.sum(), leaf)
    for i in range(3):
        one = flat[i : i + 1].clone().requires_grad_(True)
        alone = _loss(preset, data, one, batch)
        (grad,) = torch.autograd.grad(alone.sum(), one)
        torch.testing.assert_close(losses[i : i + 1].detach(), alone.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(grads[i : i + 1], grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("qk_norm", [False, True], ids=["off", "on"])
def test_fused_attention_path_equals_the_explicit_one(
    qk_norm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyTorch's scaled_dot_product_attention (forced here on the CPU, where the engine
    runs explicit attention) gives the explicit path's loss and gradient, with and
    without qk-norm (its ``scale`` argument carries qk-norm's √D)."""
    import stabcli.probe.models as models

    preset = _preset(qk_norm, bias=True)
    data, flat, batch = _setup(preset, n_points=2)
    results = []
    for fused in (False, True):
        monkeypatch.setattr(models, "fused_attention", lambda drop, device, f=fused: f)
        leaf = flat.clone().requires_grad_(True)
        losses = _loss(preset, data, leaf, batch)
        (grads,) = torch.autograd.grad(losses.sum(), leaf)
        results.append((losses.detach(), grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-9, atol=1e-13)


def test_qk_norm_engine_run_equals_torch_adam() -> None:
    """Training with qk-norm: the vectorized engine against torch.optim.Adam(betas=(γ, β))
    on the same model, 2 points x 20 steps (as tests/probe/test_probe_equivalence.py)."""
    import numpy as np

    preset = _preset(qk_norm=True).with_overrides(init_std=0.02, steps=20, eval_every=0)
    points = [(0.999, 0.9), (0.95, 0.99)]  # (β, γ)
    result = run_probes(preset, points, device="cpu")
    for i, point in enumerate(points):
        ref = run_reference(preset, point, device="cpu")
        trace = result.traces[result.traces.point == i]
        np.testing.assert_allclose(trace.loss.to_numpy(), ref.loss, rtol=1e-6)
        np.testing.assert_allclose(trace.max_update.to_numpy(), ref.max_update, rtol=1e-6)


def test_qk_norm_off_keeps_the_settings_and_their_fingerprint() -> None:
    """Presets without qk-norm serialise as before qk_norm existed (no key), so runs made
    earlier keep their fingerprint and resume; with it the key is there."""
    off = load_preset("tiny-char")
    on = off.with_overrides(qk_norm=True)
    assert "qk_norm" not in off.to_dict()["model"]
    assert on.to_dict()["model"]["qk_norm"] is True
    assert fingerprint(on.to_dict()) != fingerprint(off.to_dict())
    explicit_off = on.with_overrides(qk_norm=False)
    assert fingerprint(explicit_off.to_dict()) == fingerprint(off.to_dict())


def test_qk_norm_is_validated() -> None:
    with pytest.raises(StabcliError, match=r"model\.qk_norm = True; must be false unless"):
        load_preset("mlp-synthetic").with_overrides(qk_norm=True)
    with pytest.raises(StabcliError, match="override qk_norm: expected bool"):
        load_preset("tiny-char").with_overrides(qk_norm="yes")
