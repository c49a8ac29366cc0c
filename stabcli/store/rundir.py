"""Reading and writing one run directory (see :mod:`stabcli.store` for the layout)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stabcli.errors import StabcliError
from stabcli.store.atomic import atomic_write, atomic_write_text

CONFIG = "config.json"
STATE = "state.json"
POINTS = "points.csv"
TRACES = "traces"
EVALS = "evals"
#: Column of points.csv naming the batch file that holds the point's traces.
BATCH_COLUMN = "batch"
ID_COLUMN = "point_id"


@dataclass(frozen=True)
class RunState:
    """What state.json says: the planned points and whether the sweep finished."""

    status: str  # "running", "complete" or "interrupted"
    planned: tuple[str, ...]  # point ids the sweep set out to run, in region order
    updated: str  # ISO time of the last update

    @property
    def is_partial(self) -> bool:
        return self.status != "complete"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StabcliError(
            f"{path.parent} is not a stabcli run directory (no {path.name})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StabcliError(f"{path} is unreadable or corrupt: {err}") from None
    if not isinstance(data, dict):
        raise StabcliError(f"{path} is corrupt: expected a JSON object")
    return data


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out: list[str] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


class RunDir:
    """A run directory on disk. Create with :meth:`create` or open with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory, checked to hold a readable config.json."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise StabcliError(f"no run directory at {run.path}")
        run.config()  # raises a one-line error when missing or corrupt
        return run

    @classmethod
    def create(
        cls, path: str | Path, config: dict[str, Any], settings_key: str, overwrite: bool = False
    ) -> RunDir:
        """Create ``path`` for ``config``, or reopen it to resume the same configuration.

        ``config[settings_key]`` holds the settings that define the points' results; an
        existing run whose settings differ is refused (nothing is touched) unless
        ``overwrite`` is set, which removes that run's results first.
        """
        run = cls(Path(path))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            probe = run.path / ".stabcli-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise StabcliError(
                f"cannot write the run directory {run.path}: {err.strerror}"
            ) from None
        if (run.path / CONFIG).exists() and not overwrite:
            old = run.config()
            if old.get(settings_key) != config.get(settings_key):
                diff = _differences(old.get(settings_key) or {}, config.get(settings_key) or {})
                raise StabcliError(
                    f"{run.path} holds a run with a different configuration "
                    f"(differs in: {', '.join(diff) or settings_key}); "
                    "choose another --out or pass --overwrite"
                )
            run._prune_orphans()
        elif overwrite:
            run._clear()
        elif any(run.path.iterdir()):
            raise StabcliError(f"{run.path} is not empty and is not a stabcli run directory")
        atomic_write_text(run.path / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
        return run

    def _clear(self) -> None:
        for name in (CONFIG, STATE, POINTS):
            (self.path / name).unlink(missing_ok=True)
        for folder in (TRACES, EVALS):
            for file in (self.path / folder).glob("*.parquet"):
                file.unlink()

    def _prune_orphans(self) -> None:
        """Make the directory consistent before resuming.

        Batch files of a killed batch (written, but never committed to points.csv) are
        removed; rows whose batch file is missing or unreadable are dropped from points.csv,
        so that those points run again.
        """
        points = self.read_points()
        batches = points.get(BATCH_COLUMN, pd.Series("", index=points.index)).astype(str)
        readable = {b for b in set(batches) if self._batch_readable(b)}
        if not batches.isin(readable).all():
            kept = points[batches.isin(readable)]
            atomic_write(self.path / POINTS, lambda t: kept.to_csv(t, index=False))
        committed = readable
        for folder in (TRACES, EVALS):
            for file in (self.path / folder).glob("*.parquet"):
                if file.stem not in committed:
                    file.unlink()
            for tmp in (self.path / folder).glob(".tmp-*"):
                tmp.unlink()

    def _batch_readable(self, batch: str) -> bool:
        try:
            import pyarrow.parquet as pq

            pq.read_metadata(self.path / TRACES / f"{batch}.parquet")
        except Exception:  # missing, truncated or not Parquet at all
            return False
        return True

    # ----------------------------------------------------------------- reading
    def config(self) -> dict[str, Any]:
        return _read_json(self.path / CONFIG)

    def state(self) -> RunState | None:
        path = self.path / STATE
        if not path.exists():
            return None
        data = _read_json(path)
        return RunState(
            status=str(data.get("status", "interrupted")),
            planned=tuple(data.get("planned", ())),
            updated=str(data.get("updated", "")),
        )

    def read_points(self) -> pd.DataFrame:
        """points.csv as a DataFrame (empty when no point has finished)."""
        path = self.path / POINTS
        if not path.exists():
            return pd.DataFrame({ID_COLUMN: pd.Series(dtype=str)})
        try:
            points = pd.read_csv(path, dtype={ID_COLUMN: str, BATCH_COLUMN: str})
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise StabcliError(f"{path} is unreadable or corrupt: {err}") from None
        if ID_COLUMN not in points.columns:
            raise StabcliError(f"{path} is corrupt: it has no {ID_COLUMN} column")
        return points

    def finished_ids(self) -> set[str]:
        return set(self.read_points()[ID_COLUMN].astype(str))

    def _read_parts(self, folder: str) -> pd.DataFrame:
        files = sorted((self.path / folder).glob("*.parquet"))
        points = self.read_points()
        committed = set(points[ID_COLUMN].astype(str))
        if folder == TRACES and BATCH_COLUMN in points:
            missing = set(points[BATCH_COLUMN].astype(str)) - {f.stem for f in files}
            if missing:
                raise StabcliError(
                    f"{self.path / folder} lacks {sorted(missing)[0]}.parquet of finished "
                    "points; re-run the sweep to recompute them"
                )
        if not files:
            return pd.DataFrame({ID_COLUMN: pd.Series(dtype=str)})
        try:
            frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        except (OSError, ValueError) as err:
            raise StabcliError(f"{self.path / folder} holds a corrupt file: {err}") from None
        return frame[frame[ID_COLUMN].isin(committed)].reset_index(drop=True)

    def read_traces(self) -> pd.DataFrame:
        """Per-step records of the finished points (columns as the sweep wrote them)."""
        return self._read_parts(TRACES)

    def read_evals(self) -> pd.DataFrame:
        """Test-loss records of the finished points (empty when none were recorded)."""
        return self._read_parts(EVALS)

    # ----------------------------------------------------------------- writing
    def write_state(self, status: str, planned: list[str]) -> None:
        state = {"status": status, "planned": list(planned), "updated": _now()}
        atomic_write_text(self.path / STATE, json.dumps(state, indent=2) + "\n")

    def commit_batch(
        self, batch: str, points: pd.DataFrame, traces: pd.DataFrame, evals: pd.DataFrame
    ) -> None:
        """Save one finished batch: its traces and evals first, then its rows in points.csv.

        points.csv is the commit record: a kill between the steps leaves orphan batch files,
        which the next :meth:`create` removes, and never a point without its traces.
        """
        atomic_write(
            self.path / TRACES / f"{batch}.parquet", lambda t: traces.to_parquet(t, index=False)
        )
        if len(evals):
            atomic_write(
                self.path / EVALS / f"{batch}.parquet", lambda t: evals.to_parquet(t, index=False)
            )
        rows = points.assign(**{BATCH_COLUMN: batch})
        old = self.read_points()
        merged = pd.concat([old[~old[ID_COLUMN].isin(rows[ID_COLUMN])], rows], ignore_index=True)
        atomic_write(self.path / POINTS, lambda t: merged.to_csv(t, index=False))


def find_latest_run(root: str | Path = "runs") -> Path:
    """The newest run directory under ``root`` (by config.json's modification time)."""
    base = Path(root)
    runs = [p.parent for p in base.glob(f"*/{CONFIG}")] if base.is_dir() else []
    if not runs:
        raise StabcliError(f"no run found under {base}/; run `stabcli sweep` first or give RUN_DIR")
    return max(runs, key=lambda p: os.stat(p / CONFIG).st_mtime)
