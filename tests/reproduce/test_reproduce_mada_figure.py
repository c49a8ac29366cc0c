"""MADA's Figure 8 in shape at test scale: two sweeps of one grid, read back independently.

The final losses are recomputed here from the run directories' traces with pandas (mean
training loss over the last LAST_STEPS steps of each point, matched by (beta1, beta2)), and
the spreads and wins with numpy.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stabcli.errors import StabcliError
from stabcli.report.compare import LAST_STEPS
from stabcli.reproduce import mada_figure as mf
from stabcli.reproduce.mada_figure import MadaFigure, mada_figure

PLAN = mf.PLANS["test"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[MadaFigure, Path]:
    out = tmp_path_factory.mktemp("mada")
    return mada_figure("test", out=out), out


def _final_losses(run: Path) -> dict[tuple[float, float], float]:
    """(beta1, beta2) -> mean loss over the last LAST_STEPS steps, from the files on disk."""
    points = pd.read_csv(run / "points.csv")
    traces = pd.read_parquet(run / "traces")
    out = {}
    for row in points.itertuples():
        trace = traces[traces.point_id == row.point_id].sort_values("step")
        assert len(trace) == PLAN.overrides["steps"]
        out[(round(row.torch_beta1, 12), round(row.torch_beta2, 12))] = float(
            trace.loss.to_numpy()[-LAST_STEPS:].mean()
        )
    return out


def test_grid_is_the_plans_in_pytorch_order(saved) -> None:
    figure, _ = saved
    expected = set(itertools.product(PLAN.beta1, PLAN.beta2))
    got = {(round(a, 12), round(b, 12)) for a, b in zip(figure.beta1, figure.beta2, strict=True)}
    assert got == expected and figure.n_points == len(expected)


@pytest.mark.parametrize("optimizer", ["adam", "mada"])
def test_final_losses_match_the_run_directories(saved, optimizer: str) -> None:
    figure, out = saved
    recomputed = _final_losses(out / optimizer)
    losses = getattr(figure, optimizer)
    for b1, b2, loss in zip(figure.beta1, figure.beta2, losses, strict=True):
        assert loss == pytest.approx(recomputed[(round(b1, 12), round(b2, 12))], rel=1e-12)


def test_each_run_trained_its_own_optimizer(saved) -> None:
    """MADA's traces record moving betas and coefficients from each initial point; Adam's
    run records none (a sweep that ignored the optimizer would fail here)."""
    _, out = saved
    mada = pd.read_parquet(out / "mada" / "traces")
    adam = pd.read_parquet(out / "adam" / "traces")
    assert "beta" not in adam.columns
    points = pd.read_csv(out / "mada" / "points.csv").set_index("point_id")
    for point_id, trace in mada.groupby("point_id"):
        trace = trace.sort_values("step")
        assert trace.gamma.iloc[0] == pytest.approx(points.loc[point_id, "torch_beta1"])
        assert trace.gamma.iloc[-1] != trace.gamma.iloc[0]  # learned, however little
        assert trace.beta.iloc[-1] != trace.beta.iloc[0]


def test_spread_wins_and_verdict_recomputed(saved) -> None:
    figure, _ = saved
    adam, mada = figure.adam, figure.mada
    assert figure.adam_spread == pytest.approx(np.nanmax(adam) - np.nanmin(adam), rel=1e-12)
    assert figure.mada_spread == pytest.approx(np.nanmax(mada) - np.nanmin(mada), rel=1e-12)
    wins = sum(1 for a, m in zip(adam, mada, strict=True) if m < a - mf.TIE)
    assert figure.mada_wins == wins
    held = 2 * wins > figure.n_points and figure.mada_spread < figure.adam_spread
    assert figure.assessment.held is held
    assert figure.assessment.claim == mf.CLAIM and "Figure 8" in mf.CLAIM
    assert f"{figure.adam_spread:.3f} for Adam" in figure.assessment.measured


def test_rerun_resumes_without_training(saved) -> None:
    figure, out = saved
    files = sorted((out / "adam" / "traces").iterdir()) + sorted(
        (out / "mada" / "traces").iterdir()
    )
    stamps = [os.stat(f).st_mtime_ns for f in files]
    again = mada_figure("test", out=out)
    assert [os.stat(f).st_mtime_ns for f in files] == stamps  # nothing trained or rewritten
    np.testing.assert_array_equal(again.adam, figure.adam)
    np.testing.assert_array_equal(again.mada, figure.mada)
    assert (out / "compare.html").is_file()


def test_spread_needs_two_finite_losses() -> None:
    assert np.isnan(mf._spread(np.array([1.0, np.nan])))
    assert mf._spread(np.array([1.0, np.nan, 3.5, 2.0])) == 2.5


def test_paper_scale_is_planned_and_unknown_scales_refused() -> None:
    paper = mf.PLANS["paper"]
    assert paper.preset == "nanogpt-shakespeare" and paper.overrides["steps"] == 5000
    with pytest.raises(StabcliError, match="unknown scale"):
        mada_figure("huge")
