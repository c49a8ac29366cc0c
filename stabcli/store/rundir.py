"""Reading and writing one run directory (see :mod:`stabcli.store` for the layout).

A sweep writes a run directory only while it holds the directory's lock
(:mod:`stabcli.store.lock`), through :meth:`RunDir.create`; anyone may read one with
:meth:`RunDir.open`. Every write is atomic (:mod:`stabcli.store.atomic`), and a write that
fails (a full disk, a file-size limit, a read-only folder) is a one-line error that leaves
what was saved before intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from stabcli.errors import SettingError, StabcliError
from stabcli.store import resume
from stabcli.store.atomic import atomic_write, atomic_write_text
from stabcli.store.files import (
    BATCH_COLUMN,
    CONFIG,
    EVALS,
    FOLDERS,
    ID_COLUMN,
    POINTS,
    STATE,
    TRACES,
    batch_file,
    is_batch_name,
    parse_points,
    read_parquet,
    write_parquet,
    write_points,
    writing,
)
from stabcli.store.identity import fingerprint
from stabcli.store.lock import LOCK_NAME, RunLock

#: Key of config.json holding the fingerprint of the settings (the run's identity).
FINGERPRINT_KEY = "settings_fingerprint"


@dataclass(frozen=True)
class RunState:
    """What state.json says: the planned points, whether the sweep finished, and the run's
    own record of the batch files it wrote."""

    status: str  # "running", "complete" or "interrupted"
    planned: tuple[str, ...]  # point ids the sweep set out to run, in region order
    updated: str  # ISO time of the last update
    files: tuple[str, ...] = ()  # batch files written, e.g. "traces/batch-0a1b2c3d4e5f.parquet"

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


def is_run_config(config: dict[str, Any], settings_key: str) -> bool:
    """True when ``config`` is a stabcli run's: its fingerprint matches its settings."""
    return settings_key in config and config.get(FINGERPRINT_KEY) == fingerprint(
        config[settings_key]
    )


#: Entries of a directory that do not make it "not empty": the lock and our temporaries.
_OURS_WHEN_EMPTY = (LOCK_NAME, ".stabcli-write-test")


def _has_foreign_entries(path: Path) -> bool:
    from stabcli.store.files import root_temporaries

    ours = {p.name for p in root_temporaries(path)} | set(_OURS_WHEN_EMPTY)
    return any(entry.name not in ours for entry in path.iterdir())


