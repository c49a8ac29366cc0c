"""MADA's Figure 8 in shape (arXiv 2401.08893 §5): final training loss by initial betas.

The MADA paper sweeps a grid of initial (β1, β2) (PyTorch's order: β1 = γ, β2 = β) on
Shakespeare and trains a 6-layer GPT with Adam, which keeps its betas, and with MADA,
which starts there and learns them (and its interpolation coefficients) by hyper-gradient
descent. Its Figure 8 caption: "MADA yields better performance for wider choice of initial
β values, illustrating its robustness"; §5: "MADA results in better performance for the
vast majority of initial β1 and β2 parameters".

Here both optimizers sweep the same grid through the sweep library (two normal run
directories, ``OUT/adam`` and ``OUT/mada``, resumable; ``OUT/compare.html`` is the report's
own comparison, ``stabcli report OUT/mada OUT/adam --compare``). The final training loss
of a point is the report's: the mean training loss over the last
:data:`stabcli.report.compare.LAST_STEPS` steps (:mod:`stabcli.report.compare`). The
claim is read as two measurable parts: MADA's final loss is lower than Adam's at more
than half of the grid's points, and its spread over the grid (max − min) is smaller.

Settings follow the MADA paper's Shakespeare runs (App. C): cosine schedule from η = 10⁻³
to 10⁻⁴ after a linear warm-up, decoupled weight decay 0.1 for both optimizers, and a
hyper-learning rate of 2.5·10⁻³ for every coefficient (the paper adds momentum 0.5 to its
SGD on the coefficients; ``stabcli.optim.MADA`` has none). The paper's grid is not given in
its text; ours contains its "sub-optimal" start (β1, β2) = (0.7, 0.8) and Adam's
established (0.9, 0.95).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stabcli.reproduce.assessment import Assessment, Scale, plan_for

if TYPE_CHECKING:
    from stabcli.report.load import RunData
    from stabcli.sweep.regions import SweepRegion

CLAIM = (
    'MADA paper (arXiv 2401.08893) §5, Figure 8: "MADA yields better performance for wider '
    'choice of initial β values, illustrating its robustness": over a grid of initial '
    "(β1, β2), MADA's final training loss is lower than Adam's at the vast majority of "
    "points and depends less on where it starts."
)
OPTIMIZERS = ("adam", "mada")
#: MADA App. C: SGD on the coefficients at 2.5e-3 for the 10M-parameter Shakespeare model.
HYPER_LR = 2.5e-3
#: Final losses closer than this (nats) are a tie: neither optimizer wins the point.
TIE = 1e-3


@dataclass(frozen=True)
class MadaPlan:
    """One scale's setup: the preset, its overrides and the grid in PyTorch's order."""

    preset: str
    beta1: tuple[float, ...]  # initial torch beta1 = γ
    beta2: tuple[float, ...]  # initial torch beta2 = β
    overrides: dict[str, Any] = field(default_factory=dict)


_SCHEDULE = {
    "schedule": "cosine",
    "lr": 1e-3,
    "min_lr": 1e-4,
    "weight_decay_mode": "decoupled",
    "weight_decay": 0.1,
    "eval_every": 0,
    "eval_batches": 0,
}
_GRID_B1 = (0.7, 0.8, 0.9)
_GRID_B2 = (0.8, 0.95, 0.999)
PLANS: dict[Scale, MadaPlan] = {
    # tiny-char (generated text, nothing downloaded), its 2 x 2 x 32 GPT, 600 steps
    "cpu": MadaPlan("tiny-char", _GRID_B1, _GRID_B2, {"steps": 600, "warmup_steps": 30}),
    "test": MadaPlan(
        "tiny-char",
        (0.7, 0.9),
        (0.8, 0.95),
        {
            "steps": 30,
            "warmup_steps": 3,
            "n_layer": 1,
            "n_embd": 16,
            "block_size": 16,
            "batch_size": 4,
            "corpus_chars": 20_000,
        },
    ),
    # the MADA paper's Shakespeare setup: 6-layer GPT, context 256 (App. H's nanoGPT, 11M
    # parameters), batch 64, 5000 steps with 100 of warm-up
    "paper": MadaPlan(
        "nanogpt-shakespeare",
        (0.7, 0.8, 0.9, 0.95),
        (0.8, 0.9, 0.95, 0.999),
        {"steps": 5000, "warmup_steps": 100},
    ),
}


@dataclass(frozen=True)
class MadaFigure:
    """Figure 8's data: final training loss at every initial (β1, β2) for each optimizer."""

    preset: str
    steps: int
    hyper_lr: float
    n_points: int
    beta1: np.ndarray  # (P,) initial torch beta1 = γ
    beta2: np.ndarray  # (P,) initial torch beta2 = β
    adam: np.ndarray  # (P,) Adam's final training loss; nan where it diverged
    mada: np.ndarray  # (P,) MADA's
    runs: tuple[str, ...]  # the sub-run directories, "adam" and "mada" ("" when not kept)
    seconds: float
    assessment: Assessment

    @property
    def adam_spread(self) -> float:
        """max − min of Adam's finite final losses over the grid."""
        return _spread(self.adam)

    @property
    def mada_spread(self) -> float:
        return _spread(self.mada)

    @property
    def mada_wins(self) -> int:
        """Points where MADA's final loss is below Adam's by more than :data:`TIE` (a
        point where only Adam diverged counts)."""
        adam = np.where(np.isfinite(self.adam), self.adam, np.inf)
        return int(np.sum(np.isfinite(self.mada) & (self.mada < adam - TIE)))

    @property
    def ties(self) -> int:
        """Points where both final losses are finite and within :data:`TIE`."""
        both = np.isfinite(self.adam) & np.isfinite(self.mada)
        return int(np.sum(both & (np.abs(self.mada - self.adam) <= TIE)))


