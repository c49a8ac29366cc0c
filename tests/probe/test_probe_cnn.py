"""The batched CNN is the network it claims to be, at every point.

Two independent formulations are compared in float64 (docs/theory.md §10: points differ
only in their weights): the model batched over P points against P single-point passes
(losses and gradients), and against a plain ``torch.nn`` network written here from the
architecture's description (same weights), logits and accuracy.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from stabcli.errors import StabcliError
from stabcli.probe import load_preset, run_probes
from stabcli.probe.backend import SharedDropout, build_model, unflatten
from stabcli.probe.cnn import cnn_backend, logits
from stabcli.probe.data import BatchStream, Dataset, load_dataset
from stabcli.probe.setup import resolve_setup

N_POINTS = 3
BATCH = 5


def _images(n: int, channels: int, size: int, n_classes: int, seed: int = 0) -> Dataset:
    """A random float64 image set (the model does not care where images come from)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.randint(n_classes, (n,), generator=gen)
    return Dataset(
        "classes", n_classes, channels * size * size, x.numpy(), x.numpy(), y.numpy(), y.numpy()
    )


# (n_layer, n_embd, bias, image size, dropout)
CASES = {
    "one-stage": (1, 4, True, 8, 0.0),
    "three-stages": (3, 4, True, 16, 0.0),
    "no-bias": (2, 3, False, 8, 0.0),
    "odd-size": (2, 4, True, 9, 0.0),
    "dropout": (2, 4, True, 8, 0.3),
}


def _setup(case: str) -> tuple:
    n_layer, n_embd, bias, size, dropout = CASES[case]
    preset = load_preset("cnn-synthetic")
    preset = replace(
        preset,
        model=replace(preset.model, n_layer=n_layer, n_embd=n_embd, bias=bias, dropout=dropout),
    )
    data = _images(BATCH, 3, size, 7)
    model = cnn_backend(preset, data)
    # (P, N): distinct weights per point, around the shared initial weights
    gen = torch.Generator().manual_seed(1)
    theta0 = model.initial()
    flat = theta0 + 0.1 * torch.randn(N_POINTS, model.n_params, generator=gen, dtype=torch.float64)
    x = torch.as_tensor(data.train_x)
    y = torch.as_tensor(data.train_y)
    return preset, model, flat, x, y


def _dropout(preset, seed: int = 7) -> SharedDropout:
    active = preset.model.dropout > 0
    return SharedDropout(
        preset.model.dropout, torch.Generator().manual_seed(seed) if active else None
    )


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_batched_points_equal_separate_single_point_passes(case: str) -> None:
    preset, model, flat, x, y = _setup(case)
    batched = flat.clone().requires_grad_(True)
    losses = model.loss(unflatten(batched, model.specs), x, y, _dropout(preset))  # (P,)
    losses.sum().backward()
    assert batched.grad is not None
    for p in range(N_POINTS):
        single = flat[p : p + 1].clone().requires_grad_(True)  # (1, N)
        loss = model.loss(unflatten(single, model.specs), x, y, _dropout(preset))  # same mask
        loss.sum().backward()
        assert single.grad is not None
        torch.testing.assert_close(losses[p], loss[0], rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.grad[p], single.grad[0], rtol=1e-10, atol=1e-14)
    # the comparison can fail: the points really differ
    assert torch.all(losses[1:] != losses[0])


def _torch_nn(weights: dict[str, torch.Tensor], n_layer: int, bias: bool) -> nn.Sequential:
    """The architecture as described (3×3 convolutions with padding 1, ReLU, 2×2 max-pool per
    stage, flatten, linear head), built from torch.nn layers with one point's weights."""
    layers: list[nn.Module] = []
    for i in range(n_layer):
        w = weights[f"conv.{i}.weight"]  # (C_out, C_in, 3, 3)
        conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=3, padding=1, bias=bias).double()
        conv.weight.data.copy_(w)
        if conv.bias is not None:
            conv.bias.data.copy_(weights[f"conv.{i}.bias"])
        layers += [conv, nn.ReLU(), nn.MaxPool2d(2)]
    head_w = weights["head.weight"]  # (F, K)
    head = nn.Linear(head_w.shape[0], head_w.shape[1], bias=bias).double()
    head.weight.data.copy_(head_w.T)
    if bias:
        head.bias.data.copy_(weights["head.bias"])
    return nn.Sequential(*layers, nn.Flatten(), head)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][4] == 0.0])
