"""The CNN of the paper's k-study, natively batched over points.

The paper trains "a CNN model" (arXiv 2411.05746 App. H, citing LeCun et al. 1998) on
CIFAR-10 for its Figure 4; its Figure 8 draws the network, and the text states only that
every convolution is 3×3 with padding 1 (docs/theory.md §10: the rest is unstated). stabcli
uses a LeNet-style network and states every choice:

    for i in 0 .. n_layer−1:  3×3 convolution, padding 1, C_i = n_embd · 2^i channels
                              → ReLU → 2×2 max-pooling (halves H and W)
    flatten (C, H, W) → dropout (model.dropout, one mask shared by all points)
    → linear head to the K classes

- No normalisation layer: nothing is shared between examples or points (a BatchNorm's
  batch statistics would couple the examples, and its running statistics the points).
- Weights are He-normal, std = sqrt(2 / fan_in) with fan_in = 9 · C_in (He et al. 2015,
  arXiv 1502.01852, eq. 10), the head's std = 1/sqrt(F); biases start at zero.
  ``model.init_std`` is not used.
- Inputs are (B, C, H, W) images scaled to [−1, 1] (:class:`stabcli.probe.data.BatchStream`).

Batching over P points (docs/theory.md §10: all points share the data): the first
convolution applies every point's filters to the shared images at once, its (P·C_1,
C_0, 3, 3) weights giving (B, P·C_1, H, W); every later convolution is one grouped
convolution with ``groups = P``, point p's channels seeing only point p's filters;
ReLU and pooling act per channel. The head multiplies each point's (B, F) features by its
own (F, K) weights with one ``torch.baddbmm``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stabcli.errors import StabcliError
from stabcli.probe.backend import (
    ModelBackend,
    Params,
    ParamSpec,
    SharedDropout,
    correct_fraction,
    init_flat,
)
from stabcli.probe.config import ModelConfig, Preset
from stabcli.probe.data import Dataset

KERNEL = 3  # App. H, Figure 8: 3×3 kernels
PADDING = 1  # App. H, Figure 8: padding 1 (keeps H and W)


def channels(cfg: ModelConfig) -> list[int]:
    """Output channels of the convolutions: n_embd, doubled at every stage."""
    return [cfg.n_embd * 2**i for i in range(cfg.n_layer)]


def feature_shape(cfg: ModelConfig, image: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) of the last stage's output for (C, H, W) input images."""
    _, h, w = image
    for _ in range(cfg.n_layer):
        h, w = h // 2, w // 2
    if min(h, w) < 1:
        raise StabcliError(
            f"model.n_layer = {cfg.n_layer} pools {image[1]}x{image[2]} images to nothing; "
            f"use at most {int(math.log2(min(image[1:])))} stages"
        )
    return channels(cfg)[-1], h, w


def param_specs(cfg: ModelConfig, image: tuple[int, int, int], n_classes: int) -> list[ParamSpec]:
    """The parameter tensors of one CNN, in the flat layout's order."""
    specs: list[ParamSpec] = []
    c_in = image[0]
    for i, c_out in enumerate(channels(cfg)):
        fan_in = c_in * KERNEL * KERNEL
        shape = (c_out, c_in, KERNEL, KERNEL)
        specs.append(ParamSpec(f"conv.{i}.weight", shape, "normal", math.sqrt(2.0 / fan_in)))
        if cfg.bias:
            specs.append(ParamSpec(f"conv.{i}.bias", (c_out,), "zeros"))
        c_in = c_out
    features = math.prod(feature_shape(cfg, image))
    specs.append(ParamSpec("head.weight", (features, n_classes), "normal", 1 / math.sqrt(features)))
    if cfg.bias:
        specs.append(ParamSpec("head.bias", (n_classes,), "zeros"))
    return specs


def logits(p: Params, x: torch.Tensor, cfg: ModelConfig, drop: SharedDropout) -> torch.Tensor:
    """Class scores of every point; x (B, C, H, W) images shared by all points -> (P, B, K)."""
    head = p["head.weight"]  # (P, F, K)
    n_pt, b = head.shape[0], x.shape[0]
    h = x
    for i in range(cfg.n_layer):
        w = p[f"conv.{i}.weight"]  # (P, C_out, C_in, 3, 3)
        c_out = w.shape[1]
        bias = p.get(f"conv.{i}.bias")  # (P, C_out)
        h = F.conv2d(
            h,  # (B, C_0, H, W) shared images, then (B, P·C_in, H, W)
            w.reshape(n_pt * c_out, *w.shape[2:]),  # (P·C_out, C_in, 3, 3)
            None if bias is None else bias.reshape(n_pt * c_out),
            padding=PADDING,
            groups=1 if i == 0 else n_pt,  # later layers: point p's channels, p's filters
        )  # (B, P·C_out, H, W)
        # ReLU and max commute (ReLU is monotone): pooling first halves the ReLU's work
        h = F.relu(F.max_pool2d(h, 2))  # (B, P·C_out, H/2, W/2)
    feats = h.reshape(b, n_pt, -1).transpose(0, 1)  # (P, B, F), F in (C, H, W) order
    feats = drop(feats)
    bias = p.get("head.bias")  # (P, K)
    if bias is None:
        return torch.bmm(feats, head)
    return torch.baddbmm(bias.unsqueeze(1), feats, head)  # (P, B, K)


def _cross_entropy(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """scores (P, B, K), target (B,) -> (P,) mean loss per point, computed in float32+."""
    n_pt, b, k = scores.shape
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    losses = F.cross_entropy(scores.reshape(n_pt * b, k), target.repeat(n_pt), reduction="none")
    return losses.view(n_pt, b).mean(dim=1)


def activation_elements(
    cfg: ModelConfig, image: tuple[int, int, int], n_classes: int, batch: int
) -> int:
    """Elements one point keeps for backward per step (for the memory estimate).

    Per stage: the convolution's output, the pooled values and their argmax indices
    (int64, counted as 2 elements), the ReLU's output; then the features and 3 (B, K)
    buffers of the loss.
    """
    _, h, w = image
    total = 0
    for c in channels(cfg):
        total += c * h * w + 4 * c * (h // 2) * (w // 2)
        h, w = h // 2, w // 2
    return batch * (2 * math.prod(feature_shape(cfg, image)) + 3 * n_classes + total)


def cnn_backend(preset: Preset, data: Dataset) -> ModelBackend:
    """The CNN for ``data``'s (N, C, H, W) images and classes, batched over points."""
    cfg = preset.model
    if data.train_x.ndim != 4:
        raise StabcliError(f"{preset.name}: model.kind 'cnn' needs image data (N, C, H, W)")
    c, h, w = data.train_x.shape[1:]
    image = (int(c), int(h), int(w))
    specs = param_specs(cfg, image, data.n_out)

    def loss(p: Params, x: torch.Tensor, y: torch.Tensor, drop: SharedDropout) -> torch.Tensor:
        return _cross_entropy(logits(p, x, cfg, drop), y)

    def accuracy(p: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return correct_fraction(logits(p, x, cfg, SharedDropout(0.0, None)), y)

    def evaluate(p: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = logits(p, x, cfg, SharedDropout(0.0, None))  # (P, B, K), computed once
        return _cross_entropy(scores, y), correct_fraction(scores, y)

    return ModelBackend(
        specs=specs,
        initial=lambda: init_flat(specs, preset.train.seed, torch.float64),
        loss=loss,
        accuracy=accuracy,
        evaluate=evaluate,
        activations=activation_elements(cfg, image, data.n_out, preset.train.batch_size),
    )
