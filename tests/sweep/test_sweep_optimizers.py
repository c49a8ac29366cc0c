"""`stabcli sweep --optimizer kadam|hyperadam|mada` end to end: each point is checked
against the bound its optimizer obeys, recomputed here from the run directory's traces.

- k-Adam: level i obeys the exact bound of its own (β_i, γ_i) whatever feeds it, and the
  update is level k's (docs/theory.md (6.3)); nothing bounds it by the base pair the
  strategy started from, whose bound the update passes at these points (the check that
  used to call every k-Adam point falsified).
- HyperAdam: the update obeys the path bound along the (β_n, γ_n) it recorded, with the
  path-product bias correction of its kernel (docs/theory.md §5, (5.4)).
- MADA: with every coefficient learned it leaves the Adam-AVGrad-Lion face at once, where
  no bound of that form holds (docs/theory.md (7.5)): "no bound", never a falsification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stabcli.cli import main
from stabcli.measure import rounding_tolerance
from stabcli.theory.exact import exact_bound
from stabcli.theory.path import first_unstable_step, path_bound

#: float32 probes: a ratio may pass 1 by the rounding of the update's arithmetic.
SLACK = 1.0 + rounding_tolerance("float32")
HELD = ("within the bound", "within the bound up to rounding")
#: base pairs (β, γ): PyTorch's default, B+ but exactly unstable, near (1, 1) in B−, and one
#: whose inverse-exp levels are exactly unstable
KADAM_POINTS = [(0.999, 0.9), (0.9, 0.96), (0.95, 0.99), (0.5, 0.99)]
#: starting pairs of learned betas, some of which drift into γ² > β at a high hyper-lr
LEARNED_POINTS = [(0.95, 0.97), (0.9, 0.94), (0.999, 0.9), (0.6, 0.77)]


def _sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], points: list
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    out = tmp_path / "run"
    given = [a for b, g in points for a in ("--point", f"{b},{g}")]
    code = main(["sweep", "--preset", "mlp-synthetic", *args, *given, "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    points_csv = pd.read_csv(out / "points.csv")
    traces = pd.read_parquet(out / "traces").sort_values(["point_id", "step"])
    return payload["summary"], points_csv.set_index("point_id"), traces


@pytest.mark.parametrize("k", [2, 3], ids=["k2", "k3"])
def test_kadam_sweep_checks_every_level_against_its_own_bound(
    k: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--optimizer", "kadam", "--k", str(k), "--strategy", "inverse-exp", "--steps", "120"]
    summary, points, traces = _sweep(tmp_path, capsys, args, KADAM_POINTS)
    assert summary["falsifications"] == []
    assert summary["levels"]["k"] == k and summary["levels"]["n_broken"] == 0
    passed_base = 0
    for pid, trace in traces.groupby("point_id"):
        row = points.loc[pid]
        n = trace["step"].to_numpy()
        own = np.asarray(exact_bound(row.level_beta, row.level_gamma, n))  # every level's pair
        for i in range(1, k + 1):
            level = trace[f"max_update_l{i}"].to_numpy()
            ok = np.isfinite(level)
            ratio = np.max(level[ok] / own[ok])
            assert ratio <= SLACK, (pid, i, ratio)
            assert row[f"level_ratio_l{i}"] == pytest.approx(ratio, rel=1e-12)
        u = trace["max_update"].to_numpy() - trace["wd_term"].to_numpy()
        ok = np.isfinite(u)
        assert row.bound_ratio_max == pytest.approx(np.max(u[ok] / own[ok]), rel=1e-12)
        assert row.bound_check in HELD and row.level_check in HELD
        base = np.asarray(exact_bound(row.beta, row.gamma, n))
        passed_base += bool(np.max(u[ok] / base[ok]) > SLACK)
    assert passed_base >= 1  # the base pair's bound is not the update's: it was passed here


def test_hyperadam_sweep_checks_the_path_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--optimizer", "hyperadam", "--hyper-lr", "1.0", "--steps", "200"]
    summary, points, traces = _sweep(tmp_path, capsys, args, LEARNED_POINTS)
    assert not [f for f in summary["falsifications"] if "bound" in f["what"]]
    entered = 0
    for pid, trace in traces.groupby("point_id"):
        row = points.loc[pid]
        u = trace["max_update"].to_numpy()
        ok = np.isfinite(u)
        beta, gamma = trace["beta"].to_numpy()[ok], trace["gamma"].to_numpy()[ok]
        bound = path_bound(beta, gamma) + trace["wd_term"].to_numpy()[ok]
        assert row.bound_kind == "path" and row.bound_check in HELD
        assert row.bound_ratio_max == pytest.approx(np.max(u[ok] / bound), rel=1e-12)
        assert row.bound_ratio_max <= SLACK
        first = first_unstable_step(beta, gamma)
        if first is None:
            assert pd.isna(row.first_unstable_step) and pd.isna(row.unstable_class)
        else:
            assert row.first_unstable_step == first and row.unstable_class
            entered += 1
        assert (row.final_beta, row.final_gamma) == (beta[-1], gamma[-1])
    assert entered >= 1  # a learned path crossed into γ² > β
    assert summary["paths"]["entered"] == entered
    assert summary["paths"]["n_paths"] == len(LEARNED_POINTS)


def test_mada_off_its_face_says_no_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--optimizer", "mada", "--hyper-lr", "1.0", "--steps", "150"]
    summary, points, traces = _sweep(tmp_path, capsys, args, LEARNED_POINTS[:2])
    assert summary["falsifications"] == []
    assert (points["bound_kind"] == "none").all()
    assert (points["bound_check"] == "no bound off the Adam-AVGrad-Lion face").all()
    for pid, trace in traces.groupby("point_id"):
        off = (trace["beta3"] != 0) | (trace["c"] != 1)  # Adan's and Yogi's coefficients moved
        assert points.loc[pid, "off_face_step"] == trace["step"].to_numpy()[off.to_numpy()][0]
    assert summary["paths"]["n_no_bound"] == 2
    assert any("Adam-AVGrad-Lion face" in line for line in summary["lines"])
