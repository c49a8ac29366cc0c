"""stabcli: stability analysis of Adam/AdamW's (β, γ) hyperparameters.

Conventions (docs/theory.md §1): β is the decay of the second moment (PyTorch ``beta2``),
γ the decay of the first moment (PyTorch ``beta1``). Points are written in the paper's
order (β, γ), i.e. PyTorch ``betas=(γ, β)``.
"""

__version__ = "0.1.0"
