"""A probe resolved once: its preset, device and data, checked to fit in memory.

The driver of a sweep resolves a :class:`ProbeSetup` before it writes anything (a bad
device, missing data or a probe too large for the device is then a one-line error with
nothing on disk) and passes it down. It is small and picklable: a worker on another machine
runs batches of it with :func:`stabcli.probe.engine.run_batch`, which re-reads the data
there and checks it by content (:class:`~stabcli.probe.data.DataRef`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stabcli.probe.backend import build_model
from stabcli.probe.config import Preset
from stabcli.probe.data import DataRef, Dataset, load_dataset, resolve_data
from stabcli.probe.device import (
    MemoryEstimate,
    check_memory,
    estimate_memory,
    resolve_device,
    resolve_dtype,
)


@dataclass(frozen=True)
class ProbeSetup:
    """Everything a probe batch needs besides its points, resolved once."""

    preset: Preset  # with overrides applied
    device: str  # the device it was resolved for, e.g. "cpu" or "cuda"
    data: DataRef  # the data, by content

    def dataset(self) -> Dataset:
        """The data set (read once per process, verified by its sha256)."""
        return load_dataset(self.preset, self.data)

    def memory(self, device: torch.device) -> MemoryEstimate:
        """The memory a batch of this probe needs on ``device`` (by its dtype)."""
        data = self.dataset()
        model = build_model(self.preset, data)
        dtype, _ = resolve_dtype(self.preset, device)
        elem = torch.empty((), dtype=dtype).element_size()
        values = data.train_x.size + data.test_x.size
        return estimate_memory(
            self.preset, model.n_params, data.n_out, values, elem, model.activations
        )


def resolve_setup(preset: Preset, device: str | None = None) -> ProbeSetup:
    """Resolve the device (``None``: cuda, then mps, then cpu), check the dtype on it, read
    the data once, and check that one point fits in the device's memory."""
    dev = resolve_device(device)
    resolve_dtype(preset, dev)
    setup = ProbeSetup(preset=preset, device=str(dev), data=resolve_data(preset))
    check_memory(setup.memory(dev), dev, preset)
    return setup
