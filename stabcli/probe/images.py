"""A generated image classification set (``data.source = "synthetic-images"``).

CPU-sized data for the CNN presets, with nothing to download: ``n_samples`` RGB images of
``image_size``² pixels in ``n_classes`` classes, generated from ``corpus_seed``. Each class
is a pair of features, drawn once per class from the seed among 6 × 4 × 2 = 48 distinct
combinations (so at most 48 classes):

- a shape (disk, square, ring, cross, triangle or two bars) at a random place and size,
  filled with a random colour that is lighter or darker than what lies under it;
- a background texture, a sine grating of the class's orientation (0°, 45°, 90° or 135°,
  jittered by a few degrees) and frequency (1 or 2 cycles per half-image), at a random
  phase, amplitude and colour;

over a random smooth background and pixel noise. Everything that varies within a class
is symmetric about zero (the grating's phase, the shape's contrast sign), so every class
has the same mean image and no linear function of the pixels separates two classes; a
linear classifier over all classes gains only from matching some phases (12-19% test
accuracy on ``cnn-synthetic``'s data, chance 10%), while the preset's small CNN, which
detects oriented edges and shapes anywhere in the image, reaches ~50% in 300 steps and
~72% in its 600.

Images are kept as uint8 (N, 3, S, S), pixel = round(127.5 · (x + 1)) for x in [−1, 1],
and scaled back to [−1, 1] per batch (:class:`stabcli.probe.data.BatchStream`). Labels
come in blocks of ``n_classes`` examples holding every class once, so every prefix of the
data, the training split included, is balanced to within one example per class.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from stabcli.errors import StabcliError
from stabcli.probe.config import LIMITS, Preset
from stabcli.probe.data import DataRef, Dataset

SHAPES = ("disk", "square", "ring", "cross", "triangle", "bars")
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)  # degrees
FREQUENCIES = (1.0, 2.0)  # cycles per unit length; the image spans [−1, 1]
MAX_CLASSES = len(SHAPES) * len(ORIENTATIONS) * len(FREQUENCIES)
CHANNELS = 3
_CHUNK = 2048  # images generated at once (bounds memory; part of the recipe: keep fixed)


def _shape_mask(kind: int, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean (n, S, S) masks of one kind; dx, dy (n, S, S) offsets from each shape's
    centre (dy grows downwards), r (n, 1, 1) sizes."""
    ax, ay = np.abs(dx), np.abs(dy)
    name = SHAPES[kind]
    if name == "disk":
        return np.hypot(dx, dy) < r
    if name == "square":
        return np.maximum(ax, ay) < 0.8 * r
    if name == "ring":
        return np.abs(np.hypot(dx, dy) - 0.75 * r) < 0.25 * r
    if name == "cross":
        return ((ax < 0.3 * r) & (ay < r)) | ((ay < 0.3 * r) & (ax < r))
    if name == "triangle":  # apex down
        return (dy > -0.6 * r) & (ax < 0.5 * (r - dy))
    return (ax < r) & (np.abs(ay - 0.5 * r) < 0.22 * r)  # two horizontal bars


