"""The files of a run directory: their names, and reading and writing each kind, checked.

Which files are the run's own is decided by name *and* by the run's record (state.json
lists every batch file it set out to write); nothing else is ever removed. Batch files are
Parquet with page checksums, read back in full, so a file that is torn or damaged anywhere
(not only in its footer) is recognised. points.csv rows are checked for their number of
fields, so a row cut short is never taken for a finished point.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from stabcli.errors import StabcliError
from stabcli.store.schema import POINT_INT_COLUMNS

CONFIG = "config.json"
STATE = "state.json"
POINTS = "points.csv"
TRACES = "traces"
EVALS = "evals"
FOLDERS = (TRACES, EVALS)
#: Column of points.csv naming the batch file that holds the point's traces.
BATCH_COLUMN = "batch"
ID_COLUMN = "point_id"

_BATCH = re.compile(r"batch-[0-9a-f]{1,64}")
#: Temporaries of atomic writes (see :mod:`stabcli.store.atomic`) of the run's own files.
_ROOT_TEMP = re.compile(r"\.tmp-(config\.json|state\.json|points\.csv)-[A-Za-z0-9_]+")
_BATCH_TEMP = re.compile(r"\.tmp-(batch-[0-9a-f]{1,64})\.parquet-[A-Za-z0-9_]+")


def is_batch_name(name: object) -> bool:
    """True for names the store gives batch files: ``batch-`` and lowercase hex."""
    return isinstance(name, str) and _BATCH.fullmatch(name) is not None


def batch_file(folder: str, batch: str) -> str:
    """The path of a batch file relative to the run directory: ``traces/batch-….parquet``."""
    return f"{folder}/{batch}.parquet"


def batch_of(relative: str) -> str | None:
    """The batch a relative batch-file path belongs to, or None if it is not one."""
    folder, _, name = relative.partition("/")
    stem = name.removesuffix(".parquet")
    if folder in FOLDERS and name.endswith(".parquet") and is_batch_name(stem):
        return stem
    return None


def root_temporaries(path: Path) -> list[Path]:
    """Temporaries of config.json, state.json and points.csv left by a killed write."""
    return [p for p in _entries(path) if _ROOT_TEMP.fullmatch(p.name) and _is_file(p)]


def batch_temporaries(folder: Path, batches: set[str]) -> list[Path]:
    """Temporaries of batch files of ``batches`` in ``folder`` (a run's traces/ or evals/)."""
    found = []
    for p in _entries(folder):
        match = _BATCH_TEMP.fullmatch(p.name)
        if match and match.group(1) in batches and _is_file(p):
            found.append(p)
    return found


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []
    except OSError:
        return []


def _is_file(path: Path) -> bool:
    """A regular file itself, not a link to one."""
    return path.is_file() and not path.is_symlink()


def remove_own(path: Path) -> None:
    """Remove one of the run's own files; a link or a folder in its place is left alone."""
    if _is_file(path):
        path.unlink()


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError while writing ``path`` (full disk, file-size limit, read-only
    folder) into a one-line error; atomic writes leave what was saved before intact."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or (os.strerror(err.errno) if err.errno else "")
        reason = reason or str(err).splitlines()[0]
        raise StabcliError(
            f"cannot write {path}: {reason}; what was saved before is intact: fix this and "
            "re-run the same command to resume"
        ) from None


# ------------------------------------------------------------------------------ Parquet
def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Parquet with a CRC checksum on every page, so damage anywhere is detected."""
    frame.to_parquet(path, index=False, write_page_checksum=True)


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a whole Parquet file, verifying page checksums; StabcliError if damaged."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, page_checksum_verification=True).to_pandas()
    except Exception as err:  # pyarrow raises OSError, ArrowInvalid, ... for damaged files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StabcliError(f"{path} is corrupt: {first}") from None


# ---------------------------------------------------------------------------- points.csv
def parse_points(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """points.csv as typed rows, and the line numbers of torn rows (left out).

    A row is torn when its number of fields differs from the header's, or when it lacks a
    point id or batch: a write cut short or a damaged file. Duplicated point ids keep
    their last row (the latest commit). An absent file is an empty table.
    """
    if not path.exists():
        return pd.DataFrame({ID_COLUMN: pd.Series(dtype=str)}), []
    try:
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise StabcliError(f"{path} is unreadable or corrupt: {err}") from None
    if not rows:
        return pd.DataFrame({ID_COLUMN: pd.Series(dtype=str)}), []
    header, body = rows[0], rows[1:]
    if ID_COLUMN not in header:
        raise StabcliError(f"{path} is corrupt: it has no {ID_COLUMN} column")
    required = [header.index(c) for c in (ID_COLUMN, BATCH_COLUMN) if c in header]
    good, torn = [], []
    for line, fields in enumerate(body, start=2):
        if len(fields) != len(header) or any(not fields[i] for i in required):
            torn.append(line)
        else:
            good.append(fields)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *good])
    buffer.seek(0)
    try:
        points = pd.read_csv(buffer, dtype={ID_COLUMN: str, BATCH_COLUMN: str})
    except (ValueError, pd.errors.ParserError) as err:
        raise StabcliError(f"{path} is unreadable or corrupt: {err}") from None
    points = points.drop_duplicates(ID_COLUMN, keep="last").reset_index(drop=True)
    return typed_points(points), torn


def typed_points(points: pd.DataFrame) -> pd.DataFrame:
    """Whole-number columns as Int64, so that they are written as 50 and never 50.0."""
    points = points.copy()
    for column in POINT_INT_COLUMNS:
        if column in points:
            values = pd.to_numeric(points[column], errors="coerce")
            values = values.where(values.abs() < 2**53)  # inf or absurd: unknown
            points[column] = values.round().astype("Int64")
    return points


def write_points(frame: pd.DataFrame, path: Path) -> None:
    """Write points.csv rows (typed) to ``path``."""
    typed_points(frame).to_csv(path, index=False)
