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
        return estimate_memory(
            self.preset,
            model.n_params,
            data.n_out,
            device_bytes(data, elem),
            elem,
            model.activations,
        )


def device_bytes(data: Dataset, elem: int) -> int:
    """Bytes ``data`` takes on the device as :class:`stabcli.probe.data.BatchStream` holds
    it: token ids, labels and uint8 images as stored, float features in the probe's dtype
    (``elem`` bytes a value)."""
    inputs = [data.train_x, data.test_x]
    floats = sum(a.size for a in inputs if a.dtype.kind == "f")
    stored = sum(a.nbytes for a in inputs if a.dtype.kind != "f")
    labels = sum(a.nbytes for a in (data.train_y, data.test_y) if a is not None)
    return floats * elem + stored + labels


def resolve_setup(preset: Preset, device: str | None = None) -> ProbeSetup:
    """Resolve the device (``None``: cuda, then mps, then cpu), check the dtype on it, read
    the data once, and check that one point fits in the device's memory."""
    dev = resolve_device(device)
    resolve_dtype(preset, dev)
    setup = ProbeSetup(preset=preset, device=str(dev), data=resolve_data(preset))
    check_memory(setup.memory(dev), dev, preset)
    return setup
