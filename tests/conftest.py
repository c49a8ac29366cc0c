"""Shared fixtures: one torch thread for every test (and its subprocesses), the repository
root, and the optional ../shared data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare" / "input.txt"
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
    """The tiny Shakespeare text from ../shared, or a skip when it is absent."""
    if not SHAKESPEARE.is_file():
        pytest.skip("../shared/data/tinyshakespeare/input.txt is not present")
    return SHAKESPEARE
