"""The live monitor: ``watch(optimizer)`` records ‖u_n‖∞ at every step of any training loop.

It hangs on the optimizer's step hooks (``register_step_pre_hook`` and
``register_step_post_hook``; removed on close), so the training loop does not change:

    mon = stabcli.monitor.watch(optimizer, run_dir="runs/mine", model=model)
    for batch in data:
        loss = model(batch); loss.backward(); optimizer.step(); optimizer.zero_grad()
    mon.close()      # or: with stabcli.monitor.watch(...) as mon: ...

Per step: θ_n is copied before the step and ‖θ_{n+1} − θ_n‖∞ of every tensor is written on
the device after it (:mod:`stabcli.monitor.device`; which tensors, and their names:
:mod:`stabcli.monitor.target`); (β, γ), η and λ are read from the param groups
(:mod:`stabcli.monitor.groups`). Every ``sync_every`` measured steps the records are
copied to the host (the only synchronisation), reduced (:mod:`stabcli.monitor.history`)
and given to the streaming measurement (:mod:`stabcli.monitor.live`), which may warn
(:mod:`stabcli.monitor.notices`). Betas with γ² > β are warned about at the step that
uses them. ``close`` measures the whole run (:mod:`stabcli.monitor.assess`) and writes its
run directory (:mod:`stabcli.monitor.save`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import torch

from stabcli.errors import StabcliError
from stabcli.measure import MeasuredClass, MeasureSettings
from stabcli.monitor import notices
from stabcli.monitor.assess import assess_run, points_frame
from stabcli.monitor.bounds import path_rate, point_bound
from stabcli.monitor.device import DeviceRecords
from stabcli.monitor.groups import GroupReader, group_settings, in_domain, is_number, optimizer_kind
from stabcli.monitor.history import History
from stabcli.monitor.live import LiveMeasurement, Reading
from stabcli.monitor.notices import LOGGER, NoticeKind, Notifier, StabilityWarning
from stabcli.monitor.save import (
    monitor_config,
    monitor_settings,
    open_run,
    save_run,
    settings_fingerprint,
)
from stabcli.monitor.target import ModelLike, steps_taken, tensor_names, unwrap
from stabcli.store import RunDir
from stabcli.theory.exact import exact_stable


def _whole(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise StabcliError(f"{name} must be a whole number >= {low}, got {value!r}")
    return value


class Monitor:
    """A watched optimizer (module docstring). Create with :func:`watch`."""

    def __init__(
        self,
        optimizer: Any,
        run_dir: str | Path | None = None,
        *,
        model: ModelLike | None = None,
        every: int = 1,
        log_every: int = 0,
        on_warning: Callable[[StabilityWarning], object] | None = None,
        sync_every: int = 256,
        measure: MeasureSettings | None = None,
        overwrite: bool = False,
        extra_versions: dict[str, str] | None = None,
    ):
        self.every = _whole("every", every, 1)
        self.log_every = _whole("log_every", log_every, 0)
        self.sync_every = _whole("sync_every", sync_every, 1)
        self.measure = measure or MeasureSettings()
        self.optimizer = opt = unwrap(optimizer)
        self.kind = optimizer_kind(opt)
        self._reader = GroupReader(opt, self.kind)
        self._n_groups = len(opt.param_groups)
        names = tensor_names(opt, model)
        params: list[torch.Tensor] = []
        group_of: list[int] = []
        labels: list[str] = []
        for g, group in enumerate(opt.param_groups):
            for i, p in enumerate(group["params"]):
                if p.numel():  # an empty tensor has no update to measure
                    params.append(p)
                    group_of.append(g)
                    labels.append(names.get(id(p), f"group {g}, param {i}"))
        if not params:
            raise StabcliError("the optimizer has no parameters with elements to monitor")
        self._device = DeviceRecords(params, group_of, list(self.kind.decoupled), self.sync_every)
        eps = np.array([torch.finfo(p.dtype).eps for p in params])
        self.history = History(
            self.kind.fields,
            np.asarray(group_of),
            self._n_groups,
            labels,
            eps,
            self.kind.decoupled,
        )
        self._live = LiveMeasurement(self.measure)
        self._notifier = Notifier(on_warning)
        dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in params})
        self.dtype = "float64" if dtypes == ["float64"] else "float32"  # for the bound check
        self.step = steps_taken(opt)  # n of the next step (the optimizer's own count)
        self._count = 0  # steps seen since watching began
        self._measuring = False
        self._device_row = 0
        self._pending: list[tuple[int, bool, list[tuple[Any, ...]]]] = []
        self._checked: list[tuple[Any, Any] | None] = [None] * self._n_groups
        self._next_log = self.step + self.log_every if self.log_every else None
        self._said_new_groups = False
        self._closed = False
        n_params = int(sum(p.numel() for p in params))
        if isinstance(model, torch.nn.Module):
            n_params = int(sum(p.numel() for p in model.parameters()))
        self.settings = monitor_settings(
            self.kind.name, group_settings(opt), n_params, len(params), self.measure, self.every
        )
        self._fingerprint = settings_fingerprint(self.settings)
        self.run: RunDir | None = None
        if run_dir is not None:
            config = monitor_config(
                self.settings,
                device=",".join(sorted({str(p.device) for p in params})),
                dtype=",".join(dtypes),
                step_offset=self.step,
                fingerprint=self._fingerprint,
                extra_versions=extra_versions,
            )
            self.run = open_run(run_dir, config, overwrite)
        self._handles = [
            opt.register_step_pre_hook(self._before),
            opt.register_step_post_hook(self._after),
        ]

    # ------------------------------------------------------------------ the hooks
    def _before(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if len(optimizer.param_groups) != self._n_groups and not self._said_new_groups:
            self._said_new_groups = True
            LOGGER.warning(
                "stabcli.monitor: param groups added after watch() are not monitored "
                "(call watch() after adding them)"
            )
        self._measuring = self._count % self.every == 0
        if self._measuring:
            self._device.snapshot()

    def _after(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        row = self._reader.row()[: self._n_groups]
        if self._measuring:  # ‖θ_n‖∞ of every group at each block's first row (or every
            # row when steps are skipped), then bounded from the steps (history)
            self._device.record(self._device_row, self._device_row == 0 or self.every > 1)
            self._device_row += 1
        self._pending.append((self.step, self._measuring, row))
        self._check_betas(self.step, row)
        self.step += 1
        self._count += 1
        self._measuring = False
        logging_due = self._next_log is not None and self.step >= self._next_log
        if self._device_row == self.sync_every or logging_due:
            self._flush()

    def _check_betas(self, step: int, row: list[tuple[Any, ...]]) -> None:
        """Warn (once) at the first step whose (β, γ) has γ² >= β (host numbers only)."""
        if NoticeKind.UNSTABLE in self._notifier:
            return
        for g, values in enumerate(row):
            point = (values[0], values[1])
            if type(point[0]) is float and type(point[1]) is float and point == self._checked[g]:
                continue  # the common case: the same betas as at the last step
            if not (is_number(point[0]) and is_number(point[1])):
                continue  # a tensor is compared at the host copy, never here
            self._checked[g] = point
            beta, gamma = float(point[0]), float(point[1])
            if in_domain(beta, gamma) and not exact_stable(beta, gamma):
                same = tuple(
                    k
                    for k, v in enumerate(row)
                    if is_number(v[0]) and is_number(v[1]) and (v[0], v[1]) == point
                )
                self._notifier.say(notices.unstable(step, same, self._n_groups, beta, gamma))
                return

    # ------------------------------------------------------------------ host side
    def _flush(self) -> None:
        """Copy the device records to the host, measure, warn and log."""
        if not self._pending:
            return
        steps = np.array([s for s, _, _ in self._pending], dtype=np.int64)
        measured = np.array([m for _, m, _ in self._pending], dtype=bool)
        settings = np.array(  # (R, G, F); a tensor setting is read here, once per copy
            [[[float(v) for v in values] for values in row] for _, _, row in self._pending],
            dtype=np.float64,
        )
        deferred = any(not is_number(v) for _, _, row in self._pending for vs in row for v in vs)
        step_norm, theta_norm = self._device.fetch(self._device_row)
        self._pending, self._device_row = [], 0
        self.history.append(steps, settings, measured, step_norm, theta_norm)
        if deferred:  # betas given as tensors: checked now, at the host copy
            for step, row in zip(steps, settings, strict=True):
                self._check_betas(int(step), [tuple(v) for v in row.tolist()])
        readings = self._live.update(self.history)
        for reading in readings:
            self._notice(reading)
        if self._next_log is not None and self.step >= self._next_log:
            self._next_log = self.step + self.log_every
            for reading in readings:
                LOGGER.info("stabcli.monitor%s", self._log_line(reading))

    def _notice(self, reading: Reading) -> None:
        status = reading.status
        if (
            status.measured_class is MeasuredClass.GROWING
            and NoticeKind.GROWTH not in self._notifier
        ):
            trace = self.history.point(reading.groups)
            window = status.window
            exact = (
                path_rate(trace, window.start, window.stop) if trace.moving else status.exact_rate
            )
            rate = status.rate
            self._notifier.say(
                notices.growth(
                    status.step,
                    reading.groups,
                    self._n_groups,
                    reading.beta,
                    reading.gamma,
                    (rate.rate, rate.halfwidth, rate.start, rate.stop),
                    (exact, status.paper_rate),
                    trace.moving,
                    _last_tensor(trace.max_tensor[trace.measured]),
                )
            )
        if (
            status.measured_class is MeasuredClass.DIVERGED
            and NoticeKind.DIVERGED not in self._notifier
        ):
            trace = self.history.point(reading.groups)
            at = _first_nonfinite(trace.steps, trace.max_update, trace.measured)
            tensor = str(trace.max_tensor[at]) if at is not None else ""
            step = int(trace.steps[at]) if at is not None else status.step
            self._notifier.say(
                notices.diverged(
                    step, reading.groups, self._n_groups, reading.beta, reading.gamma, tensor
                )
            )

    def _log_line(self, reading: Reading) -> str:
        where = "" if len(reading.groups) == self._n_groups else f" (group {reading.groups[0]})"
        return (
            f"{where}: (β, γ) = ({reading.beta:.6g}, {reading.gamma:.6g}); {reading.status.line()}"
        )

    # ------------------------------------------------------------------ results
    def summary(self) -> pd.DataFrame:
        """One row per measured step (per param group and step when the groups' (β, γ)
        differ): step, [group], beta, gamma, torch_beta1, torch_beta2, lr, weight_decay,
        max_update (‖θ_{n+1} − θ_n‖∞/η_n), max_tensor, wd_term (λ‖θ_n‖∞), resolution
        (2ε‖θ_n‖∞/η_n: how well a step read from rounded parameters is known) and bound
        (the exact bound, or the path bound when the betas moved; docs/theory.md §3, §5)."""
        self._flush()
        points = self.history.points()
        frames = []
        for groups in points:
            trace = self.history.point(groups)
            bound = point_bound(trace, self.kind.correction, self.kind.mada)
            m = trace.measured
            columns: dict[str, Any] = {"step": trace.steps[m]}
            if len(points) > 1:
                columns["group"] = groups[0]
            s = trace.settings
            columns |= {
                "beta": s["beta"][m],
                "gamma": s["gamma"][m],
                "torch_beta1": s["gamma"][m],
                "torch_beta2": s["beta"][m],
                "lr": s["lr"][m],
                "weight_decay": s["weight_decay"][m],
                "max_update": trace.max_update[m],
                "max_tensor": trace.max_tensor[m],
                "wd_term": trace.wd_term[m],
                "resolution": trace.resolution[m],
                "bound": bound[m],
            }
            frames.append(pd.DataFrame(columns))
        return pd.concat(frames, ignore_index=True)

    def points(self) -> pd.DataFrame:
        """The measurement of the whole run so far (docs/theory.md §9): points.csv's rows,
        one per point, with every column computed."""
        self._flush()
        return points_frame(self._assess(), everything=True)

    def _assess(self) -> list[Any]:
        if not len(self.history):
            return []
        return assess_run(
            self.history,
            self._fingerprint,
            self.measure,
            self.dtype,
            self.kind.correction,
            self.kind.mada,
        )

    @property
    def warnings(self) -> list[notices.StabilityNotice]:
        """The notices said so far, in order."""
        return list(self._notifier.said.values())

    # ------------------------------------------------------------------ closing
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, interrupted: bool = False) -> None:
        """Stop watching (hooks removed) and write the run directory, if any, marked
        complete (or interrupted: training stopped on an error). Idempotent."""
        self._close("interrupted" if interrupted else "complete")

    def _close(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in self._handles:
            handle.remove()
        try:
            self._flush()
            if self.run is not None:
                save_run(self.run, self._assess(), status)
        finally:
            if self.run is not None:
                self.run.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._close("complete" if kind is None else "interrupted")


def _last_tensor(names: np.ndarray) -> str:
    return str(names[-1]) if names.size and names[-1] is not None else ""


def _first_nonfinite(steps: np.ndarray, values: np.ndarray, measured: np.ndarray) -> int | None:
    bad = np.flatnonzero(measured & ~np.isfinite(values))
    return int(bad[0]) if bad.size else None


def watch(
    optimizer: Any,
    run_dir: str | Path | None = None,
    *,
    model: ModelLike | None = None,
    every: int = 1,
    log_every: int = 0,
    on_warning: Callable[[StabilityWarning], object] | None = None,
    sync_every: int = 256,
    measure: MeasureSettings | None = None,
    overwrite: bool = False,
) -> Monitor:
    """Watch ``optimizer``'s steps: record ‖u_n‖∞ = ‖θ_{n+1} − θ_n‖∞/η_n (docs/theory.md
    (1.5)) and the tensor holding it at every step, follow its (β, γ) (β = torch beta2,
    γ = torch beta1), warn once per kind when they are unstable or the max-update grows.

    Args:
        optimizer: torch.optim.Adam/AdamW (any implementation), stabcli.optim's KAdam,
            MADA or HyperAdam, or another optimizer with ``betas`` in its param groups;
            wrappers with an ``optimizer`` attribute (accelerate, Lightning) are unwrapped.
        run_dir: where :meth:`Monitor.close` writes the run directory (``stabcli report``
            reads it); None writes nothing.
        model: the module (or a mapping name → tensor) whose names label the tensors;
            without it, the optimizer's own names (``Adam(model.named_parameters())``),
            else "group g, param i".
        every: measure every ``every``-th step (the others cost nothing).
        log_every: log a line per point to the logger ``stabcli.monitor`` (INFO) every
            ``log_every`` steps; 0: never.
        on_warning: called with each :class:`StabilityWarning` the monitor gives.
        sync_every: measured steps between copies from the device to the host.
        measure: the measurement's settings (:class:`stabcli.measure.MeasureSettings`).
        overwrite: replace a run directory holding another configuration.
    """
    return Monitor(
        optimizer,
        run_dir,
        model=model,
        every=every,
        log_every=log_every,
        on_warning=on_warning,
        sync_every=sync_every,
        measure=measure,
        overwrite=overwrite,
    )
