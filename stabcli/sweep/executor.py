"""Where a sweep's batches run: the executor seam.

The driver (:func:`stabcli.sweep.run.run_sweep`) splits the points it has to train into
batches and hands them to an executor; finished batches come back in any order, and the
driver alone commits each to the run directory as it arrives. The unit of work is
:func:`stabcli.probe.run_batch`: pure, picklable in and out, resolving its device and
reading its data (by content, :class:`stabcli.probe.DataRef`) where it runs. An executor
only decides where and when batches run:

- :class:`LocalExecutor` (the default): one batch after another in this process;
- ``RayExecutor`` (:mod:`stabcli.sweep.ray_executor`, imported only when chosen): each
  batch a task on a Ray cluster.

Every finished batch comes with a :class:`BatchRecord` (where and how it ran: host,
device, dtype, torch threads, attempt), which the driver keeps in the batch's traces
file, so a run on a cluster that mixes GPU kinds says which batch ran on which.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from stabcli import __version__
from stabcli.errors import SettingError, StabcliError

if TYPE_CHECKING:
    import torch

    from stabcli.probe import ProbePoint, ProbeResult, ProbeSetup

#: The executors ``--executor`` names.
EXECUTORS = ("local", "ray")
#: Attempts after the first that a failed or lost batch gets before it is reported.
MAX_RETRIES = 2
#: Key of the batch record in a traces file's ``DataFrame.attrs`` (pandas keeps attrs in
#: the Parquet file's metadata, under ``PANDAS_ATTRS``).
RECORD_KEY = "stabcli_batch"

ProgressFn = Callable[[int], None]  # point-steps done since the last call (may be < 0)
NoticeFn = Callable[[str], None]  # one line for the user (a retry, a lost worker)


@dataclass(frozen=True)
class ExecutorSpec:
    """Which executor runs a sweep's batches, as asked (saved in config.json; not part of
    the run's identity: any executor resumes any run)."""

    kind: str = "local"  # "local" or "ray"
    address: str | None = None  # ray: the cluster's address; None: RAY_ADDRESS or local
    gpus_per_batch: float | None = None  # ray: GPUs per task; None: 1 if the cluster has any
    max_retries: int = MAX_RETRIES  # ray: attempts after the first for a failed batch

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise SettingError(
                "{executor} must be one of {choices}, got {got!r}",
                choices=", ".join(EXECUTORS),
                got=self.kind,
            )
        if self.kind == "local":
            for setting in ("address", "gpus_per_batch"):
                if getattr(self, setting) is not None:
                    raise SettingError("{" + setting + "} applies only to the ray executor")
        if self.gpus_per_batch is not None and not (
            math.isfinite(self.gpus_per_batch) and self.gpus_per_batch >= 0
        ):
            raise SettingError(
                "{gpus_per_batch} must be a number >= 0, got {got!r}", got=self.gpus_per_batch
            )
        if type(self.max_retries) is not int or self.max_retries < 0:
            raise SettingError(
                "{max_retries} must be a whole number >= 0, got {got!r}", got=self.max_retries
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Batch:
    """Points trained together in one vectorized program (one :func:`run_batch` call)."""

    number: int  # 0, 1, ... in the order the driver planned them
    indices: tuple[int, ...]  # the points' positions in the sweep's point list
    points: tuple[ProbePoint, ...]  # the same points, as the engine takes them

    @property
    def size(self) -> int:
        return len(self.points)


def split_batches(
    indices: Sequence[int], points: Sequence[ProbePoint], points_per_batch: int
) -> list[Batch]:
    """Consecutive runs of ``points_per_batch`` points (the last may be shorter), in order."""
    if points_per_batch < 1:
        raise ValueError(f"points_per_batch must be >= 1, not {points_per_batch}")
    return [
        Batch(
            number,
            tuple(indices[lo : lo + points_per_batch]),
            tuple(points[i] for i in indices[lo : lo + points_per_batch]),
        )
        for number, lo in enumerate(range(0, len(indices), points_per_batch))
    ]


@dataclass(frozen=True)
class BatchRecord:
    """Where and how one batch ran (kept in its traces file; see :func:`read_batch_record`)."""

    executor: str  # "local" or "ray"
    host: str  # the machine's name
    pid: int  # the process that trained it
    device: str  # e.g. "cpu", "cuda", "cuda:0"
    device_name: str  # e.g. "NVIDIA H100 80GB HBM3", or the CPU's model name
    dtype: str  # the training dtype's name (bfloat16: autocast on CUDA)
    threads: int  # torch's intra-op threads while it trained
    batching: str  # how its points ran: "native", "vmap" or "sequential"
    attempt: int  # 1 for the first try, 2 for the first retry, ...
    seconds: float  # wall time of run_batch there
    torch: str  # torch's version there
    stabcli: str  # stabcli's version there

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BatchDone:
    """A batch that finished: its result and where it ran."""

    batch: Batch
    result: ProbeResult
    record: BatchRecord


@dataclass(frozen=True)
class BatchFailed:
    """A batch given up on after its attempts (the sweep's other batches go on)."""

    batch: Batch
    reason: str  # one line
    attempts: int


BatchOutcome = BatchDone | BatchFailed


def device_name(device: torch.device) -> str:
    """A human name of ``device``: the GPU's model, or the CPU's."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    if device.type == "mps":
        return "Apple MPS"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def record_here(
    executor: str, setup: ProbeSetup, result: ProbeResult, attempt: int = 1
) -> BatchRecord:
    """The record of a batch this process has just trained with ``setup``."""
    import torch

    from stabcli.probe.backend import build_model
    from stabcli.probe.device import resolve_device

    dev = resolve_device(setup.device)
    batching = build_model(setup.preset, setup.dataset()).batching  # built: cached, cheap
    return BatchRecord(
        executor=executor,
        host=socket.gethostname(),
        pid=os.getpid(),
        device=str(dev),
        device_name=device_name(dev),
        dtype=result.dtype,
        threads=torch.get_num_threads(),
        batching=batching,
        attempt=attempt,
        seconds=result.seconds,
        torch=str(torch.__version__),
        stabcli=__version__,
    )


def read_batch_record(path: str | Path) -> BatchRecord | None:
    """The record kept in a traces file (``traces/batch-….parquet``), or None when it has
    none (a batch written before records were kept).

    pandas keeps ``DataFrame.attrs`` in the file's Parquet metadata, so
    ``pd.read_parquet(path).attrs["stabcli_batch"]`` gives the same as a dict.
    """
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as err:  # pyarrow raises OSError, ArrowInvalid, ... for damaged files
        raise StabcliError(f"{path} is corrupt: {str(err).splitlines()[0]}") from None
    raw = metadata.get(b"PANDAS_ATTRS")
    if raw is None:
        return None
    found = json.loads(raw).get(RECORD_KEY)
    return BatchRecord(**found) if isinstance(found, dict) else None


class Executor(ABC):
    """Runs batches of a probe somewhere and yields each outcome as it arrives.

    Use as a context manager: leaving it cancels whatever is still running and releases
    what it holds (a cluster connection).
    """

    kind: str

    def describe(self) -> str | None:
        """One line for the user before training (where the batches run), or None."""
        return None

    @abstractmethod
    def points_per_batch(self, setup: ProbeSetup, n_points: int, requested: int | None) -> int:
        """Points per batch for ``n_points`` points: ``requested`` checked against a
        worker's memory, or (None) chosen from it."""

    @abstractmethod
    def run(
        self,
        setup: ProbeSetup,
        batches: Sequence[Batch],
        on_progress: ProgressFn | None = None,
        on_notice: NoticeFn | None = None,
    ) -> Generator[BatchOutcome, None, None]:
        """Train every batch; yield each outcome as it arrives, in any order. Closing the
        iterator early (an error, Ctrl-C in the driver) cancels the batches not yet
        yielded."""

    @abstractmethod
    def close(self) -> None:
        """Release what the executor holds."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def check_requested(requested: object) -> int:
    """A requested points-per-batch, checked: a positive whole number."""
    if type(requested) is not int or requested < 1:
        raise SettingError(
            "{points_per_batch} must be a positive integer, not {got!r}", got=requested
        )
    return requested


class LocalExecutor(Executor):
    """Batches one after another in this process, on the setup's device (the sweep's
    behaviour before executors existed, and the default)."""

    kind = "local"

    def points_per_batch(self, setup: ProbeSetup, n_points: int, requested: int | None) -> int:
        """From half the device's free memory (None), else ``requested`` checked to fit."""
        from stabcli.probe.device import auto_points_per_batch, check_memory, resolve_device

        dev = resolve_device(setup.device)
        memory = setup.memory(dev)
        if requested is None:
            return auto_points_per_batch(memory, dev, n_points)
        ppb = min(check_requested(requested), n_points)
        check_memory(memory, dev, setup.preset, ppb)
        return ppb

    def run(
        self,
        setup: ProbeSetup,
        batches: Sequence[Batch],
        on_progress: ProgressFn | None = None,
        on_notice: NoticeFn | None = None,
    ) -> Generator[BatchOutcome, None, None]:
        """Each batch in turn; an error stops the sweep (the driver keeps what was saved)."""
        from stabcli.probe import run_batch

        for batch in batches:
            result = run_batch(setup, batch.points, on_progress=on_progress)
            yield BatchDone(batch, result, record_here(self.kind, setup, result))

    def close(self) -> None:
        """Nothing to release."""


def open_executor(spec: ExecutorSpec, device: str | None = None) -> Executor:
    """The executor ``spec`` asks for, ready to run batches (for Ray: connected to the
    cluster; errors are one line). ``device`` is what the user asked for (None: each
    worker's best)."""
    if spec.kind == "ray":
        from stabcli.sweep.ray_executor import RayExecutor

        return RayExecutor(spec, device)
    return LocalExecutor()
