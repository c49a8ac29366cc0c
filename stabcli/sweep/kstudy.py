"""The paper's k-study (Figure 4): best test accuracy of k-Adam against k, per strategy.

For every k of the study and every strategy (paper Section 4.2, App. P; docs/theory.md
§6), a preset is trained over a small grid of peak learning rates η and weight decays λ
at one base pair (β, γ), and each (k, strategy) keeps its best grid point. η and λ are
per-point scalars like β and γ, so a grid is one vectorized sweep
(:class:`stabcli.probe.ProbePoint`). k = 1 is Adam (AdamW under decoupled weight decay;
k-Adam with one level is Adam, docs/theory.md §6) and is trained once, not once per
strategy.

The study is one directory (:mod:`stabcli.store.kstudy`): a manifest ``kstudy.json`` and one
ordinary sweep run directory per (k, strategy), each planned and run by
:func:`stabcli.sweep.run.plan_sweep` and :func:`~stabcli.sweep.run.run_sweep`, so the
store's resume, lock and atomic-write rules hold unchanged. Re-running the same study
resumes it: finished sub-runs are not opened for writing, and finished points of an
interrupted one are not trained again. Another study in the same directory is refused.

Schedule (paper App. H): linear warm-up, then cosine decay to η/10 by the last step, for
every point at its own η (the preset's floor is set to train.lr/10;
:func:`stabcli.probe.optim.lr_table` scales it with each point's η).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd

from stabcli import __version__
from stabcli.errors import SettingError, StabcliError
from stabcli.probe import Preset, ProbePoint
from stabcli.store import RunDir
from stabcli.store.kstudy import (
    ADAM,
    KSTUDY,
    SubRunEntry,
    best_of_grid,
    create_study,
    read_kstudy,
    read_manifest,
    subrun_mismatch,
)
from stabcli.sweep.regions import MAX_POINTS, SweepRegion
from stabcli.sweep.rows import MeasureSetup
from stabcli.sweep.run import SweepPlan, SweepRequest, plan_sweep, run_sweep
from stabcli.theory.domain import HyperPoint
from stabcli.theory.kadam import KAdamStrategy, parse_strategy, validate_k

#: The paper's strategies (App. P), in the order `stabcli check --k` lists them.
STRATEGIES = tuple(s.value for s in KAdamStrategy)
#: k of a study by default: the first four of the paper's k = 1..10 (CPU-sized).
DEFAULT_KS = (1, 2, 3, 4)
#: The base pair every strategy derives its levels from, paper App. P: (β̃, γ̃) =
#: (0.999, 0.9), i.e. PyTorch's default betas (0.9, 0.999).
DEFAULT_BASE = HyperPoint(0.999, 0.9)
#: Shortest study run: the measurement's central difference needs n ± 5 inside the run.
MIN_STEPS = 12


@dataclass(frozen=True)
class KStudyRequest:
    """A k-study as asked (command line, then preset, then defaults)."""

    preset: Preset  # with overrides applied (data path, seed, ...); App. H's schedule is laid on it
    ks: tuple[int, ...] = DEFAULT_KS  # numbers of k-Adam levels; 1 is Adam/AdamW
    strategies: tuple[str, ...] = STRATEGIES  # App. P strategies, used for every k > 1
    lrs: tuple[float, ...] | None = None  # peak η of the grid; None: (the preset's train.lr,)
    weight_decays: tuple[float, ...] | None = None  # λ of the grid; None: the preset's
    steps: int | None = None  # steps per point; None: the preset's (warm-up scaled with it)
    base: HyperPoint = DEFAULT_BASE  # (β̃, γ̃), paper order; levels derive from it
    out: Path | None = None  # the study directory; None: the same study's under runs_root,
    # else runs_root/kstudy-<timestamp>
    device: str | None = None  # None: cuda, then mps, then cpu
    points_per_batch: int | None = None  # None: from the device's memory
    runs_root: Path = field(default=Path("runs"))


@dataclass(frozen=True)
class StudySchedule:
    """App. H's schedule fitted to the study's run length (:func:`study_schedule`)."""

    steps: int  # optimizer steps per point
    warmup_steps: int  # linear warm-up, then cosine decay to η/10
    eval_every: int  # test loss and accuracy every this many steps


def _round_half_up(numerator: int, denominator: int) -> int:
    """floor(numerator/denominator + 1/2) in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def study_schedule(preset: Preset, steps: int | None) -> StudySchedule:
    """The study's run length, warm-up and evaluation interval.

    The preset's warm-up W0 over its S0 steps stands for App. H's 2 warm-up epochs (and its
    evaluation interval E0 for App. H's "every 5 epochs"). A study of S steps shortens (or
    lengthens) every epoch by S/S0, so it warms up for W = round(W0·S/S0) steps and
    evaluates every max(1, round(E0·S/S0)) steps (halves rounded up); at S = S0 both are
    the preset's. S must be at least 12 (:data:`MIN_STEPS`) and leave W ≥ 1, i.e. S ≥
    ceil(S0/(2·W0)); a preset without warm-up or cosine decay, or that records no test
    loss, is refused: the study follows App. H and ranks points by their test figures.
    """
    t, name = preset.train, preset.name
    if t.schedule != "cosine" or t.warmup_steps < 1:
        raise StabcliError(
            f"preset {name} has train.schedule = {t.schedule!r} and train.warmup_steps = "
            f"{t.warmup_steps}; the k-study follows App. H (warm-up, then cosine decay to "
            "η/10): use a preset with a cosine schedule and a warm-up, e.g. cnn-synthetic"
        )
    if t.eval_every < 1:
        raise StabcliError(
            f"preset {name} records no test loss (train.eval_every = 0); the k-study ranks "
            "its grid points by test accuracy and loss"
        )
    total = t.steps if steps is None else steps
    if isinstance(total, bool) or not isinstance(total, int) or total < MIN_STEPS:
        raise SettingError(
            "{steps} must be a whole number >= {low} (the measurement reads n ± 5), got {got!r}",
            low=MIN_STEPS,
            got=total,
        )
    warmup = _round_half_up(t.warmup_steps * total, t.steps)
    if warmup < 1:
        least = -(-t.steps // (2 * t.warmup_steps))
        raise SettingError(
            "{steps} = {total} leaves no warm-up: preset {name} warms up over {w0} of its "
            "{s0} steps (App. H: 2 epochs), scaled to {total} steps that rounds to 0; "
            "use {steps} >= {least}",
            total=total,
            name=name,
            w0=t.warmup_steps,
            s0=t.steps,
            least=least,
        )
    every = max(1, _round_half_up(t.eval_every * total, t.steps))
    return StudySchedule(total, warmup, every)


def _unique(values: tuple[Any, ...], setting: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise SettingError("{" + setting + "} gives {value} twice", value=value)
        seen.add(value)


def _numbers(values: tuple[float, ...], setting: str, positive: bool) -> tuple[float, ...]:
    if not values:
        raise SettingError("{" + setting + "} needs at least one value")
    out = []
    for value in values:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        number = float(value) if ok else math.nan
        if not math.isfinite(number) or (number <= 0 if positive else number < 0):
            rule = "> 0" if positive else ">= 0"
            raise SettingError(
                "{" + setting + "} values must be finite and {rule}, got {got!r}",
                rule=rule,
                got=value,
            )
        out.append(number)
    _unique(tuple(out), setting)
    return tuple(out)


@dataclass(frozen=True)
class SubRunPlan:
    """One (k, strategy): its directory and its sweep, planned."""

    entry: SubRunEntry
    sweep: SweepPlan

    @property
    def path(self) -> Path:
        return self.sweep.out


@dataclass(frozen=True)
class KStudyPlan:
    """A request resolved once, before anything is written."""

    request: KStudyRequest
    schedule: StudySchedule
    preset: Preset  # the preset with App. H's schedule laid on it (optimizer still the given)
    ks: tuple[int, ...]  # ascending
    strategies: tuple[str, ...]
    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    settings: dict[str, Any]  # what identifies the study (kstudy.json)
    out: Path
    subruns: tuple[SubRunPlan, ...]  # k = 1 first, then by k, strategies in the given order

    @property
    def adam_label(self) -> str:
        """What k = 1 is: AdamW under decoupled weight decay, else Adam."""
        mode = self.preset.train.weight_decay_mode
        return "AdamW" if mode == "decoupled" else "Adam"

    @property
    def grid_size(self) -> int:
        """Points per sub-run: η values × λ values."""
        return len(self.lrs) * len(self.weight_decays)

    def manifest(self) -> dict[str, Any]:
        """kstudy.json (:mod:`stabcli.store.kstudy`)."""
        return {
            "stabcli_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": self.settings,
            "preset_name": self.preset.name,
            "adam_label": self.adam_label,
            "subruns": [s.entry.to_dict() for s in self.subruns],
        }


def _study_preset(
    request: KStudyRequest, schedule: StudySchedule, wds: tuple[float, ...]
) -> Preset:
    """The preset with App. H's schedule: warm-up, cosine decay to η/10 (min_lr = lr/10,
    scaled per point by lr_table), the study's length and evaluation interval; decoupled
    weight decay (AdamW, App. H's best k-Adam runs) when the grid has λ > 0 and the preset
    has none."""
    train = request.preset.train
    mode = train.weight_decay_mode
    if mode == "none" and max(wds) > 0:
        mode = "decoupled"
    return request.preset.with_overrides(
        steps=schedule.steps,
        schedule="cosine",
        warmup_steps=schedule.warmup_steps,
        min_lr=train.lr / 10,
        eval_every=schedule.eval_every,
        weight_decay_mode=mode,
    )


def _subrun_preset(preset: Preset, entry: SubRunEntry) -> Preset:
    if entry.strategy == ADAM:
        return preset.with_overrides(optimizer="adam", k=1, hyper_lr=None)
    return preset.with_overrides(
        optimizer="kadam", k=entry.k, strategy=entry.strategy, hyper_lr=None
    )


def _region(
    entry: SubRunEntry, base: HyperPoint, lrs: tuple[float, ...], wds: tuple[float, ...]
) -> SweepRegion:
    """The sub-run's grid as a region of ProbePoints at the base pair (the sweep takes them
    as they are: :func:`stabcli.sweep.run.probe_point`)."""
    points = tuple(
        ProbePoint(base.beta, base.gamma, lr=lr, weight_decay=wd) for lr in lrs for wd in wds
    )
    n = len(points)
    what = "Adam" if entry.strategy == ADAM else f"{entry.k}-Adam, {entry.strategy}"
    return SweepRegion(
        kind="points",
        description=(
            f"k-study, {what}: {len(lrs)} lr x {len(wds)} weight decay at "
            f"(β, γ) = ({base.beta:g}, {base.gamma:g})"
        ),
        points=cast(tuple[HyperPoint, ...], points),  # the sweep takes ProbePoints too
        positions=tuple(i / (n - 1) if n > 1 else 0.5 for i in range(n)),
    )


def plan_kstudy(request: KStudyRequest) -> KStudyPlan:
    """Check a request and plan every sub-run (one-line errors, nothing written)."""
    if not request.ks:
        raise SettingError("{k} needs at least one value")
    ks = tuple(validate_k(k) for k in request.ks)
    _unique(ks, "k")
    ks = tuple(sorted(ks))
    if not request.strategies:
        raise SettingError("{strategy} needs at least one value")
    strategies = tuple(parse_strategy(s).value for s in request.strategies)
    _unique(strategies, "strategy")
    preset = request.preset
    lrs = _numbers(request.lrs or (preset.train.lr,), "lr", positive=True)
    wds = _numbers(
        request.weight_decays or (preset.train.weight_decay,), "weight_decay", positive=False
    )
    schedule = study_schedule(preset, request.steps)
    study = _study_preset(request, schedule, wds)
    entries = [SubRunEntry.of(1, ADAM)] if 1 in ks else []
    entries += [SubRunEntry.of(k, s) for k in ks if k > 1 for s in strategies]
    n_points = len(entries) * len(lrs) * len(wds)
    if n_points > MAX_POINTS:
        raise SettingError(
            "{k}, {strategy}, {lr} and {weight_decay} give {n:,} points; a study has at most "
            "{most:,}",
            n=n_points,
            most=MAX_POINTS,
        )
    out = request.out
    measure = MeasureSetup.for_run(schedule.steps)
    plans: list[SubRunPlan] = []
    for entry in entries:
        sweep = SweepRequest(
            preset=_subrun_preset(study, entry),
            region=_region(entry, request.base, lrs, wds),
            measure=measure,
            out=Path(entry.name),  # placed under the study directory below
            device=request.device,
            points_per_batch=request.points_per_batch,
        )
        plans.append(SubRunPlan(entry, plan_sweep(sweep)))
    data = plans[0].sweep.settings["data"]
    preset_dict = study.to_dict()
    preset_dict["data"].pop("data_path", None)
    preset_dict["model"].pop("python_path", None)
    settings = {
        "preset": preset_dict,
        "data": data,
        "base": [request.base.beta, request.base.gamma],  # paper order (β, γ)
        "ks": list(ks),
        "strategies": list(strategies),
        "lrs": list(lrs),
        "weight_decays": list(wds),
        "measurement": measure.to_dict(),
    }
    if out is None:
        out = default_study_dir(request.runs_root, settings)
    subruns = tuple(SubRunPlan(p.entry, _placed(p.sweep, out / p.entry.name)) for p in plans)
    return KStudyPlan(request, schedule, study, ks, strategies, lrs, wds, settings, out, subruns)


def _placed(plan: SweepPlan, out: Path) -> SweepPlan:
    """The sweep plan with its run directory inside the study."""
    return replace(plan, out=out, request=replace(plan.request, out=out))


def default_study_dir(root: Path, settings: dict[str, Any]) -> Path:
    """Where a study without ``out`` writes: the study with the same settings under
    ``root`` (so re-running the same command resumes it), else ``root/kstudy-<timestamp>``."""
    if root.is_dir():
        for manifest in sorted(root.glob(f"*/{KSTUDY}")):
            try:
                found = read_manifest(manifest.parent)
            except StabcliError:
                continue
            if found["settings"] == settings:
                return manifest.parent
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / f"kstudy-{stamp}", 1
    while path.exists():
        n += 1
        path = root / f"kstudy-{stamp}-{n}"
    return path


# ------------------------------------------------------------------------------ running
@dataclass(frozen=True)
class KStudyStart:
    """What a study found when it opened its directory (for progress displays)."""

    out: Path
    n_subruns: int  # sub-runs of the study
    n_finished_subruns: int  # found complete: not opened again
    n_todo: int  # points to train now, over every sub-run
    n_done: int  # points found finished
    steps: int  # steps per point
    point_steps: int  # n_todo × steps


@dataclass(frozen=True)
class SubRunDone:
    """A sub-run finished (or found finished)."""

    entry: SubRunEntry
    path: Path
    n_run: int  # points trained by this invocation
    n_reused: int  # points found finished
    index: int  # 1, 2, ... of n_subruns
    n_subruns: int


@dataclass(frozen=True)
class KStudyBest:
    """The best grid point of one (k, strategy) (:func:`stabcli.store.kstudy.best_of_grid`)."""

    k: int
    strategy: str  # "adam" for k = 1
    label: str  # "Adam"/"AdamW" for k = 1, else the strategy
    best_test_accuracy: float  # highest over the run, of the winning grid point
    best_test_loss: float  # lowest over the run, of the same point
    lr: float  # the winning peak η
    weight_decay: float  # the winning λ
    point_id: str
    subrun: str  # its run directory inside the study


@dataclass(frozen=True)
class KStudyResult:
    """A finished (or resumed-to-completion) study."""

    path: Path  # the study directory
    points: pd.DataFrame  # every grid point's best test loss and accuracy (store.kstudy)
    best: tuple[KStudyBest, ...]  # one per (k, strategy), k = 1 first
    subruns: tuple[SubRunDone, ...]

    @property
    def n_run(self) -> int:
        return sum(s.n_run for s in self.subruns)

    @property
    def n_reused(self) -> int:
        return sum(s.n_reused for s in self.subruns)


def _finished(plan: SubRunPlan) -> set[str]:
    """Point ids of the sub-run already finished on disk (none when it is not there yet or
    belongs to other settings, which run_sweep then refuses in one line)."""
    if not (plan.path / "config.json").exists():
        return set()
    run = RunDir.open(plan.path)
    if run.config().get("settings_fingerprint") != plan.sweep.fingerprint:
        return set()
    return run.finished_ids() & set(plan.sweep.ids)


def _refuse_foreign_subruns(plan: KStudyPlan) -> None:
    """Refuse, before anything trains, a sub-run folder that holds a run not of this study
    (a sweep written there with --overwrite, say): run_sweep's own refusal would point at
    an --overwrite that ``stabcli kstudy`` does not have."""
    manifest = plan.manifest()
    for sub in plan.subruns:
        if not (sub.path / "config.json").exists():
            continue
        why = subrun_mismatch(manifest, sub.entry, RunDir.open(sub.path).config())
        if why:
            raise StabcliError(
                f"{sub.path}, this study's (k = {sub.entry.k}, {sub.entry.strategy}) sub-run "
                f"folder, holds {why}; move it out of the study, then re-run the same command"
            )


def _complete(plan: SubRunPlan, finished: set[str]) -> bool:
    if finished != set(plan.sweep.ids):
        return False
    state = RunDir.open(plan.path).state()
    return state is not None and state.status == "complete"


def best_rows(points: pd.DataFrame, adam_label: str) -> tuple[KStudyBest, ...]:
    """:func:`stabcli.store.kstudy.best_of_grid` as :class:`KStudyBest` rows."""
    return tuple(
        KStudyBest(
            k=int(r.k),
            strategy=str(r.strategy),
            label=adam_label if r.strategy == ADAM else str(r.strategy),
            best_test_accuracy=float(r.best_test_accuracy),
            best_test_loss=float(r.best_test_loss),
            lr=float(r.lr),
            weight_decay=float(r.weight_decay),
            point_id=str(r.point_id),
            subrun=str(r.subrun),
        )
        for r in best_of_grid(points).itertuples(index=False)
    )


def run_kstudy(
    request: KStudyRequest | KStudyPlan,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[KStudyStart], None] | None = None,
    on_subrun_start: Callable[[SubRunEntry], None] | None = None,
    on_subrun: Callable[[SubRunDone], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> KStudyResult:
    """Run every sub-run of the study not yet finished, in order, and read the results.

    The study directory is locked while it runs (a second study there gets a one-line
    error) and its manifest written first. ``on_start`` is called once before training;
    ``on_progress`` with point-steps done (run_sweep's); ``on_subrun_start`` before a
    sub-run trains; ``on_subrun`` after each sub-run, finished now or before;
    ``on_notice`` with a line about the run. An interruption leaves the sub-run being
    trained "interrupted" (run_sweep's rules) and re-raises: re-running resumes.
    """
    plan = request if isinstance(request, KStudyPlan) else plan_kstudy(request)
    lock = create_study(plan.out, plan.manifest())
    done: list[SubRunDone] = []
    try:
        _refuse_foreign_subruns(plan)
        finished = [_finished(s) for s in plan.subruns]
        complete = [_complete(s, f) for s, f in zip(plan.subruns, finished, strict=True)]
        n_todo = sum(len(s.sweep.ids) - len(f) for s, f in zip(plan.subruns, finished, strict=True))
        if on_start is not None:
            on_start(
                KStudyStart(
                    plan.out,
                    len(plan.subruns),
                    sum(complete),
                    n_todo,
                    sum(len(f) for f in finished),
                    plan.schedule.steps,
                    n_todo * plan.schedule.steps,
                )
            )
        total = len(plan.subruns)
        for index, (sub, is_complete) in enumerate(zip(plan.subruns, complete, strict=True), 1):
            if is_complete:
                n_run, n_reused = 0, len(sub.sweep.ids)
            else:
                if on_subrun_start is not None:
                    on_subrun_start(sub.entry)
                outcome = run_sweep(sub.sweep, on_progress=on_progress, on_notice=on_notice)
                n_run, n_reused = outcome.n_run, outcome.n_reused
            event = SubRunDone(sub.entry, sub.path, n_run, n_reused, index, total)
            done.append(event)
            if on_subrun is not None:
                on_subrun(event)
    finally:
        lock.release()
    data = read_kstudy(plan.out)
    return KStudyResult(plan.out, data.points, best_rows(data.points, plan.adam_label), tuple(done))
