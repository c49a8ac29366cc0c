"""The engine's optimizers against the public ones, point by point, and their bounds.

The stacked engine (P points on one (P, N) buffer, per-point coefficient tensors) must
train every point exactly as a plain loop over points does with the public optimizer
(``stabcli.optim.KAdam``, ``HyperAdam``, ``MADA``) on the same model, initial weights and
batches. The loop here reads what it compares from the public optimizer itself: the
max-update from the parameters (‖θ_{n+1} − θ_n‖∞/η_n), k-Adam's level maxima from its
state (u^{(i)} = corr_n m^{(i)}/(sqrt(v^{(i)}) + ε'), docs/theory.md §6), the learned
betas from its param groups. Float64, so that chaotic training does not separate the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from stabcli.optim import MADA, HyperAdam, KAdam
from stabcli.probe import load_preset, run_probes
from stabcli.probe.backend import SharedDropout, build_model
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream, load_dataset
from stabcli.probe.engine import ProbePoint, dropout_seed
from stabcli.probe.optim import lr_table

RTOL = 1e-9  # float64, a few dozen steps: the two formulations differ by rounding only
F64 = {"dtype": "float64", "eval_every": 0, "eval_batches": 0}
# (β, γ), paper order: B+ default, B− near (1, 1), far from (1, 1)
POINTS = [(0.999, 0.9), (0.95, 0.99), (0.6, 0.8)]


@dataclass
class LoopRun:
    """Per-step records of one point trained by a public optimizer."""

    max_update: np.ndarray  # (S,) ‖θ_{n+1} − θ_n‖∞ / η_n
    loss: np.ndarray  # (S,)
    columns: dict[str, np.ndarray]  # (S,) each: level maxima or learned coefficients


def _levels_max(opt: KAdam, eps: float, placement: str) -> list[float]:
    """‖u^{(i)}‖∞ of the step just taken, from KAdam's state: u^{(i)} =
    corr_n m^{(i)}/(sqrt(v^{(i)}) + ε'), corr_n = sqrt(1−β_i^{n+1})/(1−γ_i^{n+1})."""
    out = []
    for i, (g_i, b_i) in enumerate(opt.level_betas()):  # torch order: (γ_i, β_i)
        worst = 0.0
        for state in opt.state.values():
            n = state["step"] - 1
            bc2 = 1.0 - b_i ** (n + 1)
            corr = math.sqrt(bc2) / (1.0 - g_i ** (n + 1))
            eps_prime = eps * math.sqrt(bc2) if placement == "torch" else eps
            u = corr * state["exp_avg"][i] / (state["exp_avg_sq"][i].sqrt() + eps_prime)
            worst = max(worst, float(u.abs().max()))
        out.append(worst)
    return out


def _public(preset: Preset, point: ProbePoint, leaves: list[torch.Tensor]):
    """The public optimizer of the preset at ``point``: torch betas = (γ, β)."""
    t = preset.train
    lr = t.lr if point.lr is None else point.lr
    wd = (t.weight_decay if point.weight_decay is None else point.weight_decay) * (
        t.weight_decay_mode != "none"
    )
    decoupled = t.weight_decay_mode == "decoupled"
    betas = (point.gamma, point.beta)
    if t.optimizer == "kadam":
        return KAdam(
            leaves,
            lr=lr,
            k=t.k,
            strategy=t.strategy,
            base_betas=betas,
            eps=t.eps,
            weight_decay=wd,
            decoupled=decoupled,
            eps_placement=t.eps_placement,
        )
    kind = HyperAdam if t.optimizer == "hyperadam" else MADA
    return kind(
        leaves,
        lr=lr,
        betas=betas,
        eps=t.eps,
        weight_decay=wd,
        decoupled_weight_decay=decoupled,
        hyper_lr=t.hyper_lr,
    )


def _loop(preset: Preset, point: ProbePoint) -> LoopRun:
    """Train one point with the public optimizer: same model, weights, batches and dropout
    masks as the engine (as stabcli.probe.reference does for torch.optim.Adam)."""
    t = preset.train
    data = load_dataset(preset)
    model = build_model(preset, data)
    dev, dtype = torch.device("cpu"), torch.float64
    stream = model.stream(dev, dtype) if model.stream else BatchStream(data, preset, dev, dtype)
    flat0 = model.initial().to(dtype)
    chunks = torch.split(flat0, [s.numel for s in model.specs])
    params = {
        s.name: c.view(1, *s.shape).clone().requires_grad_(True)
        for s, c in zip(model.specs, chunks, strict=True)
    }
    leaves = list(params.values())
    opt = _public(preset, point, leaves)
    eta0 = np.array([t.lr if point.lr is None else point.lr])
    lrs = lr_table(t, np.array([point.beta]), np.array([point.gamma]), eta0)[:, 0]  # (S,)
    gen = torch.Generator() if preset.model.uses_dropout else None
    drop = SharedDropout(preset.model.dropout, gen)
    max_update: list[float] = []
    losses: list[float] = []
    columns: dict[str, list[float]] = {}
    for n in range(t.steps):
        x, y = stream.train_batch(n)
        if gen is not None:
            gen.manual_seed(dropout_seed(t.seed, n))
        for group in opt.param_groups:
            group["lr"] = float(lrs[n])
        opt.zero_grad(set_to_none=True)
        loss = model.loss(params, x, y, drop)[0]
        loss.backward()
        before = [p.detach().clone() for p in leaves]
        opt.step()
        deltas = [float((p.detach() - b).abs().max()) for p, b in zip(leaves, before, strict=True)]
        max_update.append(max(deltas) / lrs[n])
        losses.append(float(loss.detach()))
        row: dict[str, float] = {}
        if isinstance(opt, KAdam):
            levels = _levels_max(opt, t.eps, t.eps_placement)
            row = {f"max_update_l{i}": m for i, m in enumerate(levels, start=1)}
        else:
            group = opt.param_groups[0]
            row = {"beta": group["betas"][1], "gamma": group["betas"][0]}
            if isinstance(opt, MADA):
                row.update({c: group[c] for c in ("beta3", "rho", "c", "omega")})
        for key, value in row.items():
            columns.setdefault(key, []).append(value)
    return LoopRun(
        np.array(max_update), np.array(losses), {k: np.array(v) for k, v in columns.items()}
    )


def _assert_matches_loop(preset: Preset, points: list[ProbePoint], columns: list[str]) -> None:
    result = run_probes(preset, points, device="cpu")
    assert result.summary.diverged_step.isna().all()
    for i, point in enumerate(points):
        ref = _loop(preset, point)
        trace = result.traces[result.traces.point == i]
        np.testing.assert_allclose(trace.max_update.to_numpy(), ref.max_update, rtol=RTOL)
        np.testing.assert_allclose(trace.loss.to_numpy(), ref.loss, rtol=RTOL)
        assert sorted(ref.columns) == sorted(columns)
        for name in columns:
            np.testing.assert_allclose(trace[name].to_numpy(), ref.columns[name], rtol=RTOL)


# --- k-Adam -------------------------------------------------------------------------------

KADAM_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "k1-inverse-exp": ("mlp-synthetic", {"k": 1}),
    "k2-inverse-exp": ("mlp-synthetic", {"k": 2}),
    "k3-inverse-exp": ("mlp-synthetic", {"k": 3}),
    "k3-exp": ("mlp-synthetic", {"k": 3, "strategy": "exp"}),
    "k3-scaled": ("mlp-synthetic", {"k": 3, "strategy": "scaled"}),
    "k3-naive": ("mlp-synthetic", {"k": 3, "strategy": "naive"}),
    "k3-decoupled": (
        "mlp-synthetic",
        {"k": 3, "weight_decay_mode": "decoupled", "weight_decay": 0.5},
    ),
    "k2-coupled": ("mlp-synthetic", {"k": 2, "weight_decay_mode": "coupled", "weight_decay": 0.5}),
    "k2-paper-eps": ("mlp-synthetic", {"k": 2, "eps_placement": "paper", "eps": 1e-6}),
    "k3-cosine": ("mlp-synthetic", {"k": 3, "schedule": "cosine", "warmup_steps": 5}),
    "k2-gpt": ("tiny-char", {"k": 2, "steps": 15}),
}


