"""The registry of reproducible figures: one :class:`Figure` per analysis of the three
papers (arXiv 2411.05746, its continuous-time Adam; 2401.08893, MADA; 2502.02132, the
memory paper), each with its one-sentence claim, its measured CPU time and how to run it.

Importing this module loads neither numpy nor torch (``stabcli reproduce --list`` and
``stabcli --help`` stay fast): every figure names the module and function that runs it,
imported only when it runs. A figure whose module does not import yet (another part of the
project still being built) is listed as not available.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stabcli.errors import StabcliError
from stabcli.reproduce.assessment import Assessment, Scale

if TYPE_CHECKING:
    from stabcli.report.page import Section


@dataclass(frozen=True)
class FigureContext:
    """Where and how a figure runs (the command line's options, resolved)."""

    scale: Scale
    out: Path  # the figure's own directory, OUT/<figure>: sub-runs go beneath it
    device: str | None  # None: cuda, then mps, then cpu (sweep figures)
    overwrite: bool  # start the sub-runs afresh instead of resuming them
    notice: Callable[[str], None]  # a progress line (the CLI prints it to stderr)


@dataclass(frozen=True)
class FigureOutcome:
    """What a figure's run returns: its assessment and what its HTML page draws."""

    assessment: Assessment
    sections: tuple[Section, ...]  # figures of the page, in order
    subruns: tuple[str, ...] = ()  # run directories beneath the figure's, each with report.html
    setup: str = ""  # one line: model, points, steps (the page and assessment.json say it)


Runner = Callable[[FigureContext], FigureOutcome]


@dataclass(frozen=True)
class Figure:
    """One reproducible figure."""

    name: str  # what ``stabcli reproduce NAME`` takes
    title: str
    paper_ref: str  # paper (arXiv id), section, figure, equation
    claim: str  # the paper's claim in one sentence (the assessment states it in full)
    cpu_minutes: float  # wall time of ``--scale cpu`` on a shared 2-core CPU (measured;
    # fig4, fig6-7, mada-fig8, fig11, fig12: estimated from runs of the same size)
    needs_gpu_at_paper: bool  # the paper's setup trains nanoGPT or a CIFAR-10 CNN
    module: str  # the module holding the runner, imported when the figure runs
    function: str  # its runner: FigureContext -> FigureOutcome
    paper_scale: bool = True  # False: the figure has no paper-sized setup here
    requires: str = ""  # a module built elsewhere that the runner needs ("" = none)

    @property
    def run(self) -> Runner:
        """The runner, imported now; a module that does not import is a one-line error."""
        try:
            if self.requires:
                importlib.import_module(self.requires)
            runner = getattr(importlib.import_module(self.module), self.function)
        except (ImportError, AttributeError) as err:
            raise StabcliError(f"{self.name} is not available yet ({err})") from None
        return runner  # type: ignore[no-any-return]

    def available(self) -> bool:
        """Whether the runner imports (``--list`` says "not available yet" otherwise)."""
        try:
            self.run  # noqa: B018
        except StabcliError:
            return False
        return True


_CT = "arXiv 2411.05746"
_SWEEPS = "stabcli.reproduce.sweeps"
_NUMERICAL = "stabcli.reproduce.numerical"
_ADAPTERS = "stabcli.reproduce.adapters"

FIGURES: tuple[Figure, ...] = (
    Figure(
        "fig1",
        "The (β, γ) plane: level and normal curves",
        f"{_CT} §3.1, Figure 1, App. E",
        "Normal curves γ³ + 2β³ = k cross the level curves C = c at right angles; "
        "B+ = {C > 0} is the bounded region.",
        0.02,
        False,
        "stabcli.reproduce.plane",
        "plane_figure",
    ),
    Figure(
        "fig2",
        "Max-update and its slope along the normal curve through (0.999, 0.9)",
        f"{_CT} §3.2, Figure 2, eq. (5)",
        "Updates stay bounded in B+ and grow exponentially in B− at the rate |C|/2.",
        5.3,
        True,
        _SWEEPS,
        "slopes_figure",
    ),
    Figure(
        "fig3",
        "Test loss along the normal curve through (0.999, 0.9)",
        f"{_CT} §3.2, Figure 3",
        "Larger C generalizes faster; all B+ points end near the same test loss; B− is worse.",
        5.2,
        True,
        _SWEEPS,
        "test_loss_normal_figure",
    ),
    Figure(
        "fig4",
        "k-Adam: best test accuracy against k",
        f"{_CT} §4.2, Figure 4, App. P",
        "k-Adam with k > 1 outperforms Adam/AdamW (k = 1).",
        6.0,
        True,
        _ADAPTERS,
        "kstudy_run",
        requires="stabcli.sweep.kstudy",
    ),
    Figure(
        "fig5",
        "The max-update on the boundary B0 against the √n law",
        f"{_CT} App. F, Figure 5",
        "On B0 the max-update stayed bounded, not growing like √n.",
        0.05,
        True,
        _NUMERICAL,
        "boundary_run",
        paper_scale=False,
    ),
    Figure(
        "fig6-7",
        "The meta-adaptive effect and qk-norm",
        f"{_CT} §4.1, Figures 6-7",
        "Under qk-norm the loss is invariant to scaling each query/key matrix, W_m is "
        "nearly orthogonal to past gradients (App. G), and ‖W‖² follows eq. (8).",
        3.0,
        True,
        _ADAPTERS,
        "metaadaptive_run",
        requires="stabcli.reproduce.metaadaptive",
    ),
    Figure(
        "mada-fig8",
        "MADA: final loss by initial betas",
        "arXiv 2401.08893 Figure 8",
        "MADA reaches a lower final training loss than Adam (and HyperAdam) for most "
        "initial betas.",
        3.0,
        True,
        _ADAPTERS,
        "mada_run",
        requires="stabcli.reproduce.mada_figure",
    ),
    Figure(
        "fig9",
        "The continuous-time trajectory beside discrete Adam",
        f"{_CT} App. I, K, Figure 9, eqs. (4), (12)",
        "The solution of eq. (4) tracks discrete Adam's parameters and norms.",
        0.25,
        True,
        _NUMERICAL,
        "trajectory_run",
    ),
    Figure(
        "fig11",
        "Test loss along the normal curve through (0.95, 0.9)",
        f"{_CT} App. N, Figure 11",
        "As Figure 3: along this normal curve too, larger C generalizes faster.",
        5.2,
        True,
        _SWEEPS,
        "test_loss_normal_095_figure",
    ),
    Figure(
        "fig12",
        "Test loss along the level curve through (0.999, 0.9)",
        f"{_CT} App. N, Figure 12",
        "Along a level curve, points nearer the origin (smaller β) generalize more slowly.",
        5.2,
        True,
        _SWEEPS,
        "test_loss_level_figure",
    ),
    Figure(
        "fig13",
        "Learning-rate annealing in B−",
        f"{_CT} App. O, Figure 13, eq. (15)",
        "η_n = η0·exp(−n|C|/2) removes the growth of the step, but is too strong: "
        "steps become tiny and generalization is poor.",
        4.4,
        True,
        _SWEEPS,
        "annealing_figure",
    ),
    Figure(
        "mem-fig1",
        "Adam against its memoryless modified iteration",
        "arXiv 2502.02132 Theorem 3.2, Figure 1",
        "The memoryless iteration tracks Adam to second order in the step size h.",
        1.0,
        False,
        _NUMERICAL,
        "memoryless_run",
        paper_scale=False,
    ),
    Figure(
        "mem-fig2",
        "Test accuracy against the memory coefficient (in shape)",
        "arXiv 2502.02132 §5, Figure 2",
        "Test accuracy at a training-loss threshold falls as the memory coefficient "
        "β/(1−β) − γ/(1−γ) grows.",
        1.5,
        False,
        _NUMERICAL,
        "generalization_run",
        paper_scale=False,
    ),
)

#: Figures by name.
BY_NAME: dict[str, Figure] = {f.name: f for f in FIGURES}


def figure(name: str) -> Figure:
    """The figure called ``name``; another name is a one-line error listing them all."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise StabcliError(
            f"unknown figure {name!r}; expected one of: {', '.join(BY_NAME)}, or all"
        ) from None
