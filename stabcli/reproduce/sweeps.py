"""The paper's sweep figures (arXiv 2411.05746 §3.2, App. N, O), each run through the sweep
library into sub-run directories beneath ``OUT/<figure>/`` (resumable, locked, written
atomically) and assessed from what those run directories hold.

- Figure 2 (``slopes_figure``): ‖u_n‖∞ and its slope along the normal curve through
  (0.999, 0.9); the slope read by the paper's central difference at n = 500 (App. H) and by
  the measurement module's valid window (docs/theory.md §9), both against |C|/2 (eq. (5),
  docs/theory.md (2.5)) and the exact ρ_n (docs/theory.md §3).
- Figures 3, 11, 12 (``test_loss_*_figure``): test loss along a normal or level curve with
  warm-up and cosine decay (App. H).
- Figure 13 (``annealing_figure``): App. O's η_n = η0·exp(−n|C|/2) (eq. (15),
  docs/theory.md (2.8)) at B− points against the same points at a constant η.

Sizes by scale (:data:`PLANS`): "paper" is App. H's (docs/theory.md §10); "cpu" trains
shakespeare-small, minutes on a 2-core CPU; "test" trains tiny-char for seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stabcli.reproduce.assessment import Assessment, Scale
from stabcli.reproduce.figures import FigureContext, FigureOutcome

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from stabcli.report.load import RunData
    from stabcli.report.page import Section
    from stabcli.sweep.regions import SweepRegion

#: The paper's point: PyTorch's default betas (0.9, 0.999) as (β, γ).
DEFAULT_POINT = (0.999, 0.9)
#: Figure 2's claim holds when the median relative gap between the slope at the paper's step
#: and |C|/2 over the B− points is at most this ("near-perfect agreement", §3.2).
RATE_TOLERANCE = 0.25
#: Growth per step below which App. O's annealed step counts as not growing (the sweep's
#: default growth_tol, docs/theory.md §9).
STEP_GROWTH_TOL = 1e-3


@dataclass(frozen=True)
class CurvePlan:
    """One sweep of a figure: the preset, its overrides and the curve's points."""

    preset: str
    kind: str  # "normal-curve" or "level-curve"
    through: tuple[float, float]  # (β, γ)
    n_points: int
    span: tuple[float, float] | None = None  # β range; None: the whole curve in the square
    overrides: dict[str, Any] = field(default_factory=dict)  # of the preset
    slope_at: int | None = None  # App. H's central difference; None: the sweep's default

    def describe(self, steps: int) -> str:
        where = "its section in the unit square" if self.span is None else f"β in {self.span}"
        return (
            f"{self.preset}, {self.n_points} points on the {self.kind.replace('-', ' ')} "
            f"through {self.through}, over {where}, {steps} steps"
        )


_TINY = {"steps": 120}
_TINY_EVAL = {"steps": 120, "eval_every": 20, "eval_batches": 2}
_TINY_COSINE = {**_TINY_EVAL, "schedule": "cosine", "warmup_steps": 10, "min_lr": 1e-4}
#: Figures 3, 11, 12 at CPU scale: App. H's schedule (warm-up, cosine to 10⁻⁴, test loss
#: every 100 steps) over 900 steps of shakespeare-small.
_CPU_COSINE = {"steps": 900, "schedule": "cosine", "warmup_steps": 50, "min_lr": 1e-4}
#: Figure 2's section at CPU scale: β in [0.953, 0.975] puts about half of the points in
#: B− (the curve leaves B+ at β = 0.96192, docs/theory.md (2.7)).
_FIG2_CPU_SPAN = (0.953, 0.975)
#: Figure 2's section at paper scale (not stated by the paper, docs/theory.md §10): from
#: near γ = 1 to the point itself.
_FIG2_PAPER_SPAN = (0.9516, 0.999)
#: App. O's B− points: the start of Figure 2's section, all with C < 0.
_B_MINUS_SPAN = (0.953, 0.96)