@pytest.mark.parametrize("case", list(KADAM_CASES), ids=list(KADAM_CASES))
def test_kadam_engine_matches_public_kadam(case: str) -> None:
    name, overrides = KADAM_CASES[case]
    preset = load_preset(name).with_overrides(
        **{**F64, "steps": 30, "optimizer": "kadam", **overrides}
    )
    points = [ProbePoint(b, g) for b, g in POINTS]
    levels = [f"max_update_l{i}" for i in range(1, preset.train.k + 1)]
    _assert_matches_loop(preset, points, levels)


# --- HyperAdam and MADA -------------------------------------------------------------------

HYPER_POINTS = [(0.999, 0.9), (0.95, 0.99), (0.6, 0.8)]  # inside the learned betas' box

HYPER_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "hyperadam": ("mlp-synthetic", {"optimizer": "hyperadam", "hyper_lr": 1e-2}),
    "hyperadam-default-rates": ("mlp-synthetic", {"optimizer": "hyperadam"}),
    "hyperadam-coupled": (
        "mlp-synthetic",
        {
            "optimizer": "hyperadam",
            "hyper_lr": 1e-2,
            "weight_decay_mode": "coupled",
            "weight_decay": 0.5,
        },
    ),
    "hyperadam-decoupled-cosine": (
        "mlp-synthetic",
        {
            "optimizer": "hyperadam",
            "hyper_lr": 1e-2,
            "weight_decay_mode": "decoupled",
            "weight_decay": 0.5,
            "schedule": "cosine",
            "warmup_steps": 5,
        },
    ),
    "hyperadam-clamped": ("mlp-synthetic", {"optimizer": "hyperadam", "hyper_lr": 10.0}),
    "hyperadam-gpt": ("tiny-char", {"optimizer": "hyperadam", "hyper_lr": 1e-2, "steps": 15}),
    "mada": ("mlp-synthetic", {"optimizer": "mada"}),
    "mada-fast": ("mlp-synthetic", {"optimizer": "mada", "hyper_lr": 0.1}),
    "mada-decoupled": (
        "mlp-synthetic",
        {"optimizer": "mada", "weight_decay_mode": "decoupled", "weight_decay": 0.5},
    ),
    "mada-coupled": (
        "mlp-synthetic",
        {"optimizer": "mada", "weight_decay_mode": "coupled", "weight_decay": 0.5},
    ),
    "mada-gpt": (  # the earlier tiny-char: see test_probe_equivalence's adamw-decoupled-gpt
        "tiny-char",
        {"optimizer": "mada", "steps": 15, "n_layer": 2, "batch_size": 16, "lr": 1e-3},
    ),
}


