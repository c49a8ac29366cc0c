"""Run a sweep: probes over a region, measured and compared with both theories, saved as
each batch finishes, resumable after any interruption.

A :class:`SweepRequest` (what was asked) is resolved once into a :class:`SweepPlan` by
:func:`plan_sweep`: the probe's device, dtype and data (by content), the settings that
identify the run and their fingerprint, the point ids, the run directory, and which points
the run is too short to measure (their valid window opens too late, docs/theory.md (9.3)).
Nothing is written until :func:`run_sweep` runs the plan; each finished batch is measured
by :mod:`stabcli.measure` (:mod:`stabcli.sweep.rows`) and committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stabcli import __version__
from stabcli.errors import StabcliError
from stabcli.measure import SweepPlan as WindowPlan
from stabcli.measure import plan_sweep as plan_windows
from stabcli.probe import Preset, ProbeResult, ProbeSetup, resolve_setup, run_probes
from stabcli.store import RunDir, fingerprint, list_runs, point_id
from stabcli.sweep.regions import SweepRegion
from stabcli.sweep.rows import MeasureSetup, batch_rows

SETTINGS_KEY = "settings"


@dataclass(frozen=True)
class SweepRequest:
    """Everything a sweep needs, as given (command line, then preset, then defaults)."""

    preset: Preset  # with overrides applied
    region: SweepRegion
    measure: MeasureSetup
    out: Path | None = None  # the run directory; None: the newest run of the same settings
    # and region under runs_root (so that re-running resumes it), else runs_root/<timestamp>
    device: str | None = None  # None: cuda, then mps, then cpu
    points_per_batch: int | None = None  # None: from the device's memory
    overwrite: bool = False  # start afresh instead of resuming
    runs_root: Path = Path("runs")


@dataclass(frozen=True)
class SweepPlan:
    """A request resolved once, before anything is written."""

    request: SweepRequest
    setup: ProbeSetup  # device, dtype and data, checked to fit in memory
    settings: dict[str, Any]  # what determines every point's results (config.json)
    fingerprint: str  # of ``settings``: the run's identity
    ids: tuple[str, ...]  # point ids, in region order
    out: Path  # the run directory
    windows: WindowPlan  # the points whose valid window does not fit in the run, and the fix


@dataclass(frozen=True)
class SweepStart:
    """What a sweep found when it opened its run directory (for progress displays)."""

    n_todo: int  # points to train now
    n_done: int  # points found finished
    steps: int  # steps per point
    note: str | None  # e.g. a run left "running" by a process that has ended


@dataclass(frozen=True)
class BatchSaved:
    """A batch just committed to the run directory (for progress displays)."""

    n_points: int  # points in this batch
    n_saved: int  # points of this invocation saved so far, this batch included
    n_todo: int  # points this invocation trains in all


@dataclass(frozen=True)
class SweepOutcome:
    """What a finished (or resumed-to-completion) sweep produced."""

    run: RunDir
    points: pd.DataFrame  # points.csv rows of this region, in region order
    n_run: int  # points trained by this invocation
    n_reused: int  # points found finished in the run directory


def settings_of(setup: ProbeSetup, measure: MeasureSetup) -> dict[str, Any]:
    """The settings that determine every point's results (they fingerprint the run).

    The data enter by content (sha256), not by path: the same text anywhere is the same
    run, and another text at the same path is another run. A factory's code enters the same
    way (its source's sha256 is the data's), so where it is imported from does not count.
    """
    preset = setup.preset.to_dict()
    preset["data"].pop("data_path", None)
    preset["model"].pop("python_path", None)
    data = {"source": setup.data.source, "sha256": setup.data.sha256}
    return {"preset": preset, "data": data, "measurement": measure.to_dict()}


def plan_sweep(request: SweepRequest) -> SweepPlan:
    """Resolve a request once: probe setup (one-line errors, nothing written), settings,
    fingerprint, point ids, the run directory and the points too late to measure."""
    setup = resolve_setup(request.preset, request.device)
    settings = settings_of(setup, request.measure)
    fp = fingerprint(settings)
    ids = tuple(point_id(fp, p.beta, p.gamma) for p in request.region.points)
    out = request.out
    if out is None:
        out = default_run_dir(request.runs_root, fp, request.region.to_dict())
    points = [(p.beta, p.gamma) for p in request.region.points]
    windows = plan_windows(points, request.preset.train.steps, request.measure.settings)
    return SweepPlan(request, setup, settings, fp, ids, out, windows)


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


def _config(plan: SweepPlan) -> dict[str, Any]:
    request = plan.request
    return {
        "stabcli_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        SETTINGS_KEY: plan.settings,
        "settings_fingerprint": plan.fingerprint,
        "preset_name": request.preset.name,
        "data_path": plan.setup.data.path,
        "seed": request.preset.train.seed,
        "region": request.region.to_dict(),
        "device": plan.setup.device,
        "versions": _versions(),
    }


def run_sweep(
    plan: SweepPlan,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[SweepStart], None] | None = None,
    on_saved: Callable[[BatchSaved], None] | None = None,
) -> SweepOutcome:
    """Run the points of the plan's region not yet finished in its run directory.

    The run directory is locked while the sweep runs. ``on_start`` is called once before
    training; ``on_progress`` with point-steps done; ``on_saved`` after each batch is
    committed. Results are committed per batch; an interruption (Ctrl-C, an error) marks
    the run interrupted (re-running the same command resumes it) and re-raises.
    """
    request, ids = plan.request, list(plan.ids)
    points = request.region.points
    with RunDir.create(plan.out, _config(plan), SETTINGS_KEY, request.overwrite) as run:
        done = run.finished_ids()
        todo = [i for i, pid in enumerate(ids) if pid not in done]
        run.write_state("running", ids)
        saved = 0

        def save(part: ProbeResult) -> None:
            nonlocal saved
            batch_ids = [ids[todo[i]] for i in part.summary["point"]]
            rows, traces, evals = batch_rows(
                part,
                [ids[i] for i in todo],
                [request.region.positions[i] for i in todo],
                request.measure,
            )
            name = "batch-" + hashlib.sha256("|".join(batch_ids).encode()).hexdigest()[:12]
            run.commit_batch(name, rows, traces, evals)
            saved += len(rows)
            if on_saved is not None:
                on_saved(BatchSaved(len(rows), saved, len(todo)))

        try:
            if on_start is not None:
                steps = request.preset.train.steps
                on_start(SweepStart(len(todo), len(ids) - len(todo), steps, run.stale_note))
            if todo:
                run_probes(
                    plan.setup,
                    [(points[i].beta, points[i].gamma) for i in todo],
                    points_per_batch=request.points_per_batch,
                    on_batch=save,
                    on_progress=on_progress,
                )
        except BaseException:
            with contextlib.suppress(StabcliError):  # e.g. the disk is full: keep the cause
                run.write_state("interrupted", ids)
            raise
        run.write_state("complete", ids)
        table = run.read_points().set_index("point_id").loc[ids].reset_index()
    return SweepOutcome(run, table, n_run=len(todo), n_reused=len(ids) - len(todo))


def default_run_dir(root: Path, settings_fingerprint: str, region: dict[str, object]) -> Path:
    """Where a sweep without an explicit run directory writes.

    The newest run under ``root`` with the same settings and region is reused, so that
    re-running the same command resumes it; otherwise a new ``root/<timestamp>``.
    """
    for path in list_runs(root):
        try:
            config = RunDir.open(path).config()
        except StabcliError:  # an unreadable run is simply not a match
            continue
        if (
            config.get("settings_fingerprint") == settings_fingerprint
            and config.get("region") == region
        ):
            return path
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path
