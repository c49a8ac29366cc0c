"""Runners of the numerical figures (no sweep): the paper's Figures 5 and 9 and the memory
paper's Figures 1 and 2, each its analysis (:mod:`stabcli.reproduce.boundary`,
:mod:`~stabcli.reproduce.trajectory`, :mod:`~stabcli.reproduce.memory_paper`) with the
page that :mod:`stabcli.report.reproduce` draws of its dataclass."""

from __future__ import annotations

from stabcli.reproduce.figures import FigureContext, FigureOutcome

#: App. K trains nanoGPT; its paper scale takes the Figure 2 preset (App. H).
PAPER_MODEL = "nanogpt-shakespeare"


def boundary_run(ctx: FigureContext) -> FigureOutcome:
    """Figure 5 (App. F): simulated max-updates on B0 and γ² = β against the √n law."""
    from stabcli.report.reproduce import boundary_sections
    from stabcli.reproduce.boundary import boundary_figure

    fig = boundary_figure(ctx.scale)
    setup = (
        f"float64 Adam (ε = 0) on simulated gradients, {len(fig.steps)} steps, β = "
        f"{', '.join(f'{b:g}' for b in fig.betas)} on B0 and on γ² = β"
    )
    return FigureOutcome(fig.assessment, boundary_sections(fig), setup=setup)


def trajectory_run(ctx: FigureContext) -> FigureOutcome:
    """Figure 9 (App. I, K): eq. (4) beside discrete Adam; the paper scale trains nanoGPT."""
    from stabcli.report.reproduce import trajectory_sections
    from stabcli.reproduce.trajectory import trajectory_figure

    if ctx.scale == "paper":
        fig = trajectory_figure(ctx.scale, preset=PAPER_MODEL)
    else:
        fig = trajectory_figure(ctx.scale)
    setup = (
        f"{fig.preset}, (β, γ) = ({fig.beta:g}, {fig.gamma:g}), η = {fig.lr:g}, "
        f"{len(fig.steps) - 1} steps, K = {fig.substeps} sub-steps per step"
    )
    return FigureOutcome(fig.assessment, trajectory_sections(fig), setup=setup)


def memoryless_run(ctx: FigureContext) -> FigureOutcome:
    """The memory paper's Figure 1: Adam against its memoryless iteration (Theorem 3.2)."""
    from stabcli.report.reproduce import memoryless_sections
    from stabcli.reproduce.memory_paper import memoryless_figure

    fig = memoryless_figure(ctx.scale)
    setup = (
        f"{fig.problem}, (β, γ) = ({fig.beta:g}, {fig.gamma:g}), horizon T = {fig.horizon:g}, "
        f"h = {', '.join(f'{h:g}' for h in fig.lrs)}"
    )
    return FigureOutcome(fig.assessment, memoryless_sections(fig), setup=setup)


def generalization_run(ctx: FigureContext) -> FigureOutcome:
    """The memory paper's Figure 2 in shape: test accuracy against the memory coefficient."""
    from stabcli.report.reproduce import generalization_sections
    from stabcli.reproduce.memory_paper import generalization_figure

    fig = generalization_figure(ctx.scale)
    setup = (
        f"{fig.preset}, full-batch AdamW, h = {fig.lr:g}, {len(fig.betas)} points, "
        f"{len(fig.seeds)} seeds, loss threshold {fig.threshold:g}, at most {fig.max_steps} steps"
    )
    return FigureOutcome(fig.assessment, generalization_sections(fig), setup=setup)
