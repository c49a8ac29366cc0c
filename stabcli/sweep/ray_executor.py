"""Probe batches on a Ray cluster: each batch one Ray task (imported only when chosen).

Ray is an optional extra (``pip install 'stabcli[ray]'``); without it, choosing this
executor is a one-line error saying how to install it. Every node needs the same stabcli
version as the driver (a task on another version refuses to run) and the probe's data:

- generated data (``synthetic-*``, the default presets) is generated again on the worker;
- a file (``--data``, tiny Shakespeare) is read on the worker from the same path, or, where
  that path does not exist, from ``$STABCLI_SHAKESPEARE`` or the download cache
  (:mod:`stabcli.probe.shakespeare`); its content is checked against the run's sha256
  (:class:`stabcli.probe.DataRef`) either way;
- a factory preset's module must be importable there from the same ``python_path``.

A task resolves its device where it runs (``--device``, else ``cuda`` when it was given a
GPU, else ``cpu``) and pins torch to the driver's number of threads, so that a batch
computes bit for bit what the local executor computes on a CPU (Ray starts its workers
with one thread). Tasks report point-steps to a small actor that the driver reads twice a
second, so the progress bar covers every worker. A batch whose task fails or is lost (its
worker or node died) runs again, up to ``max_retries`` more times; a user error (a
:class:`StabcliError`, e.g. the data is missing on that node) is not retried. A batch given
up on is reported, and the other batches go on. Leaving the executor (Ctrl-C in the
driver) cancels the tasks still pending or running.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from stabcli import __version__
from stabcli.errors import SettingError, StabcliError
from stabcli.probe import ProbePoint, ProbeResult, ProbeSetup
from stabcli.sweep.executor import (
    Batch,
    BatchDone,
    BatchFailed,
    BatchOutcome,
    BatchRecord,
    Executor,
    ExecutorSpec,
    NoticeFn,
    ProgressFn,
    check_requested,
    device_name,
    record_here,
)

#: How to get Ray (the extra pyproject.toml declares).
INSTALL = "pip install 'stabcli[ray]'"
#: Seconds between the driver's looks at the progress board while it waits for results.
POLL_SECONDS = 0.5


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise StabcliError(
            f"the ray executor needs Ray, which is not installed here: {INSTALL}"
        ) from None
    return ray


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A one-line error, at once, when a cluster address of the form HOST:PORT does not
    answer (``ray.init`` would retry for minutes, logging every try). Other forms
    (``auto``, ``local``, ``ray://…``) and no address at all are left to Ray."""
    import os
    import re
    import socket

    given = address if address is not None else os.environ.get("RAY_ADDRESS")
    found = re.fullmatch(r"\[?([\w.:-]+?)\]?:(\d+)", given or "")
    if given is None or found is None:
        return
    try:
        socket.create_connection((found.group(1), int(found.group(2))), timeout=timeout).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise StabcliError(
            f"cannot connect to Ray at {given}: {reason.lower()} (start the head node there "
            f"with `ray start --head --port={found.group(2)}`)"
        ) from None


def errors_to_stderr() -> Callable[[], None]:
    """Send the errors a Ray cluster pushes to this driver ("A worker died …", an
    infeasible task) to stderr; returns the function that undoes it.

    Ray's driver prints them on stdout (``ray._private.worker.listen_error_messages``
    through ``print_to_stdstream``), where the sweep's results (``--json``) go. Where that
    private function is missing (another Ray version), nothing is changed.
    """
    try:
        from ray._private import worker as ray_worker

        original = ray_worker.print_to_stdstream
    except (ImportError, AttributeError):
        return lambda: None

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    ray_worker.print_to_stdstream = to_stderr

    def undo() -> None:
        ray_worker.print_to_stdstream = original

    return undo


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ------------------------------------------------------------------ what runs on a worker
def worker_setup(
    setup: ProbeSetup, device: str | None, threads: int, driver_version: str
) -> ProbeSetup:
    """``setup`` as this worker runs it: on the driver's stabcli version, with torch pinned
    to the driver's thread count, the device resolved here (``None``: cuda, then mps, then
    cpu) and the data found here.

    A data file the driver read from a path that does not exist here is looked for where
    the preset says without it ($STABCLI_SHAKESPEARE, the cache); the run's sha256 decides
    whether what is found is the same data (:meth:`ProbeSetup.dataset`).
    """
    import socket

    import torch

    from stabcli.probe.device import resolve_device, resolve_dtype

    if __version__ != driver_version:
        raise StabcliError(
            f"worker {socket.gethostname()} has stabcli {__version__}, the driver "
            f"{driver_version}: install the same version on every node"
        )
    torch.set_num_threads(threads)
    preset = setup.preset
    path = preset.data.data_path
    if path is not None and not Path(path).is_file():
        preset = replace(preset, data=replace(preset.data, data_path=None))
    dev = resolve_device(device)
    resolve_dtype(preset, dev)
    return replace(setup, preset=preset, device=str(dev))