PLANS: dict[str, dict[Scale, CurvePlan]] = {
    "fig2": {
        "test": CurvePlan("tiny-char", "normal-curve", DEFAULT_POINT, 4, _FIG2_CPU_SPAN, _TINY, 60),
        "cpu": CurvePlan(
            "shakespeare-small", "normal-curve", DEFAULT_POINT, 10, _FIG2_CPU_SPAN,
            {"steps": 800, "eval_every": 0, "eval_batches": 0}, 500,
        ),
        "paper": CurvePlan(
            "nanogpt-shakespeare", "normal-curve", DEFAULT_POINT, 64, _FIG2_PAPER_SPAN, {}, 500
        ),
    },
    "fig3": {
        "test": CurvePlan("tiny-char", "normal-curve", DEFAULT_POINT, 4, None, _TINY_COSINE),
        "cpu": CurvePlan("shakespeare-small", "normal-curve", DEFAULT_POINT, 8, None, _CPU_COSINE),
        "paper": CurvePlan("nanogpt-shakespeare-gen", "normal-curve", DEFAULT_POINT, 128),
    },
    "fig11": {
        "test": CurvePlan("tiny-char", "normal-curve", (0.95, 0.9), 4, None, _TINY_COSINE),
        "cpu": CurvePlan("shakespeare-small", "normal-curve", (0.95, 0.9), 8, None, _CPU_COSINE),
        "paper": CurvePlan("nanogpt-shakespeare-gen", "normal-curve", (0.95, 0.9), 128),
    },
    "fig12": {
        "test": CurvePlan("tiny-char", "level-curve", DEFAULT_POINT, 4, None, _TINY_COSINE),
        "cpu": CurvePlan("shakespeare-small", "level-curve", DEFAULT_POINT, 8, None, _CPU_COSINE),
        "paper": CurvePlan("nanogpt-shakespeare-gen", "level-curve", DEFAULT_POINT, 128),
    },
    # App. O: Figure 2's setup with test loss recorded; B− points plus (0.999, 0.9)
    "fig13": {
        "test": CurvePlan("tiny-char", "normal-curve", DEFAULT_POINT, 2, _B_MINUS_SPAN, _TINY_EVAL),
        "cpu": CurvePlan(
            "shakespeare-small", "normal-curve", DEFAULT_POINT, 3, _B_MINUS_SPAN, {"steps": 600}
        ),
        "paper": CurvePlan(
            "nanogpt-shakespeare", "normal-curve", DEFAULT_POINT, 16, _B_MINUS_SPAN,
            {"eval_every": 100, "eval_batches": 200},
        ),
    },
}  # fmt: skip


def _region(plan: CurvePlan, extra: Sequence[tuple[float, float]] = ()) -> SweepRegion:
    from stabcli.sweep.regions import curve_region, points_region
    from stabcli.theory.domain import HyperPoint

    region = curve_region(plan.kind, HyperPoint(*plan.through), plan.n_points, plan.span)
    if not extra:
        return region
    points = list(region.points) + [HyperPoint(b, g) for b, g in extra]
    return points_region(points, source=f"{region.description}, and {list(extra)}")


def _sweep(
    ctx: FigureContext, name: str, plan: CurvePlan, region: SweepRegion, **changes: Any
) -> RunData:
    """Run (or resume) one sub-run ``OUT/<figure>/<name>``, write its report.html, read it."""
    from stabcli.probe import load_preset
    from stabcli.report.load import load_run
    from stabcli.report.page import write_html
    from stabcli.sweep.rows import MeasureSetup
    from stabcli.sweep.run import SweepRequest, SweepStart, plan_sweep, run_sweep

    preset = load_preset(plan.preset).with_overrides(**{**plan.overrides, **changes})
    request = SweepRequest(
        preset=preset,
        region=region,
        measure=MeasureSetup.for_run(preset.train.steps, plan.slope_at),
        out=ctx.out / name,
        device=ctx.device,
        overwrite=ctx.overwrite,
    )
    swept = plan_sweep(request)

    def started(start: SweepStart) -> None:
        ctx.notice(
            f"{ctx.out.name}/{name}: {start.n_todo} point(s) to train, {start.n_done} found "
            f"finished, {start.steps} steps"
        )

    run_sweep(swept, on_start=started, on_notice=ctx.notice)
    run = load_run(swept.out)
    write_html(run, swept.out / "report.html")
    return run


