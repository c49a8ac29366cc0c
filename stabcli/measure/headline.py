"""The headline of a sweep: verdict counts per theory, rate errors, the bound check.

Falsifications come first: a measured max-update above the exact bound (not flagged as
numerically invalid, docs/theory.md §3), a k-Adam level above its own bound (docs/theory.md
(6.3)), and growth seen where a theory predicted none.
The median relative rate error of a theory is taken over exactly the points where it
predicted growth and growth was seen (measure.verdicts): not over points whose bound was
not reached, which contradict nothing. For k-Adam the headline also gives the largest
ratio of a level to its own bound; for learned betas, how many paths entered γ² > β,
when, and whether the max-update then grew (:mod:`stabcli.measure.paths`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stabcli.measure.bounds import BoundStatus
from stabcli.measure.classify import MeasuredClass
from stabcli.measure.paths import BoundKind
from stabcli.measure.settings import MeasureSettings
from stabcli.measure.verdicts import Theory, TheoryVerdict, Verdict

if TYPE_CHECKING:
    from stabcli.measure.points import PointMeasurement

#: Falsifications listed one per line in the headline; the rest are counted.
SHOWN = 5


@dataclass(frozen=True)
class TheoryTally:
    """How one theory fared over a sweep."""

    theory: Theory
    counts: tuple[tuple[Verdict, int], ...]  # every verdict, in Verdict's order
    median_rel_error: float  # over "growth predicted and seen" points; nan if none

    def count(self, verdict: Verdict) -> int:
        return dict(self.counts)[verdict]


@dataclass(frozen=True)
class Falsification:
    """A measurement that contradicts a theory at one point."""

    beta: float
    gamma: float
    theory: Theory
    what: str  # one line: what was measured against what was predicted


@dataclass(frozen=True)
class LevelTally:
    """k-Adam: the largest ratio of any level's max-update to its own bound."""

    k: int  # levels (the largest k among the points)
    worst_ratio: float  # max over points and levels of ‖u^(i)_n‖∞ / U_n(β_i, γ_i)
    worst_level: int  # its level (1..k)
    worst_pair: tuple[float, float] | None  # (β_i, γ_i) of that level
    worst_point: tuple[float, float] | None  # the point (its base pair) it belongs to
    worst_status: BoundStatus
    n_broken: int  # points with a level above its bound

    def line(self) -> str:
        head = f"k-Adam, {self.k} levels, each against its own exact bound (docs/theory.md (6.3))"
        if self.worst_point is None or self.worst_pair is None:
            return f"{head}: no finite level max-update"
        held = (
            f"{self.n_broken} point(s) with a level above its bound"
            if self.n_broken
            else ("every level within its bound")
        )
        i = self.worst_level
        return (
            f"{head}: {held}; largest ‖u^(i)‖∞ / bound(β_i, γ_i): {self.worst_ratio:.9g} at "
            f"level {i}, (β_{i}, γ_{i}) = ({self.worst_pair[0]:.6g}, {self.worst_pair[1]:.6g}), "
            f"of {_pt(*self.worst_point)} ({self.worst_status})"
        )


@dataclass(frozen=True)
class PathTally:
    """Learned betas: which paths entered the exact-unstable region, when, and what followed."""

    n_paths: int
    entered: tuple[int, ...]  # the first unstable step of each path that entered, sorted
    after: tuple[tuple[str, int], ...]  # class of the max-update after entering → count
    n_no_bound: int  # MADA points off the Adam-AVGrad-Lion face (no bound to check)

    def lines(self) -> list[str]:
        n = len(self.entered)
        if not n:
            out = [f"paths: none of {self.n_paths} entered the exact-unstable region γ² > β"]
        else:
            when = ", ".join(f"{s}" for s in self.entered[:8]) + (", …" if n > 8 else "")
            after = ", ".join(f"{k} {c}" for c, k in self.after)
            out = [
                f"paths: {n} of {self.n_paths} entered the exact-unstable region γ² > β, "
                f"at n = {when}; the max-update over the steps after: {after}"
            ]
        if self.n_no_bound:
            out.append(
                f"bound check: {self.n_no_bound} of {self.n_paths} MADA point(s) left the "
                "Adam-AVGrad-Lion face (β3 > 0 or c < 1): no bound there, nothing falsified "
                "(docs/theory.md (7.5))"
            )
        return out


