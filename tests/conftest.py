"""Shared fixtures: the repository root and the optional ../shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare" / "input.txt"


@pytest.fixture
def shakespeare_path() -> Path:
    """The tiny Shakespeare text from ../shared, or a skip when it is absent."""
    if not SHAKESPEARE.is_file():
        pytest.skip("../shared/data/tinyshakespeare/input.txt is not present")
    return SHAKESPEARE
