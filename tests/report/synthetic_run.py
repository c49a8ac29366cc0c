"""A synthetic run directory for the report's tests and its benchmark (no training).

Points lie along the normal curve through (0.999, 0.9), or form a list of points (as
``--point`` would), optionally with points on the exact boundary γ² = β. Each point's
max-update is a fixed fraction of the bound it obeys, so it never exceeds it, with a slow
deterministic ripple; growing points diverge once ‖u_n‖∞ passes ``diverge_at``. The bound,
by ``optimizer``: Adam's exact bound of (β, γ) (docs/theory.md §3); k-Adam's (k = 2,
inverse-exp) exact bound of its levels' pair, every level recorded (docs/theory.md (6.3));
HyperAdam's and MADA's (at Adam's vertex, on its Adam-AVGrad-Lion face) path bound along a
(β_n, γ_n) path that drifts from (β, γ) towards γ² > β (docs/theory.md §5). These traces go
through the sweep's own code: :func:`stabcli.sweep.rows.batch_rows` measures them
(:mod:`stabcli.measure`), and :class:`stabcli.store.RunDir` commits them, so the directory
is what a sweep would write for such traces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stabcli.probe import ProbeResult
from stabcli.store import RunDir, fingerprint, point_id
from stabcli.sweep.rows import MeasureSetup, batch_rows
from stabcli.theory import curves, exact, paper
from stabcli.theory.path import path_bound

#: k-Adam's levels: k = 2, inverse-exp (paper App. P; docs/theory.md (6.2)).
K = 2
#: How far a learned path drifts over a run: β_n falls by PATH_DROP, γ_n rises by PATH_RISE.
PATH_DROP, PATH_RISE = 0.03, 0.04


def level_pair(beta: float, gamma: float) -> tuple[float, float]:
    """The inverse-exp levels' (β_i, γ_i) of base (β, γ) for k = K (App. P)."""
    return 1.0 - (1.0 - beta) ** (1.0 / K), 1.0 - (1.0 - gamma) ** (1.0 / K)