def _spread(losses: np.ndarray) -> float:
    finite = losses[np.isfinite(losses)]
    return float(finite.max() - finite.min()) if finite.size >= 2 else math.nan


def mada_figure(
    scale: str = "cpu",
    *,
    out: Path | None = None,
    device: str | None = None,
    overwrite: bool = False,
) -> MadaFigure:
    """Sweep the plan's grid with Adam and with MADA (module docstring) into ``out/adam`` and
    ``out/mada`` (resumed when there), write ``out/compare.html`` and assess Figure 8.
    ``out = None`` runs in a temporary directory that is removed afterwards."""
    plan = plan_for(PLANS, scale, "MADA's Figure 8")
    started = time.perf_counter()
    if out is None:
        with tempfile.TemporaryDirectory(prefix="stabcli-mada-") as tmp:
            figure = _figure(plan, Path(tmp), device, overwrite, started)
        return _kept(figure, kept=False)
    return _figure(plan, out, device, overwrite, started)


def _figure(
    plan: MadaPlan, out: Path, device: str | None, overwrite: bool, started: float
) -> MadaFigure:
    from stabcli.report.compare import _get_compare_info, write_compare_html

    runs = [_sweep(plan, name, out / name, device, overwrite) for name in OPTIMIZERS]
    info = _get_compare_info(runs)  # the report's own final losses, matched by point
    write_compare_html(info, out / "compare.html")
    losses = {name: compared.loss for name, compared in zip(OPTIMIZERS, info.runs, strict=True)}
    figure = MadaFigure(
        preset=info.preset,
        steps=int(info.steps or 0),
        hyper_lr=HYPER_LR,
        n_points=len(info.beta1),
        beta1=info.beta1,
        beta2=info.beta2,
        adam=losses["adam"],
        mada=losses["mada"],
        runs=OPTIMIZERS,
        seconds=time.perf_counter() - started,
        assessment=Assessment(CLAIM, "", None),
    )
    return _assessed(figure)


def _region(plan: MadaPlan) -> SweepRegion:
    from stabcli.sweep.regions import points_region
    from stabcli.theory.domain import HyperPoint

    points = [HyperPoint.from_torch(b1, b2) for b1 in plan.beta1 for b2 in plan.beta2]
    return points_region(
        points,
        source=f"MADA Figure 8 grid, beta1 in {plan.beta1}, beta2 in {plan.beta2}",
        order="torch",
    )


def _sweep(
    plan: MadaPlan, optimizer: str, out: Path, device: str | None, overwrite: bool
) -> RunData:
    """Run (or resume) one optimizer's sweep of the grid into ``out``; read it back."""
    from stabcli.probe import load_preset
    from stabcli.report.load import load_run
    from stabcli.sweep.rows import MeasureSetup
    from stabcli.sweep.run import SweepRequest, plan_sweep, run_sweep

    changes: dict[str, Any] = {**_SCHEDULE, **plan.overrides, "optimizer": optimizer}
    if optimizer == "mada":
        changes["hyper_lr"] = HYPER_LR
    preset = load_preset(plan.preset).with_overrides(**changes)
    request = SweepRequest(
        preset=preset,
        region=_region(plan),
        measure=MeasureSetup.for_run(preset.train.steps),
        out=out,
        device=device,
        overwrite=overwrite,
    )
    swept = plan_sweep(request)
    run_sweep(swept)
    return load_run(swept.out)


def _kept(fig: MadaFigure, kept: bool) -> MadaFigure:
    import dataclasses

    return fig if kept else dataclasses.replace(fig, runs=("", ""))


def _assessed(fig: MadaFigure) -> MadaFigure:
    import dataclasses

    n = fig.n_points
    diverged = {name: int(np.sum(~np.isfinite(getattr(fig, name)))) for name in OPTIMIZERS}
    spreads = (fig.adam_spread, fig.mada_spread)
    grid = ", ".join(
        f"({b1:g}, {b2:g}): {a:.3f} / {m:.3f}"
        for b1, b2, a, m in zip(fig.beta1, fig.beta2, fig.adam, fig.mada, strict=True)
    )
    measured = (
        f"{fig.preset}, {fig.steps} steps, {n} initial (beta1, beta2), final training loss "
        f"(mean of the last steps) Adam / MADA: {grid}. MADA is lower by more than {TIE:g} at "
        f"{fig.mada_wins} of {n} points ({fig.ties} within {TIE:g}); spread (max − min) "
        f"over the grid {fig.adam_spread:.3f} for Adam, "
        f"{fig.mada_spread:.3f} for MADA; diverged: Adam {diverged['adam']}, MADA "
        f"{diverged['mada']}"
    )
    if not all(math.isfinite(s) for s in spreads):
        held: bool | None = None
    else:
        held = bool(2 * fig.mada_wins > n and fig.mada_spread < fig.adam_spread)
    return dataclasses.replace(fig, assessment=Assessment(CLAIM, measured, held))
