"""The run directory: atomic writes, reading back, resuming (no training, no theory).

Layout of a run directory::

    config.json     resolved configuration, package versions, device, seeds, fingerprint
    state.json      planned point ids and status: running / complete / interrupted
    points.csv      one row per finished point (the commit record of a batch)
    traces/*.parquet  per-step records, one file per batch (pd.read_parquet(dir) loads all)
    evals/*.parquet   test losses, one file per batch (when the preset records them)
"""

from stabcli.store.identity import fingerprint, point_id
from stabcli.store.rundir import RunDir, RunState, find_latest_run

__all__ = ["RunDir", "RunState", "find_latest_run", "fingerprint", "point_id"]
