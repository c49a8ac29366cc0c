"""The paper's Figure 1 (§3.1, App. E): the (β, γ) plane, its level curves C = c and the
normal curves γ³ + 2β³ = k that cross them at right angles (docs/theory.md (2.6), (2.7)).

Pure theory, checked numerically: the two curves through (0.999, 0.9) are sampled by arc
length (:func:`stabcli.theory.curves.sample_by_arc_length`, as a sweep samples them), and
their tangents at the point are read from the samples by central differences, independent
of the closed-form slopes dγ/dβ = 2/((c+1)β + 1)² (level) and −2β²/γ² (normal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stabcli.reproduce.assessment import Assessment
from stabcli.reproduce.figures import FigureContext, FigureOutcome

CLAIM = (
    "arXiv 2411.05746 §3.1, Figure 1, App. E: the normal curves γ³ + 2β³ = k are "
    "perpendicular to the level curves C(β, γ) = 2/γ − 1/β − 1 = c; B+ = {C > 0} is the "
    "bounded-update region, and PyTorch's default (β, γ) = (0.999, 0.9) lies in it."
)
#: The point both curves pass through: PyTorch's default betas (0.9, 0.999).
THROUGH = (0.999, 0.9)
#: Half-width in β of the sampled pieces of curve around the point.
HALF_SPAN = 1e-4
#: Samples per piece (odd: the middle one is the point itself).
SAMPLES = 201
#: How far from 90° the sampled tangents may be, in degrees, and how far the curves may
#: pass from the point.
ANGLE_TOLERANCE = 1e-3
POINT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PlaneCheck:
    """Figure 1's numbers."""

    beta: float  # β = torch beta2
    gamma: float  # γ = torch beta1
    c_value: float  # C(β, γ)
    level_miss: float  # distance from the point to the sampled level curve (a polyline)
    normal_miss: float  # the same for the normal curve
    angle_degrees: float  # between the sampled tangents at the point
    crossing_paper: tuple[float, float]  # where the normal curve meets C = 0
    crossing_exact: tuple[float, float]  # where it meets γ² = β


def _tangent_and_miss(
    beta: list[float], gamma: list[float], at: tuple[float, float]
) -> tuple[tuple[float, float], float]:
    """Unit tangent at the sample nearest ``at`` (central difference), and the distance
    from ``at`` to the sampled polyline (its two segments beside that sample)."""
    dist = [math.hypot(b - at[0], g - at[1]) for b, g in zip(beta, gamma, strict=True)]
    i = min(range(1, len(dist) - 1), key=dist.__getitem__)
    db, dg = beta[i + 1] - beta[i - 1], gamma[i + 1] - gamma[i - 1]
    norm = math.hypot(db, dg)
    miss = min(
        _to_segment(at, (beta[j], gamma[j]), (beta[j + 1], gamma[j + 1])) for j in (i - 1, i)
    )
    return (db / norm, dg / norm), miss