@pytest.mark.parametrize("case", list(HYPER_CASES), ids=list(HYPER_CASES))
def test_learned_betas_engine_matches_public_optimizer(case: str) -> None:
    name, overrides = HYPER_CASES[case]
    preset = load_preset(name).with_overrides(**{**F64, "steps": 30, **overrides})
    points = [ProbePoint(b, g) for b, g in HYPER_POINTS]
    mada = preset.train.optimizer == "mada"
    columns = ["beta", "gamma", *(["beta3", "rho", "c", "omega"] if mada else [])]
    _assert_matches_loop(preset, points, columns)


@pytest.mark.parametrize("optimizer", ["hyperadam", "mada"])
def test_learned_betas_really_move(optimizer: str) -> None:
    """The comparison above is not of constant betas: the paths leave their start."""
    preset = load_preset("mlp-synthetic").with_overrides(
        **{**F64, "steps": 30, "optimizer": optimizer, "hyper_lr": 1e-2}
    )
    traces = run_probes(preset, HYPER_POINTS, device="cpu").traces
    for i, (beta, gamma) in enumerate(HYPER_POINTS):
        trace = traces[traces.point == i]
        assert trace.beta.iloc[0] == beta and trace.gamma.iloc[0] == gamma  # step 0: the start
        moved = max(abs(trace.beta.iloc[-1] - beta), abs(trace.gamma.iloc[-1] - gamma))
        assert moved > 1e-5, (i, moved)


