"""MADA against references at its vertices, its hyper-gradients against finite differences,
and PyTorch's optimizer conventions (param groups, state_dict, readable betas).

Float64 throughout. References: ``torch.optim.Adam``/``AdamW`` and the plain loops of
``mada_reference`` (AVGrad, Yogi, Adan, Lion and the full App. C.1 rule), written from the
MADA paper without sharing code with :mod:`stabcli.optim`.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
from mada_reference import Adan, AVGrad, FullMada, Lion, Yogi

from stabcli.errors import StabcliError
from stabcli.optim import MADA
from stabcli.optim.mada_kernel import MADA_COEFFICIENTS, MadaCoefficients, MadaMoments, mada_step
from stabcli.theory.path import mada_path_bound

DTYPE = torch.float64


# --- a small problem: a two-layer net on random regression batches -----------------------


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3, bias=False)
    ).to(DTYPE)


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The minibatch of f_t: a different random batch at every step, the same in every run."""
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(16, 5, generator=gen, dtype=DTYPE)
    y = torch.randn(16, 3, generator=gen, dtype=DTYPE)
    return x, y


def loss_at(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = batch(step)
    return torch.nn.functional.mse_loss(model(x), y)


def compute_grads(model: torch.nn.Module, step: int) -> None:
    model.zero_grad(set_to_none=True)
    loss_at(model, step).backward()


def params_of(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --- vertices: MADA with κ = 0 against the references ------------------------------------

ADAM_BETAS = (0.85, 0.97)

VERTICES: list = [
    pytest.param(
        {"betas": ADAM_BETAS, "weight_decay": 0.05, "decoupled_weight_decay": False},
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=ADAM_BETAS, weight_decay=0.05),
        id="adam-coupled-decay",
    ),
    pytest.param(
        {"betas": ADAM_BETAS, "weight_decay": 0.05},
        lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=ADAM_BETAS, weight_decay=0.05),
        id="adamw",
    ),
    pytest.param(
        {"betas": (0.6, 0.5), "eps": 1e-3},
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.6, 0.5), eps=1e-3),
        id="adam-unstable-betas",
    ),
    pytest.param(
        {"betas": ADAM_BETAS, "rho": 0.0, "weight_decay": 0.05},
        lambda ps: AVGrad(ps, lr=0.01, weight_decay=0.05, beta1=0.85, beta2=0.97),
        id="avgrad",
    ),
    pytest.param(
        {"betas": ADAM_BETAS, "c": 0.0},
        lambda ps: Yogi(ps, lr=0.01, beta1=0.85, beta2=0.97),
        id="yogi",
    ),
    pytest.param(
        {"betas": (0.98, 0.99), "beta3": 0.92, "weight_decay": 0.05},
        lambda ps: Adan(ps, lr=0.01, weight_decay=0.05, beta1=0.98, beta2=0.99, beta3=0.92),
        id="adan",
    ),
    pytest.param(
        {"betas": ADAM_BETAS, "beta3": 0.5},
        lambda ps: Adan(ps, lr=0.01, beta1=0.85, beta2=0.97, beta3=0.5),
        id="adan-beta3-half",
    ),
    pytest.param(
        {"omega": 0.0, "weight_decay": 0.05, "lion_betas": (0.95, 0.98)},
        lambda ps: Lion(ps, lr=0.01, weight_decay=0.05, beta1=0.95, beta2=0.98),
        id="lion",
    ),
    pytest.param(
        {"betas": (0.8, 0.9), "beta3": 0.3, "rho": 0.6, "c": 0.4, "omega": 0.7},
        lambda ps: FullMada(
            ps, lr=0.01, beta1=0.8, beta2=0.9, beta3=0.3, rho=0.6, c=0.4, omega=0.7
        ),
        id="interior-point",
    ),
]


@pytest.mark.parametrize(("settings", "make_reference"), VERTICES)
def test_vertex_matches_reference_step_by_step(settings: dict, make_reference: Callable):
    ours, theirs = make_model(), make_model()
    mada = MADA(ours.parameters(), lr=0.01, hyper_lr=0.0, **settings)
    reference = make_reference(list(theirs.parameters()))
    for step in range(40):
        for model, opt in ((ours, mada), (theirs, reference)):
            compute_grads(model, step)
            opt.step()
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12, msg=f"step {step}")
    assert mada.param_groups[0]["betas"] == tuple(settings.get("betas", (0.9, 0.999)))


