"""stabcli.optim.KAdam, the public optimizer: k = 1 is torch's Adam/AdamW, k = 2 and 3
follow the paper's App. R algorithm (tests/optim/paper_kadam.py), its level betas are
those `stabcli check --k` prints, state_dict resumes bit-for-bit, the foreach and
single-tensor paths agree, and bad arguments fail with clear errors. Float64 where
comparing."""

from __future__ import annotations

import copy
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable

import pytest
import torch
from paper_kadam import PaperKAdam
from typer.testing import CliRunner

from stabcli.cli import app
from stabcli.optim import KAdam

F64 = torch.float64
STEPS = 100
TORCH_RTOL = 1e-6  # the tolerance against torch.optim.Adam/AdamW (float64)
PAPER_RTOL = 1e-9  # against the paper's loop: same math, other rounding (float64)


def make_model(seed: int = 0) -> torch.nn.Module:
    """A small MLP with several parameter tensors: two Linear layers and a LayerNorm."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3)
    ).to(F64)


def batches(steps: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(32, 6, generator=gen, dtype=F64), torch.randn(32, 3, generator=gen, dtype=F64))
        for _ in range(steps)
    ]


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, data, start: int = 0) -> None:
    for x, y in data[start:]:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def two_groups(model: torch.nn.Module, first: dict, second: dict) -> list[dict]:
    """The first Linear layer in one group, the rest in another, with their own settings."""
    params = list(model.parameters())
    return [{"params": params[:2], **first}, {"params": params[2:], **second}]


def assert_relative_close(a: torch.nn.Module, b: torch.nn.Module, rtol: float) -> None:
    """Per tensor: max |a − b| ≤ rtol · max |b| (a normwise relative error)."""
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        err = float((pa - pb).detach().abs().max()) / float(pb.detach().abs().max())
        assert err <= rtol, (name, err)


def moved(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((pa - pb).detach().abs().max()) for pa, pb in pairs)


WD_MODES: dict[str, tuple[Callable[..., torch.optim.Optimizer], float, bool]] = {
    "none-Adam": (torch.optim.Adam, 0.0, False),
    "coupled-Adam": (torch.optim.Adam, 0.05, False),
    "decoupled-AdamW": (torch.optim.AdamW, 0.05, True),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "single"])
@pytest.mark.parametrize("mode", list(WD_MODES))
def test_k1_is_torch_adam(mode: str, foreach: bool) -> None:
    torch_cls, wd, decoupled = WD_MODES[mode]
    start = make_model()
    ours, theirs = copy.deepcopy(start), copy.deepcopy(start)
    first = {"lr": 3e-2, "weight_decay": wd}
    second = {"lr": 1e-2, "weight_decay": wd / 2}
    kadam = KAdam(
        two_groups(ours, {**first, "betas": [(0.9, 0.999)]}, {**second, "betas": [(0.8, 0.95)]}),
        k=1,
        decoupled=decoupled,
        foreach=foreach,
    )
    ref = torch_cls(
        two_groups(theirs, {**first, "betas": (0.9, 0.999)}, {**second, "betas": (0.8, 0.95)}),
        eps=1e-8,
        foreach=foreach,
    )
    data = batches(STEPS)
    train(ours, kadam, data)
    train(theirs, ref, data)
    assert moved(theirs, start) > 0.1  # the runs went somewhere
    assert_relative_close(ours, theirs, TORCH_RTOL)


STRATEGY_FORMULAS: dict[str, Callable[[float, int], float]] = {  # paper Section 4.2 / App. P
    "inverse-exp": lambda b, k: 1.0 - (1.0 - b) ** (1.0 / k),
    "exp": lambda b, k: b**k,
    "scaled": lambda b, k: b / k,
    "naive": lambda b, k: b,
}


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "single"])
@pytest.mark.parametrize("placement", ["torch", "paper"])
@pytest.mark.parametrize("strategy", list(STRATEGY_FORMULAS))
@pytest.mark.parametrize("k", [2, 3], ids=["k2", "k3"])
def test_k_levels_follow_the_papers_algorithm(k, strategy, placement, foreach) -> None:
    start = make_model()
    ours, theirs = copy.deepcopy(start), copy.deepcopy(start)
    base = (0.9, 0.999)  # PyTorch order: beta1 = γ̃, beta2 = β̃
    levels = [tuple(STRATEGY_FORMULAS[strategy](b, k) for b in base)] * k
    # decoupled decay in the first group, coupled in the second: both modes of App. R
    first, second = {"lr": 1e-2, "weight_decay": 0.1}, {"lr": 3e-3, "weight_decay": 0.02}
    kadam = KAdam(
        two_groups(ours, first, {**second, "decoupled": False}),
        k=k,
        strategy=strategy,
        base_betas=base,
        eps_placement=placement,
        foreach=foreach,
    )
    ref = PaperKAdam(
        two_groups(
            theirs,
            {**first, "betas": levels, "coupled": False},
            {**second, "betas": levels, "coupled": True},
        ),
        eps=1e-8,
        eps_placement=placement,
    )
    data = batches(50)
    train(ours, kadam, data)
    for x, y in data:
        for p in theirs.parameters():
            p.grad = None
        torch.nn.functional.mse_loss(theirs(x), y).backward()
        ref.step()
    assert moved(theirs, start) > 0.01
    assert_relative_close(ours, theirs, PAPER_RTOL)


def test_explicit_per_level_betas_follow_the_paper() -> None:
    """Different betas at every level (no strategy), in PyTorch order per level."""
    levels = [(0.9, 0.999), (0.5, 0.9), (0.0, 0.8)]
    start = make_model()
    ours, theirs = copy.deepcopy(start), copy.deepcopy(start)
    kadam = KAdam(ours.parameters(), lr=1e-2, k=3, betas=levels, eps=1e-30, eps_placement="paper")
    ref = PaperKAdam(
        [{"params": list(theirs.parameters()), "lr": 1e-2, "betas": levels, "coupled": False}],
        eps=1e-30,
        eps_placement="paper",
    )
    for x, y in batches(40):
        kadam.zero_grad()
        torch.nn.functional.mse_loss(ours(x), y).backward()
        kadam.step()
        for p in theirs.parameters():
            p.grad = None
        torch.nn.functional.mse_loss(theirs(x), y).backward()
        ref.step()
    assert_relative_close(ours, theirs, PAPER_RTOL)


@pytest.mark.parametrize(
    ("strategy", "k"), [("inverse-exp", 2), ("exp", 3), ("scaled", 4), ("naive", 2)]
)
def test_level_betas_are_what_check_prints(strategy: str, k: int) -> None:
    """Same levels as `stabcli check --torch-betas 0.9,0.999 --k K --strategy S --json`."""
    opt = KAdam([torch.zeros(2)], k=k, strategy=strategy, base_betas=(0.9, 0.999))
    result = CliRunner().invoke(
        app,
        ["check", "--torch-betas", "0.9,0.999", "--k", str(k), "--strategy", strategy, "--json"],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)["kadam"]["levels"]
    assert opt.level_betas() == [(lv["torch_beta1"], lv["torch_beta2"]) for lv in printed]
    beta1, beta2 = STRATEGY_FORMULAS[strategy](0.9, k), STRATEGY_FORMULAS[strategy](0.999, k)
    for b1, b2 in opt.level_betas():  # PyTorch order: beta1 from 0.9, beta2 from 0.999
        assert math.isclose(b1, beta1, rel_tol=1e-12) and math.isclose(b2, beta2, rel_tol=1e-12)


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "single"])
def test_state_dict_round_trip_resumes_bit_for_bit(foreach: bool) -> None:
    data = batches(40)

    def optimizer(model: torch.nn.Module) -> KAdam:
        groups = two_groups(model, {"lr": 1e-2}, {"lr": 3e-3, "k": 3, "decoupled": False})
        return KAdam(groups, k=2, weight_decay=0.01, foreach=foreach)

    straight = make_model()
    train(straight, optimizer(straight), data)

    first = make_model()
    opt = optimizer(first)
    train(first, opt, data[:20])
    saved = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, saved)
    saved.seek(0)
    checkpoint = torch.load(saved)
    resumed = make_model(seed=123)  # other weights, overwritten by the checkpoint
    resumed.load_state_dict(checkpoint["model"])
    opt2 = optimizer(resumed)
    opt2.load_state_dict(checkpoint["opt"])

    state = opt2.state_dict()["state"]
    assert {s["step"] for s in state.values()} == {20}
    assert [len(s["exp_avg"]) for s in state.values()] == [2, 2, 3, 3, 3, 3]
    assert [len(s["exp_avg_sq"]) for s in state.values()] == [2, 2, 3, 3, 3, 3]
    train(resumed, opt2, data, start=20)
    for a, b in zip(resumed.parameters(), straight.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("k", [1, 3], ids=["k1", "k3"])
def test_foreach_and_single_tensor_paths_agree(k: int) -> None:
    start = make_model()
    a, b = copy.deepcopy(start), copy.deepcopy(start)
    data = batches(60)
    kw = {"k": k, "lr": 1e-2, "weight_decay": 0.05}
    train(a, KAdam(a.parameters(), foreach=True, **kw), data)
    train(b, KAdam(b.parameters(), foreach=False, **kw), data)
    assert moved(a, start) > 0.05
    assert_relative_close(a, b, 1e-12)


def test_closure_is_evaluated_with_gradients_and_returned() -> None:
    model = make_model()
    x, y = batches(1)[0]
    opt = KAdam(model.parameters())
    before = copy.deepcopy(model)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad
    assert moved(model, before) > 0


def test_parameters_without_gradients_are_left_alone() -> None:
    model = make_model()
    frozen = list(model.parameters())[-1]
    frozen_before = frozen.detach().clone()
    opt = KAdam(model.parameters())
    x, y = batches(1)[0]
    torch.nn.functional.mse_loss(model(x), y).backward()
    frozen.grad = None
    opt.step()
    assert torch.equal(frozen, frozen_before)
    assert frozen not in opt.state


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "single"])
def test_a_parameter_that_skips_steps_keeps_its_own_step_count(foreach: bool) -> None:
    """Bias corrections use each parameter's own n, as torch.optim.Adam's do."""
    start = make_model()
    ours, theirs = copy.deepcopy(start), copy.deepcopy(start)
    kadam = KAdam(ours.parameters(), lr=1e-2, k=1, betas=[(0.9, 0.99)], foreach=foreach)
    adam = torch.optim.Adam(theirs.parameters(), lr=1e-2, betas=(0.9, 0.99), foreach=foreach)
    for step, (x, y) in enumerate(batches(30)):
        for model, opt in ((ours, kadam), (theirs, adam)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(model(x), y).backward()
            if step % 3:
                next(iter(model.parameters())).grad = None  # first weight: every third step
            opt.step()
    steps = [s["step"] for s in kadam.state.values()]
    assert steps[0] == 10 and set(steps[1:]) == {30}
    assert_relative_close(ours, theirs, TORCH_RTOL)


def test_float32_state_and_lr_scheduler() -> None:
    """State follows the parameter dtype; a scheduler's lr changes reach the step: k = 1
    with a scheduler equals torch.optim.AdamW with the same scheduler."""
    start = make_model().to(torch.float32)
    ours, theirs = copy.deepcopy(start), copy.deepcopy(start)
    kadam = KAdam(ours.parameters(), lr=1e-2, k=1, betas=[(0.9, 0.999)], weight_decay=0.01)
    adamw = torch.optim.AdamW(theirs.parameters(), lr=1e-2, weight_decay=0.01)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5) for o in (kadam, adamw)]
    for x, y in batches(30):
        for model, opt, sched in zip((ours, theirs), (kadam, adamw), scheds, strict=True):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x.float()), y.float()).backward()
            opt.step()
            sched.step()
    assert all(s["exp_avg"][0].dtype == torch.float32 for s in kadam.state.values())
    assert kadam.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**6)
    assert_relative_close(ours, theirs, 1e-5)  # float32 rounding


BAD_ARGS = [
    ({"lr": -1.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"k": 0}, "k must be an integer >= 1"),
    ({"k": 2.0}, "k must be an integer >= 1"),
    ({"k": True}, "k must be an integer >= 1"),
    ({"k": 2, "betas": [(0.9, 0.999)]}, "k = 2"),
    ({"k": 1, "betas": [(1.0, 0.999)]}, "beta1"),
    ({"k": 1, "betas": [(0.9, -0.1)]}, "beta2"),
    ({"k": 1, "betas": [(0.9,)]}, "pairs"),
    ({"k": 1, "betas": 0.9}, "pairs"),
    ({"base_betas": (0.9, 1.0)}, "beta2"),
    ({"base_betas": (0.999, 0.9, 0.5)}, "pairs"),
    ({"strategy": "linear"}, "unknown k-Adam strategy"),
    ({"eps": -1e-8}, "eps"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"eps_placement": "inside"}, "eps_placement"),
    ({"foreach": "yes"}, "foreach"),
    ({"decoupled": 1}, "decoupled"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), BAD_ARGS, ids=[f"{'-'.join(a)}-{i}" for i, (a, _) in enumerate(BAD_ARGS)]
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        KAdam([torch.zeros(2)], **kwargs)
    assert "\n" not in str(info.value)


def test_bad_group_setting_and_non_float_parameters_are_refused() -> None:
    opt = KAdam([torch.zeros(2)])
    with pytest.raises(ValueError, match="k must be"):
        opt.add_param_group({"params": [torch.zeros(3)], "k": 0})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="floating-point"):
        KAdam([torch.zeros(2, dtype=torch.int64)])
    opt.add_param_group({"params": (t for t in [torch.zeros(3), torch.zeros(4)]), "k": 3})
    assert [p.numel() for p in opt.param_groups[1]["params"]] == [3, 4]  # a generator, read once


def test_changing_k_during_training_is_refused() -> None:
    p = torch.zeros(3, requires_grad=True)
    opt = KAdam([p], k=2)
    p.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["k"] = 3
    with pytest.raises(ValueError, match="levels cannot change"):
        opt.step()


def test_sparse_gradients_are_refused() -> None:
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = KAdam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def test_import_stabcli_optim_does_not_import_torch() -> None:
    code = (
        "import sys, stabcli.optim\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "from stabcli.optim import KAdam\n"
        "assert 'torch' in sys.modules and KAdam.__name__ == 'KAdam'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
