"""The paper's Figure 5 (App. F): the max-update on the boundary B0, against the √n law.

The paper's eq. (5) grows like √n on B0 = {C = 0} (docs/theory.md (4.1)); App. F trained
11 points of B0 and saw bounded max-updates instead, and suspected numerical precision.
The exact theory says more (docs/theory.md §4): B0 lies inside the exact stable region,
with limit U_∞ = 1/sqrt(1−β) (4.3); √n growth without end happens only on γ² = β (4.2).

This module simulates Adam (numpy, float64, ε = 0) on gradient sequences at B0 points and
at the same β on γ² = β, and measures each trace's growth exponent with
:mod:`stabcli.measure.power` exactly as a sweep would (:func:`stabcli.measure.measure_points`):

- ``worst case``: g_j = q^j ξ_j with q = β/γ and ξ_j = 1 + 0.1·N(0, 1), close to the
  sequence that attains the exact bound at every step (docs/theory.md (3.4));
- ``noise``: g_j = ξ_j ~ N(0, 1), i.i.d. (no decay): gradients that do not conspire.

A geometric sequence is run in scaled variables, m̃_n = m_n/q^n and ṽ_n = v_n/q^{2n}:
m̃_n = (γ/q) m̃_{n−1} + (1−γ) ξ_n, ṽ_n = (β/q²) ṽ_{n−1} + (1−β) ξ_n², u_n = corr_n m̃_n/sqrt(ṽ_n)
(u_n is unchanged since m and sqrt(v) scale alike), so q^j never underflows.

Each trace's measured exponent is set beside two predictions over the same fit window:
½ (the paper's law on B0; on γ² = β the exact law (4.2)) and the least-squares log-log
slope of the exact bound U_n itself, which on B0 is ≈ ½ only while
n ≪ ((1+β)/(1−β))² = 1/(1 − γ²/β), and falls to 0 after (docs/theory.md (4.5)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stabcli.measure import measure_points
from stabcli.measure.fit import window_fits
from stabcli.measure.power import GrowthShape, PowerLaw
from stabcli.reproduce.assessment import Assessment, Scale, plan_for
from stabcli.theory import exact, paper
from stabcli.theory.update import bias_correction

CLAIM = (
    "App. F (Figure 5): eq. (5) suggests ‖u_n‖∞ may grow like √n on B0, yet at 11 points "
    "on B0 the max-update stayed bounded, as in B+; the paper suspects numerical precision."
)
SEQUENCES = ("worst case", "noise")
BOUNDARIES = ("paper", "exact")  # B0 = {C = 0}, and γ² = β
#: Relative size of the multiplicative noise on the worst-case sequence.
WORST_CASE_NOISE = 0.1
#: Coordinates per trace (‖u_n‖∞ is their maximum).
COORDINATES = 16


@dataclass(frozen=True)
class BoundaryTrace:
    """One simulated max-update trace and its measured growth."""

    boundary: str  # "paper" (B0) or "exact" (γ² = β)
    sequence: str  # "worst case" or "noise"
    beta: float  # β = torch beta2
    gamma: float  # γ = torch beta1, on the boundary
    max_update: np.ndarray  # (S,) ‖u_n‖∞
    power: PowerLaw  # measure.power's fit: exponent, interval, window, shape, √n
    bound_exponent: float  # log-log slope of the exact bound U_n over the same window
    bound_ratio: float  # max_n ‖u_n‖∞ / U_n: ≤ 1 up to rounding (docs/theory.md (3.3))
    tracking: float  # median of ‖u_n‖∞ / U_n over the fit window: 1 = follows the bound


@dataclass(frozen=True)
class BoundaryFigure:
    """Figure 5's data: traces on both boundaries with both theories' bounds."""

    steps: np.ndarray  # (S,) n
    betas: tuple[float, ...]  # (B,) the β of the points, each on both boundaries
    traces: tuple[BoundaryTrace, ...]  # every (boundary, β, sequence)
    paper_law: np.ndarray  # (B, S) eq. (5) on B0: corr_n · ½ sqrt((1−β)/β) · √n (4.1)
    exact_on_b0: np.ndarray  # (B, S) the exact bound U_n at the B0 point
    exact_limit_on_b0: np.ndarray  # (B,) U_∞ = 1/sqrt(1−β) (4.3)
    exact_law: np.ndarray  # (B, S) U_n on γ² = β: corr_n sqrt((1−γ)/(1+γ)) sqrt(n+1) (4.2)
    crossover: np.ndarray  # (B,) ((1+β)/(1−β))²: U_n on B0 stops following √n near here
    assessment: Assessment

    def select(self, boundary: str, sequence: str) -> tuple[BoundaryTrace, ...]:
        """The traces of one boundary and sequence, in the order of ``betas``."""
        return tuple(t for t in self.traces if t.boundary == boundary and t.sequence == sequence)


@dataclass(frozen=True)
class _Plan:
    steps: int
    betas: tuple[float, ...]


def b0_betas(count: int = 11, lo: float = 0.9, hi: float = 0.999) -> tuple[float, ...]:
    """``count`` values of β from ``lo`` to ``hi``, evenly spaced in log(1 − β).

    The paper does not say which part of B0 its 11 points span (docs/theory.md §10); this
    spacing gives β = 0.9 .. 0.999 equal weight per decade of memory 1/(1 − β).
    """
    gaps = np.geomspace(1.0 - lo, 1.0 - hi, count)
    return tuple(float(round(1.0 - g, 12)) for g in gaps)


_PLANS: dict[Scale, _Plan] = {
    # long enough for γ² = β's window at β = 0.999 (its √n law settles near n = 13,000)
    "cpu": _Plan(steps=20_000, betas=b0_betas()),
    "test": _Plan(steps=4_000, betas=(0.9, 0.95, 0.99)),
}


def simulate_max_update(
    beta: np.ndarray,  # (R,) β per trace
    gamma: np.ndarray,  # (R,) γ per trace
    ratio: np.ndarray,  # (R,) q: g_j = q^j ξ_j
    draw: Callable[[], np.ndarray],  # () -> (R, K): ξ of the next step
    steps: int,
) -> np.ndarray:
    """(R, S) ‖u_n‖∞ of numpy Adam (ε = 0) on g_j = q^j ξ_j, run in scaled variables."""
    r = len(beta)
    keep_m = (gamma / ratio)[:, None]  # (R, 1)
    keep_v = (beta / ratio**2)[:, None]
    m = v = np.zeros((r, 1))
    n = np.arange(steps)
    corr = np.stack([bias_correction(b, g, n) for b, g in zip(beta, gamma, strict=True)])
    out = np.empty((r, steps))
    for j in range(steps):
        xi = draw()
        m = keep_m * m + (1.0 - gamma[:, None]) * xi
        v = keep_v * v + (1.0 - beta[:, None]) * xi * xi
        out[:, j] = corr[:, j] * np.max(np.abs(m) / np.sqrt(v), axis=1)
    return out


def boundary_figure(scale: str = "cpu", *, seed: int = 0) -> BoundaryFigure:
    """Simulate every (boundary, β, sequence), measure it, and assess App. F (module doc)."""
    plan = plan_for(_PLANS, scale, "Figure 5's simulation")
    s = plan.steps
    n = np.arange(s)
    rows = [
        (where, b, seq, paper.sqrt_n_law(b, where).gamma)
        for where in BOUNDARIES
        for b in plan.betas
        for seq in SEQUENCES
    ]
    beta = np.array([r[1] for r in rows])
    gamma = np.array([r[3] for r in rows])
    worst = np.array([r[2] == "worst case" for r in rows])
    ratio = np.where(worst, beta / gamma, 1.0)
    rng = np.random.default_rng(seed)

    def draw() -> np.ndarray:
        z = rng.normal(size=(len(rows), COORDINATES))  # (R, K)
        return np.where(worst[:, None], 1.0 + WORST_CASE_NOISE * z, z)

    u = simulate_max_update(beta, gamma, ratio, draw, s)  # (R, S)
    measured = measure_points(beta, gamma, u, dtype="float64").points
    bounds = np.stack([exact.exact_bound(b, g, n) for b, g in zip(beta, gamma, strict=True)])
    bound_fit = _log_log_slopes(bounds, [p.power for p in measured])
    traces = tuple(
        BoundaryTrace(
            boundary=where,
            sequence=seq,
            beta=b,
            gamma=g,
            max_update=u[i],
            power=measured[i].power,
            bound_exponent=float(bound_fit[i]),
            bound_ratio=float(np.max(u[i] / bounds[i])),
            tracking=_median_ratio(u[i], bounds[i], measured[i].power),
        )
        for i, (where, b, seq, g) in enumerate(rows)
    )
    betas = plan.betas
    on_b0 = [(b, float(paper.boundary_gamma(b))) for b in betas]
    figure = BoundaryFigure(
        steps=n,
        betas=betas,
        traces=traces,
        paper_law=np.stack([paper.b0_bound(b, n) for b in betas]),
        exact_on_b0=np.stack([exact.exact_bound(b, g, n) for b, g in on_b0]),
        exact_limit_on_b0=np.array([exact.exact_limit_bound(b, g) for b, g in on_b0]),
        exact_law=np.stack([paper.sqrt_n_law(b, "exact").bound(n) for b in betas]),
        crossover=np.array([((1.0 + b) / (1.0 - b)) ** 2 for b in betas]),
        assessment=Assessment(CLAIM, "", None),
    )
    return _assessed(figure)


def _log_log_slopes(bounds: np.ndarray, powers: list[PowerLaw]) -> np.ndarray:
    """(R,) least-squares slope of log U_n against log(n + 1) over each trace's fit window."""
    steps = np.arange(bounds.shape[1], dtype=float)
    starts = np.array([[p.start] for p in powers])
    stops = np.array([[p.stop] for p in powers])
    fits = window_fits(np.log(bounds), np.log(steps + 1.0), starts, stops)
    return fits.slope[:, 0]


