"""A k-study directory: the manifest ``kstudy.json`` beside one sweep run per (k, strategy).

Layout (written by :mod:`stabcli.sweep.kstudy`, read by the report)::

    <study>/
      kstudy.json       what the study is: its settings and their fingerprint, and its sub-runs
      .stabcli-lock     held while a k-study writes the directory
      k1-adam/          k = 1 (Adam, or AdamW under decoupled weight decay): an ordinary run
      k2-inverse-exp/   one ordinary run directory per (k, strategy), over the lr x wd grid
      ...

Each sub-run is a normal run directory (:class:`stabcli.store.RunDir`), so the store's
resume, lock and atomic-write rules apply to it unchanged. This module writes the manifest
(atomically, under the study's own lock), refuses a directory that holds another study or
something else, and reads back every finished point's best test loss and accuracy. Nothing
here trains or draws.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stabcli.errors import SettingError, StabcliError
from stabcli.store.atomic import atomic_write_text
from stabcli.store.files import ID_COLUMN, writing
from stabcli.store.identity import fingerprint
from stabcli.store.lock import LOCK_NAME, RunLock
from stabcli.store.rundir import FINGERPRINT_KEY, RunDir

#: The manifest's file name: a directory holding it is a k-study.
KSTUDY = "kstudy.json"
#: ``kind`` of the manifest.
KIND = "kstudy"
#: Key of the manifest holding the settings that identify the study.
SETTINGS_KEY = "settings"
#: The strategy name a k = 1 sub-run is filed under (every strategy gives Adam at k = 1).
ADAM = "adam"
#: Columns of :func:`read_kstudy`'s per-point table.
GRID_COLUMNS = (
    "k",
    "strategy",
    "subrun",
    ID_COLUMN,
    "lr",
    "weight_decay",
    "best_test_loss",
    "best_test_accuracy",
)


@dataclass(frozen=True)
class SubRunEntry:
    """One sub-run of a study: the run directory of one (k, strategy)."""

    k: int  # levels of k-Adam; 1: Adam/AdamW
    strategy: str  # a k-Adam strategy (paper App. P), or "adam" for k = 1
    name: str  # its directory inside the study, e.g. "k2-inverse-exp"

    @classmethod
    def of(cls, k: int, strategy: str) -> SubRunEntry:
        """The sub-run of (k, strategy); k = 1 is filed under "adam" whatever the strategy."""
        strategy = ADAM if k == 1 else strategy
        return cls(k, strategy, f"k{k}-{strategy}")

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "strategy": self.strategy, "dir": self.name}


def is_kstudy_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a k-study manifest."""
    return (Path(path) / KSTUDY).is_file()