def test_zero_hyper_lr_is_adam() -> None:
    """κ = 0: HyperAdam and MADA at Adam's vertex train exactly as Adam (the engine's own
    Adam, itself tested against torch.optim.Adam)."""
    base = load_preset("mlp-synthetic").with_overrides(**{**F64, "steps": 30})
    adam = run_probes(base, HYPER_POINTS, device="cpu").traces
    for optimizer in ("hyperadam", "mada"):
        preset = base.with_overrides(optimizer=optimizer, hyper_lr=0.0)
        traces = run_probes(preset, HYPER_POINTS, device="cpu").traces
        np.testing.assert_allclose(traces.max_update, adam.max_update, rtol=1e-12)
        np.testing.assert_allclose(traces.loss, adam.loss, rtol=1e-12)
        beta = np.repeat([b for b, _ in HYPER_POINTS], 30)
        np.testing.assert_array_equal(traces.beta.to_numpy(), beta)


# --- records ------------------------------------------------------------------------------


def test_columns_by_optimizer() -> None:
    base = load_preset("mlp-synthetic").with_overrides(steps=3, eval_every=0, eval_batches=0)
    common = ["point", "step", "max_update", "max_tensor", "loss", "lr", "wd_term"]
    expected = {
        "adam": [],
        "kadam": ["max_update_l1", "max_update_l2", "max_update_l3"],
        "hyperadam": ["beta", "gamma"],
        "mada": ["beta", "gamma", "beta3", "rho", "c", "omega"],
    }
    for optimizer, extra in expected.items():
        preset = base.with_overrides(optimizer=optimizer, k=3 if optimizer == "kadam" else 1)
        result = run_probes(preset, [(0.999, 0.9)], device="cpu")
        assert list(result.traces.columns) == common + extra, optimizer
        summary = list(result.summary.columns)
        assert ("level_beta" in summary) == (optimizer == "kadam")
        assert "lr" not in summary  # pairs, not ProbePoints
    kadam = base.with_overrides(optimizer="kadam", k=4, strategy="inverse-exp")
    row = run_probes(kadam, [ProbePoint(0.999, 0.9)], device="cpu").summary.iloc[0]
    # App. P, inverse-exp: 1 − (1 − b)^{1/k} for both decays
    assert row.level_beta == pytest.approx(1 - 0.001**0.25, rel=1e-12)
    assert row.level_gamma == pytest.approx(1 - 0.1**0.25, rel=1e-12)
    assert (row.lr, row.weight_decay) == (1e-3, 0.0)


def test_diverged_point_reads_nan_in_its_own_columns() -> None:
    """1-Adam at (0.1, 0.999) overflows (γ²/β ≈ 10, docs/theory.md §3): its level column
    reads NaN after the diverging step, as max_update does, and the calm point is intact."""
    preset = load_preset("tiny-char").with_overrides(
        steps=100, eval_every=0, eval_batches=0, optimizer="kadam", k=1
    )
    result = run_probes(preset, [(0.999, 0.9), (0.1, 0.999)], device="cpu")
    died = result.summary.diverged_step
    assert died.isna().tolist() == [True, False]
    n = int(died.iloc[1])
    wild = result.traces[result.traces.point == 1]
    assert wild.max_update_l1.iloc[n + 1 :].isna().all()
    assert np.isfinite(wild.max_update_l1.iloc[:n]).all()
    calm = result.traces[result.traces.point == 0]
    assert np.isfinite(calm.max_update_l1).all()
    np.testing.assert_array_equal(calm.max_update_l1, calm.max_update)  # 1 level, no λθ


# --- per-point learning rate and weight decay ----------------------------------------------