@dataclass(frozen=True)
class Headline:
    """What a sweep found, for the terminal, the report and points.csv consumers."""

    n_points: int
    classes: tuple[tuple[MeasuredClass, int], ...]  # every class, in MeasuredClass's order
    paper: TheoryTally
    exact: TheoryTally
    closer: tuple[tuple[str, int], ...]  # over growing points: paper, exact, both, neither
    falsifications: tuple[Falsification, ...]  # bound exceedances first, then rate ones
    worst_ratio: float  # largest u_n/(bound_n + wd_n) over all points and steps
    worst_ratio_window: float  # the same over the valid windows: past the transient
    worst_status: BoundStatus  # words for worst_ratio
    worst_point: tuple[float, float] | None  # its (β, γ)
    n_invalid: int  # points above the bound that the caller flagged numerically invalid
    undetermined: tuple[tuple[str, int], ...]  # reason kind → count
    steps_needed: int | None  # run length that would give every too-short point a window
    closer_tol: float
    levels: LevelTally | None = None  # k-Adam points
    paths: PathTally | None = None  # learned-beta points

    def lines(self) -> list[str]:
        """Plain-text headline, falsifications first (a terminal shows those in red)."""
        out = [
            f"FALSIFIED ({f.theory}) at {_pt(f.beta, f.gamma)}: {f.what}"
            for f in self.falsifications[:SHOWN]
        ]
        if len(self.falsifications) > SHOWN:
            out.append(f"FALSIFIED: … and {len(self.falsifications) - SHOWN} more (see the table)")
        classes = ", ".join(f"{n} {c}" for c, n in self.classes if n)
        out.append(f"{self.n_points} points: {classes or 'none'}")
        for tally in (self.paper, self.exact):
            parts = []
            for v, n in tally.counts:
                if not n:
                    continue
                extra = ""
                if v is Verdict.PREDICTED_AND_SEEN:
                    extra = f" (median rate error {_pct(tally.median_rel_error)})"
                parts.append(f"{n} {v}{extra}")
            out.append(f"{tally.theory}: " + ("; ".join(parts) or "no points"))
        growing = sum(n for _, n in self.closer)
        if growing:
            closer = ", ".join(f"{name} {n}" for name, n in self.closer)
            out.append(
                f"closer theory on {growing} growing points (rate within "
                f"{self.closer_tol:.0%} of the measurement): {closer}"
            )
        if math.isfinite(self.worst_ratio) and self.worst_point is not None:
            past = (
                f", {self.worst_ratio_window:.9g} past the transient"
                if math.isfinite(self.worst_ratio_window)
                else ""
            )
            invalid = (
                f"; {self.n_invalid} point(s) flagged numerically invalid" if self.n_invalid else ""
            )
            out.append(
                f"largest max-update / ({self._bound_name} + wd term): {self.worst_ratio:.9g} "
                f"at {_pt(*self.worst_point)} ({self.worst_status}){past}{invalid}"
            )
        if self.levels is not None:
            out.append(self.levels.line())
        if self.paths is not None:
            out += self.paths.lines()
        if self.undetermined:
            kinds = ", ".join(f"{n} {kind}" for kind, n in self.undetermined)
            fix = (
                f"; use steps ≥ {self.steps_needed} for a valid window" if self.steps_needed else ""
            )
            out.append(f"undetermined: {kinds}{fix}")
        return out

    @property
    def _bound_name(self) -> str:
        if self.paths is not None:
            return "path bound"
        if self.levels is not None:
            return "last level's exact bound"
        return "exact bound"


def _pt(beta: float, gamma: float) -> str:
    return f"(β, γ) = ({beta:.6g}, {gamma:.6g})"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _tally(theory: Theory, verdicts: Sequence[TheoryVerdict]) -> TheoryTally:
    counts = Counter(v.verdict for v in verdicts)
    errors = [
        v.rel_error
        for v in verdicts
        if v.verdict is Verdict.PREDICTED_AND_SEEN and math.isfinite(v.rel_error)
    ]
    return TheoryTally(
        theory,
        tuple((v, counts.get(v, 0)) for v in Verdict),
        statistics.median(errors) if errors else math.nan,
    )


def _reason_kind(reason: str) -> str:
    """A short name for an undetermined point's reason, for counting."""
    for prefix, kind in (
        ("run too short", "run too short"),
        ("trace diverged", "diverged before a window"),
        ("only ", "too few finite values"),
    ):
        if reason.startswith(prefix):
            return kind
    return "rate straddles growth_tol" if "straddles" in reason else "no settled window"


