"""The generated image set: deterministic, balanced, out of reach of a linear model, and
learnable by the CNN preset."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from stabcli.errors import StabcliError
from stabcli.probe import load_preset, run_probes
from stabcli.probe.data import load_dataset, resolve_data
from stabcli.probe.images import MAX_CLASSES, read_images, synthetic_images


def _fresh(*args: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated again, not served from the cache."""
    synthetic_images.cache_clear()
    x, y = synthetic_images(*args)
    return x.copy(), y.copy()


@pytest.mark.parametrize(
    ("seed", "n_samples", "n_classes", "size"),
    [(0, 600, 10, 16), (5, 2100, 3, 8), (1, 300, MAX_CLASSES, 32)],
    ids=["cnn-synthetic-like", "across-chunks", "every-class-32px"],
)
def test_same_seed_same_bytes(seed: int, n_samples: int, n_classes: int, size: int) -> None:
    x, y = _fresh(seed, n_samples, n_classes, size)
    again_x, again_y = _fresh(seed, n_samples, n_classes, size)
    assert x.shape == (n_samples, 3, size, size) and x.dtype == np.uint8
    assert y.shape == (n_samples,) and y.dtype == np.int64
    assert hashlib.sha256(x.tobytes()).hexdigest() == hashlib.sha256(again_x.tobytes()).hexdigest()
    np.testing.assert_array_equal(y, again_y)
    other_x, _ = _fresh(seed + 1, n_samples, n_classes, size)
    assert not np.array_equal(x, other_x)
    assert x.min() < 20 and x.max() > 235  # the pixel range is used


def test_data_identity_is_stable_within_a_run() -> None:
    preset = load_preset("cnn-synthetic")
    first, data = read_images(preset)
    synthetic_images.cache_clear()
    again, _ = read_images(preset)
    assert first == again and first.source == "synthetic-images" and first.path is None
    assert resolve_data(preset) == first  # the data module dispatches here
    other, _ = read_images(preset.with_overrides(corpus_seed=1))
    assert other.sha256 != first.sha256
    n = preset.data.n_samples
    assert len(data.train_x) == int(n * preset.data.train_fraction)
    assert len(data.train_x) + len(data.test_x) == n
    assert (data.n_out, data.n_in) == (10, 3 * 16 * 16)


@pytest.mark.parametrize(("n_samples", "n_classes"), [(1003, 7), (6000, 10), (97, 2)])
def test_classes_are_balanced_in_every_split(n_samples: int, n_classes: int) -> None:
    """Labels come in blocks holding every class once: a prefix (all, the training split)
    is balanced to within one example, a suffix (the test split) to within two."""
    _, y = synthetic_images(0, n_samples, n_classes, 8)
    cut = int(0.8 * n_samples)
    for part, spread in ((y, 1), (y[:cut], 1), (y[cut:], 2)):
        counts = np.bincount(part, minlength=n_classes)
        assert counts.max() - counts.min() <= spread, counts


def test_class_count_and_size_limits() -> None:
    with pytest.raises(StabcliError, match=f"synthetic-images has 2 to {MAX_CLASSES} classes"):
        synthetic_images(0, 100, MAX_CLASSES + 1, 8)
    preset = load_preset("cnn-synthetic").with_overrides(n_samples=1_000_000, image_size=64)
    with pytest.raises(StabcliError, match=r"12,288,000,000 pixel values; at most 100,000,000"):
        read_images(preset)


def _ridge_accuracy(data, lam: float) -> float:
    """Test accuracy of a linear classifier of the pixels: least squares on one-hot labels."""

    def features(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1) / 127.5 - 1.0
        return np.hstack([flat, np.ones((len(flat), 1))])

    train, test = features(data.train_x), features(data.test_x)
    onehot = np.eye(data.n_out)[data.train_y]
    w = np.linalg.solve(train.T @ train + lam * np.eye(train.shape[1]), train.T @ onehot)
    return float((np.argmax(test @ w, axis=1) == data.test_y).mean())


def test_linear_model_stays_near_chance_while_the_cnn_learns() -> None:
    preset = load_preset("cnn-synthetic").with_overrides(
        steps=300, warmup_steps=75, eval_every=300, eval_batches=19
    )
    data = load_dataset(preset)
    linear = max(_ridge_accuracy(data, lam) for lam in (1.0, 100.0, 1000.0))
    assert linear < 0.25  # chance is 0.1: every class has the same mean image

    result = run_probes(preset, [(0.999, 0.9)], device="cpu")
    loss = result.traces.loss.to_numpy()
    assert loss[-50:].mean() < 0.75 * loss[:50].mean()  # training loss falls
    final = result.evals[result.evals.step == 300]
    assert float(final.test_accuracy.iloc[0]) > max(0.35, linear + 0.15)