def size_task(
    setup: ProbeSetup,
    device: str | None,
    threads: int,
    driver_version: str,
    n_points: int,
    share: float = 1.0,
) -> tuple[int, str]:
    """Points per batch that fit in half of ``share`` of this worker's free memory (the
    probe's memory estimate, :func:`stabcli.probe.device.auto_points_per_batch`; ``share``
    is a task's part of a device it shares with other tasks), and the device's name."""
    import torch

    from stabcli.probe.device import auto_points_per_batch

    here = worker_setup(setup, device, threads, driver_version)
    dev = torch.device(here.device)
    return auto_points_per_batch(here.memory(dev), dev, n_points, share), device_name(dev)


def batch_task(
    setup: ProbeSetup,
    points: tuple[ProbePoint, ...],
    device: str | None,
    threads: int,
    driver_version: str,
    number: int,
    attempt: int,
    board: Any,
) -> tuple[ProbeResult, BatchRecord]:
    """Train one batch here; report its point-steps to ``board`` (a :class:`ProgressBoard`
    actor, or None) as it goes. The batch must fit in this worker's memory."""
    import torch

    from stabcli.probe import run_batch
    from stabcli.probe.device import check_memory

    here = worker_setup(setup, device, threads, driver_version)
    dev = torch.device(here.device)
    check_memory(here.memory(dev), dev, here.preset, len(points))
    done = 0

    def report(k: int) -> None:
        nonlocal done
        done += k
        if board is not None:
            board.report.remote(number, done)

    result = run_batch(here, points, on_progress=report)
    return result, record_here("ray", here, result, attempt)


class ProgressBoard:
    """Point-steps done so far by the current attempt of each batch (a Ray actor: tasks
    write, the driver reads)."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def report(self, number: int, done: int) -> None:
        self.done[number] = done

    def snapshot(self) -> dict[int, int]:
        return dict(self.done)


# ------------------------------------------------------------------------- the driver
def even_batches(n_points: int, slots: int, fit: int) -> int:
    """Points per batch for ``n_points`` on ``slots`` tasks at a time, at most ``fit`` each:
    as few rounds of tasks as memory allows, every slot busy in each, batches of even size
    (64 points on 4 GPUs fitting 10 each: 2 rounds of 4 batches of 8, not 10+10+...+4)."""
    rounds = math.ceil(n_points / (slots * fit))
    return max(1, math.ceil(n_points / (slots * rounds)))


class DeferredStops:
    """SIGINT and SIGTERM noted while Ray's client calls run, and acted on between them.

    A Ctrl-C raised inside ``ray.wait`` or ``ray.get`` (Ray checks for signals there) can
    leave Ray's task bookkeeping half-updated, and cancelling tasks afterwards then aborts
    the driver in Ray's own checks ("Tried to complete task that was not pending") instead
    of ending with the saved run. Here a stop is only noted; :meth:`act` re-delivers it,
    to the handlers that were in place, from plain Python between two Ray calls (at most
    ``POLL_SECONDS`` later). Outside the main thread signals cannot be handled: a no-op.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._note) for s in self.SIGNALS}

    def _note(self, signum: int, frame: object) -> None:
        self.caught.append(signum)

    def restore(self) -> None:
        """Put the previous handlers back (further signals act at once)."""
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def act(self) -> None:
        """Deliver a noted stop now, as it would have been delivered without this."""
        if self.caught:
            signum, self.caught = self.caught[0], []
            self.restore()
            os.kill(os.getpid(), signum)  # the restored handler runs right here