def _sections(run: RunData, keys: Sequence[str], prefix: str = "") -> tuple[Section, ...]:
    """The sweep report's own figures with these keys (report.page.build_figures)."""
    import dataclasses

    from stabcli.report.page import build_figures

    chosen = [s for s in build_figures(run) if s.key in keys]
    return tuple(
        dataclasses.replace(s, key=f"{prefix}{s.key}", heading=f"{prefix}{s.heading}")
        for s in chosen
    )


def _median(values: Sequence[float]) -> float:
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return math.nan
    mid = len(finite) // 2
    return finite[mid] if len(finite) % 2 else 0.5 * (finite[mid - 1] + finite[mid])


# ---------------------------------------------------------------------------- Figure 2

SLOPES_CLAIM = (
    "arXiv 2411.05746 §3.2, Figure 2, eq. (5): along the normal curve through (0.999, 0.9), "
    "‖u_n‖∞ stays bounded in B+ (C > 0) and grows exponentially in B− (C < 0), with "
    "d log‖u_n‖∞/dn at n = 500 in near-perfect agreement with |C|/2 (docs/theory.md (2.5))."
)


@dataclass(frozen=True)
class SlopeFacts:
    """Figure 2's numbers, read from the sweep's points.csv."""

    n_points: int
    n_plus: int  # C > 0
    n_minus: int  # C < 0
    plus_growing: int  # B+ points measured growing (a falsification of both theories)
    minus_growing: int  # B− points measured growing
    minus_not_reached: int  # B− points bounded: "predicted, bound not reached"
    undetermined: int
    paper_error: float  # median |rate − |C|/2| / (|C|/2) over the B− points seen growing
    exact_error: float  # median |rate − ρ_n| / ρ_n over the same points
    central_error: float  # median |slope at n − |C|/2| / (|C|/2) over the B− points
    slope_at: int


def slope_facts(points: pd.DataFrame, slope_at: int) -> SlopeFacts:
    """Figure 2's split and agreement figures from the points' rows (docs/theory.md §9)."""
    c = points["c_value"].to_numpy(float)
    cls = points["measured_class"].astype(str).to_numpy()
    rate = points["rate"].to_numpy(float)
    central = points["central_slope"].to_numpy(float)
    exact_rate = points["exact_rate"].to_numpy(float)
    plus, minus = c > 0, c < 0
    growing = cls == "growing"
    grow = minus & growing
    half = abs(c) / 2.0
    paper_gap = [abs(r - h) / h for r, h in zip(rate[grow], half[grow], strict=True)]
    exact_gap = [abs(r - e) / e for r, e in zip(rate[grow], exact_rate[grow], strict=True) if e > 0]
    central_gap = [abs(s - h) / h for s, h in zip(central[minus], half[minus], strict=True)]
    return SlopeFacts(
        n_points=len(points),
        n_plus=int(plus.sum()),
        n_minus=int(minus.sum()),
        plus_growing=int((plus & growing).sum()),
        minus_growing=int(grow.sum()),
        minus_not_reached=int((minus & (cls == "bounded")).sum()),
        undetermined=int((cls == "undetermined").sum()),
        paper_error=_median(paper_gap),
        exact_error=_median(exact_gap),
        central_error=_median(central_gap),
        slope_at=slope_at,
    )


