"""Reproducing the papers' analyses: one function (and one command) per figure, each with
the paper's claim beside what was measured here.

Every analysis takes ``scale`` ("cpu", the default, or "test", a seconds-long reduced form)
and returns a frozen dataclass holding the numbers its figure plots and an
:class:`Assessment` (claim, measured, held):

- :func:`trajectory_figure` (``trajectory``): arXiv 2411.05746 Figure 9, App. I and K, the
  continuous-time trajectory of eq. (4) beside discrete Adam;
- :func:`boundary_figure` (``boundary``): its Figure 5, App. F, the max-update on B0
  against the √n law;
- :func:`memoryless_figure` and :func:`generalization_figure` (``memory_paper``):
  arXiv 2502.02132 Figure 1 (Adam against its memoryless modified iteration) and Figure 2
  in shape (test accuracy against the memory coefficient).

The analyses are imported on first use, so ``import stabcli.reproduce`` loads neither numpy
nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from stabcli.reproduce.assessment import SCALES, Assessment, Scale, check_scale

_LAZY = {
    "trajectory_figure": "stabcli.reproduce.trajectory",
    "TrajectoryFigure": "stabcli.reproduce.trajectory",
    "boundary_figure": "stabcli.reproduce.boundary",
    "BoundaryFigure": "stabcli.reproduce.boundary",
    "memoryless_figure": "stabcli.reproduce.memory_paper",
    "MemorylessFigure": "stabcli.reproduce.memory_paper",
    "generalization_figure": "stabcli.reproduce.memory_paper",
    "GeneralizationFigure": "stabcli.reproduce.memory_paper",
}

__all__ = ["SCALES", "Assessment", "Scale", "check_scale", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
