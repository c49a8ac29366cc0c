"""Making a run directory consistent before a sweep resumes it, or clearing it to start
afresh. Both run under the directory's lock and touch only the run's own files.

A run's own files are config.json, state.json, points.csv, the batch files named by its
record (state.json's ``files``) or by its committed points.csv rows, and temporaries of
those (``.tmp-<name>-*``). A file of another name, or a symbolic link in the place of one
of ours, is never removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stabcli.errors import StabcliError
from stabcli.store.atomic import atomic_write
from stabcli.store.files import (
    BATCH_COLUMN,
    CONFIG,
    FOLDERS,
    ID_COLUMN,
    POINTS,
    STATE,
    TRACES,
    batch_file,
    batch_of,
    batch_temporaries,
    is_batch_name,
    parse_points,
    read_parquet,
    remove_own,
    root_temporaries,
    write_points,
    writing,
)

if TYPE_CHECKING:
    from pathlib import Path

    from stabcli.store.rundir import RunDir, RunState


def _state(run: RunDir) -> RunState | None:
    try:
        return run.state()
    except StabcliError:  # a damaged state.json: only committed rows tell what is ours
        return None


def _own_files(run: RunDir, state: RunState | None, committed: set[str]) -> set[str]:
    """Relative paths of the batch files the run wrote or set out to write."""
    recorded = {f for f in (state.files if state else ()) if batch_of(f) is not None}
    named = {batch_file(folder, b) for b in committed for folder in FOLDERS}
    return recorded | named


def _remove_temporaries(run: RunDir, batches: set[str]) -> None:
    for temporary in root_temporaries(run.path):
        remove_own(temporary)
    for folder in FOLDERS:
        for temporary in batch_temporaries(run.path / folder, batches):
            remove_own(temporary)


def _complete(path: Path, ids: set[str] | None) -> bool:
    """The whole file reads back (page checksums verified) and holds every point of ``ids``."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        frame = read_parquet(path)
    except StabcliError:
        return False
    if ID_COLUMN not in frame or "step" not in frame:
        return False
    return ids is None or ids <= set(frame[ID_COLUMN].astype(str))


def repair(run: RunDir) -> str | None:
    """Verify what a resumed run keeps, and drop what it cannot trust.

    - points.csv: torn rows are dropped, duplicated point ids keep their last row, and rows
      whose batch files are missing or do not read back in full are dropped (those points
      run again);
    - the run's own batch files that no kept row needs (orphans of a killed batch, files
      of dropped rows) are removed, and so are its stale temporaries.

    Returns a note when the run was left "running" by a process that has ended (the lock
    was free, so no process holds it any more), else None.
    """
    with writing(run.path):
        state = _state(run)
        points, torn = parse_points(run.path / POINTS)
        batches = points[BATCH_COLUMN].astype(str) if BATCH_COLUMN in points else None
        valid: set[str] = set()
        committed: set[str] = set()
        if batches is not None:
            committed = {b for b in set(batches) if is_batch_name(b)}
            recorded = state.files if state else ()
            for batch in committed:
                ids = set(points.loc[batches == batch, ID_COLUMN].astype(str))
                needed = {batch_file(TRACES, batch)} | {f for f in recorded if batch_of(f) == batch}
                if all(
                    _complete(run.path / f, ids if f.startswith(TRACES) else None) for f in needed
                ):
                    valid.add(batch)
        kept = points[batches.isin(valid)] if batches is not None else points.iloc[:0]
        on_disk = _rows_on_disk(run)
        if torn or len(kept) != on_disk:
            atomic_write(run.path / POINTS, lambda tmp: write_points(kept, tmp))
        own = _own_files(run, state, committed)
        for relative in own:
            if batch_of(relative) not in valid:
                remove_own(run.path / relative)
        _remove_temporaries(run, {b for f in own if (b := batch_of(f)) is not None})
        if state is not None or own:
            run.set_files(f for f in own if batch_of(f) in valid and (run.path / f).exists())
    if state is not None and state.status == "running":
        who = run.previous_holder
        return (
            f"{run.path} was left 'running' by a process that has ended"
            + (f" ({who})" if who else "")
            + "; resuming it"
        )
    return None


def _rows_on_disk(run: RunDir) -> int:
    """Number of data rows in points.csv as written (torn and duplicated ones included)."""
    path = run.path / POINTS
    if not path.exists():
        return 0
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def clear(run: RunDir) -> None:
    """Remove the run's own files, so that it starts afresh (``overwrite``)."""
    with writing(run.path):
        state = _state(run)
        try:
            points, _ = parse_points(run.path / POINTS)
        except StabcliError:  # unreadable: only the record names its files
            points = None
        committed: set[str] = set()
        if points is not None and BATCH_COLUMN in points:
            committed = {b for b in set(points[BATCH_COLUMN].astype(str)) if is_batch_name(b)}
        own = _own_files(run, state, committed)
        for relative in own:
            remove_own(run.path / relative)
        _remove_temporaries(run, {b for f in own if (b := batch_of(f)) is not None})
        for name in (POINTS, STATE, CONFIG):
            remove_own(run.path / name)