def assess_slopes(f: SlopeFacts) -> Assessment:
    """Figure 2's claim against its facts, read as the paper reads it: held when no B+
    point is measured growing and the central slope at n = ``slope_at`` (App. H) of the
    B− points is |C|/2 within :data:`RATE_TOLERANCE` (median); undetermined without B−
    points. The valid-window rates (docs/theory.md §9) are reported beside it."""
    measured = (
        f"{f.n_points} points: {f.n_plus} in B+, {f.n_minus} in B−. B+: {f.plus_growing} "
        f"measured growing. The paper's central slope at n = {f.slope_at} is off |C|/2 by "
        f"{f.central_error:.1%} (median over B−; tolerance {RATE_TOLERANCE:.0%}). Over the "
        f"valid windows: {f.minus_growing} B− points growing, {f.minus_not_reached} bounded "
        f"(bound not reached), {f.undetermined} points undetermined in all"
    )
    if f.minus_growing:
        measured += (
            f"; the growing ones' rates are off |C|/2 by {f.paper_error:.1%} and off the "
            f"exact ρ_n by {f.exact_error:.1%} (medians)"
        )
    measured += "."
    if f.n_minus == 0 or not math.isfinite(f.central_error):
        return Assessment(SLOPES_CLAIM, measured, None)
    held = bool(f.plus_growing == 0 and f.central_error <= RATE_TOLERANCE)
    return Assessment(SLOPES_CLAIM, measured, held)


def slopes_figure(ctx: FigureContext) -> FigureOutcome:
    """Figure 2 (module docstring)."""
    from stabcli.report.reproduce import Panel, Series, panel_section

    plan = PLANS["fig2"][ctx.scale]
    run = _sweep(ctx, "sweep", plan, _region(plan))
    slope_at = run.slope_at or 0
    facts = slope_facts(run.points, slope_at)
    p = run.points.sort_values("c_value")
    c = p["c_value"].to_numpy(float)
    panel = Panel(
        "Slope of log‖u_n‖∞ against C (Figure 2b)",
        "C(β, γ)",
        "d log‖u_n‖∞ / dn",
        (
            Series(
                f"central slope at n = {slope_at}",
                c,
                p["central_slope"].to_numpy(float),
                markers=True,
            ),
            Series("valid-window rate", c, p["rate"].to_numpy(float), markers=True),
            Series("|C|/2 in B− (paper)", c, (abs(c) / 2.0) * (c < 0), "dash"),
            Series("ρ_n (exact)", c, p["exact_rate"].to_numpy(float), "dot"),
        ),
    )
    sections = (
        panel_section(
            "slopes",
            "The slope at the paper's step and over the valid window",
            "Each point's slope of log‖u_n‖∞: App. H's central difference at the step named, "
            "and the least-squares rate over its valid window (docs/theory.md §9), against "
            "the paper's |C|/2 and the exact ρ_n.",
            panel,
        ),
        *_sections(run, ("plane", "updates", "rates")),
    )
    steps = int(run.config["settings"]["preset"]["train"]["steps"])
    return FigureOutcome(assess_slopes(facts), sections, ("sweep",), plan.describe(steps))


# ------------------------------------------------------------------ Figures 3, 11, 12

NORMAL_LOSS_CLAIM = (
    "arXiv 2411.05746 §3.2, Figure 3 (App. N, Figure 11 for (0.95, 0.9)): along a normal "
    "curve, points with larger C reach a low test loss sooner (best test loss by a third of "
    "the run falls as C rises in B+), all B+ points end near the same test loss, and test "
    "loss rises once the curve enters B−."
)
LEVEL_LOSS_CLAIM = (
    "arXiv 2411.05746 App. N, Figure 12: along the level curve through (0.999, 0.9), points "
    "nearer the origin (smaller β) generalize more slowly: best test loss by a third of the "
    "run falls as β rises."
)


@dataclass(frozen=True)
class LossFacts:
    """Test-loss figures' numbers, read from a sweep's evals."""

    early_step: int  # a third of the run, as the paper's 1000 of 3000 (App. H)
    last_step: int
    n_plus: int
    n_minus: int
    rank_c_early: float  # Spearman ρ(C, best test loss by early_step) over B+ points
    rank_beta_early: float  # Spearman ρ(β, best test loss by early_step) over all points
    plus_spread: float  # (max − min)/min of the best test loss by the end over B+ points
    plus_median: float  # median of that best test loss over B+ points
    minus_best: float  # lowest best test loss by the end over B− points (nan: none)