def _median_ratio(u: np.ndarray, bound: np.ndarray, power: PowerLaw) -> float:
    window = slice(power.start, power.stop)
    return float(np.median(u[window] / bound[window])) if power.stop > power.start else np.nan


def _assessed(fig: BoundaryFigure) -> BoundaryFigure:
    import dataclasses

    b0_noise = fig.select("paper", "noise")
    b0_worst = fig.select("paper", "worst case")
    exact_worst = fig.select("exact", "worst case")
    bounded = sum(t.power.shape is GrowthShape.BOUNDED for t in b0_noise)
    undetermined = sum(t.power.shape is GrowthShape.UNDETERMINED for t in b0_noise)
    noise_sqrt_n = sum(t.power.sqrt_n for t in b0_noise)
    sqrt_n = sum(t.power.sqrt_n for t in exact_worst)
    worst = b0_worst + exact_worst
    gap = max(abs(t.power.exponent - t.bound_exponent) for t in worst)
    worst_b0 = ", ".join(f"{t.beta:g}: {t.power.exponent:.2f}" for t in b0_worst)
    over = max(t.bound_ratio for t in fig.traces) - 1.0
    measured = (
        f"{len(fig.steps)} steps of float64 Adam (no precision issue), {len(fig.betas)} "
        f"points per boundary, β = {min(fig.betas):g} .. {max(fig.betas):g}. On B0, i.i.d. "
        f"gradients: {bounded} of {len(b0_noise)} traces bounded, {undetermined} "
        f"undetermined, {noise_sqrt_n} √n. On B0, worst-case sequences follow the exact bound "
        f"(log-log exponents by β, {worst_b0}; within {gap:.1e} of U_n's over the same "
        f"windows, at {min(t.tracking for t in worst):.2f}-{max(t.tracking for t in worst):.2f} "
        f"of U_n): √n-like only while n ≪ ((1+β)/(1−β))², then bounded by 1/sqrt(1−β) "
        f"(docs/theory.md (4.3), (4.5)). On γ² = β the worst case grows as √n at {sqrt_n} "
        f"of {len(exact_worst)} points. No trace exceeds U_n (largest excess {over:.1e})."
    )
    if undetermined:
        held: bool | None = None
    else:
        held = bounded == len(b0_noise)
    return dataclasses.replace(fig, assessment=Assessment(CLAIM, measured, held))
