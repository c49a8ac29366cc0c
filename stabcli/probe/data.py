"""Data sets, their identity, and the deterministic batch stream shared by every point.

All points see the same batches: batch ``n`` is a function of the preset's seed and ``n``
only, so the vectorized engine and the sequential reference loop draw identical examples
(docs/theory.md §10). Text is char-level; the split is the first ``train_fraction`` for
training and the rest for testing, as nanoGPT's ``shakespeare_char``.

A probe's data is identified by its content, never by where it lies: :class:`DataRef`
holds the sha256 of the text file's bytes (or of the generated data), so a run records
what it trained on, and a process that re-reads the data (a resumed run, a remote worker)
checks that it has the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stabcli.errors import StabcliError
from stabcli.probe.config import DataConfig, Preset
from stabcli.probe.corpus import synthetic_classes, synthetic_text
from stabcli.probe.shakespeare import shakespeare_path


@dataclass(frozen=True)
class Dataset:
    """Train and test splits on the host. Text: token ids; classes: features and labels."""

    kind: str  # "text" or "classes"
    n_out: int  # vocabulary size (text) or number of classes
    n_in: int  # input features (classes); vocabulary size again for text
    train_x: np.ndarray  # text: (N_train,) int64 ids; classes: (N_train, F) float64
    test_x: np.ndarray
    train_y: np.ndarray | None = None  # classes: (N_train,) int64 labels
    test_y: np.ndarray | None = None


def encode_chars(text: str) -> tuple[np.ndarray, list[str]]:
    """Char-level tokens: vocabulary = sorted distinct characters, as nanoGPT."""
    vocab = sorted(set(text))
    if text.isascii():  # fast path: byte lookup table
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        table = np.zeros(128, dtype=np.int64)
        table[[ord(c) for c in vocab]] = np.arange(len(vocab))
        return table[raw], vocab
    index = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text)), vocab


@dataclass(frozen=True)
class DataRef:
    """The identity of a probe's data (small and picklable: it travels to workers)."""

    source: str  # the preset's data.source
    sha256: str  # of the text file's bytes, or of the generated text / features and labels
    path: str | None = None  # the file it was read from (text from a file), else None


def _read_text_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise StabcliError(f"cannot read text data {path}: {err.strerror}") from None


#: Data read by code in its own module, "module:function" taking (preset, path) and returning
#: (DataRef, Dataset) like :func:`_read`; imported when used.
READERS = {
    "synthetic-images": "stabcli.probe.images:read_images",
    "cifar10": "stabcli.probe.cifar:read_cifar10",
}
#: A factory preset's data come from its factory (``model.kind = "factory"``).
FACTORY_READER = "stabcli.probe.factory:read_factory_data"


def _read_elsewhere(where: str, preset: Preset, path: Path | None) -> tuple[DataRef, Dataset]:
    module, _, function = where.partition(":")
    reader = getattr(importlib.import_module(module), function)
    found: tuple[DataRef, Dataset] = reader(preset, path)
    return found


def _read(preset: Preset, path: Path | None = None) -> tuple[DataRef, Dataset]:
    """Read or generate the preset's data (from ``path`` when given), hash it and split it."""
    d = preset.data
    if preset.model.kind == "factory":
        return _read_elsewhere(FACTORY_READER, preset, path)
    if d.source in READERS:
        return _read_elsewhere(READERS[d.source], preset, path)
    if d.source == "synthetic-classes":
        x, y = synthetic_classes(d.corpus_seed, d.n_samples, d.n_features, d.n_classes)
        digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
        cut = int(len(x) * d.train_fraction)
        data = Dataset("classes", d.n_classes, d.n_features, x[:cut], x[cut:], y[:cut], y[cut:])
        return DataRef(d.source, digest), data
    if d.source == "synthetic-text":
        raw, where = synthetic_text(d.corpus_seed, d.corpus_chars).encode("utf-8"), None
    else:
        file = path if path is not None else shakespeare_path(d.data_path)
        raw, where = _read_text_file(file), str(file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StabcliError(f"cannot read text data {where}: not UTF-8 ({err.reason})") from None
    tokens, vocab = encode_chars(text)
    cut = int(len(tokens) * d.train_fraction)
    ref = DataRef(d.source, hashlib.sha256(raw).hexdigest(), where)
    return ref, Dataset("text", len(vocab), len(vocab), tokens[:cut], tokens[cut:])


#: Data sets already read in this process, by identity (a sweep reads its data once).
_LOADED: OrderedDict[tuple[str, DataConfig], Dataset] = OrderedDict()
_LOADED_MAX = 2


def _key(ref: DataRef, preset: Preset) -> tuple[str, DataConfig]:
    return ref.sha256, dataclasses.replace(preset.data, data_path=None)


def _check_length(data: Dataset, preset: Preset) -> Dataset:
    need = preset.model.block_size + 1
    if data.kind == "text" and min(len(data.train_x), len(data.test_x)) < need:
        raise StabcliError(f"text data too short for block_size {preset.model.block_size}")
    return data


def resolve_data(preset: Preset) -> DataRef:
    """Read the preset's data once, and return its identity (the data set is kept for
    :func:`load_dataset` in this process). Errors are one-line StabcliErrors."""
    ref, data = _read(preset)
    _remember(ref, preset, _check_length(data, preset))
    return ref


def _remember(ref: DataRef, preset: Preset, data: Dataset) -> None:
    _LOADED[_key(ref, preset)] = data
    _LOADED.move_to_end(_key(ref, preset))
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)


