"""A synthetic run directory, for the report's tests, its benchmark and demos (no training).

Points lie along the normal curve through (0.999, 0.9). Each point's max-update follows a
fixed fraction of the exact bound (so it never exceeds it) with a little deterministic
ripple; growing points diverge once ‖u_n‖∞ passes ``DIVERGE_AT``. The columns are those of
the sweep's points.csv, written through the same :class:`~stabcli.store.RunDir` API.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from stabcli.store import RunDir, fingerprint, point_id
from stabcli.theory import curves, exact, paper
from stabcli.theory.agreement import PointOutcome, agrees_with, predict

#: ‖u_n‖∞ above which a synthetic point counts as diverged (NaN afterwards).
DIVERGE_AT = 1e8
TENSORS = ("transformer.wte.weight", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.bias", "lm_head.bias")


def _normal_points(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, β, γ) for n points spread along the normal curve through (0.999, 0.9)."""
    section = curves.normal_section(0.999, 0.9)
    t = np.linspace(section.t_lo, section.t_hi, n + 2)[1:-1]
    beta, gamma = section.trace(t)
    return np.linspace(0.0, 1.0, n), np.asarray(beta, float), np.asarray(gamma, float)


def _one_point(
    pid: str,
    beta: float,
    gamma: float,
    steps: int,
    slope_at: int,
    eval_every: int | None,
    diverge_at: float,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    n = np.arange(steps)
    bound = np.asarray(exact.exact_bound(beta, gamma, n), float)
    ripple = 0.55 + 0.03 * np.sin(n / 60.0 + 10 * beta)
    u = bound * ripple  # (steps,): never above the bound
    over = np.flatnonzero(~(u < diverge_at))
    diverged = int(over[0]) if len(over) else None
    if diverged is not None:
        u[diverged:] = np.nan
    log_u = np.log(u)
    lo, hi = max(slope_at - 5, 0), min(slope_at + 5, steps - 1)
    slope = float((log_u[hi] - log_u[lo]) / (hi - lo))  # as in the paper's App. H
    window = slice(max(slope_at - 20, 0), min(slope_at + 21, steps))
    ok = np.isfinite(log_u[window])
    fit = float(np.polyfit(n[window][ok], log_u[window][ok], 1)[0]) if ok.sum() > 1 else np.nan
    grows = not exact.exact_stable(beta, gamma)
    measured = "diverged" if diverged is not None else ("growing" if slope > 3e-3 else "bounded")
    tensor_idx = (n * (3 if grows else 1) // 50) % len(TENSORS)
    tensors = np.asarray(TENSORS, dtype=object)[np.where(grows, 0, tensor_idx)]
    tensors[n % 5 == 0] = TENSORS[(int(beta * 1e4)) % len(TENSORS)]
    loss = 4.0 * np.exp(-n / 400.0) + 1.2 + 0.1 * abs(paper.c_value(beta, gamma))
    trace = pd.DataFrame(
        {
            "point_id": pid,
            "step": n,
            "max_update": u,
            "max_tensor": tensors,
            "loss": loss,
            "lr": 1e-3,
            "wd_term": 0.0,
        }
    )
    evals = pd.DataFrame({"point_id": pd.Series(dtype=str)})
    if eval_every:
        at = n[::eval_every]
        evals = pd.DataFrame({"point_id": pid, "step": at, "test_loss": loss[at] + 0.15})
    prediction = predict(beta, gamma, slope_at)
    outcome = PointOutcome(
        paper_grows=prediction.paper_region == paper.Region.B_MINUS.value,
        exact_grows=not prediction.exact_stable,
        paper_rate=prediction.paper_rate,
        exact_rate=prediction.exact_rate,
        measured_class=measured,
        measured_slope=slope,
    )
    row = {
        "point_id": pid,
        "beta": beta,
        "gamma": gamma,
        "torch_beta1": gamma,
        "torch_beta2": beta,
        **asdict(prediction),
        "measured_slope": slope,
        "fit_slope": fit,
        "measured_class": measured,
        "diverged_step": diverged,
        "bound_ratio_max": float(np.nanmax(ripple[: diverged or steps])),
        "max_tensor": tensors[min(slope_at, steps - 1)],
        "agrees_with": agrees_with(outcome),
        "final_loss": float(loss[-1]),
        "best_test_loss": float(evals["test_loss"].min()) if eval_every else np.nan,
        "slope_step": slope_at,
    }
    return row, trace, evals


def make_synthetic_run(
    path: str | Path,
    n_points: int = 8,
    steps: int = 300,
    finished: int | None = None,
    eval_every: int | None = 50,
    batch_size: int = 16,
    diverge_at: float = DIVERGE_AT,
) -> Path:
    """Write a synthetic run directory at ``path`` and return it.

    ``finished`` < ``n_points`` leaves an interrupted (partial) run; ``eval_every=None``
    records no test loss; growing points diverge once ‖u_n‖∞ passes ``diverge_at``.
    """
    slope_at = min(500, steps // 2)
    settings = {
        "preset": {"name": "synthetic", "train": {"steps": steps, "lr": 1e-3}},
        "measurement": {"slope_at": slope_at, "slope_half_width": 5, "fit_half_width": 20},
    }
    key = fingerprint(settings)
    config = {
        "stabcli_version": "synthetic",
        "settings": settings,
        "settings_fingerprint": key,
        "region": {
            "kind": "normal-curve",
            "description": f"normal curve through (0.999, 0.9), {n_points} points",
            "through": [0.999, 0.9],
        },
        "device": "none",
    }
    run = RunDir.create(path, config, "settings", overwrite=True)
    position, betas, gammas = _normal_points(n_points)
    ids = [point_id(key, b, g) for b, g in zip(betas, gammas, strict=True)]
    done = n_points if finished is None else finished
    run.write_state("running", ids)
    for start in range(0, done, batch_size):
        rows, traces, evals = [], [], []
        for i in range(start, min(start + batch_size, done)):
            row, trace, ev = _one_point(
                ids[i], betas[i], gammas[i], steps, slope_at, eval_every, diverge_at
            )
            rows.append({"position": position[i], **row})
            traces.append(trace)
            evals.append(ev)
        batch = f"batch-{start // batch_size:04d}"
        run.commit_batch(
            batch, pd.DataFrame(rows), pd.concat(traces, ignore_index=True), pd.concat(evals)
        )
    run.write_state("complete" if done == n_points else "interrupted", ids)
    return run.path
