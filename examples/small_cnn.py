"""A small CNN with BatchNorm on generated images, as a stabcli model factory.

Probe it at many (β, γ) with ``examples/small_cnn.toml``::

    stabcli sweep --preset examples/small_cnn.toml --points 8
    stabcli report --html

The task: 16×16 RGB images, each one of ``n_classes`` fixed random patterns (drawn once
from ``data_seed``) at a random contrast under Gaussian noise; the label is the pattern.
The network is two convolution blocks (3×3 convolution without bias, BatchNorm, ReLU,
2×2 max-pooling), global average pooling, dropout and a linear classifier, small enough
to run on a CPU in seconds. Its 3×3 convolutions with padding 1 are those of the paper's
CIFAR-10 CNN (arXiv 2411.05746, App. H, Figure 8); the rest is this example's choice.

BatchNorm in training mode updates its running statistics in place. stabcli gives every
point its own copy of the module's buffers, so each point's statistics follow its own
weights, and ``torch.func.vmap`` runs all points at once (its batch-norm rule updates
per-point running statistics); evaluations use them, in ``eval()`` mode.

The factory contract (docs: ``stabcli.probe.factory``): ``build(seed=..., **kwargs)``
returns ``(model, batches, loss_fn)``; ``batches(step)`` is the training batch of a step,
the same at every call, and ``batches(k, split="test")`` the k-th fixed test batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, 3, H, W) images, (B,) labels


class ConvBlock(nn.Module):
    """3×3 convolution (no bias: BatchNorm's shift replaces it), BatchNorm, ReLU, 2×2 pool."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/2, W/2)
        return F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)


class SmallCNN(nn.Module):
    """Two convolution blocks, global average pooling, dropout and a linear classifier."""

    def __init__(self, width: int, n_classes: int, dropout: float):
        super().__init__()
        self.block1 = ConvBlock(3, width)
        self.block2 = ConvBlock(width, 2 * width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, K) logits
        h = self.block2(self.block1(x))  # (B, 2W, H/4, W/4)
        return self.head(self.dropout(h.mean(dim=(2, 3))))  # (B, 2W) -> (B, K)


def _generator(seed: int, split: str, step: int) -> torch.Generator:
    """The generator of one batch: a function of (seed, split, step) only."""
    return torch.Generator().manual_seed(seed * 1_000_003 + 2 * step + (split == "test"))


def build(
    seed: int,
    width: int = 8,
    n_classes: int = 8,
    image_size: int = 16,
    batch_size: int = 32,
    noise: float = 1.0,
    dropout: float = 0.1,
    data_seed: int = 0,
) -> tuple[nn.Module, Callable[..., Batch], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """(model, batches, loss_fn) for stabcli: a SmallCNN, generated images, cross-entropy.

    ``seed`` (the preset's ``train.seed``) draws the initial weights and the batches;
    ``data_seed`` the class patterns, so runs with other seeds learn the same task.
    """
    torch.manual_seed(seed)
    model = SmallCNN(width, n_classes, dropout)
    shape = (3, image_size, image_size)
    patterns = torch.randn(n_classes, *shape, generator=torch.Generator().manual_seed(data_seed))

    def batches(step: int, split: str = "train") -> Batch:
        gen = _generator(seed, split, step)
        labels = torch.randint(n_classes, (batch_size,), generator=gen)  # (B,)
        contrast = 0.5 + torch.rand(batch_size, 1, 1, 1, generator=gen)  # (B, 1, 1, 1)
        images = contrast * patterns[labels] + noise * torch.randn(
            batch_size, *shape, generator=gen
        )
        return images, labels

    return model, batches, F.cross_entropy
