"""The k-study's report: what the figure shows (best accuracy per (k, strategy) against a
brute-force search, k = 1 first on every line), its traces (one per strategy, k = 1
highlighted), and `stabcli report` on a study directory (terminal, HTML, CSV, partial)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stabcli.cli import main
from stabcli.probe import load_preset
from stabcli.report.kstudy import _get_kstudy_info, kstudy_table, plot_kstudy
from stabcli.store.kstudy import GRID_COLUMNS, KStudyData, SubRunEntry, SubRunStatus, read_kstudy
from stabcli.sweep.kstudy import KStudyRequest, SubRunDone, run_kstudy

STRATEGIES = ["inverse-exp", "exp", "scaled", "naive"]


def _study(ks: list[int], strategies: list[str], n_grid: int, seed: int) -> KStudyData:
    """A study read back, made up: random accuracies and losses on an n_grid-point grid."""
    rng = np.random.default_rng(seed)
    keys = [(1, "adam")] if 1 in ks else []
    keys += [(k, s) for k in ks if k > 1 for s in strategies]
    rows = []
    for k, s in keys:
        for g in range(n_grid):
            rows.append(
                {
                    "k": k,
                    "strategy": s,
                    "subrun": f"k{k}-{s}",
                    "point_id": f"{k}-{s}-{g}",
                    "lr": 1e-3 * (g + 1),
                    "weight_decay": 0.0,
                    "best_test_loss": float(rng.random() * 2),
                    "best_test_accuracy": float(rng.random()),
                }
            )
    points = pd.DataFrame(rows, columns=list(GRID_COLUMNS))
    statuses = tuple(
        SubRunStatus(SubRunEntry.of(k, s), "complete", n_grid, n_grid) for k, s in keys
    )
    manifest = {"settings": {"strategies": strategies}, "adam_label": "Adam"}
    return KStudyData(Path("study"), manifest, statuses, points)


CASES = [
    ([1, 2, 3], ["inverse-exp", "naive"], 2, 0),
    ([1, 2, 3, 4, 5], STRATEGIES, 6, 1),
    ([2, 4], ["exp", "scaled"], 3, 2),
    ([1], STRATEGIES, 4, 3),
]
IDS = ["k1-3-two", "k1-5-all-four", "no-adam", "adam-only"]


@pytest.mark.parametrize(("ks", "strategies", "n_grid", "seed"), CASES, ids=IDS)
def test_each_line_holds_the_best_accuracy_of_every_k_with_adam_first(
    ks: list[int], strategies: list[str], n_grid: int, seed: int
) -> None:
    data = _study(ks, strategies, n_grid, seed)
    info = _get_kstudy_info(data)
    points = data.points
    best = points.groupby(["k", "strategy"])["best_test_accuracy"].max()  # brute force
    if 1 in ks:
        assert info.adam is not None and info.adam.k == 1
        assert info.adam.accuracy == best[(1, "adam")]
    else:
        assert info.adam is None
    drawn = [line.strategy for line in info.lines]
    assert drawn == ([s for s in strategies] if max(ks) > 1 else [])
    for line in info.lines:
        expected_k = sorted(ks)
        assert line.k.tolist() == expected_k
        expected = [best[(k, "adam" if k == 1 else line.strategy)] for k in expected_k]
        np.testing.assert_array_equal(line.accuracy, expected)
        for p in line.points:  # the winner's own lr and loss come with it
            row = points[
                (points["k"] == p.k)
                & (points["best_test_accuracy"] == p.accuracy)
                & (points["strategy"] == ("adam" if p.k == 1 else line.strategy))
            ].iloc[0]
            assert (p.lr, p.loss) == (row["lr"], row["best_test_loss"])


@pytest.mark.parametrize(("ks", "strategies", "n_grid", "seed"), CASES, ids=IDS)
def test_the_figure_has_one_trace_per_strategy_and_k1_highlighted(
    ks: list[int], strategies: list[str], n_grid: int, seed: int
) -> None:
    fig = plot_kstudy(_get_kstudy_info(_study(ks, strategies, n_grid, seed)))
    names = [t.name for t in fig.data]
    lines = [t for t in fig.data if t.name in strategies]
    assert len(lines) == (len(strategies) if max(ks) > 1 else 0)
    assert all(t.mode == "lines+markers" for t in lines)
    adam = [t for t in fig.data if t.name == "k = 1: Adam"]
    if 1 in ks:
        assert len(adam) == 1 and list(adam[0].x) == [1]
        assert adam[0].marker.symbol == "star" and adam[0].marker.size > 10
        assert len(fig.layout.shapes) == 1  # the dotted line at Adam's accuracy
        assert len(names) == len(lines) + 1
    else:
        assert adam == [] and len(fig.layout.shapes) == 0
    assert fig.layout.xaxis.title.text.startswith("k")
    assert fig.layout.yaxis.title.text == "best test accuracy"
    assert "Fig. 4" in fig.layout.title.text


def test_a_study_without_accuracy_draws_an_empty_figure() -> None:
    data = _study([1, 2], ["exp"], 2, 0)
    empty = KStudyData(data.path, data.manifest, data.subruns, data.points.iloc[:0])
    fig = plot_kstudy(_get_kstudy_info(empty))
    assert len(fig.data) == 0 and fig.layout.annotations[0].text.startswith("no finished")
    nan = data.points.assign(best_test_accuracy=math.nan)
    fig = plot_kstudy(_get_kstudy_info(KStudyData(data.path, data.manifest, data.subruns, nan)))
    assert len(fig.data) == 0


def test_the_table_names_k1_by_its_optimizer() -> None:
    data = _study([1, 2], ["exp"], 2, 0)
    table = kstudy_table(data)
    assert table["strategy"].tolist() == ["Adam", "exp"]
    adamw = KStudyData(
        data.path, {**data.manifest, "adam_label": "AdamW"}, data.subruns, data.points
    )
    assert kstudy_table(adamw)["strategy"].tolist() == ["AdamW", "exp"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) study: k = 1, 2, one strategy, two learning rates."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("kstudy") / "study"
    preset = load_preset("cnn-synthetic").with_overrides(
        n_layer=1, n_embd=4, image_size=8, n_samples=400, batch_size=16, eval_batches=2
    )
    request = KStudyRequest(
        preset, ks=(1, 2), strategies=("exp",), lrs=(1e-3, 3e-3), steps=24, out=out, device="cpu"
    )
    run_kstudy(request)
    return out


def test_report_on_a_study_prints_its_table(
    study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(study)]) == 0
    out = capsys.readouterr().out
    assert "k1-adam" in out and "k2-exp" in out and "Adam" in out


def test_report_html_of_a_study_draws_the_figure(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "k.html"
    assert main(["report", str(study), "--html", "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    page = target.read_text(encoding="utf-8")
    assert "fig-kstudy" in page and "k = 1: Adam" in page and "id='partial'" not in page
    assert "torch betas=(0.9, 0.999)" in page


def test_report_csv_of_a_study_is_its_best_of_grid(
    study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(study), "--csv", "-"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    data = read_kstudy(study)
    for k, strategy in ((1, "adam"), (2, "exp")):
        mine = data.points[(data.points["k"] == k) & (data.points["strategy"] == strategy)]
        row = table[table["k"] == k].iloc[0]
        assert row["best test accuracy"] == pytest.approx(
            mine["best_test_accuracy"].max(), rel=1e-12, abs=0
        )


def test_report_on_a_partial_study_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    preset = load_preset("cnn-synthetic").with_overrides(
        n_layer=1, n_embd=4, image_size=8, n_samples=400, batch_size=16, eval_batches=2
    )
    request = KStudyRequest(preset, ks=(1, 2), strategies=("exp",), steps=12, out=out, device="cpu")

    def stop(done: SubRunDone) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_kstudy(request, on_subrun=stop)
    assert main(["report", str(out), "--html"]) == 0
    captured = capsys.readouterr()
    assert "partial study: 1 of 2 sub-run(s) not complete: k2-exp (missing, 0/1)" in captured.err
    assert "id='partial'" in (out / "report.html").read_text(encoding="utf-8")
