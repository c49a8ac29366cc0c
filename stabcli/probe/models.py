"""The probed networks, written natively batched over points.

Every parameter tensor carries a leading point dimension P, so one forward pass trains P
copies of the model that differ only in their weights (vectorized points). Linear
weights are stored as (P, C_in, C_out) and applied with ``torch.baddbmm``; attention folds
the points into the batch dimension, (P·B, H, T, D), so PyTorch's fused
``scaled_dot_product_attention`` runs unchanged (``torch.func.vmap`` has no batching rule
for CPU flash attention).

The GPT follows nanoGPT's ``model.py``: token + position embeddings, pre-LayerNorm blocks
of causal self-attention and a GELU MLP, a final LayerNorm and an output head tied to the
token embedding. Dropout is applied, as in nanoGPT, after the embeddings, on the
attention probabilities and on both residual branches, with one mask per call shared by
all points. Fused attention cannot share its dropout mask across points, so while attention
dropout is active attention is computed explicitly (softmax(QKᵀ/√D) with a shared mask);
without it (evaluation, or ``attn_dropout = 0``) the fused kernel runs on accelerators. On
the CPU attention is always explicit: three batched products are faster there than the
CPU flash kernel at these head sizes.

qk-norm (``model.qk_norm``) is the scale-invariant attention of arXiv 2411.05746 §4.1 and
App. G ("qk-norm [7, 8] enabled, such that the loss is scale invariant under each query and
key matrix"; [7] Dehghani et al. 2023, arXiv 2302.05442, LayerNorm on queries and keys):
per head, q and k are divided by their Euclidean norm over the head's D channels and the
logits are scaled by √D instead of 1/√D,

    scores = √D · ⟨q, k⟩ / (‖q‖ ‖k‖) = ⟨q̂, k̂⟩ / √D,   q̂ = √D q/‖q‖,  k̂ = √D k/‖k‖,

i.e. q̂ and k̂ are RMS-normalised (root mean square 1, as a LayerNorm at its initial gain,
without centring, learned gain or ε inside the root). No parameter is added, so the flat
layout is unchanged. The logits depend on a layer's W_q (W_k) only through the directions
of each head's queries (keys): the loss is invariant under W ↦ αW, α > 0, of each matrix,
and of each head's block of columns (with biases, of (W_q, b_q) together).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stabcli.probe.backend import (
    ModelBackend,
    Params,
    ParamSpec,
    SharedDropout,
    StepFlops,
    correct_fraction,
    init_flat,
    unflatten,
)
from stabcli.probe.config import ModelConfig, Preset
from stabcli.probe.data import Dataset
from stabcli.probe.optim import elementwise_flops

__all__ = [
    "ParamSpec",
    "Params",
    "SharedDropout",
    "fused_attention",
    "init_flat",
    "loss_function",
    "native_backend",
    "param_specs",
    "step_flops",
    "unflatten",
]


def param_specs(cfg: ModelConfig, n_in: int, n_out: int) -> list[ParamSpec]:
    """The parameter tensors of the model, in a fixed order (the flat layout's order)."""
    specs: list[ParamSpec] = []
    std = cfg.init_std

    def linear(name: str, c_in: int, c_out: int, w_std: float) -> None:
        specs.append(ParamSpec(f"{name}.weight", (c_in, c_out), "normal", w_std))
        if cfg.bias:
            specs.append(ParamSpec(f"{name}.bias", (c_out,), "zeros"))

    def norm(name: str, width: int) -> None:
        specs.append(ParamSpec(f"{name}.weight", (width,), "ones"))
        if cfg.bias:
            specs.append(ParamSpec(f"{name}.bias", (width,), "zeros"))

    if cfg.kind == "mlp":
        width = n_in
        for i in range(cfg.n_layer):
            linear(f"fc.{i}", width, cfg.n_embd, 1.0 / math.sqrt(width))
            width = cfg.n_embd
        linear("out", width, n_out, 1.0 / math.sqrt(width))
        return specs

    c = cfg.n_embd
    proj_std = std / math.sqrt(2 * cfg.n_layer)  # nanoGPT's scaled init of residual projections
    specs.append(ParamSpec("wte", (n_out, c), "normal", std))  # tied with the output head
    specs.append(ParamSpec("wpe", (cfg.block_size, c), "normal", std))
    for i in range(cfg.n_layer):
        norm(f"h.{i}.ln_1", c)
        linear(f"h.{i}.attn.c_attn", c, 3 * c, std)
        linear(f"h.{i}.attn.c_proj", c, c, proj_std)
        norm(f"h.{i}.ln_2", c)
        linear(f"h.{i}.mlp.c_fc", c, 4 * c, std)
        linear(f"h.{i}.mlp.c_proj", 4 * c, c, proj_std)
    norm("ln_f", c)
    return specs


def _linear(x: torch.Tensor, p: Params, name: str) -> torch.Tensor:
    """x (P, ..., C_in) @ W (P, C_in, C_out) + b (P, C_out) -> (P, ..., C_out)."""
    w = p[f"{name}.weight"]
    lead = x.shape[:-1]
    x2 = x.reshape(x.shape[0], -1, x.shape[-1])  # (P, M, C_in)
    bias = p.get(f"{name}.bias")
    out = torch.bmm(x2, w) if bias is None else torch.baddbmm(bias.unsqueeze(1), x2, w)
    return out.view(*lead, w.shape[-1])


def _layer_norm(x: torch.Tensor, p: Params, name: str) -> torch.Tensor:
    """LayerNorm over channels with per-point affine parameters; x (P, B, T, C)."""
    y = F.layer_norm(x, x.shape[-1:], eps=1e-5)
    y = y * p[f"{name}.weight"][:, None, None, :]
    bias = p.get(f"{name}.bias")
    return y if bias is None else y + bias[:, None, None, :]


def fused_attention(drop: SharedDropout, device: torch.device) -> bool:
    """Whether attention runs PyTorch's fused kernel: not while attention dropout is active
    (its mask must be shared by the points) and not on the CPU (module docstring)."""
    return not drop.active and device.type != "cpu"


def _attention(
    x: torch.Tensor,
    p: Params,
    name: str,
    n_head: int,
    drop: SharedDropout,
    qk_norm: bool = False,
) -> torch.Tensor:
    """Causal self-attention, with qk-norm if asked (module docstring); x (P, B, T, C) ->
    (P, B, T, C)."""
    n_pt, b, t, c = x.shape
    d = c // n_head
    q, k, v = _linear(x, p, f"{name}.c_attn").split(c, dim=-1)  # 3 x (P, B, T, C)

    def heads(z: torch.Tensor) -> torch.Tensor:  # -> (P·B, H, T, D): points folded into batch
        return z.reshape(n_pt * b, t, n_head, d).transpose(1, 2)

    qh, kh = heads(q), heads(k)  # (P·B, H, T, D) each
    scale = None  # the kernels' own 1/√D
    if qk_norm:  # q/‖q‖ and k/‖k‖ per head, logits × √D: ⟨q̂, k̂⟩/√D with ‖q̂‖ = ‖k̂‖ = √D
        qh, kh = F.normalize(qh, dim=-1), F.normalize(kh, dim=-1)
        scale = math.sqrt(d)
    if fused_attention(drop, x.device):
        y = _fused_attention(qh, kh, heads(v), scale)
    else:
        y = _explicit_attention(qh, kh, heads(v), drop, n_pt, scale)
    y = y.transpose(1, 2).reshape(n_pt, b, t, c)  # (P, B, T, C)
    return _linear(y, p, f"{name}.c_proj")


#: Sequences (the grid's y/z dimension) a CUDA launch of the fused attention kernels takes at
#: most; more fail with "invalid configuration argument" (pytorch/pytorch#142228).
MAX_FUSED_SEQUENCES = 65535


def _fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None
) -> torch.Tensor:
    """Causal ``F.scaled_dot_product_attention`` on (P·B, H, T, D), in slices of at most
    MAX_FUSED_SEQUENCES sequences: points folded into the batch reach it on a large GPU
    sweep (8192 points of batch 8)."""
    n = q.shape[0]
    if n <= MAX_FUSED_SEQUENCES:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    parts = [
        F.scaled_dot_product_attention(
            q[i : i + MAX_FUSED_SEQUENCES],
            k[i : i + MAX_FUSED_SEQUENCES],
            v[i : i + MAX_FUSED_SEQUENCES],
            is_causal=True,
            scale=scale,
        )
        for i in range(0, n, MAX_FUSED_SEQUENCES)
    ]
    return torch.cat(parts)