def test_vertex_test_can_tell_vertices_apart():
    # Guard against a vacuous comparison: AVGrad and Yogi differ from Adam on this problem.
    for other in (
        lambda ps: AVGrad(ps, lr=0.01, beta1=0.85, beta2=0.97),
        lambda ps: Yogi(ps, lr=0.01, beta1=0.85, beta2=0.97),
    ):
        ours, theirs = make_model(), make_model()
        adam = torch.optim.Adam(ours.parameters(), lr=0.01, betas=ADAM_BETAS)
        ref = other(list(theirs.parameters()))
        for step in range(10):
            for model, opt in ((ours, adam), (theirs, ref)):
                compute_grads(model, step)
                opt.step()
        pairs = zip(params_of(ours), params_of(theirs), strict=True)
        gap = max((a - b).abs().max().item() for a, b in pairs)
        assert gap > 1e-4


# --- hyper-gradients against central finite differences -----------------------------------

INTERIOR = {"betas": (0.8, 0.9), "beta3": 0.3, "rho": 0.6, "c": 0.4, "omega": 0.7}


def run_to(steps: int, settings: dict, hyper_lr) -> tuple[torch.nn.Module, MADA]:
    model = make_model()
    opt = MADA(model.parameters(), lr=0.01, hyper_lr=hyper_lr, **settings)
    for step in range(steps):
        compute_grads(model, step)
        opt.step()
    return model, opt


def coefficients_of(group: dict) -> dict:
    b1, b2 = group["betas"]
    return {"betas": (b1, b2), **{k: group[k] for k in ("beta3", "rho", "c", "omega")}}


def replay_loss(snapshot: tuple[dict, dict], q: dict, name: str, delta: float, step: int) -> float:
    """f_{t}(θ_{t−1}) after redoing step t−1 from the saved state with q_name + delta."""
    model_state, opt_state = snapshot
    model = make_model()
    model.load_state_dict(model_state)
    opt = MADA(model.parameters(), lr=0.01, hyper_lr=0.0)
    opt.load_state_dict(copy.deepcopy(opt_state))
    group = opt.param_groups[0]
    group["hyper_lr"] = dict.fromkeys(MADA_COEFFICIENTS, 0.0)
    settings = copy.deepcopy(q)
    if name == "beta1":
        settings["betas"] = (settings["betas"][0] + delta, settings["betas"][1])
    elif name == "beta2":
        settings["betas"] = (settings["betas"][0], settings["betas"][1] + delta)
    else:
        settings[name] += delta
    group.update(settings)
    compute_grads(model, step - 1)
    opt.step()
    with torch.no_grad():
        return loss_at(model, step).item()


@pytest.mark.parametrize("name", MADA_COEFFICIENTS)
@pytest.mark.parametrize("at_step", [2, 7], ids=lambda t: f"t{t}")
def test_hypergradient_matches_finite_differences(name: str, at_step: int):
    # θ_{t−2} and the optimizer state after t−2 steps (q learning with a small κ).
    model, opt = run_to(at_step - 1, INTERIOR, hyper_lr=1e-3)
    snapshot = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
    # Step t−1 for real: it moves q to q_{t−1} and stores ∂θ_{t−1}/∂q.
    compute_grads(model, at_step - 1)
    opt.step()
    q = coefficients_of(opt.param_groups[0])
    compute_grads(model, at_step)  # ∇f_t(θ_{t−1})
    k = MADA_COEFFICIENTS.index(name)
    analytic = sum((p.grad * opt.state[p]["hyper_dir"][k]).sum().item() for p in model.parameters())
    # The paper's hyper-gradient by finite differences: redo step t−1 with q_k ± δ from the
    # same state (κ = 0 there, so q is what we set), evaluate f_t.
    delta = 1e-6
    plus = replay_loss(snapshot, q, name, delta, at_step)
    minus = replay_loss(snapshot, q, name, -delta, at_step)
    numeric = (plus - minus) / (2 * delta)
    assert abs(numeric) > 1e-8, "a vanishing hyper-gradient would make this test vacuous"
    assert analytic == pytest.approx(numeric, rel=1e-4)


