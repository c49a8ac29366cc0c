"""``stabcli sweep``: probes over a region of the (β, γ) plane, compared with both theories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

REGION = "Region (choose one)"
TRAINING = "Training (override the preset)"
OPTIMIZER = "Optimizer (override the preset)"
MEASURE = "Measurement"
EXECUTION = "Execution"
OUTPUT = "Output"


def sweep(
    normal_curve: Annotated[
        bool,
        typer.Option(
            "--normal-curve",
            help="Points along the normal curve (default).",
            rich_help_panel=REGION,
        ),
    ] = False,
    level_curve: Annotated[
        bool,
        typer.Option(
            "--level-curve", help="Points along the level curve C = const.", rich_help_panel=REGION
        ),
    ] = False,
    through: Annotated[
        str | None,
        typer.Option(
            metavar="BETA,GAMMA",
            help="Point the curve passes through (default 0.999,0.9).",
            show_default=False,
            rich_help_panel=REGION,
        ),
    ] = None,
    torch_through: Annotated[
        str | None,
        typer.Option(metavar="B1,B2", help="--through in PyTorch's order.", rich_help_panel=REGION),
    ] = None,
    n_points: Annotated[
        int | None,
        typer.Option(
            "--points",
            min=1,
            help="Points on the curve (default 16).",
            show_default=False,
            rich_help_panel=REGION,
        ),
    ] = None,
    span: Annotated[
        str | None,
        typer.Option(
            metavar="B0:B1",
            help="Only the curve's part with beta in [B0, B1] (ends included).",
            rich_help_panel=REGION,
        ),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option(
            metavar="B0:B1:N,G0:G1:M", help="A beta x gamma grid.", rich_help_panel=REGION
        ),
    ] = None,
    torch_grid: Annotated[
        str | None,
        typer.Option(
            metavar="B1_0:B1_1:N,B2_0:B2_1:M",
            help="A grid in PyTorch's order: beta1 (γ) x beta2 (β).",
            rich_help_panel=REGION,
        ),
    ] = None,
    point: Annotated[
        list[str] | None,
        typer.Option(metavar="BETA,GAMMA", help="A point (repeatable).", rich_help_panel=REGION),
    ] = None,
    torch_point: Annotated[
        list[str] | None,
        typer.Option(
            "--torch-betas",
            metavar="B1,B2",
            help="A point in PyTorch's order (repeatable).",
            rich_help_panel=REGION,
        ),
    ] = None,
    points_file: Annotated[
        Path | None,
        typer.Option(
            help="CSV with columns beta,gamma (or torch_beta1,torch_beta2).",
            rich_help_panel=REGION,
        ),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="Preset name or TOML path.", rich_help_panel=TRAINING)
    ] = "tiny-char",
    data: Annotated[
        Path | None, typer.Option(help="Path of the data file.", rich_help_panel=TRAINING)
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            min=12,
            help="Optimizer steps per point (>= 12: the slope needs n ± 5).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate η (η0 of a schedule), > 0.", rich_help_panel=TRAINING),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the initial weights, batches and dropout masks.", rich_help_panel=TRAINING
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="constant, cosine (warm-up + cosine) or anneal (App. O: η0·exp(−n|C|/2)).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    eps: Annotated[
        float | None,
        typer.Option(help="Adam's ε (the paper uses 1e-30).", rich_help_panel=TRAINING),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help="adam (default), kadam (k levels), hyperadam or mada (learned betas; the "
            "region gives the starting betas).",
            rich_help_panel=OPTIMIZER,
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k", help="k-Adam: number of levels (1 to 1000).", rich_help_panel=OPTIMIZER
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="k-Adam: inverse-exp (default), exp, scaled or naive (paper App. P).",
            rich_help_panel=OPTIMIZER,
        ),
    ] = None,
    hyper_lr: Annotated[
        float | None,
        typer.Option(
            help="HyperAdam/MADA: hyper-learning rate of every learned coefficient.",
            rich_help_panel=OPTIMIZER,
        ),
    ] = None,
    python_path: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="DIR",
            help="Directory to import a factory preset's model from (repeatable).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:N or mps.", rich_help_panel=TRAINING)
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="float32 (default), float64, or bfloat16 (autocast on CUDA; state in float32).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    points_per_batch: Annotated[
        int | None,
        typer.Option(min=1, help="Points per vectorized batch.", rich_help_panel=TRAINING),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            metavar="local|ray",
            help="Where batches run: this process, or a task per batch on a Ray cluster "
            "(pip install 'stabcli\\[ray]').",
            rich_help_panel=EXECUTION,
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDR",
            help="Ray: the cluster's address, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, "
            "else a Ray instance started here).",
            show_default=False,
            rich_help_panel=EXECUTION,
        ),
    ] = None,
    gpus_per_batch: Annotated[
        float | None,
        typer.Option(
            metavar="N",
            min=0,
            help="Ray: GPUs per batch, may be fractional (default 1 if the cluster has "
            "GPUs, else 0: CPUs).",
            show_default=False,
            rich_help_panel=EXECUTION,
        ),
    ] = None,
    slope_at: Annotated[
        int | None,
        typer.Option(
            help=(
                "Step of the paper's central difference, App. H (default 500; steps // 2 "
                "for a run shorter than 1000 steps)."
            ),
            show_default=False,
            rich_help_panel=MEASURE,
        ),
    ] = None,
    growth_tol: Annotated[
        float | None,
        typer.Option(
            help="Rate per step that counts as growth: a point grows (or is bounded) when "
            "the rate's whole interval lies above (below) it (default 1e-3).",
            show_default=False,
            rich_help_panel=MEASURE,
        ),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option(
            help="Confidence level of every rate's interval (default 0.95).",
            show_default=False,
            rich_help_panel=MEASURE,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run directory (default runs/<timestamp>).", rich_help_panel=OUTPUT),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Start afresh instead of resuming.", rich_help_panel=OUTPUT
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bar or table.", rich_help_panel=OUTPUT),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON.", rich_help_panel=OUTPUT)
    ] = False,
) -> None:
    """Train short probes over a region of the (β, γ) plane and compare with both theories.

    Each point's rate is read over its valid window (after the bias-correction transient,
    in the last third of the run) and compared with both theories' rates there. Re-running
    the same command resumes: finished points are not run again.
    """
    from stabcli.cli.sweep_setup import build_region, build_request
    from stabcli.cli.sweep_view import run_with_progress, show_outcome
    from stabcli.store.kstudy import refuse_inside_kstudy
    from stabcli.sweep.run import plan_sweep

    if out is not None:
        refuse_inside_kstudy(out, "--out", "a sweep")

    region = build_region(
        normal_curve=normal_curve,
        level_curve=level_curve,
        through=through,
        torch_through=torch_through,
        n_points=n_points,
        span=span,
        grid=grid,
        torch_grid=torch_grid,
        points=point or [],
        torch_points=torch_point or [],
        points_file=points_file,
    )
    request = build_request(
        region=region,
        preset=preset,
        data=data,
        steps=steps,
        lr=lr,
        seed=seed,
        dtype=dtype,
        schedule=schedule,
        eps=eps,
        optimizer=optimizer,
        k=k,
        strategy=strategy,
        hyper_lr=hyper_lr,
        python_path=python_path or [],
        device=device,
        points_per_batch=points_per_batch,
        executor=executor,
        address=address,
        gpus_per_batch=gpus_per_batch,
        slope_at=slope_at,
        growth_tol=growth_tol,
        confidence=confidence,
        out=out,
        overwrite=overwrite,
    )
    outcome = run_with_progress(plan_sweep(request), quiet=quiet, bar=not (quiet or as_json))
    show_outcome(outcome, as_json=as_json, quiet=quiet)
