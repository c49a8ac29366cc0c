"""Per-step records of a probe: kept on the device, copied to the host in blocks.

Storing a step writes rows of preallocated (S, P) device tensors — no host sync. ``flush``
copies a block of finished steps to host arrays; ``build_frames`` turns them into the
DataFrames of :class:`stabcli.probe.engine.ProbeResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stabcli.probe.models import ParamSpec

EVAL_COLUMNS = ["point", "step", "test_loss"]


def empty_evals() -> pd.DataFrame:
    """The evals frame of a preset without evaluation."""
    return pd.DataFrame(
        {
            "point": pd.Series(dtype="int64"),
            "step": pd.Series(dtype="int64"),
            "test_loss": pd.Series(dtype="float64"),
        }
    )


def eval_steps(steps: int, every: int) -> list[int]:
    """Steps n at which θ_n is evaluated: 0, K, 2K, ... and the end when K divides it."""
    if every <= 0:
        return []
    return list(range(0, steps + 1, every))


@dataclass
class Records:
    """Device buffers (S, P) and their host copies."""

    max_update: torch.Tensor  # (S, P) ‖u_n (+λθ_n)‖∞, NaN after divergence
    argmax: torch.Tensor  # (S, P) flat index of the max
    loss: torch.Tensor  # (S, P) training loss at step n
    wd_term: torch.Tensor  # (S, P) λ‖θ_n‖∞ (zeros without decoupled decay)
    diverged: torch.Tensor  # (P,) first non-finite step, −1 if none
    underflow: torch.Tensor  # (P,) first step whose max came from v below normal range, −1
    evals: torch.Tensor  # (E, P) test loss
    accuracy: torch.Tensor  # (E, P) test accuracy (NaN when the model has none)
    eval_at: list[int]  # the E evaluated steps
    lr: np.ndarray  # (S, P) η_n, host
    host: dict[str, np.ndarray]  # host copies of the (S, P) buffers
    columns: tuple[str, ...] = ()  # names of the optimizer's own trace columns
    extra: torch.Tensor | None = None  # (C, S, P) their values, NaN after divergence
    host_extra: np.ndarray | None = None  # (C, S, P) host copy

    @classmethod
    def allocate(
        cls,
        steps: int,
        n_pt: int,
        dtype: torch.dtype,
        dev: torch.device,
        lr: np.ndarray,
        eval_every: int,
        columns: tuple[str, ...] = (),
    ) -> Records:
        """Zeroed buffers for ``steps`` steps of ``n_pt`` points; ``columns`` names the
        optimizer's own per-step values (:attr:`stabcli.probe.optim.StepStats.extra`)."""

        def buf(d: torch.dtype = dtype) -> torch.Tensor:
            return torch.zeros((steps, n_pt), dtype=d, device=dev)

        at = eval_steps(steps, eval_every)
        names = ("max_update", "argmax", "loss", "wd_term")
        return cls(
            max_update=buf(),
            argmax=buf(torch.int64),
            loss=buf(),
            wd_term=buf(),
            diverged=torch.full((n_pt,), -1, dtype=torch.int64, device=dev),
            underflow=torch.full((n_pt,), -1, dtype=torch.int64, device=dev),
            evals=torch.full((len(at), n_pt), torch.nan, dtype=dtype, device=dev),
            accuracy=torch.full((len(at), n_pt), torch.nan, dtype=dtype, device=dev),
            eval_at=at,
            lr=lr,
            host={
                k: np.zeros((steps, n_pt), dtype=np.int64 if k == "argmax" else np.float64)
                for k in names
            },
            columns=tuple(columns),
            extra=torch.zeros((len(columns), steps, n_pt), dtype=dtype, device=dev)
            if columns
            else None,
            host_extra=np.zeros((len(columns), steps, n_pt)) if columns else None,
        )

    def store_step(
        self,
        n: int,
        alive: torch.Tensor,
        new_alive: torch.Tensor,
        max_update: torch.Tensor,
        argmax: torch.Tensor,
        loss: torch.Tensor,
        wd_term: torch.Tensor | None,
        underflow: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> None:
        """Record step n. ``alive`` is the mask before the step: the diverging step keeps
        its (non-finite) measurement, later steps of a dead point read NaN. ``underflow``
        (P,) marks points whose max-update came from a second moment below the dtype's
        normal range; the first such step of a live point is kept. ``extra`` (C, P) holds the
        optimizer's own columns, recorded like the max-update."""
        nan = float("nan")  # a Python scalar: no host-to-device copy, no sync
        self.max_update[n] = torch.where(alive, max_update.to(self.loss.dtype), nan)
        self.loss[n] = torch.where(alive, loss.to(self.loss.dtype), nan)
        self.argmax[n] = argmax
        if wd_term is not None:
            self.wd_term[n] = torch.where(alive, wd_term.to(self.loss.dtype), nan)
        died = alive & ~new_alive
        self.diverged.masked_fill_(died, n)
        self.underflow.masked_fill_(alive & underflow & (self.underflow < 0), n)
        if self.extra is not None and extra is not None:
            self.extra[:, n] = torch.where(alive, extra.to(self.extra.dtype), nan)

    def store_eval(
        self, n: int, test_loss: torch.Tensor, accuracy: torch.Tensor | None = None
    ) -> None:
        """Record the evaluation at step n: test loss and, for classifiers, accuracy."""
        row = self.eval_at.index(n)
        self.evals[row] = test_loss.to(self.evals.dtype)
        if accuracy is not None:
            self.accuracy[row] = accuracy.to(self.accuracy.dtype)

    def flush(self, lo: int, hi: int) -> None:
        """Copy steps lo..hi−1 to the host (one sync per block)."""
        for key, host in self.host.items():
            host[lo:hi] = getattr(self, key)[lo:hi].cpu().numpy()
        if self.extra is not None and self.host_extra is not None:
            self.host_extra[:, lo:hi] = self.extra[:, lo:hi].cpu().numpy()

    def finish(self) -> None:
        self.host["diverged"] = self.diverged.cpu().numpy()
        self.host["underflow"] = self.underflow.cpu().numpy()
        self.host["evals"] = self.evals.detach().cpu().double().numpy()
        self.host["accuracy"] = self.accuracy.detach().cpu().double().numpy()


def build_frames(
    rec: Records,
    idx: np.ndarray,
    beta: np.ndarray,
    gamma: np.ndarray,
    specs: list[ParamSpec],
    point_columns: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary, traces, evals) frames for points with global indices ``idx``.

    ``point_columns`` are further per-point (P,) summary columns, placed after ``gamma``;
    the optimizer's own trace columns (:attr:`Records.columns`) follow ``wd_term``. The
    columns are documented in :class:`stabcli.probe.engine.ProbeResult`.
    """
    h = rec.host
    steps, n_pt = h["loss"].shape

    def first_steps(values: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.array([int(d) if d >= 0 else pd.NA for d in values], dtype="Int64")

    summary = pd.DataFrame(
        {
            "point": idx.astype(np.int64),
            "beta": beta,
            "gamma": gamma,
            **(point_columns or {}),
            "diverged_step": first_steps(h["diverged"]),
            "underflow_step": first_steps(h["underflow"]),
            "final_loss": h["loss"][-1],
        }
    )
    ends = np.cumsum([s.numel for s in specs])
    names = np.array([s.name for s in specs], dtype=object)
    max_update = h["max_update"].T.ravel()  # point-major: (P·S,)
    tensor = names[np.searchsorted(ends, h["argmax"].T.ravel(), side="right")]
    tensor[np.isnan(max_update)] = None
    traces = pd.DataFrame(
        {
            "point": np.repeat(idx.astype(np.int64), steps),
            "step": np.tile(np.arange(steps, dtype=np.int64), n_pt),
            "max_update": max_update,
            "max_tensor": tensor,
            "loss": h["loss"].T.ravel(),
            "lr": rec.lr.T.ravel(),
            "wd_term": h["wd_term"].T.ravel(),
        }
    )
    if rec.host_extra is not None:
        for name, values in zip(rec.columns, rec.host_extra, strict=True):
            traces[name] = values.T.ravel()  # (S, P) -> point-major
    if not rec.eval_at:
        return summary, traces, empty_evals()
    evals = pd.DataFrame(
        {
            "point": np.repeat(idx.astype(np.int64), len(rec.eval_at)),
            "step": np.tile(np.asarray(rec.eval_at, dtype=np.int64), n_pt),
            "test_loss": h["evals"].T.ravel(),
        }
    )
    if not np.isnan(h["accuracy"]).all():
        evals["test_accuracy"] = h["accuracy"].T.ravel()
    return summary, traces, evals