def best_losses(evals: pd.DataFrame, step: int) -> pd.Series:
    """Each point's lowest test loss at steps ≤ ``step`` (non-finite losses dropped)."""
    import numpy as np

    finite = evals[np.isfinite(evals["test_loss"].to_numpy(float)) & (evals["step"] <= step)]
    return finite.groupby("point_id")["test_loss"].min()


def loss_facts(points: pd.DataFrame, evals: pd.DataFrame, steps: int) -> LossFacts:
    """Best test losses by a third of the run and by its end, and how they order."""
    import numpy as np

    from stabcli.reproduce.memory_paper import spearman

    recorded = sorted(int(s) for s in evals["step"].unique()) if not evals.empty else []
    early_target = steps // 3
    early = max((s for s in recorded if s <= early_target), default=early_target)
    last = recorded[-1] if recorded else steps
    ids = points["point_id"].astype(str)
    best_early = best_losses(evals, early).reindex(ids).to_numpy(float)
    best_last = best_losses(evals, last).reindex(ids).to_numpy(float)
    c = points["c_value"].to_numpy(float)
    beta = points["beta"].to_numpy(float)
    plus, minus = c > 0, c < 0
    final_plus = best_last[plus & np.isfinite(best_last)]
    spread = (
        float((final_plus.max() - final_plus.min()) / final_plus.min())
        if len(final_plus)
        else math.nan
    )
    final_minus = best_last[minus]
    return LossFacts(
        early_step=early,
        last_step=last,
        n_plus=int(plus.sum()),
        n_minus=int(minus.sum()),
        rank_c_early=spearman(c[plus], best_early[plus]),
        rank_beta_early=spearman(beta, best_early),
        plus_spread=spread,
        plus_median=_median(list(final_plus)),
        minus_best=float(np.nanmin(final_minus)) if np.isfinite(final_minus).any() else math.nan,
    )


def assess_normal_loss(f: LossFacts) -> Assessment:
    """Held when the early best test loss falls as C rises over B+ (Spearman ρ < 0) and, if
    the curve has B− points, every one ends worse than the B+ median; undetermined with
    fewer than 3 B+ points (no rank correlation)."""
    minus = (
        f"; B−'s best is {f.minus_best:.4f}, against B+'s median {f.plus_median:.4f}"
        if f.n_minus
        else "; no point in B−"
    )
    measured = (
        f"{f.n_plus} points in B+, {f.n_minus} in B−. Spearman ρ(C, best test loss by step "
        f"{f.early_step}) over B+ = {f.rank_c_early:.3f} (negative: larger C is ahead). By "
        f"step {f.last_step}, B+'s best test losses spread by {f.plus_spread:.1%} of their "
        f"lowest{minus}."
    )
    if not math.isfinite(f.rank_c_early):
        return Assessment(NORMAL_LOSS_CLAIM, measured, None)
    b_minus_worse = not math.isfinite(f.minus_best) or f.minus_best > f.plus_median
    held = bool(f.rank_c_early < 0 and (f.n_minus == 0 or b_minus_worse))
    return Assessment(NORMAL_LOSS_CLAIM, measured, held)


def assess_level_loss(f: LossFacts) -> Assessment:
    """Held when the early best test loss falls as β rises along the level curve."""
    measured = (
        f"{f.n_plus + f.n_minus} points on the level curve. Spearman ρ(β, best test loss by "
        f"step {f.early_step}) = {f.rank_beta_early:.3f} (negative: larger β is ahead). By "
        f"step {f.last_step}, the best test losses spread by {f.plus_spread:.1%} of their "
        f"lowest (median {f.plus_median:.4f})."
    )
    if not math.isfinite(f.rank_beta_early):
        return Assessment(LEVEL_LOSS_CLAIM, measured, None)
    return Assessment(LEVEL_LOSS_CLAIM, measured, bool(f.rank_beta_early < 0))


