"""The run directory: atomic commits, reading back, resuming, refusing foreign runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stabcli.errors import StabcliError
from stabcli.store import RunDir, find_latest_run, fingerprint, point_id
from stabcli.store.atomic import atomic_write_text

SETTINGS = {"preset": {"name": "x", "train": {"steps": 10}}, "measurement": {"slope_at": 5}}


def _config(settings: dict = SETTINGS) -> dict:
    return {"settings": settings, "settings_fingerprint": fingerprint(settings)}


def _batch(ids: list[str], steps: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    points = pd.DataFrame({"point_id": ids, "beta": np.linspace(0.9, 0.99, len(ids))})
    traces = pd.DataFrame(
        {
            "point_id": np.repeat(ids, steps),
            "step": np.tile(np.arange(steps), len(ids)),
            "max_update": 1.0,
        }
    )
    evals = pd.DataFrame({"point_id": ids, "step": 0, "test_loss": 2.0})
    return points, traces, evals


def test_fingerprint_ignores_key_order_and_point_id_is_exact() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert point_id("f", 0.1, 0.9) == point_id("f", 0.1, 0.9)
    assert point_id("f", 0.1, 0.9) != point_id("f", 0.1 + 1e-16, 0.9)
    assert point_id("f", 0.1, 0.9) != point_id("g", 0.1, 0.9)


def test_commit_and_read_back(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1", "p2"]))
    run.commit_batch("batch-b", *_batch(["p3"]))
    assert run.finished_ids() == {"p1", "p2", "p3"}
    traces = run.read_traces()
    assert len(traces) == 12 and set(traces["point_id"]) == {"p1", "p2", "p3"}
    assert len(run.read_evals()) == 3
    # pandas loads the whole folder in one call
    assert len(pd.read_parquet(tmp_path / "run" / "traces")) == 12
    assert set(run.read_points()["batch"]) == {"batch-a", "batch-b"}


def test_recommit_replaces_rows_without_duplicates(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1", "p2"]))
    run.commit_batch("batch-a", *_batch(["p1", "p2"]))
    assert sorted(run.read_points()["point_id"]) == ["p1", "p2"]


def test_resume_same_settings_keeps_results_and_prunes_orphans(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1"]))
    # a batch killed after writing its traces but before committing points.csv
    _, orphan, _ = _batch(["p9"])
    orphan.to_parquet(tmp_path / "run" / "traces" / "batch-z.parquet")
    (tmp_path / "run" / "traces" / ".tmp-batch-y.parquet-123").write_bytes(b"torn")
    again = RunDir.create(tmp_path / "run", _config(), "settings")
    assert again.finished_ids() == {"p1"}
    assert sorted(p.name for p in (tmp_path / "run" / "traces").iterdir()) == ["batch-a.parquet"]


def test_different_settings_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1"]))
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    other = {"preset": {"name": "x", "train": {"steps": 20}}, "measurement": {"slope_at": 5}}
    with pytest.raises(
        StabcliError, match=r"different configuration \(differs in: preset.train.steps\)"
    ):
        RunDir.create(tmp_path / "run", _config(other), "settings")
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert before == after


def test_overwrite_starts_afresh(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1"]))
    other = {"preset": {"name": "y"}, "measurement": {}}
    fresh = RunDir.create(tmp_path / "run", _config(other), "settings", overwrite=True)
    assert fresh.finished_ids() == set()
    assert fresh.config()["settings"] == other


def test_non_empty_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(StabcliError, match="not empty"):
        RunDir.create(tmp_path, _config(), "settings")
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_unwritable_directory_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StabcliError, match="cannot write"):
        RunDir.create(blocker / "run", _config(), "settings")


@pytest.mark.parametrize("name", ["config.json", "points.csv"])
def test_corrupt_files_are_one_line_errors(tmp_path: Path, name: str) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1"]))
    (tmp_path / "run" / name).write_bytes(
        b'\x00\xff{"not json' if name.endswith("json") else b'"a\n"b,"'
    )
    with pytest.raises(StabcliError):
        RunDir.open(tmp_path / "run").read_points()


def test_open_rejects_non_runs(tmp_path: Path) -> None:
    with pytest.raises(StabcliError, match="no run directory"):
        RunDir.open(tmp_path / "missing")
    with pytest.raises(StabcliError, match="not a stabcli run directory"):
        RunDir.open(tmp_path)


def test_state_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    assert run.state() is None
    run.write_state("interrupted", ["a", "b"])
    state = run.state()
    assert state is not None and state.is_partial and state.planned == ("a", "b")
    run.write_state("complete", ["a", "b"])
    assert not run.state().is_partial  # type: ignore[union-attr]


def test_find_latest_run(tmp_path: Path) -> None:
    with pytest.raises(StabcliError, match="no run found"):
        find_latest_run(tmp_path)
    old = RunDir.create(tmp_path / "a", _config(), "settings")
    new = RunDir.create(tmp_path / "b", _config(), "settings")
    os.utime(old.path / "config.json", (1, 1))
    assert find_latest_run(tmp_path) == new.path


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    from stabcli.store.atomic import atomic_write

    def failing(tmp: Path) -> None:
        tmp.write_text("partial")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_files_get_ordinary_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_missing_or_corrupt_batch_file_is_an_error_then_rerun_on_resume(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    run.commit_batch("batch-a", *_batch(["p1"]))
    run.commit_batch("batch-b", *_batch(["p2"]))
    (tmp_path / "run" / "traces" / "batch-a.parquet").unlink()
    (tmp_path / "run" / "traces" / "batch-b.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(StabcliError, match=r"lacks batch-a\.parquet"):
        run.read_traces()
    resumed = RunDir.create(tmp_path / "run", _config(), "settings")
    assert resumed.finished_ids() == set()  # both points will run again
    assert list((tmp_path / "run" / "traces").iterdir()) == []


def test_points_csv_without_ids_is_corrupt(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", _config(), "settings")
    (tmp_path / "run" / "points.csv").write_text("beta\n0.9\n")
    with pytest.raises(StabcliError, match="no point_id column"):
        run.finished_ids()