def summarize(points: Sequence[PointMeasurement], settings: MeasureSettings) -> Headline:
    """The headline over a sweep's measured points (module docstring)."""
    classes = Counter(p.measured_class for p in points)
    closer = Counter(
        p.closer_theory or "neither" for p in points if p.measured_class is MeasuredClass.GROWING
    )
    above = [p for p in points if p.bound.status is BoundStatus.ABOVE]
    falsified = [
        Falsification(
            p.beta,
            p.gamma,
            Theory.EXACT,
            f"max-update / (bound + wd term) = {p.bound.ratio_all:.9g} at n = {p.bound.step_all}",
        )
        for p in above
    ]
    for p in points:
        lv = p.levels
        if lv is None or not lv.broken or (lv.worst == lv.k and p in above):
            continue  # the last level's excess is the update's, reported above
        b, g = lv.beta[lv.worst - 1], lv.gamma[lv.worst - 1]
        falsified.append(
            Falsification(
                p.beta,
                p.gamma,
                Theory.EXACT,
                f"level {lv.worst} of {lv.k}: ‖u^({lv.worst})‖∞ / its exact bound at "
                f"(β_{lv.worst}, γ_{lv.worst}) = ({b:.6g}, {g:.6g}) = {lv.check.ratio_all:.9g}"
                + (f" at n = {lv.check.step_all}" if lv.check.step_all >= 0 else ""),
            )
        )
    for p in points:
        for v in (p.paper, p.exact):
            if v.verdict is Verdict.SEEN_NOT_PREDICTED:
                falsified.append(
                    Falsification(
                        p.beta,
                        p.gamma,
                        v.theory,
                        f"growing at {p.rate.rate:.3g} ± {p.rate.halfwidth:.2g} per step over "
                        f"[{p.rate.start}, {p.rate.stop}), predicted {v.predicted_rate:.3g}",
                    )
                )
    ratios = [(p.bound.ratio_all, p) for p in points if math.isfinite(p.bound.ratio_all)]
    worst = max(ratios, key=lambda rp: rp[0], default=None)
    window_ratios = [p.bound.ratio_window for p in points if math.isfinite(p.bound.ratio_window)]
    undetermined = [p for p in points if p.measured_class is MeasuredClass.UNDETERMINED]
    needs = [
        p.window.steps_needed
        for p in undetermined
        if p.reason.startswith("run too short") and p.window.steps_needed is not None
    ]
    return Headline(
        n_points=len(points),
        classes=tuple((c, classes.get(c, 0)) for c in MeasuredClass),
        paper=_tally(Theory.PAPER, [p.paper for p in points]),
        exact=_tally(Theory.EXACT, [p.exact for p in points]),
        closer=tuple(
            (name, closer[name]) for name in ("exact", "paper", "both", "neither") if closer[name]
        ),
        falsifications=tuple(falsified),
        worst_ratio=worst[0] if worst else math.nan,
        worst_ratio_window=max(window_ratios, default=math.nan),
        worst_status=worst[1].bound.status if worst else BoundStatus.UNKNOWN,
        worst_point=(worst[1].beta, worst[1].gamma) if worst else None,
        n_invalid=sum(p.bound.status is BoundStatus.INVALID for p in points),
        undetermined=tuple(Counter(_reason_kind(p.reason) for p in undetermined).items()),
        steps_needed=max(needs, default=None),
        closer_tol=settings.closer_tol,
        levels=_level_tally(points),
        paths=_path_tally(points),
    )


def _level_tally(points: Sequence[PointMeasurement]) -> LevelTally | None:
    leveled = [p.levels for p in points if p.levels is not None]
    if not leveled:
        return None
    finite = [p for p in points if p.levels is not None and math.isfinite(p.levels.check.ratio_all)]
    top = max(finite, key=lambda p: p.levels.check.ratio_all, default=None)  # type: ignore[union-attr]
    worst = top.levels if top is not None else None
    return LevelTally(
        k=max(lv.k for lv in leveled),
        worst_ratio=worst.check.ratio_all if worst else math.nan,
        worst_level=worst.worst if worst else 0,
        worst_pair=(worst.beta[worst.worst - 1], worst.gamma[worst.worst - 1]) if worst else None,
        worst_point=(top.beta, top.gamma) if top is not None else None,
        worst_status=worst.check.status if worst else BoundStatus.UNKNOWN,
        n_broken=sum(lv.broken for lv in leveled),
    )


def _path_tally(points: Sequence[PointMeasurement]) -> PathTally | None:
    paths = [p.path for p in points if p.path is not None]
    if not paths:
        return None
    entered = [f for f in paths if f.first_unstable_step is not None]
    steps = sorted(f.first_unstable_step for f in paths if f.first_unstable_step is not None)
    after = Counter(f.after_class for f in entered)
    order = [c.value for c in MeasuredClass] + [k for k in after if k not in set(MeasuredClass)]
    return PathTally(
        n_paths=len(paths),
        entered=tuple(steps),
        after=tuple((c, after[c]) for c in order if after.get(c)),
        n_no_bound=sum(f.bound_kind is BoundKind.NONE for f in paths),
    )
