"""Run a sweep: probes over a region, measured and compared with both theories, saved as
each batch finishes, resumable after any interruption.

A :class:`SweepRequest` (what was asked) is resolved once into a :class:`SweepPlan` by
:func:`plan_sweep`: the probe's device, dtype and data (by content), the settings that
identify the run and their fingerprint, the points and their ids, the run directory, and
which points the run is too short to measure (their valid window opens too late,
docs/theory.md (9.3)). Nothing is written until :func:`run_sweep` runs the plan: it splits
the points not yet finished into batches and hands them to an executor
(:mod:`stabcli.sweep.executor`: this process, or a Ray cluster); each batch that comes
back, in whatever order, is measured by :mod:`stabcli.measure` (:mod:`stabcli.sweep.rows`)
and committed by this process alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stabcli import __version__
from stabcli.errors import StabcliError
from stabcli.measure import SweepPlan as WindowPlan
from stabcli.measure import plan_sweep as plan_windows
from stabcli.probe import Preset, ProbePoint, ProbeSetup, resolve_setup
from stabcli.probe.backend import build_model
from stabcli.probe.data import resolve_data
from stabcli.probe.engine import check_points
from stabcli.store import RunDir, fingerprint, list_runs, point_id
from stabcli.sweep.executor import (
    RECORD_KEY,
    BatchDone,
    BatchFailed,
    ExecutorSpec,
    open_executor,
    split_batches,
)
from stabcli.sweep.regions import SweepRegion
from stabcli.sweep.rows import MeasureSetup, batch_rows
from stabcli.theory.domain import HyperPoint

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
    # where the batches run (default: this process)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)


@dataclass(frozen=True)
class Batching:
    """How the model trains the points of a batch (``ModelBackend.batching``)."""

    path: str  # "native" (the engine's vectorized model), "vmap" or "sequential"
    reason: str  # why, when it is not the model's natural path
    n_params: int  # parameters of one point

    def line(self, preset: Preset) -> str | None:
        """One line for stderr before training, for a factory model (a native one always
        trains every point in one vectorized program); None otherwise."""
        if preset.model.kind != "factory":
            return None
        how = {
            "vmap": "all points in one torch.func.vmap",
            "sequential": f"one point at a time ({self.reason})",
        }.get(self.path, f"all points in one vectorized program ({self.path})")
        return f"model: factory {preset.model.factory!r}, {self.n_params:,} parameters; {how}"


@dataclass(frozen=True)
class SweepPlan:
    """A request resolved once, before anything is written."""

    request: SweepRequest
    setup: ProbeSetup  # device, dtype and data, checked to fit in memory
    settings: dict[str, Any]  # what determines every point's results (config.json)
    fingerprint: str  # of ``settings``: the run's identity
    points: tuple[ProbePoint, ...]  # the region's points as the engine takes them
    ids: tuple[str, ...]  # point ids, in region order
    out: Path  # the run directory
    windows: WindowPlan  # the points whose valid window does not fit in the run, and the fix
    batching: Batching  # how the model trains a batch's points

    @property
    def per_point_hypers(self) -> bool:
        """Whether some point has its own learning rate or weight decay: points.csv then
        gets ``lr`` and ``weight_decay`` columns, the η and λ each point trained with
        (empty for points committed earlier by a run of plain points)."""
        return any(p.lr is not None or p.weight_decay is not None for p in self.points)


@dataclass(frozen=True)
class SweepStart:
    """What a sweep found when it opened its run directory (for progress displays)."""

    n_todo: int  # points to train now
    n_done: int  # points found finished
    steps: int  # steps per point
    note: str | None  # e.g. a run left "running" by a process that has ended
    executor: str | None = None  # where the batches run, when not simply here
    batching: str | None = None  # how a factory model trains a batch's points
    n_batches: int = 0  # batches to train now
    points_per_batch: int = 0  # points in each of them (the last may have fewer)


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


def probe_point(point: HyperPoint | ProbePoint) -> ProbePoint:
    """A region's point as the engine takes it: a (β, γ) point (:class:`HyperPoint`) or a
    :class:`ProbePoint` with its own η and λ (a region over learning rates)."""
    if isinstance(point, ProbePoint):
        return point
    return ProbePoint(float(point.beta), float(point.gamma))


def _setup(request: SweepRequest) -> ProbeSetup:
    """The probe resolved on this machine; for Ray, only its data (by content): the
    device and dtype are resolved, and the memory checked, where each batch runs."""
    if request.executor.kind == "local":
        return resolve_setup(request.preset, request.device)
    return ProbeSetup(request.preset, request.device or "auto", resolve_data(request.preset))


def plan_sweep(request: SweepRequest) -> SweepPlan:
    """Resolve a request once: probe setup (one-line errors, nothing written), settings,
    fingerprint, points and their ids, the run directory and the points too late to
    measure."""
    setup = _setup(request)
    points = tuple(probe_point(p) for p in request.region.points)
    check_points(points, request.preset.train)  # every point valid before the first runs
    settings = settings_of(setup, request.measure)
    fp = fingerprint(settings)
    ids = tuple(point_id(fp, p.beta, p.gamma, p.lr, p.weight_decay) for p in points)
    counts = Counter(ids)
    if len(counts) < len(ids):
        twice = next(p for p, i in zip(points, ids, strict=True) if counts[i] > 1)
        raise StabcliError(f"the region holds the point {twice} twice")
    out = request.out
    if out is None:
        out = default_run_dir(request.runs_root, fp, request.region.to_dict())
    pairs = [(p.beta, p.gamma) for p in points]
    windows = plan_windows(pairs, request.preset.train.steps, request.measure.settings)
    model = build_model(setup.preset, setup.dataset())  # read and built already: cheap
    batching = Batching(model.batching, model.batching_reason, model.n_params)
    return SweepPlan(request, setup, settings, fp, points, ids, out, windows, batching)


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
        "device": plan.setup.device,  # "auto" under Ray: each batch's record says where
        "executor": request.executor.to_dict(),
        "batching": {"path": plan.batching.path, "reason": plan.batching.reason},
        "versions": _versions(),
    }


def run_sweep(
    plan: SweepPlan,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[SweepStart], None] | None = None,
    on_saved: Callable[[BatchSaved], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> SweepOutcome:
    """Run the points of the plan's region not yet finished in its run directory.

    The executor is opened first (connecting to a cluster: its errors leave nothing
    written), then the run directory is locked while the sweep runs. ``on_start`` is
    called once before training; ``on_progress`` with point-steps done (negative when a
    batch that failed starts again); ``on_saved`` after each batch is committed;
    ``on_notice`` with a line about a batch run again. Batches are committed as they
    arrive, in any order, by this process alone, each with the record of where it ran
    (:class:`~stabcli.sweep.executor.BatchRecord`, in its traces file's metadata). An
    interruption (Ctrl-C, an error) cancels the batches in flight, marks the run
    interrupted (re-running the same command resumes it) and re-raises; batches given up
    on after their retries leave it interrupted too, with a one-line error, once every
    other batch is saved.
    """
    request, ids = plan.request, list(plan.ids)
    with (
        open_executor(request.executor, request.device) as executor,
        RunDir.create(plan.out, _config(plan), SETTINGS_KEY, request.overwrite) as run,
    ):
        done = run.finished_ids()
        todo = [i for i, pid in enumerate(ids) if pid not in done]
        run.write_state("running", ids)
        saved = 0
        failed: list[BatchFailed] = []

        def save(outcome: BatchDone) -> None:
            nonlocal saved
            batch, part = outcome.batch, outcome.result
            batch_ids = [ids[i] for i in batch.indices]
            positions = [request.region.positions[i] for i in batch.indices]
            rows, traces, evals = batch_rows(part, batch_ids, positions, request.measure)
            if plan.per_point_hypers:  # rows follow the summary's order (batch_rows)
                summary = part.summary.reset_index(drop=True)
                rows = rows.assign(
                    lr=summary["lr"].to_numpy(float),
                    weight_decay=summary["weight_decay"].to_numpy(float),
                )
            traces.attrs = {**traces.attrs, RECORD_KEY: outcome.record.to_dict()}
            name = "batch-" + hashlib.sha256("|".join(batch_ids).encode()).hexdigest()[:12]
            run.commit_batch(name, rows, traces, evals)
            saved += len(rows)
            if on_saved is not None:
                on_saved(BatchSaved(len(rows), saved, len(todo)))

        try:
            ppb = executor.points_per_batch(plan.setup, len(todo), request.points_per_batch)
            batches = split_batches(todo, plan.points, ppb) if todo else []
            if on_start is not None:
                on_start(
                    SweepStart(
                        len(todo),
                        len(ids) - len(todo),
                        request.preset.train.steps,
                        run.stale_note,
                        executor.describe(),
                        plan.batching.line(request.preset),
                        len(batches),
                        ppb,
                    )
                )
            outcomes = executor.run(plan.setup, batches, on_progress, on_notice)
            with contextlib.closing(outcomes):  # leaving early cancels what is in flight
                for outcome in outcomes:
                    if isinstance(outcome, BatchFailed):
                        failed.append(outcome)
                    else:
                        save(outcome)
        except BaseException:
            with contextlib.suppress(StabcliError):  # e.g. the disk is full: keep the cause
                run.write_state("interrupted", ids)
            raise
        if failed:
            run.write_state("interrupted", ids)
            raise StabcliError(_failed_line(failed, saved, plan.out))
        run.write_state("complete", ids)
        table = run.read_points().set_index("point_id").loc[ids].reset_index()
    return SweepOutcome(run, table, n_run=len(todo), n_reused=len(ids) - len(todo))


def _failed_line(failed: list[BatchFailed], saved: int, out: Path) -> str:
    """One line for batches given up on: how many, the first reason, what is kept."""
    n_points = sum(f.batch.size for f in failed)
    first = failed[0]
    return (
        f"{n_points} point(s) in {len(failed)} batch(es) failed (batch {first.batch.number + 1},"
        f" after {first.attempts} attempt(s): {first.reason}); the {saved} point(s) trained "
        f"now are saved in {out}: re-run the same command to run the failed ones again"
    )


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
