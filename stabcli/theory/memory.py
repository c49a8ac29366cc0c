"""Implicit memory correction of AdamW (arXiv:2502.02132 §4).

To leading order in η, AdamW's memory anti-penalizes the gradient's one-norm with strength
η · (β/(1−β) − γ/(1−γ)); positive when β > γ (docs/theory.md (8.3)).
"""

from __future__ import annotations

from stabcli.theory._num import Num


def memory_coefficient(beta: Num, gamma: Num) -> Num:
    """β/(1−β) − γ/(1−γ): the memory correction's strength per unit learning rate."""
    return beta / (1.0 - beta) - gamma / (1.0 - gamma)