def test_logits_and_accuracy_match_a_plain_torch_nn_network(case: str) -> None:
    preset, model, flat, x, y = _setup(case)
    params = unflatten(flat, model.specs)
    with torch.no_grad():
        batched = logits(params, x, preset.model, SharedDropout(0.0, None))  # (P, B, K)
        accuracy = model.accuracy(params, x, y) if model.accuracy else None
        for p in range(N_POINTS):
            n_layer, _, bias, _, _ = CASES[case]
            net = _torch_nn({k: v[p] for k, v in params.items()}, n_layer, bias)
            expected = net(x)  # (B, K)
            torch.testing.assert_close(batched[p], expected, rtol=1e-12, atol=1e-13)
            assert accuracy is not None
            correct = (expected.argmax(dim=1) == y).double().mean()
            torch.testing.assert_close(accuracy[p], correct)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][4] == 0.0])
def test_evaluate_gives_the_plain_networks_loss_and_accuracy_in_one_pass(case: str) -> None:
    """The evaluation's single forward (loss and accuracy together) against the plain
    torch.nn network's cross-entropy and argmax accuracy, point by point."""
    _preset, model, flat, x, y = _setup(case)
    params = unflatten(flat, model.specs)
    assert model.evaluate is not None
    with torch.no_grad():
        loss, accuracy = model.evaluate(params, x, y)  # (P,), (P,)
        for p in range(N_POINTS):
            n_layer, _, bias, _, _ = CASES[case]
            expected = _torch_nn({k: v[p] for k, v in params.items()}, n_layer, bias)(x)
            want_loss = nn.functional.cross_entropy(expected, y)
            torch.testing.assert_close(loss[p], want_loss, rtol=1e-12, atol=1e-13)
            correct = (expected.argmax(dim=1) == y).double().mean()
            torch.testing.assert_close(accuracy[p], correct)