def _to_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance from p to the segment ab."""
    ab = (b[0] - a[0], b[1] - a[1])
    t = ((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1]) / (ab[0] ** 2 + ab[1] ** 2)
    t = min(max(t, 0.0), 1.0)
    return math.hypot(a[0] + t * ab[0] - p[0], a[1] + t * ab[1] - p[1])


def _crossing(k: float, boundary: str) -> tuple[float, float]:
    """Where the normal curve γ³ + 2β³ = k meets C = 0 (paper) or γ² = β (exact), by
    bisection in β over its section inside the unit square."""
    from stabcli.theory import curves, exact, paper

    def gap(beta: float) -> float:
        gamma = float(curves.normal_gamma(beta, k))
        target = paper.boundary_gamma(beta) if boundary == "paper" else exact.boundary_gamma(beta)
        return gamma - float(target)

    lo, hi = float(curves.normal_beta(1.0, k)) + 1e-12, 1.0 - 1e-12
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    beta = 0.5 * (lo + hi)
    return beta, float(curves.normal_gamma(beta, k))


def plane_check(beta: float = THROUGH[0], gamma: float = THROUGH[1]) -> PlaneCheck:
    """Sample both curves through (β, γ) and measure what Figure 1 shows (module doc)."""
    from stabcli.theory import curves, paper

    span = (beta - HALF_SPAN, min(beta + HALF_SPAN, 1.0 - 1e-12))
    pieces = []
    for build in (curves.level_section, curves.normal_section):
        section = build(beta, gamma, span)
        points = curves.sample_by_arc_length(section, SAMPLES)
        pieces.append(
            _tangent_and_miss([p.beta for p in points], [p.gamma for p in points], (beta, gamma))
        )
    (t_level, level_miss), (t_normal, normal_miss) = pieces
    cosine = abs(t_level[0] * t_normal[0] + t_level[1] * t_normal[1])
    k = curves.normal_constant(beta, gamma)
    return PlaneCheck(
        beta=beta,
        gamma=gamma,
        c_value=float(paper.c_value(beta, gamma)),
        level_miss=level_miss,
        normal_miss=normal_miss,
        angle_degrees=math.degrees(math.acos(min(cosine, 1.0))),
        crossing_paper=_crossing(k, "paper"),
        crossing_exact=_crossing(k, "exact"),
    )


def assess(check: PlaneCheck) -> Assessment:
    """Figure 1's claim against the sampled curves."""
    off = abs(check.angle_degrees - 90.0)
    through = max(check.level_miss, check.normal_miss)
    cp, ce = check.crossing_paper, check.crossing_exact
    measured = (
        f"At (β, γ) = ({check.beta:g}, {check.gamma:g}), C = {check.c_value:.6f} > 0 (B+). "
        f"The level curve C = {check.c_value:.4f} and the normal curve k = "
        f"{2 * check.beta**3 + check.gamma**3:.6f}, each sampled by arc length, pass within "
        f"{through:.1e} of the point, and their sampled tangents meet at "
        f"{check.angle_degrees:.6f}° (tolerance {ANGLE_TOLERANCE:g}°). The normal curve leaves "
        f"B+ at (β, γ) = ({cp[0]:.6f}, {cp[1]:.6f}) and the exact stable region γ² < β at "
        f"({ce[0]:.6f}, {ce[1]:.6f})."
    )
    held = check.c_value > 0 and off <= ANGLE_TOLERANCE and through <= POINT_TOLERANCE
    return Assessment(CLAIM, measured, held)


def plane_figure(ctx: FigureContext) -> FigureOutcome:
    """Figure 1: the plane (the sweep report's plane figure with the point marked), the two
    curves near the point, and the numbers (every scale is the same: pure theory)."""
    import numpy as np
    import pandas as pd

    from stabcli.report.page import Section
    from stabcli.report.plane import _get_plane_info, plot_plane
    from stabcli.report.reproduce import Panel, Series, panel_section
    from stabcli.theory import curves

    check = plane_check()
    b, g = check.beta, check.gamma
    point = pd.DataFrame({"beta": [b], "gamma": [g]})
    plane = plot_plane(_get_plane_info(point, through=(b, g)))
    near = np.linspace(b - 0.004, min(b + 0.0009, 0.999999), 200)
    level = curves.level_gamma(near, check.c_value)
    normal = curves.normal_gamma(near, curves.normal_constant(b, g))
    panel = Panel(
        "Near (0.999, 0.9)",
        "β (torch beta2)",
        "γ (torch beta1)",
        (
            Series(f"level curve C = {check.c_value:.4f}", near, level),
            Series("normal curve through (0.999, 0.9)", near, normal, "dash"),
            Series("(0.999, 0.9)", np.array([b]), np.array([g]), markers=True),
        ),
    )
    sections = (
        Section(
            "plane",
            "The (β, γ) plane",
            "Level curves of C (grey), normal curves (the paper's through (0.999, 0.9) and "
            "(0.95, 0.9), and others), B+ shaded, C = 0 and γ² = β; the point (0.999, 0.9).",
            plane,
            640,
        ),
        panel_section(
            "near",
            "The two curves through (0.999, 0.9)",
            "Equal axis units are not enforced: the right angle is checked numerically "
            "(measured above), not by eye.",
            panel,
        ),
    )
    setup = f"theory only: curves sampled by arc length, {SAMPLES} samples over β ± {HALF_SPAN:g}"
    return FigureOutcome(assess(check), sections, setup=setup)
