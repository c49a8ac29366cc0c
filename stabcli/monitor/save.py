"""A monitored run's directory, written through :mod:`stabcli.store` in the sweep's format.

The directory is created (and locked) when the monitor starts, so a second training
pointed at the same directory is refused at once rather than after it has trained; it is
written when the monitor closes:

- ``config.json``: ``kind = "monitor"``, the settings that identify the run (``settings``:
  the optimizer's class and every param group's hyperparameters when watching began, the
  number of parameters and tensors, the measurement settings, ``every``), the region the
  report names (``region.kind = "monitor"``), device, dtype, the optimizer's step count
  when watching began, package versions;
- ``points.csv``: one row per point (:mod:`stabcli.monitor.assess`);
- ``traces/batch-….parquet``: every measured step, with the (β, γ) path and its bound;
- ``state.json``: ``complete``, or ``interrupted`` when the monitor closed on an exception.

Re-running the same training into the same directory replaces its points (their ids come
from the settings and the first (β, γ)); other settings are refused unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stabcli import __version__
from stabcli.errors import SettingError, StabcliError
from stabcli.measure import MeasureSettings
from stabcli.monitor.assess import PointResult, points_frame
from stabcli.store import RunDir
from stabcli.store import fingerprint as store_fingerprint
from stabcli.store.kstudy import refuse_inside_kstudy
from stabcli.store.schema import EVAL_COLUMNS

SETTINGS_KEY = "settings"  # the key the report's RunDir.open looks for
#: How the store's setting names read for a monitor (keyword arguments of ``watch``).
_NAMES = {"out": "run_dir", "overwrite": "overwrite=True"}


def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Versions of Python and the packages the numbers depend on."""
    import numpy
    import torch

    return {
        "stabcli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        **(extra or {}),
    }


def monitor_settings(
    optimizer_name: str,
    groups: list[dict[str, Any]],
    parameters: int,
    tensors: int,
    measure: MeasureSettings,
    every: int,
) -> dict[str, Any]:
    """The settings that identify a monitored run (config.json's ``settings``)."""
    return {
        "kind": "monitor",
        "optimizer": {"class": optimizer_name, "param_groups": groups},
        "model": {"parameters": parameters, "tensors": tensors},
        "measurement": asdict(measure),
        "every": every,
    }


def monitor_config(
    settings: dict[str, Any],
    *,
    device: str,
    dtype: str,
    step_offset: int,
    fingerprint: str,
    extra_versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """config.json of a monitored run (module docstring)."""
    optimizer = settings["optimizer"]
    n_groups = len(optimizer["param_groups"])
    name = optimizer["class"].rsplit(".", 1)[-1]
    description = (
        f"monitored training: {name}, {n_groups} param group{'s' if n_groups > 1 else ''}, "
        f"{settings['model']['parameters']:,} parameters"
    )
    return {
        "kind": "monitor",
        "stabcli_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        SETTINGS_KEY: settings,
        "settings_fingerprint": fingerprint,  # the store's identity of the run
        "region": {"kind": "monitor", "description": description},
        "device": device,
        "dtype": dtype,
        "step_offset": step_offset,  # optimizer steps taken before watching began
        "versions": versions(extra_versions),
    }


def open_run(path: str | Path, config: dict[str, Any], overwrite: bool) -> RunDir:
    """Create (or reopen, for the same settings) and lock the run directory; never inside
    a k-study, whose sub-runs only ``stabcli kstudy`` writes."""
    refuse_inside_kstudy(path, "run_dir", "watching")
    try:
        run = RunDir.create(path, config, SETTINGS_KEY, overwrite, command=None)
    except SettingError as err:
        raise StabcliError(err.render(_NAMES)) from None
    run.write_state("running", [])
    return run


def save_run(run: RunDir, results: list[PointResult], status: str) -> None:
    """Write the run's points and traces as one batch, then its state."""
    ids = [str(r.row["point_id"]) for r in results]
    if results:
        batch = "batch-" + hashlib.sha256("|".join(ids).encode()).hexdigest()[:12]
        traces = pd.concat([r.traces for r in results], ignore_index=True)
        evals = pd.DataFrame({c: pd.Series(dtype=float) for c in EVAL_COLUMNS})
        run.commit_batch(batch, points_frame(results), traces, evals)
    run.write_state(status, ids)


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """The run's identity: the store's fingerprint of its settings."""
    return store_fingerprint(settings)