def _test_loss(ctx: FigureContext, key: str, level: bool) -> FigureOutcome:
    plan = PLANS[key][ctx.scale]
    run = _sweep(ctx, "sweep", plan, _region(plan))
    steps = int(run.config["settings"]["preset"]["train"]["steps"])
    facts = loss_facts(run.points, run.evals, steps)
    assessment = assess_level_loss(facts) if level else assess_normal_loss(facts)
    sections = _sections(run, ("testloss", "plane", "updates"))
    return FigureOutcome(assessment, sections, ("sweep",), plan.describe(steps))


def test_loss_normal_figure(ctx: FigureContext) -> FigureOutcome:
    """Figure 3: test loss along the normal curve through (0.999, 0.9)."""
    return _test_loss(ctx, "fig3", level=False)


def test_loss_normal_095_figure(ctx: FigureContext) -> FigureOutcome:
    """Figure 11 (App. N): test loss along the normal curve through (0.95, 0.9)."""
    return _test_loss(ctx, "fig11", level=False)


def test_loss_level_figure(ctx: FigureContext) -> FigureOutcome:
    """Figure 12 (App. N): test loss along the level curve through (0.999, 0.9)."""
    return _test_loss(ctx, "fig12", level=True)


# ---------------------------------------------------------------------------- Figure 13

ANNEAL_CLAIM = (
    "arXiv 2411.05746 App. O, Figure 13, eq. (15): in B−, η_n = η0·exp(−n|C|/2) cancels the "
    "exponential growth of the step ‖θ_{n+1} − θ_n‖∞ = η_n‖u_n‖∞, but is too strong: the "
    "steps become very small and the runs do not generalize well (worse test loss than B+)."
)


@dataclass(frozen=True)
class AnnealPoint:
    """One B− point of Figure 13, annealed and at a constant η."""

    beta: float
    gamma: float
    c_value: float
    step_slope_anneal: float  # least-squares slope of log(η_n‖u_n‖∞) over the last third
    step_slope_constant: float
    step_ratio: float  # median over the last 10 steps of annealed / constant step size
    best_loss_anneal: float  # lowest test loss over the run
    best_loss_constant: float


def step_slope(steps: np.ndarray, step_size: np.ndarray) -> float:
    """Least-squares slope of log step size against n over the last third of the run."""
    import numpy as np

    keep = np.isfinite(step_size) & (step_size > 0)
    n, s = steps[keep], step_size[keep]
    tail = n >= n.max() - (n.max() - n.min()) / 3.0 if len(n) else n
    if tail.sum() < 3:
        return math.nan
    return float(np.polyfit(n[tail], np.log(s[tail]), 1)[0])


def _step_sizes(traces: pd.DataFrame, point_id: str) -> tuple[np.ndarray, np.ndarray]:
    rows = traces[traces["point_id"] == point_id].sort_values("step")
    size = rows["lr"].to_numpy(float) * rows["max_update"].to_numpy(float)  # η_n ‖u_n‖∞
    return rows["step"].to_numpy(float), size


def anneal_points(constant: RunData, anneal: RunData) -> tuple[AnnealPoint, ...]:
    """Figure 13's B− points, matched by (β, γ) between the two runs."""
    import numpy as np

    out = []
    loss_c = best_losses(constant.evals, 10**12) if not constant.evals.empty else None
    loss_a = best_losses(anneal.evals, 10**12) if not anneal.evals.empty else None
    by_pair = {(r.beta, r.gamma): str(r.point_id) for r in constant.points.itertuples()}
    for row in anneal.points.itertuples():
        if not row.c_value < 0:
            continue
        pid_a, pid_c = str(row.point_id), by_pair.get((row.beta, row.gamma))
        if pid_c is None:
            continue
        n_a, s_a = _step_sizes(anneal.traces, pid_a)
        n_c, s_c = _step_sizes(constant.traces, pid_c)
        tail = min(10, len(s_a), len(s_c))
        ratio = float(np.median(s_a[-tail:] / s_c[-tail:])) if tail else math.nan
        out.append(
            AnnealPoint(
                beta=float(row.beta),
                gamma=float(row.gamma),
                c_value=float(row.c_value),
                step_slope_anneal=step_slope(n_a, s_a),
                step_slope_constant=step_slope(n_c, s_c),
                step_ratio=ratio,
                best_loss_anneal=float(loss_a.get(pid_a, math.nan))
                if loss_a is not None
                else math.nan,
                best_loss_constant=float(loss_c.get(pid_c, math.nan))
                if loss_c is not None
                else math.nan,
            )
        )
    return tuple(out)


