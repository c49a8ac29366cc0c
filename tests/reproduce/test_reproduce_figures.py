"""Every registered figure's reduced form (--scale test) runs into its directory, and the
assessments' arithmetic is checked against independent computations."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stabcli.reproduce import plane, sweeps
from stabcli.reproduce.figures import FIGURES, Figure
from stabcli.reproduce.runner import run_figure
from stabcli.theory import curves, paper


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.name)
def test_every_figure_runs_at_test_scale(fig: Figure, tmp_path: Path) -> None:
    if not fig.available():
        pytest.skip(f"{fig.name}'s analysis is not in this checkout yet")
    notices: list[str] = []
    done = run_figure(fig, "test", tmp_path, device="cpu", notice=notices.append)
    where = tmp_path / fig.name
    record = json.loads((where / "assessment.json").read_text())
    assert record["figure"] == fig.name and record["scale"] == "test"
    assert record["held"] in (True, False, None) and record["measured"]
    assert record["verdict"] == done.record.verdict  # type: ignore[union-attr]
    page = (where / "figure.html").read_text()
    assert html.escape(record["claim"]) in page and html.escape(record["measured"]) in page
    for sub in record["subruns"]:
        assert (where / sub).is_dir()


def test_fig1_holds_and_a_sweep_figure_resumes_its_sub_run(tmp_path: Path) -> None:
    from stabcli.reproduce.figures import BY_NAME

    assert run_figure(BY_NAME["fig1"], "test", tmp_path).record.held is True  # type: ignore[union-attr]
    fig2 = BY_NAME["fig2"]
    run_figure(fig2, "test", tmp_path, device="cpu")
    points = tmp_path / "fig2" / "sweep" / "points.csv"
    before = points.stat().st_mtime_ns
    (tmp_path / "fig2" / "assessment.json").unlink()  # as if interrupted before the record
    notices: list[str] = []
    again = run_figure(fig2, "test", tmp_path, device="cpu", notice=notices.append)
    assert not again.reused and (tmp_path / "fig2" / "assessment.json").is_file()
    assert any("0 point(s) to train, 4 found finished" in line for line in notices)
    assert points.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "point", [(0.999, 0.9), (0.95, 0.9), (0.9, 0.5), (0.5, 0.3)], ids=lambda p: f"{p[0]}-{p[1]}"
)
def test_the_sampled_tangents_match_the_closed_form_slopes(point: tuple[float, float]) -> None:
    beta, gamma = point
    check = plane.plane_check(beta, gamma)
    c = float(paper.c_value(beta, gamma))
    level_slope = 2.0 / ((c + 1.0) * beta + 1.0) ** 2  # d/dβ of 2β/((c+1)β + 1)
    normal_slope = -2.0 * beta**2 / gamma**2  # docs/theory.md (2.7)
    angle = abs(math.degrees(math.atan(level_slope) - math.atan(normal_slope)))
    assert abs(check.angle_degrees - angle) < 1e-3
    assert abs(check.angle_degrees - 90.0) < plane.ANGLE_TOLERANCE
    assert max(check.level_miss, check.normal_miss) < plane.POINT_TOLERANCE


def test_the_normal_curve_leaves_b_plus_where_c_vanishes() -> None:
    check = plane.plane_check()
    b, g = check.crossing_paper
    assert abs(float(paper.c_value(b, g))) < 1e-9
    k = curves.normal_constant(0.999, 0.9)
    assert abs(g**3 + 2 * b**3 - k) < 1e-12
    b, g = check.crossing_exact
    assert abs(g * g - b) < 1e-9


@pytest.mark.parametrize("rate", [-0.01, 0.0, 0.004], ids=["falling", "flat", "rising"])
def test_step_slope_of_an_exponential_is_its_rate(rate: float) -> None:
    n = np.arange(300, dtype=float)
    size = 1e-3 * np.exp(rate * n)
    assert abs(sweeps.step_slope(n, size) - rate) < 1e-12


def _points(c: np.ndarray, rate: np.ndarray, cls: list[str], central: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "c_value": c,
            "measured_class": cls,
            "rate": rate,
            "central_slope": np.abs(c) / 2.0 * central,
            "exact_rate": np.where(c < 0, np.abs(c) / 2.0 * 0.9, 0.0),
        }
    )


@pytest.mark.parametrize(
    ("central", "held"), [(1.1, True), (0.9, True), (1.3, False), (0.7, False)],
    ids=["10%-above", "10%-below", "30%-above", "30%-below"],
)  # fmt: skip
def test_figure2_agreement_at_the_papers_step(central: float, held: bool) -> None:
    c = np.array([0.1, 0.05, -0.01, -0.02, -0.04])
    half = np.abs(c) / 2.0
    errors = (0.05, 0.1, 0.2)
    rate = np.concatenate([[0.0, 0.0], half[2:] * (1.0 + np.array(errors))])
    facts = sweeps.slope_facts(_points(c, rate, ["bounded"] * 2 + ["growing"] * 3, central), 500)
    assert facts.paper_error == pytest.approx(float(np.median(errors)), abs=1e-12)
    # against ρ_n = 0.9|C|/2: |(1+e) − 0.9|/0.9
    expect = float(np.median([abs(1 + e - 0.9) / 0.9 for e in errors]))
    assert facts.exact_error == pytest.approx(expect, abs=1e-12)
    assert facts.central_error == pytest.approx(abs(central - 1.0), abs=1e-12)
    assert sweeps.assess_slopes(facts).held is held


def test_figure2_growth_in_b_plus_is_not_held_and_no_b_minus_is_undetermined() -> None:
    c = np.array([0.1, -0.02])
    grows = sweeps.slope_facts(_points(c, np.array([0.05, 0.01]), ["growing", "growing"], 1.0), 500)
    assert grows.plus_growing == 1 and sweeps.assess_slopes(grows).held is False
    c = np.array([0.1, 0.2])
    plus = sweeps.slope_facts(_points(c, np.array([0.0, 0.0]), ["bounded", "bounded"], 1.0), 500)
    assert sweeps.assess_slopes(plus).held is None


def test_test_loss_facts_rank_c_against_the_early_loss() -> None:
    c = np.array([0.3, 0.2, 0.1, -0.05])
    points = pd.DataFrame(
        {"point_id": ["a", "b", "c", "d"], "c_value": c, "beta": [0.999, 0.99, 0.98, 0.96]}
    )
    rows = []
    for pid, early, late in (("a", 1.0, 0.8), ("b", 1.2, 0.81), ("c", 1.5, 0.82), ("d", 2.0, 2.5)):
        rows += [(pid, 100, early + 1), (pid, 300, early), (pid, 900, late)]
    evals = pd.DataFrame(rows, columns=["point_id", "step", "test_loss"])
    facts = sweeps.loss_facts(points, evals, 900)
    assert facts.early_step == 300 and facts.last_step == 900
    assert facts.rank_c_early == pytest.approx(-1.0)
    assert facts.plus_spread == pytest.approx((0.82 - 0.8) / 0.8)
    assert facts.minus_best == pytest.approx(2.0)
    assert sweeps.assess_normal_loss(facts).held is True
    assert sweeps.assess_level_loss(facts).held is True  # larger β, lower early loss


@pytest.mark.parametrize(
    ("slope", "loss", "held"),
    [(-0.01, 3.0, True), (0.002, 3.0, False), (-0.01, 1.0, False)],
    ids=["held", "still-growing", "generalizes-well"],
)
def test_figure13_needs_no_growth_and_a_worse_loss(slope: float, loss: float, held: bool) -> None:
    point = sweeps.AnnealPoint(0.95, 0.99, -0.05, slope, 0.01, 0.01, loss, 2.0)
    assert sweeps.assess_annealing([point], reference_loss=1.5).held is held


def test_mada_figure_keeps_its_sweeps_in_the_figure_directory_and_resumes(
    tmp_path: Path,
) -> None:
    """`reproduce mada-fig8` trains Adam's and MADA's grids into OUT/mada-fig8/{adam,mada},
    ordinary run directories that a second run reads back instead of training again."""
    from stabcli.reproduce.figures import BY_NAME

    fig = BY_NAME["mada-fig8"]
    run_figure(fig, "test", tmp_path, device="cpu")
    where = tmp_path / "mada-fig8"
    points = [where / name / "points.csv" for name in ("adam", "mada")]
    assert all(p.is_file() for p in points) and (where / "compare.html").is_file()
    before = [p.stat().st_mtime_ns for p in points]
    (where / "assessment.json").unlink()  # as if interrupted before the record
    again = run_figure(fig, "test", tmp_path, device="cpu")
    assert not again.reused and (where / "assessment.json").is_file()
    assert [p.stat().st_mtime_ns for p in points] == before