def test_hyper_step_moves_q_by_minus_kappa_times_the_hypergradient():
    kappa = {"beta1": 1e-3, "beta2": 2e-3, "beta3": 1e-2, "rho": 3e-2, "c": 1e-2, "omega": 5e-3}
    model, opt = run_to(3, INTERIOR, hyper_lr=kappa)
    before = coefficients_of(opt.param_groups[0])
    compute_grads(model, 3)
    h = {
        name: sum((p.grad * opt.state[p]["hyper_dir"][k]).sum().item() for p in model.parameters())
        for k, name in enumerate(MADA_COEFFICIENTS)
    }
    opt.step()
    after = coefficients_of(opt.param_groups[0])
    flat_before = {"beta1": before["betas"][0], "beta2": before["betas"][1], **before}
    flat_after = {"beta1": after["betas"][0], "beta2": after["betas"][1], **after}
    for name in MADA_COEFFICIENTS:
        assert flat_after[name] - flat_before[name] == pytest.approx(
            -kappa[name] * h[name], rel=1e-6, abs=1e-15
        ), name
        assert flat_after[name] != flat_before[name], name


# --- the learned path against the theory (docs/theory.md §5, §7) --------------------------


def test_max_update_on_the_adam_avgrad_lion_face_respects_the_path_bound():
    # β3 = 0 and c = 1 stay fixed (not learned); β1, β2, ρ, ω move with large κ.
    model = make_model()
    kappa = {"beta1": 0.05, "beta2": 0.05, "rho": 0.5, "omega": 0.5}
    opt = MADA(model.parameters(), lr=0.01, betas=(0.9, 0.9), rho=0.7, omega=0.8, hyper_lr=kappa)
    path, measured = [], []
    for step in range(80):
        compute_grads(model, step)
        before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        group = opt.param_groups[0]
        path.append((*group["betas"], group["rho"], group["omega"]))
        measured.append(((before - after).abs().max() / 0.01).item())
    gamma, beta, rho, omega = (np.array(x) for x in zip(*path, strict=True))
    assert len(set(rho)) > 10 and len(set(omega)) > 10 and len(set(beta)) > 10
    bound = mada_path_bound(beta, gamma, rho, omega)
    ratio = np.array(measured) / bound
    assert ratio.max() <= 1 + 1e-9, ratio.max()
    assert ratio.max() > 0.3, "a bound far above the measurement tests little"


# --- PyTorch conventions --------------------------------------------------------------------


def test_betas_in_param_groups_move_and_stay_in_bounds():
    bounds = {"beta1": (0.86, 0.95), "beta2": (0.9, 0.97)}
    model = make_model()
    opt = MADA(model.parameters(), lr=0.01, betas=(0.9, 0.95), hyper_lr=0.5, bounds=bounds, rho=0.5)
    seen = []
    for step in range(60):
        compute_grads(model, step)
        opt.step()
        seen.append(opt.param_groups[0]["betas"])
    beta1s, beta2s = zip(*seen, strict=True)
    assert len(set(beta1s)) > 10 and len(set(beta2s)) > 10
    assert all(0.86 <= b <= 0.95 for b in beta1s) and all(0.9 <= b <= 0.97 for b in beta2s)
    assert 0.86 in beta1s and 0.97 in beta2s, "this path is projected onto both boxes"
    for name in ("beta3", "rho", "c", "omega"):
        assert 0.0 <= opt.param_groups[0][name] <= 1.0


def test_param_groups_learn_their_own_coefficients():
    model = make_model()
    first, second = list(model[0].parameters()), list(model[2].parameters())
    opt = MADA(
        [{"params": first, "hyper_lr": 0.0}, {"params": second, "betas": (0.7, 0.9)}],
        lr=0.01,
        hyper_lr=0.05,
    )
    for step in range(10):
        compute_grads(model, step)
        opt.step()
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt.param_groups[1]["betas"] != (0.7, 0.9)
    assert "hyper_dir" not in opt.state[first[0]]
    assert opt.state[second[0]]["hyper_dir"].shape == (6, *second[0].shape)


def test_step_evaluates_a_closure_with_gradients_enabled():
    model = make_model()
    opt = MADA(model.parameters(), lr=0.01)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_at(model, 0)
        loss.backward()
        return loss

    before = params_of(model)
    loss = opt.step(closure)
    assert loss is not None and loss.item() > 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_state_dict_round_trip_resumes_bit_for_bit():
    model, opt = run_to(6, INTERIOR, hyper_lr=0.05)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed_model = make_model(seed=1)  # different initial weights: all must come from the file
    resumed_model.load_state_dict(saved["model"])
    resumed = MADA(resumed_model.parameters(), lr=0.01)  # default settings: overwritten
    resumed.load_state_dict(saved["opt"])
    assert resumed.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    for step in range(6, 12):
        for m, o in ((model, opt), (resumed_model, resumed)):
            compute_grads(m, step)
            o.step()
        for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
            assert torch.equal(a, b), f"step {step}"
        assert resumed.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
        assert resumed.param_groups[0]["omega"] == opt.param_groups[0]["omega"]