def load_dataset(preset: Preset, ref: DataRef | None = None) -> Dataset:
    """The preset's data set; with ``ref``, the data ``ref`` identifies.

    With ``ref`` the content is verified: read here from ``ref.path`` when that file
    exists, otherwise from where the preset says, it must have ``ref.sha256``.
    """
    if ref is not None and (cached := _LOADED.get(_key(ref, preset))) is not None:
        return _check_length(cached, preset)
    path = Path(ref.path) if ref is not None and ref.path and Path(ref.path).is_file() else None
    found, data = _read(preset, path)
    if ref is not None and found.sha256 != ref.sha256:
        raise StabcliError(
            f"the data found here ({found.path or found.source}, sha256 {found.sha256[:12]}...) "
            f"is not the data of this probe (sha256 {ref.sha256[:12]}...)"
        )
    if ref is not None:
        _remember(ref, preset, data)
    return _check_length(data, preset)


class BatchStream:
    """Batches on the device: training batch ``n`` and a fixed set of test batches.

    Inputs are (B, T) token ids and targets (B, T) for text; (B, F) features and (B,)
    labels for classes. Offsets are drawn on the host from a generator seeded by the
    preset, once for the whole run, so no point and no implementation draws differently.
    """

    def __init__(self, data: Dataset, preset: Preset, device: torch.device, dtype: torch.dtype):
        t = preset.train
        self.kind = data.kind
        self.block = preset.model.block_size
        self.device = device
        self.dtype = dtype
        gen = torch.Generator().manual_seed(t.seed)
        self.train_x = torch.as_tensor(data.train_x, device=device)
        self.test_x = torch.as_tensor(data.test_x, device=device)
        if data.kind == "classes":
            if self.train_x.dtype != torch.uint8:  # uint8 images are scaled per batch (_take)
                self.train_x = self.train_x.to(dtype)
                self.test_x = self.test_x.to(dtype)
            self.train_y = torch.as_tensor(data.train_y, device=device)
            self.test_y = torch.as_tensor(data.test_y, device=device)
            high_train, high_test = len(data.train_x), len(data.test_x)
        else:
            high_train = len(data.train_x) - self.block
            high_test = len(data.test_x) - self.block
        # (S, B) start offsets of every training batch, then (E, B) of the test batches
        self.train_ix = torch.randint(high_train, (t.steps, t.batch_size), generator=gen)
        n_eval = max(t.eval_batches, 0)
        self.test_ix = torch.randint(high_test, (n_eval, t.batch_size), generator=gen)
        self.train_ix = self.train_ix.to(device)
        self.test_ix = self.test_ix.to(device)
        self._arange = torch.arange(self.block + 1, device=device)  # (T+1,)

    def _take(self, split: str, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.train_x if split == "train" else self.test_x
        if self.kind == "classes":
            labels = self.train_y if split == "train" else self.test_y
            x = source[ix]  # (B, F) features, or (B, C, H, W) images
            if x.dtype == torch.uint8:  # pixels 0..255 -> [-1, 1] (stabcli.probe.images)
                x = x.to(self.dtype) / 127.5 - 1.0
            return x, labels[ix]
        window = source[ix[:, None] + self._arange]  # (B, T+1)
        return window[:, :-1], window[:, 1:]  # (B, T) inputs, (B, T) next-token targets

    def train_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of training step ``n`` (identical for every point)."""
        return self._take("train", self.train_ix[n])

    def test_batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k``-th of the fixed test batches used at every evaluation."""
        return self._take("test", self.test_ix[k])
