"""A synthetic run directory for the report's tests and its benchmark (no training).

Points lie along the normal curve through (0.999, 0.9), or form a list of points (as
``--point`` would), optionally with points on the exact boundary γ² = β. Each point's
max-update is a fixed fraction of the exact bound (docs/theory.md §3), so it never
exceeds it, with a slow deterministic ripple; growing points diverge once ‖u_n‖∞ passes
``diverge_at``. These traces go through the sweep's own code:
:func:`stabcli.sweep.rows.batch_rows` measures them (:mod:`stabcli.measure`), and
:class:`stabcli.store.RunDir` commits them, so the directory is what a sweep would write
for such traces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stabcli.probe import ProbeResult
from stabcli.store import RunDir, fingerprint, point_id
from stabcli.sweep.rows import MeasureSetup, batch_rows
from stabcli.theory import curves, exact, paper

#: ‖u_n‖∞ above which a synthetic point counts as diverged (NaN afterwards).
DIVERGE_AT = 1e8
TENSORS = ("wte", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.bias", "ln_f.bias")


def _normal_points(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, β, γ) for n points spread along the normal curve through (0.999, 0.9)."""
    section = curves.normal_section(0.999, 0.9)
    t = np.linspace(section.t_lo, section.t_hi, n + 2)[1:-1]
    beta, gamma = section.trace(t)
    return np.linspace(0.0, 1.0, n), np.asarray(beta, float), np.asarray(gamma, float)


def _point_records(
    beta: float, gamma: float, steps: int, eval_every: int | None, diverge_at: float
) -> tuple[dict[str, object], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(summary row, trace columns, eval columns) of one synthetic point."""
    n = np.arange(steps)
    bound = np.asarray(exact.exact_bound(beta, gamma, n), float)
    u = bound * (0.55 + 0.01 * np.sin(n / 60.0 + 10 * beta))  # (S,) never above the bound
    over = np.flatnonzero(~(u < diverge_at))
    diverged = int(over[0]) if len(over) else None
    loss = 4.0 * np.exp(-n / 400.0) + 1.2 + 0.1 * abs(paper.c_value(beta, gamma))
    if diverged is not None:
        u[diverged:] = np.nan
        loss[diverged:] = np.nan
    grows = not exact.exact_stable(beta, gamma)
    tensor_idx = (n * (3 if grows else 1) // 50) % len(TENSORS)
    tensors = np.asarray(TENSORS, dtype=object)[np.where(grows, 0, tensor_idx)]
    tensors[n % 5 == 0] = TENSORS[int(beta * 1e4) % len(TENSORS)]
    tensors[np.isnan(u)] = None
    trace = {"step": n, "max_update": u, "max_tensor": tensors, "loss": loss}
    at = np.arange(0, steps + 1, eval_every) if eval_every else np.arange(0)
    test_loss = np.append(loss, loss[-1])[at] + 0.15  # θ_steps is evaluated as θ_{steps-1}
    summary = {
        "beta": beta,
        "gamma": gamma,
        "diverged_step": diverged,
        "underflow_step": None,
        "final_loss": loss[-1],
    }
    return summary, trace, {"step": at, "test_loss": test_loss}


def _probe_result(
    betas: np.ndarray, gammas: np.ndarray, steps: int, eval_every: int | None, diverge_at: float
) -> ProbeResult:
    """A ProbeResult for the given points, as the engine would return it."""
    rows, traces, evals = [], [], []
    for i, (beta, gamma) in enumerate(zip(betas.tolist(), gammas.tolist(), strict=True)):
        row, trace, ev = _point_records(beta, gamma, steps, eval_every, diverge_at)
        rows.append({"point": i, **row})
        traces.append(pd.DataFrame({"point": i, **trace, "lr": 1e-3, "wd_term": 0.0}))
        evals.append(pd.DataFrame({"point": i, **ev}))
    summary = pd.DataFrame(rows)
    for column in ("diverged_step", "underflow_step"):
        summary[column] = summary[column].astype("Int64")
    return ProbeResult(
        summary=summary,
        traces=pd.concat(traces, ignore_index=True),
        evals=pd.concat(evals, ignore_index=True),
        device="none",
        dtype="float64",
        points_per_batch=len(betas),
        seconds=0.0,
    )


def make_synthetic_run(
    path: str | Path,
    n_points: int = 8,
    steps: int = 300,
    finished: int | None = None,
    eval_every: int | None = 50,
    batch_size: int = 16,
    diverge_at: float = DIVERGE_AT,
    kind: str = "normal-curve",
    boundary: tuple[float, ...] = (),
) -> Path:
    """Write a synthetic run directory at ``path`` and return it.

    ``finished`` < ``n_points`` leaves an interrupted (partial) run; ``eval_every=None``
    records no test loss; growing points diverge once ‖u_n‖∞ passes ``diverge_at``;
    ``kind="points"`` makes the region a list of points (not a curve); each β of
    ``boundary`` adds the point (β, sqrt(β)) on γ² = β after the curve's points.
    """
    measure = MeasureSetup.for_run(steps)
    settings = {
        "preset": {"name": "synthetic", "train": {"steps": steps, "lr": 1e-3, "dtype": "float64"}},
        "measurement": measure.to_dict(),
    }
    key = fingerprint(settings)
    description = f"normal curve through (0.999, 0.9), {n_points} points"
    region = {"kind": kind, "description": description, "through": [0.999, 0.9]}
    if kind != "normal-curve":
        region = {"kind": kind, "description": f"{n_points} points", "through": None}
    config = {
        "stabcli_version": "synthetic",
        "settings": settings,
        "region": region,
        "device": "none",
    }
    position, betas, gammas = _normal_points(n_points)
    if boundary:
        edge = np.asarray(boundary, dtype=float)
        betas = np.concatenate([betas, edge])
        gammas = np.concatenate([gammas, np.sqrt(edge)])
        position = np.linspace(0.0, 1.0, len(betas))
        n_points = len(betas)
    ids = [point_id(key, b, g) for b, g in zip(betas, gammas, strict=True)]
    done = n_points if finished is None else finished
    with RunDir.create(path, config, "settings", overwrite=True) as run:
        run.write_state("running", ids)
        for start in range(0, done, batch_size):
            chunk = slice(start, min(start + batch_size, done))
            part = _probe_result(betas[chunk], gammas[chunk], steps, eval_every, diverge_at)
            rows, traces, evals = batch_rows(part, ids[chunk], position[chunk].tolist(), measure)
            run.commit_batch(f"batch-{start // batch_size:04x}", rows, traces, evals)
        run.write_state("complete" if done == n_points else "interrupted", ids)
    return run.path
