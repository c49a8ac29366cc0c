"""The recorded (β, γ) path follows the param groups: schedules, k-Adam's levels, learned
betas (MADA, HyperAdam), several groups; and every recorded step obeys the bound of that
path (docs/theory.md §3, §5, §6, §7)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from monitor_models import regression, train

from stabcli.monitor import watch
from stabcli.optim import MADA, HyperAdam, KAdam
from stabcli.theory.exact import exact_bound

pytestmark = pytest.mark.filterwarnings("ignore::stabcli.monitor.StabilityWarning")
STEPS = 60


def _schedule(opt: torch.optim.Optimizer, n: int) -> None:
    """A beta schedule as a user writes one: both betas move, in PyTorch's order."""
    opt.param_groups[0]["betas"] = (0.9 + 0.0008 * n, 0.999 - 0.0001 * n)


def _kadam_schedule(opt: torch.optim.Optimizer, n: int) -> None:
    opt.param_groups[0]["base_betas"] = (0.9, 0.999 - 0.0002 * n)


OPTIMIZERS: dict[str, tuple[Callable, Callable | None, bool]] = {
    # id: (make(params), schedule(opt, n) or None, whether the path moves)
    "adam-schedule": (lambda ps: torch.optim.Adam(ps, lr=1e-2), _schedule, True),
    "adamw-schedule": (
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.5),
        _schedule,
        True,
    ),
    "kadam": (lambda ps: KAdam(ps, lr=1e-2, k=2), None, False),
    "kadam-levels": (
        lambda ps: KAdam(ps, lr=1e-2, k=2, betas=[(0.9, 0.999), (0.8, 0.99)]),
        None,
        False,
    ),
    "kadam-schedule": (lambda ps: KAdam(ps, lr=1e-2, k=3), _kadam_schedule, True),
    "hyperadam": (lambda ps: HyperAdam(ps, lr=1e-2, hyper_lr=1e-2), None, True),
    "mada": (  # betas learned, ρ = 0.5 fixed: on the Adam-AVGrad-Lion face, so it has a bound
        lambda ps: MADA(ps, lr=1e-2, rho=0.5, hyper_lr={"beta1": 1e-2, "beta2": 1e-2}),
        None,
        True,
    ),
}


def _torch_betas(opt: torch.optim.Optimizer) -> tuple[float, float]:
    """What the param groups say the measured update used, in PyTorch's order."""
    if isinstance(opt, KAdam):
        return opt.level_betas(0)[-1]  # the last level makes the step (docs/theory.md §6)
    beta1, beta2 = opt.param_groups[0]["betas"]
    return float(beta1), float(beta2)


