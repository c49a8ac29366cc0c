"""HyperAdam: torch.optim.Adam at κ = 0, hyper-gradients against finite differences, moving
betas against a plain loop, the path bound (docs/theory.md §5) on its max-update, and
PyTorch's conventions (state_dict, readable betas). Float64 throughout.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
from mada_reference import adam_path_update

from stabcli.errors import StabcliError
from stabcli.optim import HyperAdam
from stabcli.optim.hyperadam import HYPERADAM_COEFFICIENTS, hyperadam_step
from stabcli.optim.kernels import STACKED
from stabcli.theory.path import first_unstable_step, path_bound

DTYPE = torch.float64


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3, bias=False)
    ).to(DTYPE)


def loss_at(model: torch.nn.Module, step: int) -> torch.Tensor:
    """f_t: a fresh random regression batch per step, the same in every run."""
    gen = torch.Generator().manual_seed(2000 + step)
    x = torch.randn(16, 5, generator=gen, dtype=DTYPE)
    y = torch.randn(16, 3, generator=gen, dtype=DTYPE)
    return torch.nn.functional.mse_loss(model(x), y)


def compute_grads(model: torch.nn.Module, step: int) -> None:
    model.zero_grad(set_to_none=True)
    loss_at(model, step).backward()


CASES: list = [
    pytest.param({}, lambda ps: torch.optim.Adam(ps, lr=0.01), id="defaults"),
    pytest.param(
        {"betas": (0.6, 0.5), "eps": 1e-3, "weight_decay": 0.05},
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.6, 0.5), eps=1e-3, weight_decay=0.05),
        id="unstable-betas-coupled-decay",
    ),
    pytest.param(
        {"betas": (0.9, 0.95), "weight_decay": 0.1, "decoupled_weight_decay": True},
        lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.95), weight_decay=0.1),
        id="adamw",
    ),
    pytest.param(
        {"betas": (0.0, 0.999)},
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.0, 0.999)),
        id="rmsprop-like",
    ),
]


@pytest.mark.parametrize(("settings", "make_reference"), CASES)
def test_zero_hyper_lr_is_torch_adam(settings: dict, make_reference: Callable):
    ours, theirs = make_model(), make_model()
    opt = HyperAdam(ours.parameters(), lr=0.01, hyper_lr=0.0, **settings)
    reference = make_reference(list(theirs.parameters()))
    for step in range(50):
        for model, o in ((ours, opt), (theirs, reference)):
            compute_grads(model, step)
            o.step()
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12, msg=f"step {step}")


def replay_loss(snapshot: tuple[dict, dict], betas: tuple, step: int) -> float:
    """f_t(θ_{t−1}) after redoing step t−1 from the saved state with the given betas."""
    model = make_model()
    model.load_state_dict(snapshot[0])
    opt = HyperAdam(model.parameters(), lr=0.01)
    opt.load_state_dict(copy.deepcopy(snapshot[1]))
    opt.param_groups[0]["hyper_lr"] = {"beta1": 0.0, "beta2": 0.0}
    opt.param_groups[0]["betas"] = betas
    compute_grads(model, step - 1)
    opt.step()
    with torch.no_grad():
        return loss_at(model, step).item()


@pytest.mark.parametrize("name", HYPERADAM_COEFFICIENTS)
@pytest.mark.parametrize("at_step", [2, 9], ids=lambda t: f"t{t}")
def test_hypergradient_matches_finite_differences(name: str, at_step: int):
    model = make_model()
    opt = HyperAdam(model.parameters(), lr=0.01, betas=(0.8, 0.9), hyper_lr=1e-3)
    for step in range(at_step - 1):
        compute_grads(model, step)
        opt.step()
    snapshot = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
    compute_grads(model, at_step - 1)
    opt.step()  # moves the betas to those of step t−1, stores ∂θ_{t−1}/∂β
    b1, b2 = opt.param_groups[0]["betas"]
    compute_grads(model, at_step)
    k = HYPERADAM_COEFFICIENTS.index(name)
    analytic = sum((p.grad * opt.state[p]["hyper_dir"][k]).sum().item() for p in model.parameters())
    delta = 1e-6
    shift = (delta, 0.0) if name == "beta1" else (0.0, delta)
    plus = replay_loss(snapshot, (b1 + shift[0], b2 + shift[1]), at_step)
    minus = replay_loss(snapshot, (b1 - shift[0], b2 - shift[1]), at_step)
    numeric = (plus - minus) / (2 * delta)
    assert abs(numeric) > 1e-8, "a vanishing hyper-gradient would make this test vacuous"
    assert analytic == pytest.approx(numeric, rel=1e-4)


def run_recording(
    steps: int, betas: tuple, hyper_lr, lr: float = 0.01
) -> tuple[list, list, np.ndarray, list]:
    """Train with HyperAdam; record betas, gradients and ‖θ_t − θ_{t−1}‖∞/η every step."""
    model = make_model()
    opt = HyperAdam(model.parameters(), lr=lr, betas=betas, hyper_lr=hyper_lr)
    path, grads, updates = [], [], []
    for step in range(steps):
        compute_grads(model, step)
        before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        grads.append(torch.cat([p.grad.reshape(-1).clone() for p in model.parameters()]))
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        path.append(opt.param_groups[0]["betas"])
        updates.append(((before - after) / lr).numpy())
    return path, grads, np.array(updates), [g.numpy() for g in grads]


def test_moving_betas_follow_adam_with_the_path_products():
    path, _, updates, grads = run_recording(40, (0.8, 0.9), hyper_lr=0.05)
    beta1 = [b[0] for b in path]
    beta2 = [b[1] for b in path]
    assert len(set(beta1)) > 20 and len(set(beta2)) > 20, "the betas must move for this test"
    g = np.array(grads)  # (T, N)
    for i in range(0, g.shape[1], 7):  # every 7th element, as a scalar Adam
        expected = adam_path_update(g[:, i].tolist(), beta1, beta2, eps=1e-8)
        np.testing.assert_allclose(updates[:, i], expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize(
    ("betas", "hyper_lr"),
    [
        pytest.param((0.9, 0.999), 0.05, id="default-start"),
        pytest.param((0.9, 0.82), {"beta1": 0.2, "beta2": 0.5}, id="near-the-boundary"),
        pytest.param((0.95, 0.6), 0.1, id="unstable-start"),
    ],
)
def test_max_update_respects_the_path_bound(betas, hyper_lr):
    path, _, updates, _ = run_recording(80, betas, hyper_lr)
    gamma = np.array([b[0] for b in path])  # γ_t = torch beta1
    beta = np.array([b[1] for b in path])  # β_t = torch beta2
    bound = path_bound(beta, gamma)  # default correction: HyperAdam's path products
    measured = np.abs(updates).max(axis=1)
    assert np.all(measured <= bound * (1 + 1e-9)), float((measured / bound).max())
    assert (measured / bound).max() > 0.3, "a bound far from the measurement tests little"
    if betas == (0.95, 0.6):
        assert first_unstable_step(beta, gamma) == 0


def test_betas_move_and_stay_in_their_bounds():
    bounds = {"beta1": (0.79, 0.83), "beta2": (0.84, 0.86)}
    model = make_model()
    opt = HyperAdam(model.parameters(), lr=0.01, betas=(0.8, 0.85), hyper_lr=1.0, bounds=bounds)
    seen = []
    for step in range(60):
        compute_grads(model, step)
        opt.step()
        seen.append(opt.param_groups[0]["betas"])
    beta1s, beta2s = zip(*seen, strict=True)
    assert len(set(beta1s)) > 10 and len(set(beta2s)) > 10
    assert all(0.79 <= b <= 0.83 for b in beta1s) and all(0.84 <= b <= 0.86 for b in beta2s)
    assert {0.79, 0.83} <= set(beta1s) and 0.84 in beta2s, "this path is projected onto the box"


def test_only_the_named_beta_is_learned():
    model = make_model()
    opt = HyperAdam(model.parameters(), lr=0.01, betas=(0.8, 0.9), hyper_lr={"beta2": 0.05})
    for step in range(10):
        compute_grads(model, step)
        opt.step()
    beta1, beta2 = opt.param_groups[0]["betas"]
    assert beta1 == 0.8 and beta2 != 0.9
    weight = next(iter(model.parameters()))
    assert opt.state[weight]["hyper_dir"].shape == (1, *weight.shape)


def test_state_dict_round_trip_resumes_bit_for_bit():
    model = make_model()
    opt = HyperAdam(model.parameters(), lr=0.01, betas=(0.8, 0.9), hyper_lr=0.05)
    for step in range(5):
        compute_grads(model, step)
        opt.step()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed_model = make_model(seed=3)
    resumed_model.load_state_dict(saved["model"])
    resumed = HyperAdam(resumed_model.parameters())
    resumed.load_state_dict(saved["opt"])
    for step in range(5, 12):
        for m, o in ((model, opt), (resumed_model, resumed)):
            compute_grads(m, step)
            o.step()
        for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
            assert torch.equal(a, b), f"step {step}"
        assert resumed.param_groups[0]["betas"] == opt.param_groups[0]["betas"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"betas": (0.9, 1.0)}, "beta2 must be in", id="beta2-one"),
        pytest.param({"betas": (-0.1, 0.9)}, "beta1 must be in", id="beta1-negative"),
        pytest.param({"hyper_lr": {"rho": 0.1}}, "unknown coefficient", id="mada-name"),
        pytest.param({"eps": -1.0}, "eps must be", id="negative-eps"),
    ],
)
def test_invalid_settings_are_one_line_user_errors(kwargs, message):
    with pytest.raises(StabcliError, match=message) as info:
        HyperAdam(make_model().parameters(), **kwargs)
    assert "\n" not in str(info.value)


def test_kernel_with_per_point_betas_matches_point_by_point():
    # P = 3 points with their own (β1, β2) over a (P, N) buffer, as the probe engine will
    # run it, against three single-tensor calls with float betas.
    gen = torch.Generator().manual_seed(0)
    points = [(0.9, 0.999), (0.6, 0.5), (0.0, 0.95)]
    b1 = torch.tensor([p[0] for p in points], dtype=DTYPE)[:, None]  # (P, 1)
    b2 = torch.tensor([p[1] for p in points], dtype=DTYPE)[:, None]  # (P, 1)
    m, v = torch.zeros(3, 30, dtype=DTYPE), torch.zeros(3, 30, dtype=DTYPE)  # (P, N)
    singles = [(torch.zeros(30, dtype=DTYPE), torch.zeros(30, dtype=DTYPE)) for _ in points]
    prod1, prod2 = torch.ones(3, 1, dtype=DTYPE), torch.ones(3, 1, dtype=DTYPE)
    prods = [(1.0, 1.0) for _ in points]
    for _ in range(6):
        grad = torch.randn(3, 30, generator=gen, dtype=DTYPE)
        out = torch.empty(2, 3, 30, dtype=DTYPE)  # (K, P, N)
        u = hyperadam_step(
            m, v, grad, b1, b2, prod1, prod2, 1e-8, ["beta1", "beta2"], out, ops=STACKED
        )
        prod1, prod2 = prod1 * b1, prod2 * b2
        for i, (beta1, beta2) in enumerate(points):
            out_i = torch.empty(2, 30, dtype=DTYPE)
            u_i = hyperadam_step(
                *singles[i], grad[i], beta1, beta2, *prods[i], 1e-8, ["beta1", "beta2"], out_i
            )
            prods[i] = (prods[i][0] * beta1, prods[i][1] * beta2)
            torch.testing.assert_close(u[i], u_i, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(out[:, i], out_i, rtol=1e-12, atol=1e-14)
