"""A tiny causal transformer built from ``torch.nn``, as a stabcli model factory.

Probe it at many (β, γ) with ``examples/tiny_transformer.toml``::

    stabcli sweep --preset examples/tiny_transformer.toml --points 8
    stabcli report --html

The task: next-token prediction on sequences of a lagged Fibonacci rule,
x_{t+1} = (x_t + x_{t−1}) mod V from a random start, so each token after the second
is determined by the two before it, which the model has to find with attention.

The network: token embedding plus a learned position table, ``nn.TransformerEncoder`` of
pre-LayerNorm ``nn.TransformerEncoderLayer`` blocks under a causal mask, a final
LayerNorm and a linear head. The causal mask is a registered buffer (stabcli gives each
point a copy of every buffer); parameter names are the module's own, e.g.
``encoder.layers.1.norm2.weight`` in "where the growth lives".

Dropout is off by default (``dropout = 0.0`` in the preset): with it on, every point
still shares each mask, but ``torch.func.vmap`` lays the feed-forward dropout masks out
differently from a one-point-at-a-time run, and the sweep says so.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, T) input tokens, (B, T) next tokens


class TinyTransformer(nn.Module):
    """Embeddings, a causal pre-LayerNorm encoder, a final LayerNorm and a linear head."""

    causal_mask: torch.Tensor  # (T, T) buffer

    def __init__(
        self, vocab: int, context: int, width: int, heads: int, layers: int, dropout: float
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(context, width) * 0.02)
        block = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=4 * width,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        # (T, T): 0 on and below the diagonal, −inf above: position t sees positions ≤ t
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(context))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V) logits
        t = tokens.shape[1]
        h = self.embed(tokens) + self.position[:t]  # (B, T, C)
        h = self.encoder(h, mask=self.causal_mask[:t, :t], is_causal=True)  # (B, T, C)
        return self.head(self.norm(h))


def _generator(seed: int, split: str, step: int) -> torch.Generator:
    """The generator of one batch: a function of (seed, split, step) only."""
    return torch.Generator().manual_seed(seed * 1_000_003 + 2 * step + (split == "test"))


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position; logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def build(
    seed: int,
    vocab: int = 16,
    context: int = 16,
    width: int = 32,
    heads: int = 2,
    layers: int = 2,
    batch_size: int = 16,
    dropout: float = 0.0,
) -> tuple[nn.Module, Callable[..., Batch], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """(model, batches, loss_fn) for stabcli: a TinyTransformer on lagged-Fibonacci
    sequences, next-token cross-entropy. ``seed`` draws the initial weights and batches."""
    torch.manual_seed(seed)
    model = TinyTransformer(vocab, context, width, heads, layers, dropout)

    def batches(step: int, split: str = "train") -> Batch:
        gen = _generator(seed, split, step)
        seq = torch.empty(batch_size, context + 1, dtype=torch.long)  # (B, T+1)
        seq[:, :2] = torch.randint(vocab, (batch_size, 2), generator=gen)
        for t in range(2, context + 1):
            seq[:, t] = (seq[:, t - 1] + seq[:, t - 2]) % vocab
        return seq[:, :-1], seq[:, 1:]

    return model, batches, next_token_loss
