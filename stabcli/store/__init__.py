"""The run directory: atomic writes, a lock, reading back, resuming (no training, no theory).

Layout of a run directory::

    config.json       resolved configuration, package versions, device, seeds, fingerprint
    state.json        planned point ids, status (running / complete / interrupted), and the
                      run's own record of the batch files it wrote
    points.csv        one row per finished point (the commit record of a batch)
    traces/*.parquet  per-step records, one file per batch (pd.read_parquet(dir) loads all)
    evals/*.parquet   test losses, one file per batch (when the preset records them)
    .stabcli-lock     the lock a sweep holds while it writes the run (and who holds it)
"""

from stabcli.store.identity import fingerprint, point_id
from stabcli.store.rundir import RunDir, RunState
from stabcli.store.runs import find_latest_run, list_runs

__all__ = ["RunDir", "RunState", "find_latest_run", "fingerprint", "list_runs", "point_id"]