def test_a_parameter_without_gradient_contributes_nothing_next_step():
    model = make_model()
    opt = MADA(model.parameters(), lr=0.01, hyper_lr=0.01, **INTERIOR)
    compute_grads(model, 0)
    opt.step()
    frozen = model[2].weight
    compute_grads(model, 1)
    frozen.grad = None  # not updated at this step: its ∂θ/∂q is 0 now
    before = frozen.detach().clone()
    opt.step()
    assert torch.equal(frozen, before)
    assert "hyper_dir" not in opt.state[frozen]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"betas": (1.0, 0.99)}, "beta1 must be in", id="beta1-one"),
        pytest.param({"betas": (0.9, 0.3)}, "outside its bounds", id="beta2-below-box"),
        pytest.param({"rho": 1.5}, "rho must be in", id="rho"),
        pytest.param({"hyper_lr": -1.0}, "hyper_lr", id="negative-kappa"),
        pytest.param({"hyper_lr": {"gamma": 0.1}}, "unknown coefficient", id="unknown-name"),
        pytest.param({"bounds": {"beta2": (0.9, 1.0)}}, "bounds for beta2", id="bound-at-one"),
        pytest.param({"bounds": {"c": (0.8, 0.2)}}, "bounds for c", id="inverted-bounds"),
        pytest.param({"lr": -0.1}, "lr must be", id="negative-lr"),
        pytest.param({"lion_betas": (0.9, 1.5)}, "lion_betas", id="lion-betas"),
    ],
)
def test_invalid_settings_are_one_line_user_errors(kwargs, message):
    with pytest.raises(StabcliError, match=message) as info:
        MADA(make_model().parameters(), **kwargs)
    assert "\n" not in str(info.value)


def test_a_value_set_outside_its_bounds_is_refused_at_the_step():
    model = make_model()
    opt = MADA(model.parameters())
    opt.param_groups[0]["betas"] = (0.9, 1.0)
    compute_grads(model, 0)
    with pytest.raises(StabcliError, match="beta2"):
        opt.step()


# --- the kernel over stacked points, as the probe engine will run it -----------------------


def test_kernel_with_per_point_coefficients_matches_point_by_point():
    # P = 3 points with their own q over a (P, N) buffer, against three calls with floats.
    gen = torch.Generator().manual_seed(0)
    points = [
        (0.9, 0.999, 0.0, 1.0, 1.0, 1.0),
        (0.8, 0.9, 0.3, 0.6, 0.4, 0.7),
        (0.5, 0.7, 0.9, 0.0, 0.0, 0.2),
    ]
    columns = [torch.tensor(col, dtype=DTYPE)[:, None] for col in zip(*points, strict=True)]
    stacked_q = MadaCoefficients(*columns)  # each (P, 1)
    stacked = MadaMoments.zeros_like(torch.zeros(3, 20, dtype=DTYPE))  # (P, N)
    singles = [MadaMoments.zeros_like(torch.zeros(20, dtype=DTYPE)) for _ in points]
    prod1 = torch.ones(3, 1, dtype=DTYPE)
    prod2 = torch.ones(3, 1, dtype=DTYPE)
    prods = [(1.0, 1.0) for _ in points]
    learned = list(MADA_COEFFICIENTS)
    for t in range(1, 8):
        grad = torch.randn(3, 20, generator=gen, dtype=DTYPE)  # (P, N)
        out = torch.empty(6, 3, 20, dtype=DTYPE)  # (K, P, N)
        u = mada_step(stacked, grad, stacked_q, t, prod1, prod2, 1e-8, (0.9, 0.99), learned, out)
        prod1, prod2 = prod1 * columns[0], prod2 * columns[1]
        for i, point in enumerate(points):
            out_i = torch.empty(6, 20, dtype=DTYPE)
            u_i = mada_step(
                singles[i],
                grad[i],
                MadaCoefficients(*point),
                t,
                prods[i][0],
                prods[i][1],
                1e-8,
                (0.9, 0.99),
                learned,
                out_i,
            )
            prods[i] = (prods[i][0] * point[0], prods[i][1] * point[1])
            torch.testing.assert_close(u[i], u_i, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(out[:, i], out_i, rtol=1e-12, atol=1e-14)