GRID_CASES: dict[str, dict[str, Any]] = {
    "adamw-cosine": {
        "weight_decay_mode": "decoupled",
        "weight_decay": 0.1,
        "schedule": "cosine",
        "warmup_steps": 5,
    },
    "adam-coupled": {"weight_decay_mode": "coupled", "weight_decay": 0.1},
    "adam-anneal": {"schedule": "anneal", "weight_decay_mode": "decoupled"},
    "kadam-decoupled": {
        "optimizer": "kadam",
        "k": 2,
        "weight_decay_mode": "decoupled",
        "weight_decay": 0.1,
    },
    "hyperadam-decoupled": {
        "optimizer": "hyperadam",
        "hyper_lr": 1e-2,
        "weight_decay_mode": "decoupled",
    },
    "mada-coupled": {"optimizer": "mada", "weight_decay_mode": "coupled"},
}
# (β, γ, η, λ): a grid of learning rates and weight decays, one default of each
GRID = [(0.999, 0.9, 3e-3, 0.0), (0.999, 0.9, None, 0.5), (0.95, 0.99, 1e-4, None)]


@pytest.mark.parametrize("case", list(GRID_CASES), ids=list(GRID_CASES))
def test_points_with_own_lr_and_weight_decay_equal_separate_runs(case: str) -> None:
    preset = load_preset("mlp-synthetic").with_overrides(**{**F64, "steps": 30, **GRID_CASES[case]})
    t = preset.train
    points = [ProbePoint(b, g, lr, wd) for b, g, lr, wd in GRID]
    batch = run_probes(preset, points, device="cpu")
    summary = batch.summary
    for i, (beta, gamma, lr, wd) in enumerate(GRID):
        eta = t.lr if lr is None else lr
        lam = t.weight_decay if wd is None else wd
        # the schedule's floor scales with the point's η (min_lr/lr is the preset's)
        own = preset.with_overrides(lr=eta, weight_decay=lam, min_lr=t.min_lr * eta / t.lr)
        alone = run_probes(own, [(beta, gamma)], device="cpu").traces
        trace = batch.traces[batch.traces.point == i].reset_index(drop=True)
        assert (summary.lr.iloc[i], summary.weight_decay.iloc[i]) == (eta, lam)
        numeric = [c for c in alone.columns if c not in ("point", "max_tensor")]
        pd.testing.assert_frame_equal(
            trace[numeric], alone[numeric], check_exact=False, rtol=RTOL, atol=0.0
        )
        assert trace.max_tensor.tolist() == alone.max_tensor.tolist()


def test_grid_points_really_differ() -> None:
    """A point's own η and λ change its training (the comparison above can fail)."""
    preset = load_preset("mlp-synthetic").with_overrides(
        steps=20, weight_decay_mode="decoupled", eval_every=0, eval_batches=0
    )
    points = [
        ProbePoint(0.999, 0.9),
        ProbePoint(0.999, 0.9, lr=3e-3),
        ProbePoint(0.999, 0.9, 1e-3, 1.0),
    ]
    traces = run_probes(preset, points, device="cpu").traces
    loss = [traces[traces.point == i].loss.to_numpy() for i in range(3)]
    assert not np.allclose(loss[0][1:], loss[1][1:]) and not np.allclose(loss[0][1:], loss[2][1:])
    wd_term = traces[traces.point == 2].wd_term.to_numpy()
    assert (wd_term > 0).all() and (traces[traces.point == 0].wd_term == 0).all()
    assert np.allclose(traces[traces.point == 1].lr, 3e-3)


# --- bad points and settings ----------------------------------------------------------------

BAD_POINTS: dict[str, tuple[dict[str, Any], Any, str]] = {
    "zero-lr": ({}, ProbePoint(0.999, 0.9, lr=0.0), "lr must be > 0"),
    "nan-lr": ({}, ProbePoint(0.999, 0.9, lr=float("nan")), "lr must be a finite number"),
    "bool-lr": ({}, ProbePoint(0.999, 0.9, lr=True), "lr must be a finite number"),
    "negative-wd": (
        {"weight_decay_mode": "decoupled"},
        ProbePoint(0.999, 0.9, weight_decay=-0.1),
        "weight_decay must be >= 0",
    ),
    "wd-without-mode": ({}, ProbePoint(0.999, 0.9, weight_decay=0.1), "weight_decay_mode"),
    "text-beta": ({}, ProbePoint("a", 0.9), "pairs of numbers"),  # type: ignore[arg-type]
    "hyperadam-beta-below-box": (
        {"optimizer": "hyperadam"},
        (0.4, 0.9),
        r"β \(torch beta2\) must be in \[0.5, 0.9999\], got 0.4",
    ),
    "mada-gamma-above-box": (
        {"optimizer": "mada"},
        (0.9999, 0.9995),
        r"γ \(torch beta1\) must be in \[0, 0.999\], got 0.9995",
    ),
}


