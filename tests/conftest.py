"""Shared fixtures: one torch thread for every test (and its subprocesses), the repository
root, and the real tiny Shakespeare when this machine has it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: $STABCLI_SHAKESPEARE as the session started (tests that isolate the cache remove it).
SHAKESPEARE_ENV = os.environ.get("STABCLI_SHAKESPEARE")
#: Thread pools of the numeric libraries a subprocess (a CLI run) may start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tiny models train fastest on one thread, and on a shared 2-core machine OpenMP's
    barriers stall badly (the suite took 12.5 minutes instead of 2.4 with free threads).
    Pins torch in this process (imported here, since many tests reach it only through
    the CLI) and, through the environment, in every subprocess a test starts; restores
    both afterwards."""
    import torch

    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shakespeare_path() -> Path:
    """The real tiny Shakespeare, from $STABCLI_SHAKESPEARE or the download cache (checked
    by its sha256), or a skip: tests never download it."""
    from stabcli.probe.shakespeare import ENV_PATH, FILENAME, SHA256, cache_dir

    for candidate in (SHAKESPEARE_ENV, cache_dir() / FILENAME):
        path = Path(candidate) if candidate else None
        if (
            path is not None
            and path.is_file()
            and hashlib.sha256(path.read_bytes()).hexdigest() == SHA256
        ):
            return path
    pytest.skip(f"no verified tiny Shakespeare here: set {ENV_PATH}=PATH to run this test")
