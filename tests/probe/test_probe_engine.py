"""Engine behaviour: the exact bound, divergence, batching, schedules, records, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from stabcli.errors import StabcliError
from stabcli.probe import ProbeResult, load_preset, run_probes
from stabcli.probe.data import BatchStream, load_dataset
from stabcli.probe.models import SharedDropout, init_flat, loss_function, param_specs, unflatten
from stabcli.probe.optim import lr_table
from stabcli.theory.exact import exact_bound

# (β, γ): B+ default, B+ but exactly unstable, B− near (1, 1), paper-B− yet exactly stable,
# B0 boundary, RMSProp-like γ = 0
SPREAD = [(0.999, 0.9), (0.9, 0.96), (0.95, 0.99), (0.4, 0.6), (0.9, 2 * 0.9 / 1.9), (0.99, 0.0)]


def _bound_holds(result: ProbeResult) -> None:
    for point, beta, gamma in result.summary[["point", "beta", "gamma"]].itertuples(index=False):
        trace = result.traces[result.traces.point == point]
        measured = trace.max_update.to_numpy()
        ok = np.isfinite(measured)
        bound = exact_bound(beta, gamma, trace.step.to_numpy()) + trace.wd_term.to_numpy()
        ratio = measured[ok] / bound[ok]
        assert ratio.max() <= 1 + 1e-5, (beta, gamma, ratio.max(), int(np.argmax(ratio)))


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("tiny-char", {"steps": 150}),
        ("tiny-char", {"steps": 100, "eps_placement": "paper", "eps": 1e-6}),
        ("mlp-synthetic", {"weight_decay_mode": "decoupled", "weight_decay": 0.5}),
        ("mlp-synthetic", {"weight_decay_mode": "coupled", "weight_decay": 0.5, "lr": 1e-2}),
        ("mlp-synthetic", {"schedule": "anneal"}),
    ],
    ids=["gpt", "gpt-paper-eps", "mlp-adamw", "mlp-coupled", "mlp-anneal"],
)
def test_exact_bound_holds_at_every_step(name: str, overrides: dict) -> None:
    preset = load_preset(name).with_overrides(eval_every=0, eval_batches=0, **overrides)
    _bound_holds(run_probes(preset, SPREAD, device="cpu"))  # γ = 0 included, anneal too


def test_overflowing_point_is_frozen_and_others_finish() -> None:
    preset = load_preset("tiny-char").with_overrides(steps=100, eval_every=20, eval_batches=2)
    calm = [(0.999, 0.9), (0.95, 0.99)]
    wild = (0.1, 0.999)  # γ²/β ≈ 10: grows ~e^1.15 per step once gradients fade
    both = run_probes(preset, [calm[0], wild, calm[1]], device="cpu")
    alone = run_probes(preset, calm, device="cpu")

    died = both.summary.diverged_step
    assert str(died.dtype) == "Int64"
    assert died.isna().tolist() == [True, False, True]
    n = int(died.iloc[1])
    trace = both.traces[both.traces.point == 1]
    assert trace.max_update.iloc[n + 1 :].isna().all() and trace.loss.iloc[n + 1 :].isna().all()
    assert trace.max_tensor.iloc[n + 1 :].isna().all()
    assert np.isfinite(trace.max_update.iloc[:n]).all()
    assert math.isnan(both.summary.final_loss.iloc[1])
    evals = both.evals[both.evals.point == 1]
    assert evals[evals.step > n].test_loss.isna().all()
    # no NaN leaks: the calm points train exactly as without the wild one
    for new, old in [(0, 0), (2, 1)]:
        a = both.traces[both.traces.point == new]
        b = alone.traces[alone.traces.point == old]
        np.testing.assert_allclose(a.max_update.to_numpy(), b.max_update.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(a.loss.to_numpy(), b.loss.to_numpy(), rtol=1e-6)
    assert np.isfinite(both.summary.final_loss.iloc[[0, 2]]).all()


def test_batches_callbacks_and_frames() -> None:
    preset = load_preset("mlp-synthetic").with_overrides(dtype="float64", steps=70)
    points = [(0.999, 0.9), (0.9, 0.99), (0.5, 0.5)]
    batches: list[ProbeResult] = []
    progress: list[int] = []
    split = run_probes(
        preset, points, points_per_batch=2, on_batch=batches.append, on_progress=progress.append
    )
    whole = run_probes(preset, points, points_per_batch=3)
    assert split.points_per_batch == 2 and whole.points_per_batch == 3
    assert [b.summary.point.tolist() for b in batches] == [[0, 1], [2]]
    assert progress == [2 * 64, 2 * 6, 64, 6]  # per block of 64 steps, per batch
    pd.testing.assert_frame_equal(split.summary, whole.summary, rtol=1e-9)
    pd.testing.assert_frame_equal(split.traces, whole.traces, rtol=1e-9)
    assert list(split.summary.columns) == [
        "point",
        "beta",
        "gamma",
        "diverged_step",
        "underflow_step",
        "final_loss",
    ]
    assert list(split.traces.columns) == [
        "point",
        "step",
        "max_update",
        "max_tensor",
        "loss",
        "lr",
        "wd_term",
    ]
    assert len(split.traces) == 3 * 70 and split.traces.step.max() == 69
    assert split.summary.beta.tolist() == [0.999, 0.9, 0.5]  # paper order kept
    names = {s.name for s in param_specs(preset.model, 16, 8)}
    assert set(split.traces.max_tensor.dropna()) <= names
    # the MLP is a classifier: its evaluations also record test accuracy
    assert list(split.evals.columns) == ["point", "step", "test_loss", "test_accuracy"]
    assert split.evals.test_accuracy.between(0.0, 1.0).all()
    assert split.evals.step.unique().tolist() == [0, 50]
    assert (split.device, split.dtype) == ("cpu", "float64") and split.seconds > 0


def test_no_eval_gives_empty_frame() -> None:
    preset = load_preset("mlp-synthetic").with_overrides(steps=5, eval_every=0, eval_batches=0)
    result = run_probes(preset, [(0.999, 0.9)], device="cpu")
    assert result.evals.empty and list(result.evals.columns) == ["point", "step", "test_loss"]


def test_tiny_char_learns() -> None:
    """Test loss falls well below log(vocab) in a few hundred steps."""
    preset = load_preset("tiny-char").with_overrides(steps=300, eval_every=100)
    result = run_probes(preset, [(0.999, 0.9)], device="cpu")
    vocab = load_dataset(preset).n_out
    losses = result.evals.set_index("step").test_loss
    assert abs(losses[0] - math.log(vocab)) < 0.1
    assert losses[300] < 0.6 * math.log(vocab)


def test_schedules() -> None:
    t = load_preset("nanogpt-shakespeare-gen").train
    beta, gamma = np.array([0.999, 0.95]), np.array([0.9, 0.99])
    lr = lr_table(t, beta, gamma)  # (S, P)
    assert lr.shape == (3000, 2) and np.all(lr[:, 0] == lr[:, 1])
    assert lr[99, 0] == pytest.approx(1e-3 * 100 / 101) and lr[100, 0] == pytest.approx(1e-3)
    assert lr[-1, 0] == pytest.approx(1e-4) and np.all(np.diff(lr[100:, 0]) <= 0)
    anneal = lr_table(
        load_preset("mlp-synthetic").with_overrides(schedule="anneal").train, beta, gamma
    )
    assert np.all(anneal[:, 0] == 1e-3)  # B+: no annealing
    c = 2 / gamma[1] - 1 / beta[1] - 1  # C(β, γ) by hand
    assert c < 0
    assert anneal[40, 1] == pytest.approx(1e-3 * math.exp(-40 * abs(c) / 2))  # App. O eq. 15


def test_eps_placements() -> None:
    """ "paper": u = corr·m/(sqrt(v)+ε); "torch": ε added after bias-correcting sqrt(v)."""
    base = load_preset("mlp-synthetic").with_overrides(dtype="float64", steps=3, eps=0.5)
    beta, gamma = 0.9, 0.8
    for placement in ("paper", "torch"):
        preset = base.with_overrides(eps_placement=placement)
        got = run_probes(preset, [(beta, gamma)], device="cpu").traces.max_update.to_numpy()
        np.testing.assert_allclose(got, _manual_adam(preset, beta, gamma), rtol=1e-10)
    same = [
        run_probes(
            base.with_overrides(eps=0.0, eps_placement=p), [(beta, gamma)]
        ).traces.max_update.to_numpy()
        for p in ("paper", "torch")
    ]
    np.testing.assert_array_equal(*same)


def _manual_adam(preset, beta: float, gamma: float) -> np.ndarray:
    """Adam's update (docs/theory.md §1) written out for one point, with autograd gradients."""
    t = preset.train
    data = load_dataset(preset)
    specs = param_specs(preset.model, data.n_in, data.n_out)
    stream = BatchStream(data, preset, torch.device("cpu"), torch.float64)
    theta = init_flat(specs, t.seed, torch.float64)[None].clone()  # (1, N)
    loss_fn = loss_function(preset.model)
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    out = []
    for n in range(t.steps):
        leaf = theta.clone().requires_grad_(True)
        loss_fn(
            unflatten(leaf, specs), *stream.train_batch(n), SharedDropout(0.0, None)
        ).sum().backward()
        g = leaf.grad
        m = gamma * m + (1 - gamma) * g
        v = beta * v + (1 - beta) * g * g
        corr = math.sqrt(1 - beta ** (n + 1)) / (1 - gamma ** (n + 1))
        if t.eps_placement == "paper":
            u = corr * m / (v.sqrt() + t.eps)
        else:
            u = (m / (1 - gamma ** (n + 1))) / (v.sqrt() / math.sqrt(1 - beta ** (n + 1)) + t.eps)
        out.append(float(u.abs().max()))
        theta = theta - t.lr * u
    return np.array(out)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, "unknown device .tpu.; use cpu, cuda, cuda:N or mps"),
        (
            {"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "nope"},
            "not available|unknown device",
        ),
        ({"points_per_batch": 0}, "points_per_batch"),
    ],
    ids=["unknown-device", "unavailable-device", "zero-batch"],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    preset = load_preset("mlp-synthetic").with_overrides(steps=2)
    with pytest.raises(StabcliError, match=message):
        run_probes(preset, [(0.999, 0.9)], **kwargs)