def learned_path(beta: float, gamma: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(β_n, γ_n) of a synthetic learned path from (β, γ), inside HyperAdam's box."""
    t = np.arange(steps) / max(steps - 1, 1)
    return (
        np.clip(beta - PATH_DROP * t, 0.5, 0.9999),
        np.clip(gamma + PATH_RISE * t, 0.0, 0.999),
    )


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
    beta: float,
    gamma: float,
    steps: int,
    eval_every: int | None,
    diverge_at: float,
    optimizer: str = "adam",
    loss_offset: float = 0.0,
) -> tuple[dict[str, object], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(summary row, trace columns, eval columns) of one synthetic point."""
    n = np.arange(steps)
    extra: dict[str, np.ndarray] = {}
    summary_extra: dict[str, object] = {}
    if optimizer == "kadam":
        lb, lg = level_pair(beta, gamma)
        bound = np.asarray(exact.exact_bound(lb, lg, n), float)
        summary_extra = {"level_beta": lb, "level_gamma": lg}
    elif optimizer in ("hyperadam", "mada"):
        beta_path, gamma_path = learned_path(beta, gamma, steps)
        bound = np.asarray(path_bound(beta_path, gamma_path), float)
        extra = {"beta": beta_path, "gamma": gamma_path}
        if optimizer == "mada":  # Adam's vertex: on the Adam-AVGrad-Lion face
            extra |= {"beta3": 0.0 * n, "rho": 1.0 + 0 * n, "c": 1.0 + 0 * n, "omega": 1.0 + 0 * n}
    else:
        bound = np.asarray(exact.exact_bound(beta, gamma, n), float)
    u = bound * (0.55 + 0.01 * np.sin(n / 60.0 + 10 * beta))  # (S,) never above the bound
    if optimizer == "kadam":
        extra = {"max_update_l1": 0.5 * bound, "max_update_l2": u}
    over = np.flatnonzero(~(u < diverge_at))
    diverged = int(over[0]) if len(over) else None
    loss = 4.0 * np.exp(-n / 400.0) + 1.2 + 0.1 * abs(paper.c_value(beta, gamma)) + loss_offset
    if diverged is not None:
        u[diverged:] = np.nan
        loss[diverged:] = np.nan
        for values in extra.values():
            values[diverged:] = np.nan
    grows = not exact.exact_stable(beta, gamma)
    tensor_idx = (n * (3 if grows else 1) // 50) % len(TENSORS)
    tensors = np.asarray(TENSORS, dtype=object)[np.where(grows, 0, tensor_idx)]
    tensors[n % 5 == 0] = TENSORS[int(beta * 1e4) % len(TENSORS)]
    tensors[np.isnan(u)] = None
    trace = {"step": n, "max_update": u, "max_tensor": tensors, "loss": loss, **extra}
    at = np.arange(0, steps + 1, eval_every) if eval_every else np.arange(0)
    test_loss = np.append(loss, loss[-1])[at] + 0.15  # θ_steps is evaluated as θ_{steps-1}
    summary = {
        "beta": beta,
        "gamma": gamma,
        "diverged_step": diverged,
        "underflow_step": None,
        "final_loss": loss[-1],
        **summary_extra,
    }
    return summary, trace, {"step": at, "test_loss": test_loss}


def _probe_result(
    betas: np.ndarray,
    gammas: np.ndarray,
    steps: int,
    eval_every: int | None,
    diverge_at: float,
    optimizer: str = "adam",
    loss_offset: float = 0.0,
) -> ProbeResult:
    """A ProbeResult for the given points, as the engine would return it."""
    rows, traces, evals = [], [], []
    for i, (beta, gamma) in enumerate(zip(betas.tolist(), gammas.tolist(), strict=True)):
        row, trace, ev = _point_records(
            beta, gamma, steps, eval_every, diverge_at, optimizer, loss_offset
        )
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
    optimizer: str = "adam",
    order: str = "paper",
    points: list[tuple[float, float]] | None = None,
    batching: dict[str, str] | None = None,
    loss_offset: float = 0.0,
) -> Path:
    """Write a synthetic run directory at ``path`` and return it.

    ``finished`` < ``n_points`` leaves an interrupted (partial) run; ``eval_every=None``
    records no test loss; growing points diverge once ‖u_n‖∞ passes ``diverge_at``;
    ``kind="points"`` makes the region a list of points (not a curve), ``points`` gives
    them (β, γ) explicitly; each β of ``boundary`` adds the point (β, sqrt(β)) on γ² = β
    after the curve's points. ``optimizer`` is adam, kadam, hyperadam or mada (module
    docstring); ``order`` how the region's points were typed ("paper" or "torch");
    ``batching`` the config's record of how a factory model's points ran; ``loss_offset``
    is added to every training loss.
    """
    measure = MeasureSetup.for_run(steps)
    train = {"steps": steps, "lr": 1e-3, "dtype": "float64", "optimizer": optimizer}
    if optimizer == "kadam":
        train |= {"k": K, "strategy": "inverse-exp"}
    settings = {
        "preset": {"name": "synthetic", "train": train},
        "measurement": measure.to_dict(),
    }
    key = fingerprint(settings)
    description = f"normal curve through (0.999, 0.9), {n_points} points"
    region = {"kind": kind, "description": description, "through": [0.999, 0.9], "order": order}
    if kind != "normal-curve":
        region = {"kind": kind, "description": f"{n_points} points", "through": None}
        region["order"] = order
    config: dict[str, object] = {
        "stabcli_version": "synthetic",
        "settings": settings,
        "region": region,
        "device": "none",
    }
    if batching is not None:
        config["batching"] = batching
    position, betas, gammas = _normal_points(n_points)
    if points is not None:
        betas = np.array([b for b, _ in points], dtype=float)
        gammas = np.array([g for _, g in points], dtype=float)
        position = np.linspace(0.0, 1.0, len(points))
        n_points = len(points)
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
            part = _probe_result(
                betas[chunk], gammas[chunk], steps, eval_every, diverge_at, optimizer, loss_offset
            )
            rows, traces, evals = batch_rows(part, ids[chunk], position[chunk].tolist(), measure)
            run.commit_batch(f"batch-{start // batch_size:04x}", rows, traces, evals)
        run.write_state("complete" if done == n_points else "interrupted", ids)
    return run.path


def monitored_run(path: Path) -> Path:
    """A tiny training loop watched from its 10th step on, every 2nd step, with γ raised
    across γ² = β by a schedule: a late start, gaps and a moving path."""
    import warnings

    import torch

    import stabcli.monitor

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(32, 6)
    y = torch.sin(x.sum(1, keepdim=True))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)

    def step() -> None:
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()

    for _ in range(10):
        step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stabcli.monitor.StabilityWarning)
        with stabcli.monitor.watch(opt, run_dir=path, model=model, every=2):
            for n in range(240):
                for group in opt.param_groups:
                    group["betas"] = (0.9 + 0.09 * n / 240, 0.95)
                step()
    return path
