"""A live stability monitor for any training loop (see :func:`watch`).

    import stabcli.monitor
    mon = stabcli.monitor.watch(optimizer, run_dir="runs/mine", model=model)
    ...                      # train as usual: loss.backward(); optimizer.step()
    mon.summary()            # one row per step: (β, γ), lr, ‖u_n‖∞, the tensor holding it
    mon.close()              # writes the run directory that `stabcli report` reads

Adapters: :mod:`stabcli.monitor.hf` (Hugging Face ``Trainer``) and
:mod:`stabcli.monitor.lightning` (Lightning), each in its own extra; importing
``stabcli.monitor`` imports neither framework, nor torch until :func:`watch` is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from stabcli.monitor.notices import NoticeKind, StabilityNotice, StabilityWarning

_LAZY = {"watch": "stabcli.monitor.monitor", "Monitor": "stabcli.monitor.monitor"}

__all__ = ["Monitor", "NoticeKind", "StabilityNotice", "StabilityWarning", "watch"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stabcli.monitor' has no attribute {name!r}")