@pytest.mark.parametrize(
    "points",
    [[], [(1.0, 0.9)], [(0.9, -0.1)], [("a", 0.9)]],
    ids=["empty", "beta-one", "negative-gamma", "not-a-number"],
)
def test_bad_points(points: list) -> None:
    preset = load_preset("mlp-synthetic").with_overrides(steps=2)
    with pytest.raises(StabcliError):
        run_probes(preset, points, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_bf16_needs_cuda() -> None:
    preset = load_preset("mlp-synthetic").with_overrides(steps=2, dtype="bfloat16")
    with pytest.raises(StabcliError, match=r"bfloat16.*CUDA"):
        run_probes(preset, [(0.999, 0.9)], device="cpu")


def test_auto_points_per_batch_covers_all_points() -> None:
    preset = load_preset("mlp-synthetic").with_overrides(steps=2)
    result = run_probes(preset, [(0.999, 0.9)] * 5, device="cpu")
    assert result.points_per_batch == 5 and len(result.summary) == 5


def test_parameter_names_are_readable_and_tied() -> None:
    cfg = load_preset("tiny-char").with_overrides(n_layer=2).model
    names = [s.name for s in param_specs(cfg, 69, 69)]
    assert names[:4] == ["wte", "wpe", "h.0.ln_1.weight", "h.0.ln_1.bias"]
    assert "h.1.attn.c_attn.weight" in names and "h.1.mlp.c_proj.bias" in names
    assert names[-2:] == ["ln_f.weight", "ln_f.bias"]
    assert not any("lm_head" in n for n in names)  # output head tied to wte
    mlp = [s.name for s in param_specs(load_preset("mlp-synthetic").model, 16, 8)]
    assert mlp == ["fc.0.weight", "fc.0.bias", "fc.1.weight", "fc.1.bias", "out.weight", "out.bias"]


def test_attention_dropout_is_explicit_shared_across_points_and_exact_without_drops() -> None:
    from stabcli.probe.models import SharedDropout, _attention

    torch.manual_seed(0)
    n_pt, b, t, c, heads = 3, 2, 5, 8, 2
    one = {
        "a.c_attn.weight": torch.randn(1, c, 3 * c, dtype=torch.float64),
        "a.c_attn.bias": torch.randn(1, 3 * c, dtype=torch.float64),
        "a.c_proj.weight": torch.randn(1, c, c, dtype=torch.float64),
        "a.c_proj.bias": torch.randn(1, c, dtype=torch.float64),
    }
    params = {k: v.expand(n_pt, *v.shape[1:]).contiguous() for k, v in one.items()}
    x = torch.randn(1, b, t, c, dtype=torch.float64).expand(n_pt, b, t, c)
    fused = _attention(x, params, "a", heads, SharedDropout(0.0, None))
    gen = torch.Generator().manual_seed(1)
    explicit = _attention(x, params, "a", heads, SharedDropout(1e-300, gen))  # drops nothing
    torch.testing.assert_close(explicit, fused, rtol=1e-12, atol=1e-12)
    dropped = _attention(x, params, "a", heads, SharedDropout(0.5, gen))
    assert not torch.allclose(dropped, fused)
    for i in range(1, n_pt):  # same weights and inputs: the shared mask gives equal outputs
        torch.testing.assert_close(dropped[i], dropped[0], rtol=0, atol=0)


def test_attention_dropout_setting_changes_training_and_is_validated() -> None:
    base = load_preset("tiny-char").with_overrides(steps=5, eval_every=0, dropout=0.2)
    same = run_probes(base, [(0.999, 0.9)], device="cpu").traces["loss"].to_numpy()
    fused = base.with_overrides(attn_dropout=0.0)
    assert fused.model.attention_dropout == 0.0 and base.model.attention_dropout == 0.2
    other = run_probes(fused, [(0.999, 0.9)], device="cpu").traces["loss"].to_numpy()
    assert same[0] != other[0]  # the attention masks take part in the very first step
    with pytest.raises(StabcliError, match="attn_dropout"):
        base.with_overrides(attn_dropout=1.5)


def test_test_accuracy_is_the_fraction_of_correct_test_predictions() -> None:
    """The engine's accuracy equals argmax(logits) == label over the test batches, computed
    here from the final weights with the model's own forward pass."""
    from stabcli.probe.backend import build_model, unflatten
    from stabcli.probe.data import BatchStream, load_dataset
    from stabcli.probe.models import _linear

    preset = load_preset("mlp-synthetic").with_overrides(
        steps=20, eval_every=20, eval_batches=3, dtype="float64"
    )
    data = load_dataset(preset)
    model = build_model(preset, data)
    result = run_probes(preset, [(0.999, 0.9)], device="cpu")
    final = result.evals[result.evals.step == 20].test_accuracy.item()
    # retrain the same point to read its final weights through the public reference loop
    stream = BatchStream(data, preset, torch.device("cpu"), torch.float64)
    flat = model.initial()[None].clone().requires_grad_(True)
    opt = torch.optim.Adam([flat], lr=preset.train.lr, betas=(0.9, 0.999), eps=preset.train.eps)
    no_drop = SharedDropout(0.0, None)
    for n in range(20):
        opt.zero_grad()
        model.loss(unflatten(flat, model.specs), *stream.train_batch(n), no_drop).sum().backward()
        opt.step()
    correct = 0.0
    with torch.no_grad():
        p = unflatten(flat, model.specs)
        for k in range(3):
            x, y = stream.test_batch(k)
            h = x[None]
            for i in range(preset.model.n_layer):
                h = torch.nn.functional.gelu(_linear(h, p, f"fc.{i}"))
            correct += (_linear(h, p, "out").argmax(-1) == y).double().mean().item()
    assert abs(final - correct / 3) < 1e-12