def _explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    drop: SharedDropout,
    n_pt: int,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(s·QKᵀ + M) V with s = ``scale`` (None: 1/√D) and M = −∞ above the diagonal
    (causal), and nanoGPT's attention dropout on the weights with one mask shared by all
    points; q, k, v (P·B, H, T, D) -> (P·B, H, T, D).

    Used while attention dropout is active (a fused kernel cannot share its mask across
    points) and on the CPU, where at these head sizes (D = 16-64, T <= 256) three batched
    products beat PyTorch's CPU flash kernel (benchmarks/bench_probes.py, 2-core CPU:
    1.5-2.5x on the attention of tiny-char and shakespeare-small, forward and backward).
    """
    pb, n_head, t, d = q.shape
    mask = torch.full((t, t), float("-inf"), dtype=q.dtype, device=q.device).triu(1)  # (T, T)
    flat = (pb * n_head, t, d)  # (P·B·H, T, D): one batched product for every head
    scores = torch.baddbmm(  # (P·B·H, T, T), the mask added by the product itself
        mask.expand(pb * n_head, t, t),
        q.reshape(flat),
        k.reshape(flat).transpose(1, 2),
        alpha=1.0 / math.sqrt(d) if scale is None else scale,
    )
    weights = scores.softmax(dim=-1)
    if drop.active:
        weights = drop(weights.view(n_pt, -1, n_head, t, t)).view(pb * n_head, t, t)
    return torch.bmm(weights, v.reshape(flat)).view(pb, n_head, t, d)


def gpt_loss(
    p: Params, x: torch.Tensor, y: torch.Tensor, drop: SharedDropout, cfg: ModelConfig
) -> torch.Tensor:
    """Mean next-token cross-entropy per point; x, y (B, T) token ids -> (P,)."""
    wte = p["wte"]  # (P, V, C), tied output head
    n_pt, vocab, c = wte.shape
    t = x.shape[1]
    offsets = torch.arange(n_pt, device=x.device) * vocab  # row of point p's table in (P·V, C)
    tok = F.embedding(x[None] + offsets[:, None, None], wte.reshape(n_pt * vocab, c))
    attn_drop = drop.sharing(cfg.attention_dropout)
    h = drop(tok + p["wpe"][:, None, :t])  # (P, B, T, C)
    for i in range(cfg.n_layer):
        att = _attention(
            _layer_norm(h, p, f"h.{i}.ln_1"), p, f"h.{i}.attn", cfg.n_head, attn_drop, cfg.qk_norm
        )
        h = h + drop(att)
        a = F.gelu(_linear(_layer_norm(h, p, f"h.{i}.ln_2"), p, f"h.{i}.mlp.c_fc"))
        h = h + drop(_linear(a, p, f"h.{i}.mlp.c_proj"))
    h = _layer_norm(h, p, "ln_f")
    logits = torch.bmm(h.reshape(n_pt, -1, c), wte.transpose(1, 2))  # (P, B·T, V)
    return _cross_entropy(logits, y.reshape(-1))


def mlp_loss(
    p: Params, x: torch.Tensor, y: torch.Tensor, drop: SharedDropout, cfg: ModelConfig
) -> torch.Tensor:
    """Mean cross-entropy per point of a GELU MLP; x (B, F) features, y (B,) labels -> (P,)."""
    n_pt = p["out.weight"].shape[0]
    h = x.expand(n_pt, *x.shape)  # (P, B, F): same inputs for every point
    for i in range(cfg.n_layer):
        h = drop(F.gelu(_linear(h, p, f"fc.{i}")))  # (P, B, H)
    return _cross_entropy(_linear(h, p, "out"), y)


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits (P, M, V), target (M,) -> (P,) mean loss per point, computed in float32+."""
    n_pt, m, v = logits.shape
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    losses = F.cross_entropy(logits.reshape(n_pt * m, v), target.repeat(n_pt), reduction="none")
    return losses.view(n_pt, m).mean(dim=1)


