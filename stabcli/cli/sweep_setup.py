"""Turning ``stabcli sweep``'s options into a :class:`SweepRequest`, in one place and order:
command-line option, then preset, then default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stabcli.cli.params import parse_floats, parse_point, parse_torch_betas
from stabcli.errors import StabcliError
from stabcli.sweep.executor import EXECUTORS, ExecutorSpec
from stabcli.sweep.regions import (
    SweepRegion,
    curve_region,
    grid_region,
    parse_grid,
    points_region,
    read_points_file,
    torch_grid_region,
)
from stabcli.sweep.rows import MeasureSetup
from stabcli.sweep.run import SweepRequest

#: The curve's defaults (README: "--normal-curve (default) with --through BETA,GAMMA ...").
DEFAULT_THROUGH = "0.999,0.9"
DEFAULT_POINTS = 16


def build_region(
    *,
    normal_curve: bool,
    level_curve: bool,
    through: str | None,
    torch_through: str | None,
    n_points: int | None,
    span: str | None,
    grid: str | None,
    torch_grid: str | None,
    points: list[str],
    torch_points: list[str],
    points_file: Path | None,
) -> SweepRegion:
    """The one region the options name (the normal curve when none is named).

    Options of another region than the one chosen are refused, never silently ignored.
    """
    chosen = [
        name
        for name, given in (
            ("--normal-curve", normal_curve),
            ("--level-curve", level_curve),
            ("--grid", grid is not None),
            ("--torch-grid", torch_grid is not None),
            ("--point/--torch-betas", bool(points or torch_points)),
            ("--points-file", points_file is not None),
        )
        if given
    ]
    if len(chosen) > 1:
        raise StabcliError(f"choose one region, not {' and '.join(chosen)}")
    curve_options = [
        name
        for name, given in (
            ("--through", through is not None),
            ("--torch-through", torch_through is not None),
            ("--points", n_points is not None),
            ("--span", span is not None),
        )
        if given
    ]
    if chosen and chosen[0] not in ("--normal-curve", "--level-curve") and curve_options:
        raise StabcliError(
            f"{' and '.join(curve_options)} appl{'ies' if len(curve_options) == 1 else 'y'} "
            f"only to --normal-curve and --level-curve, not to {chosen[0]}"
        )
    if grid is not None:
        return grid_region(*parse_grid(grid))
    if torch_grid is not None:
        return torch_grid_region(*parse_grid(torch_grid, "torch_grid", ("beta1", "beta2")))
    if points or torch_points:
        given = [parse_point(p) for p in points] + [parse_torch_betas(p) for p in torch_points]
        return points_region(given, order="torch" if torch_points and not points else "paper")
    if points_file is not None:
        return read_points_file(points_file)
    if through is not None and torch_through is not None:
        raise StabcliError("give the curve's point once: --through or --torch-through, not both")
    center = (
        parse_torch_betas(torch_through, "--torch-through")
        if torch_through is not None
        else parse_point(through or DEFAULT_THROUGH, "--through")
    )
    bounds = None
    if span is not None:
        lo, hi = parse_floats(span.replace(":", ","), 2, "--span", "'B0:B1', e.g. 0.95:0.999")
        bounds = (lo, hi)
    kind = "level-curve" if level_curve else "normal-curve"
    count = DEFAULT_POINTS if n_points is None else n_points
    order = "torch" if torch_through is not None else "paper"
    return curve_region(kind, center, count, bounds, order=order)


def build_request(
    *,
    region: SweepRegion,
    preset: str,
    data: Path | None,
    steps: int | None,
    lr: float | None,
    seed: int | None,
    dtype: str | None,
    schedule: str | None,
    eps: float | None,
    optimizer: str | None,
    k: int | None,
    strategy: str | None,
    hyper_lr: float | None,
    python_path: list[Path],
    device: str | None,
    points_per_batch: int | None,
    slope_at: int | None,
    growth_tol: float | None,
    confidence: float | None,
    out: Path | None,
    overwrite: bool,
    executor: str = "local",
    address: str | None = None,
    gpus_per_batch: float | None = None,
) -> SweepRequest:
    """Resolve the preset with the command line's overrides, the measurement and the
    executor."""
    from stabcli.probe import load_preset

    spec = build_executor(executor, address, gpus_per_batch)
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("steps", steps),
            ("lr", lr),
            ("seed", seed),
            ("dtype", dtype),
            ("schedule", schedule),
            ("eps", eps),
            ("optimizer", optimizer),
            ("k", k),
            ("strategy", strategy),
            ("hyper_lr", hyper_lr),
        )
        if value is not None
    }
    if data is not None:
        if not data.exists():  # a file, or a directory where the data set allows (CIFAR-10)
            raise StabcliError(f"--data {data}: no such file or directory")
        overrides["data_path"] = str(data.resolve())
    base = load_preset(preset)
    if python_path:
        missing = [str(d) for d in python_path if not d.is_dir()]
        if missing:
            raise StabcliError(f"--python-path {missing[0]}: no such directory")
        dirs = tuple(str(d.resolve()) for d in python_path)
        overrides["python_path"] = dirs + base.model.python_path
    warmup = base.train.warmup_steps
    if steps is not None and warmup >= steps:
        # the preset's own check would name train.warmup_steps, which no flag sets
        raise StabcliError(
            f"--steps {steps} is within preset {base.name}'s warm-up of {warmup} steps; "
            f"give --steps > {warmup}, or a preset file with a shorter train.warmup_steps"
        )
    resolved = base.with_overrides(**overrides)
    measure = MeasureSetup.for_run(resolved.train.steps, slope_at, growth_tol, confidence)
    return SweepRequest(
        preset=resolved,
        region=region,
        measure=measure,
        out=out,
        device=device,
        points_per_batch=points_per_batch,
        overwrite=overwrite,
        executor=spec,
    )


def build_executor(
    executor: str, address: str | None, gpus_per_batch: float | None
) -> ExecutorSpec:
    """``--executor``, ``--address`` and ``--gpus-per-batch``, checked before anything else
    runs: Ray's options only with ``--executor ray``, and Ray installed when chosen."""
    if executor not in EXECUTORS:
        raise StabcliError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "local":
        for flag, value in (("--address", address), ("--gpus-per-batch", gpus_per_batch)):
            if value is not None:
                raise StabcliError(f"{flag} applies only to --executor ray")
    else:
        from stabcli.sweep.ray_executor import INSTALL

        try:
            import ray  # noqa: F401  (checked here, before the data is read)
        except ImportError:
            raise StabcliError(
                f"--executor ray needs Ray, which is not installed here: {INSTALL}"
            ) from None
    return ExecutorSpec(executor, address, gpus_per_batch)