@pytest.mark.parametrize("case", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_recorded_path_follows_param_groups(case: str) -> None:
    make, schedule, moves = OPTIMIZERS[case]
    model, loss = regression()
    opt = make(model.parameters())
    path = []
    with watch(opt, model=model, sync_every=8) as mon:
        for n in range(STEPS):
            if schedule is not None:
                schedule(opt, n)
            train(opt, loss, 1)
            path.append(_torch_betas(opt))
    summary = mon.summary()
    beta1, beta2 = np.array(path).T
    assert summary.step.tolist() == list(range(STEPS))
    np.testing.assert_array_equal(summary.gamma, beta1)  # γ is PyTorch's beta1
    np.testing.assert_array_equal(summary.beta, beta2)  # β is PyTorch's beta2
    np.testing.assert_array_equal(summary.torch_beta1, beta1)
    assert (np.ptp(beta1) + np.ptp(beta2) > 0) == moves
    row = mon.points().iloc[0]
    assert row.path == ("moving" if moves else "constant")
    assert row.bound_ratio_max <= 1 + 1e-9  # the run's check is against the path's bound
    # the path's bound (docs/theory.md §5) holds at every step, up to float64 rounding
    limit = summary.bound + summary.wd_term
    assert np.isfinite(limit).all()
    assert (summary.max_update <= limit * (1 + 1e-9)).all(), (summary.max_update / limit).max()


def _steps_by_hand(opt: torch.optim.Optimizer, loss: Callable, names: dict, steps: int):
    """Per step and group: max over tensors of |θ_{n+1} − θ_n|/η_g, computed directly."""
    rows = []
    for n in range(steps):
        before = [[p.detach().clone() for p in g["params"]] for g in opt.param_groups]
        train(opt, loss, 1)
        for g, group in enumerate(opt.param_groups):
            sizes = [
                ((p.detach() - b).abs().max().item() / group["lr"], names[id(p)])
                for p, b in zip(group["params"], before[g], strict=True)
            ]
            size, name = max(sizes, key=lambda s: s[0])
            rows.append({"step": n, "group": g, "max_update": size, "max_tensor": name})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("same_betas", [True, False], ids=["one-point", "point-per-group"])
def test_param_groups(same_betas: bool) -> None:
    """Groups sharing (β, γ) form one point (the max over all tensors, as the probe engine);
    groups with their own betas are measured each on its own."""
    model, loss = regression()
    first, second = model[0], model[2]
    second_betas = (0.9, 0.999) if same_betas else (0.8, 0.95)
    opt = torch.optim.Adam(
        [
            {"params": first.parameters(), "lr": 1e-2},
            {"params": second.parameters(), "lr": 3e-3, "betas": second_betas},
        ],
        betas=(0.9, 0.999),
    )
    names = {id(p): name for name, p in model.named_parameters()}
    with watch(opt, model=model) as mon:
        expected = _steps_by_hand(opt, loss, names, 30)
    summary, points = mon.summary(), mon.points()
    if same_betas:
        assert "group" not in summary and len(points) == 1
        expected = expected.loc[expected.groupby("step").max_update.idxmax()]
        assert points.param_groups.item() == "0,1"
    else:
        assert points.param_groups.tolist() == ["0", "1"]
        assert points.torch_beta1.tolist() == [0.9, 0.8] and points.beta.tolist() == [0.999, 0.95]
        expected = expected.sort_values(["group", "step"])  # the summary: group by group
        assert summary.group.tolist() == expected.group.tolist()
    np.testing.assert_allclose(summary.max_update, expected.max_update, rtol=1e-12)
    assert summary.max_tensor.tolist() == expected.max_tensor.tolist()


def test_every_measures_some_steps_identically() -> None:
    model, loss = regression()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watch(opt, model=model) as all_steps, watch(opt, model=model, every=3) as some:
        train(opt, loss, 40)
    a, b = all_steps.summary(), some.summary()
    assert b.step.tolist() == list(range(0, 40, 3))
    kept = a.set_index("step").loc[b.step]
    np.testing.assert_array_equal(b.max_update, kept.max_update)
    assert b.max_tensor.tolist() == kept.max_tensor.tolist()


def test_steps_continue_the_optimizers_count() -> None:
    """Watching a run that has already taken steps: n is the optimizer's own step count, so
    the bound is corr_n's at that n (docs/theory.md (3.3))."""
    model, loss = regression()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    train(opt, loss, 30)
    with watch(opt, model=model) as mon:
        train(opt, loss, 20)
    summary = mon.summary()
    assert summary.step.tolist() == list(range(30, 50))
    np.testing.assert_allclose(summary.bound, exact_bound(0.99, 0.9, np.arange(30, 50)), rtol=1e-12)


def test_resolution_covers_reading_steps_from_float32_parameters() -> None:
    """A step read from float32 parameters against u_n computed in float64 from Adam's own
    state (docs/theory.md (1.1)): they differ by the rounding of θ_{n+1}, which the recorded
    resolution 2ε‖θ_n‖∞/η_n covers (with float32 rounding of u_n itself on top)."""
    gamma, beta, eps, lr = 0.9, 0.99, 1e-8, 1e-3
    torch.manual_seed(0)
    w = torch.nn.Parameter(1.0 + 0.1 * torch.randn(64))  # |θ| ~ 1: ulp(θ)/η ~ 1e-4
    opt = torch.optim.Adam([w], lr=lr, betas=(gamma, beta), eps=eps)
    x = torch.randn(64)
    computed, theta = [], []
    with watch(opt, model={"w": w}, sync_every=8) as mon:
        for n in range(30):
            opt.zero_grad()
            (torch.sin(w * x).sum()).backward()
            theta.append(w.detach().abs().max().item())
            opt.step()
            state = opt.state[w]
            m, v = state["exp_avg"].double(), state["exp_avg_sq"].double()
            u = (m / (1 - gamma ** (n + 1))) / (v.sqrt() / (1 - beta ** (n + 1)) ** 0.5 + eps)
            computed.append(u.abs().max().item())
    summary = mon.summary()
    error = np.abs(summary.max_update - np.array(computed))
    assert (error <= summary.resolution + 1e-5 * summary.max_update).all()
    assert error.max() > 1e-5  # the rounding of θ is really there, and really covered
    # 2ε‖θ_n‖∞/η: exact at each block's first step, an upper bound at the others
    exact = 2 * torch.finfo(torch.float32).eps * np.array(theta) / lr
    assert (summary.resolution >= exact * (1 - 1e-12)).all()
    np.testing.assert_allclose(summary.resolution[::8], exact[::8], rtol=1e-12)
    assert (summary.resolution <= exact * 1.01).all()  # and a tight one over 8 small steps


@pytest.mark.parametrize("case", ["adam", "adamw"])
def test_both_ways_of_reading_extremes_agree(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One aminmax per tensor (large tensors) and abs + one foreach max (small ones) record
    the same steps."""
    from stabcli.monitor import device

    summaries = []
    for threshold in (0, 1 << 60):  # every bucket per tensor; every bucket by foreach
        monkeypatch.setattr(device, "PER_TENSOR_FROM", threshold)
        model, loss = regression()
        kind = torch.optim.AdamW if case == "adamw" else torch.optim.Adam
        opt = kind(model.parameters(), lr=1e-2)
        with watch(opt, model=model, sync_every=16) as mon:
            train(opt, loss, 40)
        summaries.append(mon.summary())
    per_tensor, by_foreach = summaries
    pd.testing.assert_frame_equal(per_tensor, by_foreach)


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("per_tensor", [False, True], ids=["foreach", "per-tensor"])
def test_bfloat16_and_float32_parameters_together(
    per_tensor: bool, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two buckets (bfloat16 and float32 tensors): the steps equal the float64 differences
    of the parameters to bfloat16's rounding of a difference (2^-8), and every step is within
    the bound once its resolution is allowed for; on the CPU and on CUDA (there torch's AdamW
    takes its foreach path and the monitor's buffers and records live on the GPU)."""
    from stabcli.monitor import device as device_records

    monkeypatch.setattr(device_records, "PER_TENSOR_FROM", 0 if per_tensor else 1 << 60)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 1))
    model = model.to(device=device, dtype=torch.bfloat16)
    extra = torch.nn.Parameter(torch.randn(5, device=device))
    params = {**dict(model.named_parameters()), "extra": extra}
    opt = torch.optim.AdamW(list(params.values()), lr=1e-2)
    expected = []
    with watch(opt, model=params) as mon:
        for _ in range(20):
            opt.zero_grad()
            out = model(torch.randn(4, 8, dtype=torch.bfloat16, device=device)).float().sum()
            (out + (extra**2).sum()).backward()
            before = {n: p.detach().double().clone() for n, p in params.items()}
            opt.step()
            moved = {
                n: (p.detach().double() - before[n]).abs().max().item() for n, p in params.items()
            }
            expected.append(max(moved.values()) / 1e-2)
    summary = mon.summary()
    np.testing.assert_allclose(summary.max_update, expected, rtol=2**-8)
    limit = (summary.bound + summary.wd_term) * (1 + 1e-5) + summary.resolution
    assert (summary.max_update <= limit).all()
    assert mon.points().bound_check.item() in (
        "within the bound",
        "within the bound up to rounding",
    )
