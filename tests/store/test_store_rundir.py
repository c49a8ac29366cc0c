"""The run directory: atomic commits, reading back, resuming, refusing foreign runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stabcli.errors import StabcliError
from stabcli.store import RunDir, find_latest_run, fingerprint, list_runs, point_id
from stabcli.store.atomic import atomic_write_text

SETTINGS = {"preset": {"name": "x", "train": {"steps": 10}}, "measurement": {"slope_at": 5}}


def _config(settings: dict = SETTINGS) -> dict:
    return {"settings": settings}


def _create(path: Path, settings: dict = SETTINGS, overwrite: bool = False) -> RunDir:
    return RunDir.create(path, _config(settings), "settings", overwrite)


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
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1", "p2"]))
        run.commit_batch("batch-b", *_batch(["p3"]))
    assert run.finished_ids() == {"p1", "p2", "p3"}
    traces = run.read_traces()
    assert len(traces) == 12 and set(traces["point_id"]) == {"p1", "p2", "p3"}
    assert len(run.read_evals()) == 3
    # pandas loads the whole folder in one call
    assert len(pd.read_parquet(tmp_path / "run" / "traces")) == 12
    assert set(run.read_points()["batch"]) == {"batch-a", "batch-b"}
    # the run's own record names every file it wrote
    assert run.state() is not None
    assert set(run.state().files) == {  # type: ignore[union-attr]
        f"{folder}/batch-{b}.parquet" for folder in ("traces", "evals") for b in "ab"
    }


def test_recommit_replaces_rows_without_duplicates(tmp_path: Path) -> None:
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1", "p2"]))
        run.commit_batch("batch-a", *_batch(["p1", "p2"]))
    assert sorted(run.read_points()["point_id"]) == ["p1", "p2"]


def test_writing_needs_the_lock_and_batch_names_are_checked(tmp_path: Path) -> None:
    with _create(tmp_path / "run") as run, pytest.raises(ValueError, match="batch names"):
        run.commit_batch("../escape", *_batch(["p1"]))
    with pytest.raises(RuntimeError, match=r"RunDir\.create"):
        RunDir.open(tmp_path / "run").write_state("complete", [])


def test_whole_number_columns_are_written_without_decimals(tmp_path: Path) -> None:
    with _create(tmp_path / "run") as run:
        first, traces, evals = _batch(["p1"])
        run.commit_batch(
            "batch-a", first.assign(slope_step=50.0, diverged_step=None), traces, evals
        )
        second, traces, evals = _batch(["p2"])
        run.commit_batch("batch-b", second.assign(slope_step=50, diverged_step=7), traces, evals)
    text = (tmp_path / "run" / "points.csv").read_text()
    header, *rows = text.splitlines()
    column = header.split(",").index("slope_step")
    assert [row.split(",")[column] for row in rows] == ["50", "50"]
    diverged = header.split(",").index("diverged_step")
    assert [row.split(",")[diverged] for row in rows] == ["", "7"]


def test_resume_removes_its_own_orphans_and_keeps_foreign_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run" / "traces"
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1"]))
        # a batch killed after writing its files but before committing points.csv
        import stabcli.store.rundir as rundir

        def killed(frame: pd.DataFrame, path: Path) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(rundir, "write_points", killed)
        with pytest.raises(KeyboardInterrupt):
            run.commit_batch("batch-b", *_batch(["p2"]))
    assert (folder / "batch-b.parquet").exists()
    (folder / ".tmp-batch-b.parquet-abc123").write_bytes(b"torn")  # its temporary
    _, foreign, _ = _batch(["x"])
    foreign.to_parquet(folder / "other.parquet")  # not the store's name
    foreign.to_parquet(folder / "batch-c.parquet")  # the store's name, but not in the record
    (folder / ".tmp-notes").write_text("mine")
    monkeypatch.undo()
    with _create(tmp_path / "run") as again:
        assert again.finished_ids() == {"p1"}
    assert sorted(p.name for p in folder.iterdir()) == [
        ".tmp-notes",
        "batch-a.parquet",
        "batch-c.parquet",
        "other.parquet",
    ]
    assert not (tmp_path / "run" / "evals" / "batch-b.parquet").exists()
    assert set(again.state().files) == {"traces/batch-a.parquet", "evals/batch-a.parquet"}  # type: ignore[union-attr]


@pytest.mark.parametrize("folder", ["traces", "evals"])
def test_symlinked_batch_folder_is_refused_and_its_target_untouched(
    tmp_path: Path, folder: str
) -> None:
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1"]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "batch-a.parquet").write_bytes(b"someone else's")
    (elsewhere / "other.parquet").write_bytes(b"someone else's")
    real = tmp_path / "run" / folder
    for file in real.iterdir():
        file.unlink()
    real.rmdir()
    real.symlink_to(elsewhere, target_is_directory=True)
    for overwrite in (False, True):
        with pytest.raises(StabcliError, match="symbolic link"):
            _create(tmp_path / "run", overwrite=overwrite)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["batch-a.parquet", "other.parquet"]
    assert (elsewhere / "batch-a.parquet").read_bytes() == b"someone else's"


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def test_different_settings_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1"]))
    before = _tree(tmp_path / "run")
    other = {"preset": {"name": "x", "train": {"steps": 20}}, "measurement": {"slope_at": 5}}
    with pytest.raises(
        StabcliError, match=r"different configuration \(differs in: preset.train.steps\)"
    ):
        _create(tmp_path / "run", other)
    assert _tree(tmp_path / "run") == before


def test_overwrite_starts_afresh_and_removes_only_its_own_files(tmp_path: Path) -> None:
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1"]))
    (tmp_path / "run" / "traces" / "notes.txt").write_text("mine")
    (tmp_path / "run" / "README").write_text("mine")
    other = {"preset": {"name": "y"}, "measurement": {}}
    with _create(tmp_path / "run", other, overwrite=True) as fresh:
        assert fresh.finished_ids() == set()
        assert fresh.config()["settings"] == other
    assert (tmp_path / "run" / "traces" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "README").read_text() == "mine"
    assert not (tmp_path / "run" / "traces" / "batch-a.parquet").exists()


@pytest.mark.parametrize("overwrite", [False, True], ids=["resume", "overwrite"])
@pytest.mark.parametrize(
    "content",
    [
        {"config.json": b'{"settings": {"a": 1}}', "points.csv": b"precious"},
        {"config.json": b'{"name": "another tool"}'},
        {"points.csv": b"precious"},
        {"traces/batch-a.parquet": b"precious", "traces/x.parquet": b"precious"},
        {"mine.txt": b"precious"},
    ],
    ids=["config-without-fingerprint", "foreign-config", "points", "traces", "file"],
)
def test_a_directory_that_is_no_stabcli_run_is_refused_untouched(
    tmp_path: Path, content: dict[str, bytes], overwrite: bool
) -> None:
    for name, data in content.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    before = _tree(tmp_path)
    with pytest.raises(StabcliError, match=r"not a stabcli run|not empty"):
        _create(tmp_path, overwrite=overwrite)
    assert _tree(tmp_path) == before


def test_unwritable_directory_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StabcliError, match="cannot write"):
        _create(blocker / "run")


@pytest.mark.parametrize("name", ["config.json", "points.csv"])
def test_corrupt_files_are_one_line_errors(tmp_path: Path, name: str) -> None:
    with _create(tmp_path / "run") as run:
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
    with _create(tmp_path / "run") as run:
        assert run.state() is None
        run.write_state("interrupted", ["a", "b"])
        state = run.state()
        assert state is not None and state.is_partial and state.planned == ("a", "b")
        run.write_state("complete", ["a", "b"])
        assert not run.state().is_partial  # type: ignore[union-attr]


def test_find_latest_run_and_list_runs(tmp_path: Path) -> None:
    with pytest.raises(StabcliError, match="no run found"):
        find_latest_run(tmp_path)
    with _create(tmp_path / "a") as old, _create(tmp_path / "b") as new:
        pass
    (tmp_path / "c").mkdir()  # no config.json: not a run
    os.utime(old.path / "config.json", (1, 1))
    assert find_latest_run(tmp_path) == new.path
    assert list_runs(tmp_path) == [new.path, old.path]


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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_atomic_files_get_ordinary_permissions(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        (tmp_path / "plain.txt").write_text("x")  # what an ordinary new file gets
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "f.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_missing_or_corrupt_batch_file_is_an_error_then_rerun_on_resume(tmp_path: Path) -> None:
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1"]))
        run.commit_batch("batch-b", *_batch(["p2"]))
    (tmp_path / "run" / "traces" / "batch-a.parquet").unlink()
    (tmp_path / "run" / "traces" / "batch-b.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(StabcliError, match=r"lacks batch-a\.parquet"):
        run.read_traces()
    with _create(tmp_path / "run") as resumed:
        assert resumed.finished_ids() == set()  # both points will run again
    assert list((tmp_path / "run" / "traces").iterdir()) == []


def test_points_csv_without_ids_is_corrupt(tmp_path: Path) -> None:
    with _create(tmp_path / "run"):
        (tmp_path / "run" / "points.csv").write_text("beta\n0.9\n")
    with pytest.raises(StabcliError, match="no point_id column"):
        RunDir.open(tmp_path / "run").finished_ids()


@pytest.mark.parametrize("overwrite", [False, True], ids=["resume", "overwrite"])
@pytest.mark.parametrize(
    "config", [b'{"settings": ', b"[1, 2]", b"\xff\xfe"], ids=["torn", "not-an-object", "binary"]
)
def test_a_corrupt_config_says_what_to_do_and_touches_nothing(
    tmp_path: Path, config: bytes, overwrite: bool
) -> None:
    """A run whose config.json is damaged cannot be told from another tool's folder: it is
    refused untouched, even with --overwrite, and the one line says to move it away (it
    said only that the file was corrupt, and --overwrite refused it the same way)."""
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1"]))
    (tmp_path / "run" / "config.json").write_bytes(config)
    before = _tree(tmp_path / "run")
    with pytest.raises(StabcliError) as err:
        _create(tmp_path / "run", overwrite=overwrite)
    message = str(err.value)
    assert "corrupt" in message and "move it away or choose another out" in message
    assert "\n" not in message
    assert _tree(tmp_path / "run") == before