class RunDir:
    """A run directory on disk. Create with :meth:`create` (locked, for writing; use it as a
    context manager or call :meth:`close`) or open with :meth:`open` (for reading)."""

    def __init__(self, path: Path, lock: RunLock | None = None) -> None:
        self.path = Path(path)
        self._lock = lock
        self._state: RunState | None = None  # the state last read or written under the lock
        #: Set by :meth:`create` when it resumes a run left "running" by a process that died.
        self.stale_note: str | None = None

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, settings_key: str = "settings") -> RunDir:
        """An existing run directory (for reading), checked to hold a stabcli run's
        config.json (see :meth:`create`)."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise StabcliError(f"no run directory at {run.path}")
        if not is_run_config(run.config(), settings_key):  # missing or corrupt: one line
            raise StabcliError(
                f"{run.path} is not a stabcli run directory (its config.json is another's)"
            )
        return run

    @classmethod
    def create(
        cls,
        path: str | Path,
        config: dict[str, Any],
        settings_key: str,
        overwrite: bool = False,
        *,
        command: str | None = None,
    ) -> RunDir:
        """Create ``path`` for ``config``, or reopen it to resume the same configuration.

        The directory is locked for the returned RunDir's lifetime (a second writer gets a
        one-line error naming this one; ``command`` is what it is told). ``config[
        settings_key]`` holds the settings that define the points' results; their fingerprint
        (``config["settings_fingerprint"]``, computed here when absent) marks the directory
        as a stabcli run. An existing run whose
        settings differ is refused (nothing is touched) unless ``overwrite`` is set, which
        removes that run's own files first. A directory that is not a stabcli run is refused,
        with or without ``overwrite``, and so are symbolic links in place of traces/ or
        evals/. Resuming verifies what is kept (:func:`stabcli.store.resume.repair`).
        """
        run_path = Path(path)
        settings = config.get(settings_key)
        if FINGERPRINT_KEY not in config:  # a caller that has it (the sweep) passes it
            config = {**config, FINGERPRINT_KEY: fingerprint(settings)}
        _refuse_unless_ours(run_path, settings_key, settings, overwrite)  # nothing touched yet
        with writing(run_path):
            run_path.mkdir(parents=True, exist_ok=True)
        run = cls(run_path, RunLock.acquire(run_path, command))
        try:
            _refuse_unless_ours(run_path, settings_key, settings, overwrite)  # now under lock
            if (run_path / CONFIG).exists():
                if overwrite:
                    resume.clear(run)
                else:
                    run.stale_note = resume.repair(run)
            with writing(run_path / CONFIG):
                text = json.dumps(config, indent=2, sort_keys=True) + "\n"
                atomic_write_text(run_path / CONFIG, text)
        except BaseException:
            run.close()
            raise
        return run

    def close(self) -> None:
        """Release the lock (a no-op for a directory opened for reading)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def previous_holder(self) -> str | None:
        """Who held the lock before this RunDir took it (from the lock file), if known."""
        previous = self._lock.previous if self._lock is not None else None
        return previous.describe() if previous is not None else None

    # ----------------------------------------------------------------- reading
    def config(self) -> dict[str, Any]:
        return _read_json(self.path / CONFIG)

    def state(self) -> RunState | None:
        path = self.path / STATE
        if not path.exists():
            return None
        data = _read_json(path)
        files = data.get("files", ())
        return RunState(
            status=str(data.get("status", "interrupted")),
            planned=tuple(data.get("planned", ())),
            updated=str(data.get("updated", "")),
            files=tuple(str(f) for f in files) if isinstance(files, list) else (),
        )

    def read_points(self) -> pd.DataFrame:
        """points.csv as a DataFrame, one row per point id (empty when none has finished).

        A torn row is a one-line error (a resumed sweep repairs the file).
        """
        path = self.path / POINTS
        points, torn = parse_points(path)
        if torn:
            raise StabcliError(
                f"{path}, line {torn[0]}: a torn row (a cut-short write or damage); re-run "
                "the sweep to recompute its point"
            )
        return points

    def finished_ids(self) -> set[str]:
        return set(self.read_points()[ID_COLUMN].astype(str))

    def _read_parts(self, folder: str) -> pd.DataFrame:
        """Records of the finished points, each point's from the batch file that points.csv
        names for it (so a point recomputed in a later batch is never counted twice)."""
        points = self.read_points()
        if not len(points) or BATCH_COLUMN not in points:
            return pd.DataFrame({ID_COLUMN: pd.Series(dtype=str)})
        frames = []
        for batch, ids in points.groupby(BATCH_COLUMN, sort=True)[ID_COLUMN]:
            path = self.path / batch_file(folder, str(batch))
            if not is_batch_name(batch) or not path.exists():
                if folder == EVALS:  # test losses are optional per batch
                    continue
                raise StabcliError(
                    f"{self.path / folder} lacks {path.name} of finished points; re-run the "
                    "sweep to recompute them"
                )
            frame = read_parquet(path)
            if ID_COLUMN not in frame:
                raise StabcliError(f"{path} is corrupt: it has no {ID_COLUMN} column")
            frames.append(frame[frame[ID_COLUMN].astype(str).isin(set(ids))])
        if not frames:
            return pd.DataFrame({ID_COLUMN: pd.Series(dtype=str)})
        return pd.concat(frames, ignore_index=True)

    def read_traces(self) -> pd.DataFrame:
        """Per-step records of the finished points (columns as the sweep wrote them)."""
        return self._read_parts(TRACES)

    def read_evals(self) -> pd.DataFrame:
        """Test-loss records of the finished points (empty when none were recorded)."""
        return self._read_parts(EVALS)

    # ----------------------------------------------------------------- writing
    def _require_lock(self) -> None:
        if self._lock is None or not self._lock.held:
            raise RuntimeError("a run directory is written only through RunDir.create")

    def _current_state(self) -> RunState:
        if self._state is None:
            try:
                self._state = self.state()
            except StabcliError:  # a damaged state.json is rewritten
                self._state = None
        return self._state or RunState("interrupted", (), _now())

    def save_state(self, state: RunState) -> None:
        """Write state.json (atomically) and remember it."""
        self._require_lock()
        state = replace(state, updated=_now(), files=tuple(sorted(state.files)))
        payload = {
            "status": state.status,
            "planned": list(state.planned),
            "updated": state.updated,
            "files": list(state.files),
        }
        with writing(self.path / STATE):
            atomic_write_text(self.path / STATE, json.dumps(payload, indent=2) + "\n")
        self._state = state

    def set_files(self, files: Iterable[str]) -> None:
        """Replace the record of the run's own batch files (status and plan are kept)."""
        self.save_state(replace(self._current_state(), files=tuple(sorted(files))))

    def write_state(self, status: str, planned: list[str] | tuple[str, ...]) -> None:
        """Set the status and the planned point ids (the record of files is kept)."""
        self.save_state(replace(self._current_state(), status=status, planned=tuple(planned)))

    def commit_batch(
        self, batch: str, points: pd.DataFrame, traces: pd.DataFrame, evals: pd.DataFrame
    ) -> None:
        """Save one finished batch: record its files, write them, then its points.csv rows.

        state.json records the batch's files before they are written, so a kill at any
        moment leaves only files the run knows as its own; points.csv is the commit record:
        files without rows there are orphans, which the next :meth:`create` removes, and a
        point never lacks its traces.
        """
        self._require_lock()
        if not is_batch_name(batch):
            raise ValueError(f"batch names are 'batch-' and lowercase hex, not {batch!r}")
        files = [batch_file(TRACES, batch)] + ([batch_file(EVALS, batch)] if len(evals) else [])
        state = self._current_state()
        self.save_state(replace(state, files=tuple(sorted({*state.files, *files}))))
        for relative, frame in zip(files, (traces, evals), strict=False):
            target = self.path / relative
            with writing(target):
                atomic_write(target, partial(write_parquet, frame))
        rows = points.assign(**{BATCH_COLUMN: batch})
        old = self.read_points()
        merged = pd.concat([old[~old[ID_COLUMN].isin(rows[ID_COLUMN])], rows], ignore_index=True)
        with writing(self.path / POINTS):
            atomic_write(self.path / POINTS, lambda tmp: write_points(merged, tmp))