def refuse_inside_kstudy(path: str | Path, option: str, writer: str) -> None:
    """Refuse a run directory inside a k-study (or the study itself): its sub-runs are
    written by ``stabcli kstudy`` alone, and ``writer`` (a sweep, the monitor) there would
    replace results that the study's table then shows as its own (k, strategy)'s."""
    where = Path(path)
    study = where if is_kstudy_dir(where) else where.parent
    if is_kstudy_dir(study):
        raise StabcliError(
            f"{option} {where} is inside the k-study {study}, whose runs only `stabcli kstudy` "
            f"writes ({writer} there would replace the study's results); choose another "
            f"{option}"
        )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """``kstudy.json`` of the study at ``path``, checked (its fingerprint matches its
    settings); a one-line error otherwise."""
    file = Path(path) / KSTUDY
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StabcliError(f"{path} is not a k-study directory (no {KSTUDY})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StabcliError(f"{file} is unreadable or corrupt: {err}") from None
    if (
        not isinstance(data, dict)
        or data.get("kind") != KIND
        or SETTINGS_KEY not in data
        or data.get(FINGERPRINT_KEY) != fingerprint(data[SETTINGS_KEY])
        or not isinstance(data.get("subruns"), list)
    ):
        raise StabcliError(f"{file} is corrupt: not a stabcli k-study manifest")
    return data


def subrun_entries(manifest: dict[str, Any]) -> list[SubRunEntry]:
    """The sub-runs a manifest lists, in its order; a one-line error for a damaged entry."""
    entries = []
    for item in manifest["subruns"]:
        try:
            entry = SubRunEntry(int(item["k"]), str(item["strategy"]), str(item["dir"]))
        except (TypeError, KeyError, ValueError):
            raise StabcliError(f"{KSTUDY} is corrupt: a sub-run entry {item!r}") from None
        if entry != SubRunEntry.of(entry.k, entry.strategy):  # no "../" or odd names
            raise StabcliError(f"{KSTUDY} is corrupt: a sub-run entry {item!r}")
        entries.append(entry)
    return entries


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def create_study(path: str | Path, manifest: dict[str, Any], command: str | None = None) -> RunLock:
    """Lock the study directory ``path`` and write its manifest, or reopen it to resume the
    same study; the returned lock is the caller's to release.

    A directory holding another study (other settings) is refused with a one-line error
    naming what differs, and so is one that is not empty and holds no study; nothing is
    touched then. An existing manifest of the same study is kept as it is (its creation
    time included).
    """
    study = Path(path)
    settings = manifest[SETTINGS_KEY]
    manifest = {**manifest, "kind": KIND, FINGERPRINT_KEY: fingerprint(settings)}
    if study.exists() and not study.is_dir():
        raise StabcliError(f"{study} exists and is not a directory")
    if study.exists():
        _refuse_unless_ours(study, settings)  # before anything is touched
    with writing(study):
        study.mkdir(parents=True, exist_ok=True)
    lock = RunLock.acquire(study, command)
    try:
        if _refuse_unless_ours(study, settings):  # again, under the lock
            return lock
        with writing(study / KSTUDY):
            text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            atomic_write_text(study / KSTUDY, text)
    except BaseException:
        lock.release()
        raise
    return lock


def _refuse_unless_ours(study: Path, settings: dict[str, Any]) -> bool:
    """True when ``study`` holds this study (to resume); False when it is empty; a one-line
    error when it holds another study or anything else."""
    if is_kstudy_dir(study):
        old = read_manifest(study)
        if old[SETTINGS_KEY] != settings:
            diff = _differences(old[SETTINGS_KEY], settings)
            raise SettingError(
                "{path} holds a different k-study (differs in: {diff}); choose another {out}",
                path=study,
                diff=", ".join(diff),
            )
        return True
    if any(entry.name != LOCK_NAME for entry in study.iterdir()):
        raise SettingError(
            "{path} is not empty and is not a k-study directory; choose another {out}",
            path=study,
        )
    return False


@dataclass(frozen=True)
class SubRunStatus:
    """How far one sub-run got."""

    entry: SubRunEntry
    status: str  # its state.json's: "complete", "running", "interrupted", or "missing"
    planned: int  # points it set out to run
    finished: int  # points with results

    @property
    def complete(self) -> bool:
        return self.status == "complete" and self.finished >= self.planned > 0


@dataclass(frozen=True)
class KStudyData:
    """A study read back: its manifest, each sub-run's progress, and every finished point."""

    path: Path
    manifest: dict[str, Any]
    subruns: tuple[SubRunStatus, ...]
    points: pd.DataFrame  # GRID_COLUMNS: one row per finished point of every sub-run

    @property
    def is_partial(self) -> bool:
        return not all(s.complete for s in self.subruns)


def best_per_point(points: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """Each point's best test loss (lowest) and best test accuracy (highest) over all its
    evaluations; nan where it recorded none (a diverged point's evaluations are nan).

    ``points``: point_id, lr, weight_decay (points.csv); ``evals``: point_id, test_loss and,
    for a classifier, test_accuracy (the run's evals/).
    """
    out = pd.DataFrame(
        {
            ID_COLUMN: points[ID_COLUMN].astype(str).to_numpy(),
            "lr": pd.to_numeric(points.get("lr", math.nan), errors="coerce"),
            "weight_decay": pd.to_numeric(points.get("weight_decay", math.nan), errors="coerce"),
        }
    )
    for column, how in (("test_loss", "min"), ("test_accuracy", "max")):
        best = pd.Series(dtype=float)
        if not evals.empty and column in evals:
            values = pd.to_numeric(evals[column], errors="coerce")
            best = values.groupby(evals[ID_COLUMN].astype(str)).agg(how)  # skips nan
        out[f"best_{column}"] = out[ID_COLUMN].map(best).astype(float)
    return out


def _grid_size(manifest: dict[str, Any]) -> int:
    """Points per sub-run the manifest plans: its lr values × weight decays (0 if unknown)."""
    settings = manifest[SETTINGS_KEY]
    try:
        return len(settings["lrs"]) * len(settings["weight_decays"])
    except (TypeError, KeyError):
        return 0


#: Training settings in which a sub-run's preset differs from the study's: the optimizer
#: of its (k, strategy) (written by stabcli.sweep.kstudy).
SUBRUN_KEYS = ("optimizer", "k", "strategy", "hyper_lr")


def subrun_mismatch(manifest: dict[str, Any], entry: SubRunEntry, config: dict[str, Any]) -> str:
    """Why the run whose config.json is ``config`` is not this study's sub-run ``entry``
    ("" when it is): its preset, data or measurement differ from the manifest's beyond
    the optimizer of its (k, strategy), or that optimizer is not (k, strategy)'s."""
    study: dict[str, Any] = manifest[SETTINGS_KEY]
    settings = config.get(SETTINGS_KEY)
    if not isinstance(settings, dict) or not isinstance(settings.get("preset"), dict):
        return "not a k-study sub-run"
    preset: dict[str, Any] = settings["preset"]
    ours: dict[str, Any] = study.get("preset") or {}
    train: dict[str, Any] = preset.get("train") or {}
    differ = [f"preset.{key}" for key in _differences(ours, preset) if key != "train"]
    differ += [
        f"preset.train.{key}"
        for key in _differences(ours.get("train") or {}, train)
        if key not in SUBRUN_KEYS
    ]
    differ += [key for key in ("data", "measurement") if settings.get(key) != study.get(key)]
    if differ:
        more = f", … ({len(differ)} settings)" if len(differ) > 3 else ""
        return f"another run (differs in: {', '.join(differ[:3])}{more})"
    optimizer = (train.get("optimizer"), train.get("k"))
    expected = ("adam", 1) if entry.strategy == ADAM else ("kadam", entry.k)
    if optimizer != expected or (
        entry.strategy != ADAM and train.get("strategy") != entry.strategy
    ):
        return f"another optimizer ({train.get('optimizer')}, k = {train.get('k')})"
    return ""


def _read_subrun(
    study: Path, manifest: dict[str, Any], entry: SubRunEntry, grid: int
) -> tuple[SubRunStatus, pd.DataFrame]:
    path = study / entry.name
    empty = pd.DataFrame(columns=list(GRID_COLUMNS))
    if not (path / "config.json").exists():
        return SubRunStatus(entry, "missing", grid, 0), empty
    run = RunDir.open(path)
    foreign = subrun_mismatch(manifest, entry, run.config())
    if foreign:  # e.g. a sweep --overwrite into the sub-run's folder: not this study's points
        return SubRunStatus(entry, f"holds {foreign}", grid, 0), empty
    state = run.state()
    points = run.read_points()
    planned = list(state.planned) if state is not None else []
    if planned:
        points = points[points[ID_COLUMN].astype(str).isin(set(planned))]
    rows = best_per_point(points, run.read_evals() if len(points) else pd.DataFrame())
    rows.insert(0, "subrun", entry.name)
    rows.insert(0, "strategy", entry.strategy)
    rows.insert(0, "k", entry.k)
    status = state.status if state is not None else "interrupted"
    return SubRunStatus(entry, status, max(len(planned), len(rows)), len(rows)), rows


def read_kstudy(path: str | Path) -> KStudyData:
    """Read the study at ``path``: manifest, sub-run progress, per-point bests
    (:func:`best_per_point`), rows in the manifest's sub-run order."""
    study = Path(path)
    manifest = read_manifest(study)
    statuses, frames = [], []
    grid = _grid_size(manifest)
    for entry in subrun_entries(manifest):
        status, rows = _read_subrun(study, manifest, entry, grid)
        statuses.append(status)
        if len(rows):
            frames.append(rows[list(GRID_COLUMNS)])
    if frames:
        points = pd.concat(frames, ignore_index=True)
    else:
        points = pd.DataFrame({c: pd.Series(dtype=float) for c in GRID_COLUMNS})
    points = points.astype({"k": int, "strategy": str, "subrun": str, ID_COLUMN: str})
    return KStudyData(study, manifest, tuple(statuses), points)


def best_of_grid(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (k, strategy): the grid point (lr, weight_decay) with the highest best
    test accuracy, ties and missing accuracies (a regression preset) decided by the lowest
    best test loss, then by the first in the grid; rows in order of first appearance.

    A (k, strategy) whose every point diverged (no finite test loss or accuracy) keeps its
    first point, with nan figures.
    """
    if points.empty:
        return points.iloc[:0][list(GRID_COLUMNS)].reset_index(drop=True)
    ranked = points.assign(
        _order=range(len(points)),
        _acc=-pd.to_numeric(points["best_test_accuracy"], errors="coerce"),
        _loss=pd.to_numeric(points["best_test_loss"], errors="coerce"),
    ).sort_values(["_acc", "_loss", "_order"], na_position="last", kind="stable")
    best = ranked.drop_duplicates(["k", "strategy"], keep="first").set_index(["k", "strategy"])
    keys = points.drop_duplicates(["k", "strategy"])  # in order of first appearance
    best = best.loc[list(zip(keys["k"], keys["strategy"], strict=True))]
    return best.reset_index()[list(GRID_COLUMNS)]
