"""A k-study small enough for unit tests: cnn-synthetic shrunk to a one-stage CNN on 8x8
images (its App. H schedule kept: warm-up 150 of 600 steps, evaluations every 75)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stabcli.probe import Preset, load_preset
from stabcli.sweep.kstudy import KStudyRequest


def tiny_preset() -> Preset:
    return load_preset("cnn-synthetic").with_overrides(
        n_layer=1, n_embd=4, image_size=8, n_samples=400, batch_size=16, eval_batches=2
    )


def tiny_request(out: Path | None, **changes: Any) -> KStudyRequest:
    given: dict[str, Any] = {
        "ks": (1, 2),
        "strategies": ("inverse-exp", "naive"),
        "lrs": (1e-3, 3e-3),
        "steps": 24,
        "out": out,
        "device": "cpu",
    }
    given.update(changes)
    return KStudyRequest(tiny_preset(), **given)
