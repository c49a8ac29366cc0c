"""Injected faults in a run directory: damaged files, torn rows, duplicates, stale
temporaries, a second writer, a killed writer and failing writes. Each is either repaired
by a resuming sweep (only the run's own files are touched) or a one-line error."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stabcli.store.atomic as atomic
from stabcli.errors import StabcliError
from stabcli.store import RunDir

SETTINGS = {"preset": {"name": "x"}, "measurement": {"slope_at": 5}}
STEPS = 50


def _create(path: Path) -> RunDir:
    return RunDir.create(path, {"settings": SETTINGS}, "settings")


def _batch(ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    points = pd.DataFrame({"point_id": ids, "beta": 0.9, "gamma": 0.5, "slope_step": 25})
    traces = pd.DataFrame(
        {
            "point_id": np.repeat(ids, STEPS),
            "step": np.tile(np.arange(STEPS), len(ids)),
            "max_update": np.linspace(1.0, 2.0, STEPS * len(ids)),
        }
    )
    evals = pd.DataFrame({"point_id": ids, "step": 0, "test_loss": 2.0})
    return points, traces, evals


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run with batch-a (p1, p2) and batch-b (p3), no lock held."""
    with _create(tmp_path / "run") as run:
        run.commit_batch("batch-a", *_batch(["p1", "p2"]))
        run.commit_batch("batch-b", *_batch(["p3"]))
        run.write_state("complete", ["p1", "p2", "p3"])
    return tmp_path / "run"


def _resume(path: Path) -> set[str]:
    with _create(path) as run:
        return run.finished_ids()


def _damage_pages(path: Path) -> None:
    """Flip bytes in the middle of a Parquet file: its footer (and magic) stay valid."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("file", "damage"),
    [
        ("evals/batch-a.parquet", lambda p: p.write_bytes(b"garbage, not Parquet")),
        ("evals/batch-a.parquet", lambda p: p.unlink()),
        ("traces/batch-a.parquet", _damage_pages),
        ("traces/batch-a.parquet", lambda p: p.write_bytes(p.read_bytes()[:200])),
    ],
    ids=["garbage-evals", "missing-evals", "corrupt-trace-pages", "truncated-trace"],
)
def test_resume_reads_kept_batches_in_full_and_reruns_damaged_ones(
    run_dir: Path, file: str, damage
) -> None:
    import pyarrow.parquet as pq

    target = run_dir / file
    if damage is _damage_pages:
        pq.read_metadata(target)  # the footer alone reads fine before and after
    damage(target)
    if damage is _damage_pages:
        pq.read_metadata(target)
    assert _resume(run_dir) == {"p3"}  # batch-a's points will run again
    assert sorted(p.name for p in (run_dir / "traces").iterdir()) == ["batch-b.parquet"]
    assert sorted(p.name for p in (run_dir / "evals").iterdir()) == ["batch-b.parquet"]
    run = RunDir.open(run_dir)
    assert set(run.read_traces()["point_id"]) == {"p3"}  # the report reads cleanly again


def test_a_torn_row_is_an_error_for_readers_and_recomputed_without_double_traces(
    run_dir: Path,
) -> None:
    points = run_dir / "points.csv"
    text = points.read_text()
    lines = text.splitlines()
    p2 = next(i for i, line in enumerate(lines) if line.startswith("p2,"))
    lines[p2] = lines[p2][: len(lines[p2]) // 2]  # cut mid-field
    points.write_text("\n".join(lines) + "\n")
    with pytest.raises(StabcliError, match=rf"points.csv, line {p2 + 1}: a torn row") as err:
        RunDir.open(run_dir).read_traces()
    assert "nan" not in str(err.value)
    with _create(run_dir) as run:
        # p2 is recomputed (a new batch), p1 is kept with the batch file that holds both
        assert run.finished_ids() == {"p1", "p3"}
        run.commit_batch("batch-c", *_batch(["p2"]))
    traces = RunDir.open(run_dir).read_traces()
    assert traces.groupby("point_id").size().to_dict() == {"p1": STEPS, "p2": STEPS, "p3": STEPS}


def test_duplicated_rows_count_once_and_resume_removes_them(run_dir: Path) -> None:
    points = run_dir / "points.csv"
    lines = points.read_text().splitlines()
    points.write_text("\n".join([*lines, lines[1]]) + "\n")  # p1 twice
    run = RunDir.open(run_dir)
    assert len(run.read_points()) == 3 and len(run.read_traces()) == 3 * STEPS
    assert _resume(run_dir) == {"p1", "p2", "p3"}
    assert len(points.read_text().splitlines()) == 4  # header + 3 rows


def test_stale_temporaries_of_its_own_files_are_removed(run_dir: Path) -> None:
    stale = [
        run_dir / ".tmp-points.csv-k1ll3d_x",
        run_dir / ".tmp-state.json-abc",
        run_dir / "traces" / ".tmp-batch-a.parquet-xyz",
    ]
    kept = [run_dir / ".tmp-my-notes", run_dir / "traces" / ".tmp-batch-f.parquet-xyz"]
    for path in stale + kept:
        path.write_bytes(b"torn")
    assert _resume(run_dir) == {"p1", "p2", "p3"}
    assert [p.exists() for p in stale] == [False] * len(stale)
    assert all(p.exists() for p in kept)  # not named by the run's record


def test_a_second_writer_is_refused_naming_the_holder(run_dir: Path) -> None:
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with _create(run_dir), pytest.raises(StabcliError) as err:
        _create(run_dir)
    message = str(err.value)
    assert "in use by another sweep" in message and f"pid {os.getpid()}" in message
    assert "\n" not in message
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert {p for p in after if p.name != ".stabcli-lock"} == {
        p for p in before if p.name != ".stabcli-lock"
    }


HOLD = f"""
import sys, time
from stabcli.store import RunDir
run = RunDir.create(sys.argv[1], {{"settings": {SETTINGS!r}}}, "settings")
run.write_state("running", [])
print("locked", flush=True)
time.sleep(120)
"""


def test_a_killed_writer_never_blocks_and_its_running_state_is_stale(run_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StabcliError, match=rf"in use by another sweep \(pid {holder.pid} "):
            _create(run_dir)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    start = time.monotonic()
    with _create(run_dir) as run:
        assert time.monotonic() - start < 5
        assert run.stale_note is not None
        assert "left 'running'" in run.stale_note and f"pid {holder.pid}" in run.stale_note
        assert run.finished_ids() == {"p1", "p2", "p3"}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EACCES, errno.EROFS])
def test_a_failing_write_is_one_line_and_keeps_what_was_saved(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and "lock" not in p.name}
    real = atomic.tempfile.mkstemp

    def failing(*args: object, **kwargs: object) -> tuple[int, str]:
        if "traces" in str(kwargs.get("dir", "")):
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with _create(run_dir) as run:
        monkeypatch.setattr(atomic.tempfile, "mkstemp", failing)
        with pytest.raises(StabcliError) as err:
            run.commit_batch("batch-c", *_batch(["p4"]))
    message = str(err.value)
    assert message.startswith("cannot write") and os.strerror(code) in message
    assert "\n" not in message
    monkeypatch.undo()
    for path, data in before.items():
        if path.name != "state.json":  # the record names batch-c, which it set out to write
            assert path.read_bytes() == data, path
    assert _resume(run_dir) == {"p1", "p2", "p3"}
