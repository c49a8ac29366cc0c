"""Run a sweep: probes over a region, measured and compared with both theories, saved as
each batch finishes, resumable after any interruption."""

from __future__ import annotations

import hashlib
import math
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stabcli import __version__
from stabcli.probe import Preset, ProbeResult, run_probes
from stabcli.store import RunDir, fingerprint, point_id
from stabcli.store.schema import POINT_COLUMNS
from stabcli.sweep.measure import MeasureSettings, measure_point
from stabcli.sweep.regions import SweepRegion
from stabcli.sweep.table import prediction_columns
from stabcli.theory.agreement import AgreementSummary, PointOutcome, agrees_with, summarize

SETTINGS_KEY = "settings"


@dataclass(frozen=True)
class SweepRequest:
    """Everything a sweep needs, resolved (command line, then preset, then defaults)."""

    preset: Preset  # with overrides applied
    region: SweepRegion
    out: Path  # the run directory
    measure: MeasureSettings
    device: str | None = None  # None: cuda, then mps, then cpu
    points_per_batch: int | None = None  # None: from the device's memory
    overwrite: bool = False  # start afresh instead of resuming


@dataclass(frozen=True)
class SweepOutcome:
    """What a finished (or resumed-to-completion) sweep produced."""

    run: RunDir
    points: pd.DataFrame  # points.csv rows of this region, in region order
    summary: AgreementSummary
    n_run: int  # points trained by this invocation
    n_reused: int  # points found finished in the run directory


def settings_of(request: SweepRequest) -> dict[str, Any]:
    """The settings that determine every point's results (they fingerprint the run)."""
    preset = request.preset.to_dict()
    preset.get("data", {}).pop("data_path", None)  # where the file lies does not matter
    return {"preset": preset, "measurement": asdict(request.measure)}


def _versions() -> dict[str, str]:
    import numpy
    import torch

    return {
        "stabcli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
    }


def _config(request: SweepRequest, settings: dict[str, Any], device: str) -> dict[str, Any]:
    return {
        "stabcli_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        SETTINGS_KEY: settings,
        "settings_fingerprint": fingerprint(settings),
        "preset_name": request.preset.name,
        "data_path": request.preset.data.data_path,
        "seed": request.preset.train.seed,
        "region": request.region.to_dict(),
        "device": device,
        "versions": _versions(),
    }


def _rows_for_batch(
    part: ProbeResult,
    ids: list[str],
    positions: list[float],
    measure: MeasureSettings,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """points.csv rows, traces and evals of one finished batch, keyed by point id."""
    rows = []
    traces = part.traces.sort_values(["point", "step"])
    for rec in part.summary.itertuples(index=False):
        tr = traces[traces["point"] == rec.point]
        diverged = None if pd.isna(rec.diverged_step) else int(rec.diverged_step)
        m = measure_point(
            rec.beta,
            rec.gamma,
            tr["max_update"].to_numpy(dtype=float),
            tr["wd_term"].to_numpy(dtype=float),
            tr["max_tensor"].astype(str).tolist(),
            diverged,
            measure,
        )
        row: dict[str, Any] = {
            "point_id": ids[rec.point],
            "position": positions[rec.point],
            **prediction_columns(rec.beta, rec.gamma, measure.slope_at),
            "measured_slope": m.measured_slope,
            "fit_slope": m.fit_slope,
            "measured_class": m.measured_class,
            "diverged_step": diverged,
            "bound_ratio_max": m.bound_ratio_max,
            "max_tensor": m.max_tensor,
            "final_loss": rec.final_loss,
            "best_test_loss": math.nan,
            "slope_step": measure.slope_at,
        }
        row["agrees_with"] = agrees_with(PointOutcome.from_row(row))
        rows.append(row)
    points = pd.DataFrame(rows)[list(POINT_COLUMNS)]
    points["diverged_step"] = points["diverged_step"].astype("Int64")
    evals = part.evals.copy()
    if len(evals):
        best = evals.groupby("point")["test_loss"].min()
        points["best_test_loss"] = [best.get(p, math.nan) for p in part.summary["point"]]
    key = {i: ids[i] for i in part.summary["point"]}
    traces = traces.assign(point_id=traces["point"].map(key)).drop(columns="point")
    evals = evals.assign(point_id=evals["point"].map(key)).drop(columns="point")
    return points, traces, evals


def run_sweep(
    request: SweepRequest,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> SweepOutcome:
    """Run the points of ``request.region`` not yet finished in ``request.out``.

    ``on_start(n_todo, steps)`` is called once before training; ``on_progress`` with
    point-steps done. Results are committed per batch; Ctrl-C marks the run interrupted
    (re-running the same command resumes it) and re-raises.
    """
    from stabcli.probe.data import load_dataset
    from stabcli.probe.device import resolve_device, resolve_dtype

    resolved = resolve_device(request.device)  # bad device: one-line error, nothing written
    resolve_dtype(request.preset, resolved)  # e.g. bfloat16 off CUDA: the same
    device = resolved.type
    load_dataset(request.preset)  # missing data: one-line error before the run dir is touched
    settings = settings_of(request)
    fp = fingerprint(settings)
    points = list(request.region.points)
    ids = [point_id(fp, p.beta, p.gamma) for p in points]
    run = RunDir.create(
        request.out, _config(request, settings, device), SETTINGS_KEY, request.overwrite
    )
    done = run.finished_ids()
    todo = [i for i, pid in enumerate(ids) if pid not in done]
    run.write_state("running", ids)
    if on_start is not None:
        on_start(len(todo), request.preset.train.steps)

    def save(part: ProbeResult) -> None:
        batch_ids = [ids[todo[i]] for i in part.summary["point"]]
        rows, traces, evals = _rows_for_batch(
            part,
            [ids[i] for i in todo],
            [request.region.positions[i] for i in todo],
            request.measure,
        )
        name = "batch-" + hashlib.sha256("|".join(batch_ids).encode()).hexdigest()[:12]
        run.commit_batch(name, rows, traces, evals)

    try:
        if todo:
            run_probes(
                request.preset,
                [(points[i].beta, points[i].gamma) for i in todo],
                device=request.device,
                points_per_batch=request.points_per_batch,
                on_batch=save,
                on_progress=on_progress,
            )
    except BaseException:
        run.write_state("interrupted", ids)
        raise
    run.write_state("complete", ids)
    table = run.read_points().set_index("point_id").loc[ids].reset_index()
    summary = summarize(PointOutcome.from_row(r) for r in table.to_dict("records"))
    return SweepOutcome(run, table, summary, n_run=len(todo), n_reused=len(ids) - len(todo))


def default_run_dir(request: SweepRequest, root: Path = Path("runs")) -> Path:
    """Where a sweep without --out writes.

    The newest run under ``root`` with the same settings and region is reused, so that
    re-running the same command resumes it; otherwise a new ``root/<timestamp>``.
    """
    fp = fingerprint(settings_of(request))
    region = request.region.to_dict()
    matches = []
    for config_path in root.glob("*/config.json") if root.is_dir() else []:
        try:
            config = RunDir(config_path.parent).config()
        except Exception:  # an unreadable run is simply not a match
            continue
        if config.get("settings_fingerprint") == fp and config.get("region") == region:
            matches.append(config_path.parent)
    if matches:
        return max(matches, key=lambda p: (p / "config.json").stat().st_mtime)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path