def loss_function(cfg: ModelConfig) -> Callable[..., torch.Tensor]:
    """``f(params, x, y, dropout) -> (P,)`` losses for the configured model kind."""
    body = gpt_loss if cfg.kind == "gpt" else mlp_loss

    def loss(p: Params, x: torch.Tensor, y: torch.Tensor, drop: SharedDropout) -> torch.Tensor:
        return body(p, x, y, drop, cfg)

    return loss


def _accuracy(cfg: ModelConfig) -> Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Fraction of correctly classified examples per point (the MLP's classes)."""

    def accuracy(p: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n_pt = p["out.weight"].shape[0]
        h = x.expand(n_pt, *x.shape)  # (P, B, F)
        for i in range(cfg.n_layer):
            h = F.gelu(_linear(h, p, f"fc.{i}"))
        return correct_fraction(_linear(h, p, "out"), y)  # logits (P, B, K)

    return accuracy


def step_flops(preset: Preset, n_in: int, n_out: int) -> StepFlops:
    """FLOPs of one point's training step of the built-in GPT or MLP, from its shapes.

    Matrix products only (a multiply-add is 2 FLOPs), as model FLOP utilisation counts
    them (Chowdhery et al. 2022, PaLM, arXiv 2204.02311, App. B; nanoGPT's
    ``estimate_mfu``); biases, norms (qk-norm's too), activations and the softmax are
    O(B·T·C) each and left out. GPT with L blocks of width C, context T, batch B,
    vocabulary V = ``n_out`` and τ = B·T tokens::

        forward  = 2·τ·(12·L·C² + V·C) + 4·L·B·T²·C
        backward = 2 · forward

    (per block: QKV 3C², projection C², MLP 4C² + 4C² weights, and QKᵀ and AV, 2·T²·C per
    sequence each; the output head tied to the token embedding, V·C; the backward pass
    multiplies every product's output gradient into both operands). MLP with widths
    d_0 = ``n_in``, d_1 .. d_L = n_embd, d_{L+1} = ``n_out`` and batch B::

        forward  = 2·B·Σ_i d_i·d_{i+1}
        backward = 2 · forward − 2·B·d_0·d_1   (the inputs need no gradient)

    optimizer = N · (elementwise FLOPs per parameter of the preset's stacked optimizer,
    :func:`stabcli.probe.optim.elementwise_flops`), N the parameters of one point.
    """
    m, t = preset.model, preset.train
    if m.kind == "gpt":
        c, seq, tokens = m.n_embd, m.block_size, t.batch_size * m.block_size
        forward = 2 * tokens * (12 * m.n_layer * c * c + n_out * c)
        forward += 4 * m.n_layer * t.batch_size * seq * seq * c
        backward = 2 * forward
    elif m.kind == "mlp":
        widths = [n_in, *[m.n_embd] * m.n_layer, n_out]
        forward = 2 * t.batch_size * sum(a * b for a, b in itertools.pairwise(widths))
        backward = 2 * forward - 2 * t.batch_size * widths[0] * widths[1]
    else:
        raise ValueError(f"step_flops counts the gpt and mlp models, not {m.kind!r}")
    n_params = sum(s.numel for s in param_specs(m, n_in, n_out))
    return StepFlops(forward, backward, n_params * elementwise_flops(t))


def native_backend(preset: Preset, data: Dataset) -> ModelBackend:
    """The built-in GPT (text) or MLP (classes), natively batched over points."""
    cfg = preset.model
    specs = param_specs(cfg, data.n_in, data.n_out)
    return ModelBackend(
        specs=specs,
        initial=lambda: init_flat(specs, preset.train.seed, torch.float64),
        loss=loss_function(cfg),
        accuracy=_accuracy(cfg) if cfg.kind == "mlp" else None,
        flops=step_flops(preset, data.n_in, data.n_out),
    )