def _refuse_unless_ours(path: Path, settings_key: str, settings: object, overwrite: bool) -> None:
    """Refuse, touching nothing, a directory that is not this run's to write."""
    if not path.exists():
        return
    if not path.is_dir():
        raise StabcliError(f"{path} exists and is not a directory")
    for folder in FOLDERS:
        if (path / folder).is_symlink():
            raise StabcliError(
                f"{path / folder} is a symbolic link; a run's files are written and removed "
                "only in real folders inside it"
            )
    if not (path / CONFIG).exists():
        if _has_foreign_entries(path):
            only = "; {overwrite} replaces only stabcli runs" if overwrite else ""
            raise SettingError(
                "{path} is not empty and is not a stabcli run directory" + only, path=path
            )
        return
    try:
        old = _read_json(path / CONFIG)
    except StabcliError as err:  # not recognisably a stabcli run: never replaced
        raise SettingError(
            "{reason}; a directory not recognisably a stabcli run is never resumed or "
            "replaced ({overwrite} included): move it away or choose another {out}",
            reason=str(err),
        ) from None
    if not is_run_config(old, settings_key):
        raise SettingError(
            "{path} holds a config.json that is not a stabcli run's; choose another {out}",
            path=path,
        )
    if not overwrite and old.get(settings_key) != settings:
        diff = _differences(old.get(settings_key) or {}, settings or {})  # type: ignore[arg-type]
        raise SettingError(
            "{path} holds a run with a different configuration (differs in: {diff}); "
            "choose another {out} or pass {overwrite}",
            path=path,
            diff=", ".join(diff) or settings_key,
        )