def _shape_masks(kind: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean (n, S, S) masks of shapes ``kind`` (n,); arguments as :func:`_shape_mask`."""
    mask = np.zeros(dx.shape, dtype=bool)
    for k in np.unique(kind):
        rows = kind == k
        mask[rows] = _shape_mask(int(k), dx[rows], dy[rows], r[rows])
    return mask


def _chunk(rng: np.random.Generator, labels: np.ndarray, classes: np.ndarray, size: int):
    """Float images (n, 3, S, S), mostly in [−1, 1], of the given labels."""
    n = len(labels)
    shape_of, orient_of, freq_of = classes[labels].T  # (n,) each: the class's features
    grid = (np.arange(size) + 0.5) / size * 2.0 - 1.0  # pixel centres in [−1, 1]
    v, u = np.meshgrid(grid, grid, indexing="ij")  # (S, S): row (down), column (right)

    def per_image(a: np.ndarray) -> np.ndarray:  # (n,) -> (n, 1, 1)
        return a[:, None, None]

    # smooth background: a base colour and one slow wave of random direction and colour
    base = rng.uniform(-0.35, 0.35, (n, CHANNELS))
    angle = rng.uniform(0.0, 2 * math.pi, n)
    wave = np.sin(
        math.pi
        * rng.uniform(0.2, 0.5, n)[:, None, None]
        * (u * per_image(np.cos(angle)) + v * per_image(np.sin(angle)))
        + per_image(rng.uniform(0.0, 2 * math.pi, n))
    )  # (n, S, S)
    wave_colour = rng.uniform(-0.15, 0.15, (n, CHANNELS))

    # the class's grating: orientation and frequency jittered, phase uniform
    theta = np.radians(np.asarray(ORIENTATIONS)[orient_of] + rng.normal(0.0, 6.0, n))
    freq = np.asarray(FREQUENCIES)[freq_of] * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0.0, 2 * math.pi, n)
    along = u * per_image(np.cos(theta)) + v * per_image(np.sin(theta))  # (n, S, S)
    grating = np.sin(2 * math.pi * per_image(freq) * along + per_image(phase))
    grating_colour = rng.uniform(0.15, 0.35, (n, 1)) * rng.uniform(0.5, 1.0, (n, CHANNELS))

    # the class's shape: random place and size, lighter or darker than its surroundings
    centre = rng.uniform(-0.45, 0.45, (n, 2))
    radius = rng.uniform(0.35, 0.6, n)
    mask = _shape_masks(
        shape_of, u - per_image(centre[:, 0]), v - per_image(centre[:, 1]), per_image(radius)
    )  # (n, S, S)
    sign = rng.choice(np.array([-1.0, 1.0]), n)
    fill = sign[:, None] * rng.uniform(0.35, 0.8, (n, CHANNELS))  # (n, 3)

    def paint(colour: np.ndarray, field: np.ndarray) -> np.ndarray:  # (n, 3), (n, S, S)
        return colour[:, :, None, None] * field[:, None]  # (n, 3, S, S)

    image = paint(base, np.ones_like(wave)) + paint(wave_colour, wave)
    image += paint(grating_colour, grating * ~mask)  # the shape hides the grating
    image += paint(fill, mask.astype(np.float64))
    image += rng.normal(0.0, 0.1, image.shape)  # pixel noise
    return image


@lru_cache(maxsize=2)
def synthetic_images(
    seed: int, n_samples: int, n_classes: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic images and labels: ``x`` (N, 3, S, S) uint8, ``y`` (N,) int64.

    The same arguments give the same bytes: NumPy's PCG64 stream, float64 arithmetic
    rounded to 8 bits, images generated in fixed chunks of 2048. (Maths libraries may
    differ in the last bit of a sine; that changes a byte only if it lands within ~1e-13
    of a rounding boundary. The data's sha256 would tell.)
    """
    if not 2 <= n_classes <= MAX_CLASSES:
        raise StabcliError(
            f"data.n_classes = {n_classes}; synthetic-images has 2 to {MAX_CLASSES} classes"
        )
    rng = np.random.default_rng(seed)
    combos = np.array(
        [
            (s, o, f)
            for s in range(len(SHAPES))
            for o in range(len(ORIENTATIONS))
            for f in range(len(FREQUENCIES))
        ]
    )  # (48, 3): shape, orientation, frequency indices
    classes = combos[rng.choice(MAX_CLASSES, n_classes, replace=False)]  # (K, 3)
    blocks = -(-n_samples // n_classes)
    labels = np.concatenate([rng.permutation(n_classes) for _ in range(blocks)])[:n_samples]
    x = np.empty((n_samples, CHANNELS, size, size), dtype=np.uint8)
    for lo in range(0, n_samples, _CHUNK):
        image = _chunk(rng, labels[lo : lo + _CHUNK], classes, size)
        x[lo : lo + _CHUNK] = np.clip(np.rint(127.5 * (image + 1.0)), 0, 255)
    return x, labels.astype(np.int64)


def image_digest(*arrays: np.ndarray) -> str:
    """sha256 of a labelled image set: each array's dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def read_images(preset: Preset, path: Path | None = None) -> tuple[DataRef, Dataset]:
    """Generate the preset's images (``path`` is unused: nothing is read), split them as
    ``data.train_fraction`` says, and identify them by content."""
    d = preset.data
    values = d.n_samples * CHANNELS * d.image_size**2
    if values > LIMITS["data_values"]:
        raise StabcliError(
            f"{preset.name}: data.n_samples x 3 x image_size² = {values:,} pixel values; "
            f"at most {LIMITS['data_values']:,}"
        )
    x, y = synthetic_images(d.corpus_seed, d.n_samples, d.n_classes, d.image_size)
    cut = int(len(x) * d.train_fraction)
    if not 0 < cut < len(x):
        raise StabcliError(f"{preset.name}: data.train_fraction leaves an empty split")
    data = Dataset("classes", d.n_classes, x[0].size, x[:cut], x[cut:], y[:cut], y[cut:])
    return DataRef(d.source, image_digest(x, y)), data