def assess_annealing(points: Sequence[AnnealPoint], reference_loss: float) -> Assessment:
    """Held when every annealed B− point's step stops growing (slope ≤ STEP_GROWTH_TOL)
    and ends with a worse best test loss than the B+ reference (0.999, 0.9)."""
    if not points:
        return Assessment(ANNEAL_CLAIM, "no B− point in both runs", None)
    rows = "; ".join(
        f"({p.beta:.5g}, {p.gamma:.5g}) C = {p.c_value:.4f}: log-step slope "
        f"{p.step_slope_constant:+.4f} → {p.step_slope_anneal:+.4f} per step, final step ×"
        f"{p.step_ratio:.3g}, best test loss {p.best_loss_constant:.4f} → {p.best_loss_anneal:.4f}"
        for p in points
    )
    measured = (
        f"constant η → annealed, over the last third of the run: {rows}. B+ reference "
        f"(0.999, 0.9): best test loss {reference_loss:.4f}. Growth tolerance "
        f"{STEP_GROWTH_TOL:g} per step."
    )
    slopes = [p.step_slope_anneal for p in points]
    losses = [p.best_loss_anneal for p in points]
    if not all(math.isfinite(v) for v in slopes) or not math.isfinite(reference_loss):
        return Assessment(ANNEAL_CLAIM, measured, None)
    no_growth = all(s <= STEP_GROWTH_TOL for s in slopes)
    worse = all(math.isfinite(v) and v > reference_loss for v in losses)
    return Assessment(ANNEAL_CLAIM, measured, bool(no_growth and worse))


def annealing_figure(ctx: FigureContext) -> FigureOutcome:
    """Figure 13: the same B− points (and the B+ reference) at a constant η and annealed."""
    from stabcli.report.reproduce import Panel, Series, panel_section

    plan = PLANS["fig13"][ctx.scale]
    region = _region(plan, extra=(DEFAULT_POINT,))
    constant = _sweep(ctx, "constant", plan, region, schedule="constant")
    anneal = _sweep(ctx, "anneal", plan, region, schedule="anneal")
    points = anneal_points(constant, anneal)
    ref = anneal.points[
        (anneal.points["beta"] == DEFAULT_POINT[0]) & (anneal.points["gamma"] == DEFAULT_POINT[1])
    ]
    ref_loss = (
        float(best_losses(anneal.evals, 10**12).get(str(ref["point_id"].iloc[0]), math.nan))
        if len(ref) and not anneal.evals.empty
        else math.nan
    )
    series = []
    for run, dash, label in ((constant, "solid", "constant η"), (anneal, "dash", "annealed")):
        for row in run.points.itertuples():
            n, size = _step_sizes(run.traces, str(row.point_id))
            series.append(Series(f"({row.beta:.5g}, {row.gamma:.5g}) {label}", n, size, dash))
    sections = (
        panel_section(
            "steps",
            "Step size η_n‖u_n‖∞, constant η and annealed (eq. (15))",
            "‖θ_{n+1} − θ_n‖∞ per point on a log axis: solid at a constant η, dashed with "
            "App. O's annealing (the B+ reference is the same in both).",
            Panel("Step size against n", "n", "η_n‖u_n‖∞", tuple(series), log_y=True),
            560,
        ),
        *_sections(anneal, ("testloss",), prefix="annealed: "),
        *_sections(constant, ("testloss",), prefix="constant η: "),
    )
    steps = int(anneal.config["settings"]["preset"]["train"]["steps"])
    setup = f"{plan.describe(steps)}, and (0.999, 0.9); constant η and eq. (15)"
    return FigureOutcome(
        assess_annealing(points, ref_loss), sections, ("constant", "anneal"), setup
    )
