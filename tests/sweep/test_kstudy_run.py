"""Running a k-study: its directory, resuming after an interruption without training
finished sub-runs or points again, refusing another study's directory, and per-point
bests read back against the evals files themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from kstudy_helpers import tiny_request

import stabcli.probe
from stabcli.errors import StabcliError
from stabcli.probe import load_preset
from stabcli.store.kstudy import KSTUDY, read_kstudy
from stabcli.sweep.kstudy import KStudyRequest, SubRunDone, plan_kstudy, run_kstudy

SUBRUNS = ["k1-adam", "k2-inverse-exp", "k2-naive"]


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the points every run_batch call trains (the executor's unit of work)."""
    counts: list[int] = []
    real = stabcli.probe.run_batch

    def counting(setup, points, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts.append(len(points))
        return real(setup, points, *args, **kwargs)

    monkeypatch.setattr(stabcli.probe, "run_batch", counting)
    return counts


def _files(path: Path) -> dict[str, int]:
    """Every file under ``path`` with its modification time (ns)."""
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}


def test_a_study_writes_its_manifest_and_one_run_per_subrun(
    tmp_path: Path, trained: list[int]
) -> None:
    out = tmp_path / "study"
    result = run_kstudy(tiny_request(out))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == SUBRUNS
    manifest = json.loads((out / KSTUDY).read_text())
    assert manifest["kind"] == "kstudy" and manifest["settings"]["ks"] == [1, 2]
    assert [s["dir"] for s in manifest["subruns"]] == SUBRUNS
    for name in SUBRUNS:
        state = json.loads((out / name / "state.json").read_text())
        assert state["status"] == "complete" and len(state["planned"]) == 2
    assert sum(trained) == 6 and result.n_run == 6 and result.n_reused == 0
    assert [(b.k, b.strategy) for b in result.best] == [
        (1, "adam"),
        (2, "inverse-exp"),
        (2, "naive"),
    ]
    assert result.best[0].label == "Adam"


