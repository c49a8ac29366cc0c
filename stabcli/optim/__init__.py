"""Public torch optimizers of the stability theory: k-Adam (paper Section 4.2), and optimizers
that learn their own betas (MADA, HyperAdam). Each shares its update kernel with the probe
engine, so the math lives in one place.

Names are imported lazily, so ``import stabcli.optim`` does not import torch by itself.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KAdam": "stabcli.optim.kadam",
    "MADA": "stabcli.optim.mada",
    "HyperAdam": "stabcli.optim.hyperadam",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stabcli.optim' has no attribute {name!r}")