class RayExecutor(Executor):
    """Each batch a Ray task; see the module docstring."""

    kind = "ray"

    def __init__(self, spec: ExecutorSpec, device: str | None = None) -> None:
        import torch

        ray = import_ray()
        self.ray, self.spec = ray, spec
        self.threads = torch.get_num_threads()  # the local run's: bit-identical CPU results
        self.owns_connection = not ray.is_initialized()
        if self.owns_connection:
            where = spec.address or "RAY_ADDRESS or a new local instance"
            check_reachable(spec.address)
            # ray.init replaces the SIGTERM handler with sys.exit: keep the caller's (the
            # CLI's stops a sweep like Ctrl-C, which cancels the tasks and saves the run)
            main = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(
                    address=spec.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except Exception as err:  # ConnectionError, RuntimeError, ValueError, ...
                raise StabcliError(f"cannot connect to Ray ({where}): {_first_line(err)}") from None
            finally:
                if sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
        self._undo_errors = errors_to_stderr()
        try:
            self._plan_resources(device)
        except BaseException:
            self.close()
            raise
        self.sized: str | None = None  # the device the batch size was chosen on

    def _plan_resources(self, device: str | None) -> None:
        """What each task asks for, and how many can run at once."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        gpus_here = [float(r.get("GPU", 0.0)) for r in nodes]
        cpus_here = [float(r.get("CPU", 0.0)) for r in nodes]
        self.cluster_gpus, self.cluster_cpus = sum(gpus_here), sum(cpus_here)
        asked = self.spec.gpus_per_batch
        gpus = asked if asked is not None else (1.0 if max(gpus_here, default=0) >= 1 else 0.0)
        if gpus > max(gpus_here, default=0.0):
            raise SettingError(
                "{gpus_per_batch} {gpus}: no node of the Ray cluster has that many GPUs "
                "(largest: {largest}); use 0 to run on CPUs",
                gpus=f"{gpus:g}",
                largest=f"{max(gpus_here, default=0.0):g}",
            )
        # A GPU task needs one core to drive its GPU; a CPU task reserves its threads
        # (at most a node's cores: more threads than reserved cores is slower, not wrong).
        largest = max(cpus_here, default=0.0)
        if largest < 1:
            raise StabcliError("no node of the Ray cluster offers a CPU to run tasks on")
        self.gpus = gpus
        self.cpus = 1.0 if gpus > 0 else min(float(self.threads), math.floor(largest))
        # a task's part of the memory it shares with the tasks beside it: of its GPU (0.5
        # GPU: two tasks per GPU), or of the largest node's RAM (one task per cpus cores)
        self.share = min(gpus, 1.0) if gpus > 0 else self.cpus / largest
        self.device = device if device is not None else ("cuda" if gpus > 0 else "cpu")
        per_node = [
            min(math.floor(g / gpus) if gpus > 0 else math.inf, math.floor(c / self.cpus))
            for g, c in zip(gpus_here, cpus_here, strict=True)
        ]
        self.slots = max(1, int(sum(s for s in per_node if math.isfinite(s))))

    def _remote(self, fn: Any, retries: int) -> Any:
        """``fn`` as a Ray task asking for each batch's CPUs and GPUs. A GPU task runs in a
        fresh worker process each time (``max_calls=1``, which Ray sets by itself only when
        the GPUs are given here rather than through ``.options``): a reused worker would stay
        on the GPU it first started CUDA on, whatever ``CUDA_VISIBLE_DEVICES`` Ray gives its
        next task, and would hold its cached allocator memory against the other workers."""
        calls = 1 if self.gpus > 0 else 0  # 0: no limit, workers reused (CPU tasks)
        return self.ray.remote(
            max_retries=retries, max_calls=calls, num_cpus=self.cpus, num_gpus=self.gpus
        )(fn)

    def describe(self) -> str | None:
        ctx = self.ray.get_runtime_context()
        address = getattr(ctx, "gcs_address", None) or self.spec.address or "local"
        on = f"{self.gpus:g} GPU" if self.gpus > 0 else f"{self.cpus:g} CPU"
        line = (
            f"ray: {address} ({self.cluster_cpus:g} CPUs, {self.cluster_gpus:g} GPUs); each "
            f"batch a task on {on} ({self.device}, {self.threads} torch thread"
            f"{'s' if self.threads != 1 else ''}), {self.slots} at a time"
        )
        return line + (f"; batch size chosen on {self.sized}" if self.sized else "")

    def _unwrap(self, err: BaseException) -> StabcliError | None:
        """The user error a task raised (Ray wraps it), if it was one."""
        cause = getattr(err, "cause", None)
        return cause if isinstance(cause, StabcliError) else None

    def points_per_batch(self, setup: ProbeSetup, n_points: int, requested: int | None) -> int:
        """``requested``, or: a batch per free task slot, each no larger than half the free
        memory of a worker allows (measured by a sizing task on one worker), in as few
        rounds as memory allows and with batches of even size."""
        if requested is not None:
            return min(check_requested(requested), n_points)
        remote = self._remote(size_task, retries=1)
        ref = remote.remote(setup, self.device, self.threads, __version__, n_points, self.share)
        try:
            fit, name = self.ray.get(ref)
        except Exception as err:
            user = self._unwrap(err)
            if user is not None:
                raise StabcliError(str(user)) from None
            raise StabcliError(f"the Ray sizing task failed: {_first_line(err)}") from None
        self.sized = f"{name}: {fit} point{'s' if fit != 1 else ''} fit"
        return even_batches(n_points, self.slots, fit)

    def _failure(self, err: BaseException) -> tuple[str, bool]:
        """(one line saying why a batch failed, whether running it again may help)."""
        exceptions = self.ray.exceptions
        user = self._unwrap(err)
        if user is not None:  # the same input fails the same way: not retried
            return str(user).splitlines()[0], False
        if isinstance(err, exceptions.TaskCancelledError):
            return "cancelled", False
        if isinstance(err, exceptions.WorkerCrashedError):
            return "its worker process died (killed, or out of memory)", True
        if isinstance(err, exceptions.RayTaskError):
            cause = getattr(err, "cause", None) or err
            return f"{type(cause).__name__}: {_first_line(cause)}", True
        return f"{type(err).__name__}: {_first_line(err)}", True  # a node lost, ...

    def run(
        self,
        setup: ProbeSetup,
        batches: Sequence[Batch],
        on_progress: ProgressFn | None = None,
        on_notice: NoticeFn | None = None,
    ) -> Generator[BatchOutcome, None, None]:
        """Submit every batch at once; yield each outcome as it arrives (module docstring)."""
        ray = self.ray
        steps = setup.preset.train.steps
        task = self._remote(batch_task, retries=0)
        board = ray.remote(num_cpus=0)(ProgressBoard).remote() if on_progress else None
        setup_ref = ray.put(setup)  # once in the object store, not once per task
        attempts = {b.number: 0 for b in batches}
        counted = {b.number: 0 for b in batches}  # point-steps passed to on_progress
        pending: dict[Any, Batch] = {}

        def submit(batch: Batch) -> None:
            attempts[batch.number] += 1
            args = (self.device, self.threads, __version__, batch.number)
            ref = task.remote(setup_ref, batch.points, *args, attempts[batch.number], board)
            pending[ref] = batch

        def progress(number: int, done: int) -> None:
            if on_progress is not None and done != counted[number]:
                on_progress(done - counted[number])
                counted[number] = done

        stops = DeferredStops()
        try:
            for batch in batches:
                submit(batch)
            while pending:
                stops.act()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                if board is not None:
                    with contextlib.suppress(ray.exceptions.GetTimeoutError):
                        snapshot = ray.get(board.snapshot.remote(), timeout=10)
                        running = {b.number for b in pending.values()}
                        for number, done in snapshot.items():
                            if number in running:
                                progress(number, done)
                for ref in ready:
                    batch = pending.pop(ref)
                    try:
                        result, record = ray.get(ref)
                    except Exception as err:
                        reason, again = self._failure(err)
                        progress(batch.number, 0)  # an attempt's progress is lost with it
                        if again and attempts[batch.number] <= self.spec.max_retries:
                            if on_notice is not None:
                                on_notice(
                                    f"batch {batch.number + 1} of {len(batches)}: {reason}; "
                                    f"running it again (attempt {attempts[batch.number] + 1} "
                                    f"of {self.spec.max_retries + 1})"
                                )
                            if board is not None:
                                board.report.remote(batch.number, 0)
                            submit(batch)
                        else:
                            yield BatchFailed(batch, reason, attempts[batch.number])
                        continue
                    progress(batch.number, batch.size * steps)
                    yield BatchDone(batch, result, record)
        finally:
            stops.restore()  # cancelling may take a while: a second Ctrl-C acts at once
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if board is not None:
                with contextlib.suppress(Exception):
                    ray.kill(board)
        stops.act()  # a stop noted during the last round still stops

    def close(self) -> None:
        """Disconnect from the cluster if this executor connected (a local instance it
        started stops with it)."""
        if self.owns_connection and self.ray.is_initialized():
            self.ray.shutdown()
        self._undo_errors()
