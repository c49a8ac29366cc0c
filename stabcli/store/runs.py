"""Finding run directories under a root folder (``runs/`` by default): one scan, newest first."""

from __future__ import annotations

from pathlib import Path

from stabcli.errors import StabcliError
from stabcli.store.files import CONFIG


def list_runs(root: str | Path = "runs") -> list[Path]:
    """Run directories directly under ``root`` (those with a config.json), newest first.

    "Newest" is by config.json's modification time, which a sweep rewrites when it starts
    or resumes a run.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    found = []
    for config in base.glob(f"*/{CONFIG}"):
        try:
            found.append((config.stat().st_mtime, config.parent))
        except OSError:  # vanished or unreadable meanwhile: not a run to offer
            continue
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


def find_latest_run(root: str | Path = "runs") -> Path:
    """The newest run directory under ``root``; a one-line error when there is none."""
    runs = list_runs(root)
    if not runs:
        raise StabcliError(
            f"no run found under {Path(root)}/; run `stabcli sweep` first or give RUN_DIR"
        )
    return runs[0]