@pytest.mark.parametrize("case", list(BAD_POINTS), ids=list(BAD_POINTS))
def test_bad_points_are_one_line_errors_before_any_batch(case: str) -> None:
    from stabcli.errors import StabcliError

    overrides, bad, message = BAD_POINTS[case]
    preset = load_preset("mlp-synthetic").with_overrides(steps=2, **overrides)
    batches: list = []
    with pytest.raises(StabcliError, match=message) as err:
        run_probes(preset, [(0.999, 0.9), bad], points_per_batch=1, on_batch=batches.append)
    assert batches == [] and "\n" not in str(err.value)


def test_learned_betas_need_torch_eps_placement() -> None:
    from stabcli.errors import StabcliError

    base = load_preset("mlp-synthetic")
    for optimizer in ("hyperadam", "mada"):
        with pytest.raises(StabcliError, match="eps_placement = 'torch'"):
            base.with_overrides(optimizer=optimizer, eps_placement="paper")
    base.with_overrides(optimizer="kadam", k=2, eps_placement="paper")  # k-Adam has both


# --- memory -------------------------------------------------------------------------------


def _parameter_sized(obj: object, floor: int, seen: set[int]) -> int:
    """Elements of the distinct storages of at least ``floor`` elements that ``obj`` holds,
    found through its attributes, lists and dataclasses."""
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        size = storage.nbytes() // obj.element_size()
        if size < floor or storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return size
    if isinstance(obj, list | tuple):
        return sum(_parameter_sized(x, floor, seen) for x in obj)
    if hasattr(obj, "__dict__"):
        return sum(_parameter_sized(x, floor, seen) for x in vars(obj).values())
    return 0


MEMORY_CASES: dict[str, dict[str, Any]] = {
    "adam": {},
    "adamw": {"weight_decay_mode": "decoupled", "weight_decay": 0.1},
    "kadam-1": {"optimizer": "kadam", "k": 1},
    "kadam-3": {"optimizer": "kadam", "k": 3},
    "hyperadam": {"optimizer": "hyperadam"},
    "hyperadam-not-learning": {"optimizer": "hyperadam", "hyper_lr": 0.0},
    "hyperadam-coupled": {
        "optimizer": "hyperadam",
        "weight_decay_mode": "coupled",
        "weight_decay": 0.1,
    },
    "mada": {"optimizer": "mada"},
    "mada-coupled": {"optimizer": "mada", "weight_decay_mode": "coupled", "weight_decay": 0.1},
}


@pytest.mark.parametrize("case", list(MEMORY_CASES), ids=list(MEMORY_CASES))
def test_memory_estimate_counts_what_the_optimizer_allocates(case: str) -> None:
    """buffers_per_point (the memory estimate's optimizer term) against the (P, N) buffers
    a stacked optimizer really holds after a step, plus θ and its gradient."""
    from stabcli.probe.engine import check_points
    from stabcli.probe.optim import buffers_per_point, lr_table, make_optimizer

    preset = load_preset("mlp-synthetic").with_overrides(steps=3, **MEMORY_CASES[case])
    t = preset.train
    n_pt, n_par = 3, 2000
    hypers = check_points(HYPER_POINTS, t)
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(n_pt, n_par, generator=gen)  # (P, N): points, parameters
    opt = make_optimizer(t, flat, hypers, lr_table(t, hypers.beta, hypers.gamma))
    alive = torch.ones(n_pt, dtype=torch.bool)
    for n in range(2):
        grad = torch.randn(n_pt, n_par, generator=gen)  # (P, N)
        alive = opt.step(n, flat, grad, torch.zeros(n_pt), alive).alive
    held = _parameter_sized(opt, n_pt * n_par, {flat.untyped_storage().data_ptr()})
    assert held / (n_pt * n_par) + 2 == buffers_per_point(t)