def test_parameters_and_initialisation() -> None:
    """He-normal convolutions (std sqrt(2 / (9 C_in))), head std 1/sqrt(F), zero biases; the
    same seed gives the same weights, another seed other weights."""
    preset = load_preset("cnn-synthetic")
    data = _images(4, 3, 16, 10)
    model = build_model(preset, data)
    c = preset.model.n_embd
    chans = [3, c, 2 * c, 4 * c]
    features = 4 * c * (16 // 8) ** 2
    expected: dict[str, tuple[tuple[int, ...], float]] = {}
    for i in range(3):
        expected[f"conv.{i}.weight"] = (
            (chans[i + 1], chans[i], 3, 3),
            math.sqrt(2 / (9 * chans[i])),
        )
        expected[f"conv.{i}.bias"] = ((chans[i + 1],), 0.0)
    expected["head.weight"] = ((features, 10), 1 / math.sqrt(features))
    expected["head.bias"] = ((10,), 0.0)
    assert {s.name: s.shape for s in model.specs} == {k: v[0] for k, v in expected.items()}
    weights = unflatten(model.initial()[None], model.specs)
    for name, (_, std) in expected.items():
        w = weights[name][0]
        if std == 0.0:
            assert torch.count_nonzero(w) == 0, name
        else:  # sample std within 4 standard errors of the target
            assert abs(w.std().item() / std - 1) < 4 / math.sqrt(2 * w.numel()) + 0.02, name
    assert torch.equal(model.initial(), build_model(preset, data).initial())
    other = build_model(preset.with_overrides(seed=1), data).initial()
    assert not torch.equal(model.initial(), other)


def test_too_many_stages_for_the_image_is_an_error() -> None:
    preset = load_preset("cnn-synthetic")
    deep = replace(preset, model=replace(preset.model, n_layer=5))
    with pytest.raises(
        StabcliError, match=r"n_layer = 5 pools 16x16 images to nothing; use at most 4"
    ):
        cnn_backend(deep, _images(2, 3, 16, 10))


def test_memory_estimate_counts_the_cnns_activations() -> None:
    preset = load_preset("cnn-synthetic")
    setup = resolve_setup(preset, "cpu")
    model = build_model(preset, setup.dataset())
    assert model.activations is not None
    # at least every stage's convolution output, per example of the batch
    c, size = preset.model.n_embd, preset.data.image_size
    outputs = sum(c * 2**i * (size // 2**i) ** 2 for i in range(preset.model.n_layer))
    assert model.activations >= preset.train.batch_size * outputs
    estimate = setup.memory(torch.device("cpu"))
    assert estimate.per_point > model.activations * 4


def test_engine_records_test_loss_and_accuracy() -> None:
    preset = load_preset("cnn-synthetic").with_overrides(
        steps=40, warmup_steps=10, eval_every=20, eval_batches=2
    )
    result = run_probes(preset, [(0.999, 0.9), (0.95, 0.99)], device="cpu")
    evals = result.evals
    assert list(evals.step.unique()) == [0, 20, 40]
    assert evals.test_loss.notna().all() and evals.test_accuracy.between(0, 1).all()
    # accuracy is a fraction of the 2 x 64 test draws
    assert np.allclose(evals.test_accuracy * 128, np.round(evals.test_accuracy * 128))


def test_stream_images_are_scaled_to_the_unit_interval() -> None:
    preset = load_preset("cnn-synthetic")
    data = load_dataset(preset)
    assert data.train_x.dtype == np.uint8
    stream = BatchStream(data, preset, torch.device("cpu"), torch.float64)
    x, y = stream.train_batch(3)
    ix = stream.train_ix[3].numpy()
    assert x.shape == (64, 3, 16, 16) and x.dtype == torch.float64
    np.testing.assert_array_equal(x.numpy(), data.train_x[ix] / 127.5 - 1.0)
    assert data.train_y is not None
    np.testing.assert_array_equal(y.numpy(), data.train_y[ix])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    _, model, flat, x, y = _setup("three-stages")
    drop = SharedDropout(0.0, None)
    cpu = model.loss(unflatten(flat, model.specs), x, y, drop)
    dev = torch.device("cuda")
    gpu = model.loss(unflatten(flat.to(dev), model.specs), x.to(dev), y.to(dev), drop)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=0)


def test_presets_follow_the_papers_figure_4_schedule() -> None:
    """App. H, Figure 4: batch 512, 100 epochs of CIFAR-10's 50,000 training images, linear
    warm-up for 2 epochs, cosine decay to η/10, test accuracy every 5 epochs. The CPU preset
    keeps the schedule in epochs of its own training split."""
    paper = load_preset("cnn-cifar10")
    t = paper.train
    per_epoch = math.ceil(50_000 / 512)  # the last batch of an epoch is short
    assert (paper.model.kind, paper.data.source, t.batch_size) == ("cnn", "cifar10", 512)
    assert (t.steps, t.warmup_steps, t.eval_every) == (
        100 * per_epoch,
        2 * per_epoch,
        5 * per_epoch,
    )
    assert (t.schedule, t.min_lr, t.eps) == ("cosine", t.lr / 10, 1e-30)
    assert t.eval_batches * t.batch_size >= 10_000  # about the whole test split

    small = load_preset("cnn-synthetic")
    t = small.train
    train_images = int(small.data.n_samples * small.data.train_fraction)
    per_epoch = math.ceil(train_images / t.batch_size)
    assert (small.model.kind, small.data.source) == ("cnn", "synthetic-images")
    assert (t.warmup_steps, t.schedule, t.min_lr) == (2 * per_epoch, "cosine", t.lr / 10)
    assert t.steps % per_epoch == 0 and t.eval_every == per_epoch