def test_per_point_bests_are_those_of_the_evals_files(tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = run_kstudy(tiny_request(out, weight_decays=(0.0, 1e-2)))
    rows = []
    for name in SUBRUNS:  # read straight from the files, without stabcli's readers
        points = pd.read_csv(out / name / "points.csv")
        evals = pd.read_parquet(out / name / "evals")
        for row in points.itertuples():
            mine = evals[evals["point_id"] == row.point_id]
            assert len(mine) == 9  # n = 0, 3, ..., 24: every 75 of 600 steps, scaled to 24
            rows.append(
                (
                    name,
                    row.lr,
                    row.weight_decay,
                    mine["test_loss"].min(),
                    mine["test_accuracy"].max(),
                )
            )
    expected = pd.DataFrame(
        rows, columns=["subrun", "lr", "weight_decay", "best_test_loss", "best_test_accuracy"]
    )
    got = result.points[list(expected.columns)]
    key = ["subrun", "lr", "weight_decay"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        expected.sort_values(key).reset_index(drop=True),
        check_exact=False,
        rtol=1e-12,
        atol=0.0,
    )
    assert len(got) == 3 * 2 * 2


def test_an_interrupted_study_resumes_without_training_finished_subruns(
    tmp_path: Path, trained: list[int]
) -> None:
    out = tmp_path / "study"

    def stop_after_first(done: SubRunDone) -> None:
        if done.index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_kstudy(tiny_request(out), on_subrun=stop_after_first)
    assert sum(trained) == 2  # k = 1's two points, then stopped
    assert not (out / "k2-inverse-exp").exists()
    first = _files(out / "k1-adam")
    time.sleep(0.01)
    trained.clear()
    result = run_kstudy(tiny_request(out))
    assert sum(trained) == 4  # the two k = 2 sub-runs only
    assert _files(out / "k1-adam") == first  # not even reopened for writing
    assert [(s.n_run, s.n_reused) for s in result.subruns] == [(0, 2), (2, 0), (2, 0)]
    trained.clear()
    again = run_kstudy(tiny_request(out))  # all finished: nothing trains
    assert trained == [] and again.n_run == 0 and again.n_reused == 6
    assert again.best == result.best


def test_a_study_interrupted_inside_a_subrun_keeps_its_finished_points(
    tmp_path: Path, trained: list[int]
) -> None:
    out = tmp_path / "study"
    done = {"point_steps": 0}

    def stop_in_second_point(point_steps: int) -> None:
        done["point_steps"] += point_steps
        if done["point_steps"] > 24:  # one point per batch: k = 1's 2nd point trains now
            raise KeyboardInterrupt

    request = tiny_request(out, points_per_batch=1)
    with pytest.raises(KeyboardInterrupt):
        run_kstudy(request, on_progress=stop_in_second_point)
    state = json.loads((out / "k1-adam" / "state.json").read_text())
    assert state["status"] == "interrupted"
    assert len(pd.read_csv(out / "k1-adam" / "points.csv")) == 1
    trained.clear()
    result = run_kstudy(request)
    assert trained == [1] * 5  # the point interrupted, then the four of k = 2
    assert result.n_run == 5 and result.n_reused == 1


def test_another_study_in_the_same_directory_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "study"
    run_kstudy(tiny_request(out, ks=(1,)))
    before = _files(out)
    others = ({"ks": (1, 2)}, {"ks": (1,), "lrs": (1e-3,)}, {"ks": (1,), "steps": 30})
    for changes in others:
        with pytest.raises(StabcliError) as err:
            run_kstudy(tiny_request(out, **changes))  # type: ignore[arg-type]
        message = str(err.value)
        assert "\n" not in message and "different k-study" in message
        assert _files(out) == before


def test_a_directory_that_is_not_a_study_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StabcliError, match="not a k-study directory"):
        run_kstudy(tiny_request(out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # nothing touched


def test_without_out_the_same_study_is_found_and_resumed(
    tmp_path: Path, trained: list[int]
) -> None:
    request = tiny_request(None, ks=(1,), runs_root=tmp_path / "runs")
    first = run_kstudy(request)
    assert first.path.parent == tmp_path / "runs" and first.path.name.startswith("kstudy-")
    trained.clear()
    second = run_kstudy(tiny_request(None, ks=(1,), runs_root=tmp_path / "runs"))
    assert second.path == first.path and trained == []
    other = plan_kstudy(tiny_request(None, ks=(1,), lrs=(1e-3,), runs_root=tmp_path / "runs"))
    assert other.out != first.path


def test_a_partial_study_reads_back_as_partial(tmp_path: Path) -> None:
    out = tmp_path / "study"

    def stop(done: SubRunDone) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_kstudy(tiny_request(out), on_subrun=stop)
    data = read_kstudy(out)
    assert data.is_partial
    assert [s.status for s in data.subruns] == ["complete", "missing", "missing"]
    assert len(data.points) == 2


@pytest.mark.slow
def test_kstudy_end_to_end_on_cnn_synthetic(tmp_path: Path) -> None:
    """The paper's k-study in shape on the embedded CNN preset: k = 1..3, two strategies,
    two learning rates, a short App. H schedule; every (k, strategy) learns something."""
    request = KStudyRequest(
        load_preset("cnn-synthetic"),
        ks=(1, 2, 3),
        strategies=("inverse-exp", "naive"),
        lrs=(1e-3, 3e-3),
        steps=60,
        out=tmp_path / "study",
        device="cpu",
    )
    result = run_kstudy(request)
    assert [(b.k, b.strategy) for b in result.best] == [
        (1, "adam"),
        (2, "inverse-exp"),
        (2, "naive"),
        (3, "inverse-exp"),
        (3, "naive"),
    ]
    assert len(result.points) == 10 and result.points["best_test_accuracy"].notna().all()
    for best in result.best:
        assert best.lr in (1e-3, 3e-3) and best.weight_decay == 0.0
        assert best.best_test_accuracy > 0.1  # better than chance on 10 classes
    assert not read_kstudy(tmp_path / "study").is_partial


def _replace_with(target: Path, source: Path) -> None:
    import shutil

    shutil.rmtree(target)
    shutil.copytree(source, target)


@pytest.mark.parametrize("foreign", ["other-optimizer", "other-settings"])
def test_a_subrun_folder_holding_another_run_is_left_out_and_refused(
    tmp_path: Path, trained: list[int], foreign: str
) -> None:
    """A sub-run folder replaced by another run (say `stabcli sweep --out study/k1-adam
    --overwrite`): the study's table leaves it out and says so, where it showed that run's
    losses as Adam's, and re-running the study refuses in one line that names no
    --overwrite (kstudy has none) and trains nothing."""
    out = tmp_path / "study"
    run_kstudy(tiny_request(out, ks=(1, 2), strategies=("naive",), weight_decays=(0.0, 0.1)))
    if foreign == "other-optimizer":  # this study's own k = 2 run, filed as k = 1
        _replace_with(out / "k1-adam", out / "k2-naive")
    else:  # k = 1 of a study with other settings
        other = tmp_path / "other"
        run_kstudy(tiny_request(other, ks=(1,), steps=30))
        _replace_with(out / "k1-adam", other / "k1-adam")
    data = read_kstudy(out)
    assert data.is_partial
    statuses = {s.entry.name: s for s in data.subruns}
    assert statuses["k1-adam"].status.startswith("holds another")
    assert statuses["k2-naive"].complete  # the study's own sub-runs still read back
    assert set(data.points["subrun"]) == {"k2-naive"}
    trained.clear()
    with pytest.raises(StabcliError) as err:
        run_kstudy(tiny_request(out, ks=(1, 2), strategies=("naive",), weight_decays=(0.0, 0.1)))
    message = str(err.value)
    assert "k1-adam" in message and "move it out of the study" in message
    assert "overwrite" not in message and "\n" not in message
    assert trained == []
