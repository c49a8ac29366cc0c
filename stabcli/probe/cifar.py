"""CIFAR-10 (``data.source = "cifar10"``): located, verified and read without torchvision.

The data of the paper's k-study (arXiv 2411.05746 Section 4.2 and App. H, Figure 4;
docs/theory.md §10): 50,000 training and 10,000 test RGB images of 32×32 pixels in 10
classes, from the "CIFAR-10 python version" archive of Krizhevsky (2009). Where it is
found, in order (as tiny Shakespeare, :mod:`stabcli.probe.shakespeare`):

1. the preset's ``data_path`` (the CLI's ``--data PATH``): the ``.tar.gz`` archive, or
   the directory it unpacks to (``cifar-10-batches-py``, or a directory holding it);
2. the environment variable ``STABCLI_CIFAR10`` (a path, the same two forms);
3. the user cache (``$XDG_CACHE_HOME/stabcli/data``), filled on first use by pooch from
   ``STABCLI_CIFAR10_URL`` (default: the dataset's page at the University of Toronto)
   and checked against ``STABCLI_CIFAR10_HASH`` (default: the archive's sha256 below;
   the publisher lists its md5, c58f30108f718f92721af3b95e74349a).

The archive holds ``data_batch_1`` … ``data_batch_5`` and ``test_batch``: Python 2 pickles
of dicts with ``b"data"``, a (10000, 3072) uint8 array (each row the red, green and blue
32×32 planes, row-major), and ``b"labels"``, a list of 10000 ints in 0..9. They are read
from the archive in memory (nothing is extracted) by an unpickler that builds only plain
containers and NumPy arrays: ``find_class`` allows NumPy's array reconstruction helpers and
nothing else (no object arrays), so a crafted pickle cannot run code.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pooch

from stabcli.errors import SettingError, StabcliError
from stabcli.probe.config import Preset
from stabcli.probe.data import DataRef, Dataset
from stabcli.probe.images import image_digest
from stabcli.probe.shakespeare import cache_dir

DEFAULT_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # published with the archive
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"  # 170,498,071 bytes
ENV_PATH = "STABCLI_CIFAR10"
ENV_URL = "STABCLI_CIFAR10_URL"
ENV_HASH = "STABCLI_CIFAR10_HASH"  # pooch's form, "sha256:..." or "md5:..."
FILENAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
N_CLASSES = 10
IMAGE = (3, 32, 32)  # (C, H, W)
HOW_TO_PROVIDE = (
    f"download {FILENAME} yourself (md5 {MD5}) and pass it, or the directory it unpacks to, "
    f"as {{data_path}} or set {ENV_PATH}=PATH"
)


def cifar10_path(data_path: str | None = None) -> Path:
    """Path of the CIFAR-10 archive or directory, downloading the archive if needed."""
    for given, origin in ((data_path, "{data_path}"), (os.environ.get(ENV_PATH), ENV_PATH)):
        if given:
            path = Path(given).expanduser()
            if not path.exists():
                raise SettingError(
                    "CIFAR-10 path {path} (from " + origin + ") does not exist", path=path
                )
            return path
    url = os.environ.get(ENV_URL) or DEFAULT_URL
    known_hash = os.environ.get(ENV_HASH) or f"sha256:{SHA256}"
    logger = pooch.get_logger()  # pooch builds its own Logger, outside logging.getLogger
    was_disabled, logger.disabled = logger.disabled, True  # failures become our own error
    try:
        fetched = pooch.retrieve(
            url, known_hash=known_hash, fname=FILENAME, path=cache_dir(), progressbar=False
        )
    except ValueError as err:  # pooch reports a hash mismatch (or a bad hash) as ValueError
        if "hash" not in str(err).lower():
            raise StabcliError(f"cannot download CIFAR-10 from {url}: {err}") from None
        raise SettingError(
            "CIFAR-10 from {url} failed its checksum; " + HOW_TO_PROVIDE, url=url
        ) from None
    except Exception as err:  # network errors come from requests, OSError, ...
        raise SettingError(
            "cannot download CIFAR-10 from {url} ({reason}); " + HOW_TO_PROVIDE,
            url=url,
            reason=type(err).__name__,
        ) from None
    finally:
        logger.disabled = was_disabled
    return Path(fetched)


def _numpy_helper(name: str) -> Any:
    """NumPy's ``_reconstruct`` (numpy._core in NumPy 2, numpy.core before)."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"this NumPy has no {name}")


def _plain_dtype(*args: Any) -> np.dtype:
    """np.dtype(...) for pickles, refusing object dtypes (their items would be unpickled)."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are refused")
    return dtype


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and plain NumPy arrays; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_helper("_reconstruct")
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _plain_dtype
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def parse_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> images (n, 3, 32, 32) uint8 and labels (n,) int64."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise StabcliError(f"{where} is not a CIFAR-10 batch: {err}") from None
    except Exception as err:  # truncated or malformed pickles raise many kinds of errors
        raise StabcliError(f"{where} is not a CIFAR-10 batch ({type(err).__name__})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise StabcliError(f"{where} is not a CIFAR-10 batch: no data and labels")
    data = batch[b"data"]
    try:
        labels = np.asarray(batch[b"labels"])
    except (TypeError, ValueError, OverflowError):
        raise StabcliError(f"{where} is not a CIFAR-10 batch: labels are not integers") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        raise StabcliError(f"{where} is not a CIFAR-10 batch: data is not a uint8 matrix")
    if data.shape[1] != np.prod(IMAGE) or labels.shape != (data.shape[0],):
        raise StabcliError(
            f"{where} is not a CIFAR-10 batch: data {data.shape}, labels {labels.shape}"
        )
    if labels.dtype.kind not in "iu" or (
        labels.size and not 0 <= labels.min() <= labels.max() < 10
    ):
        raise StabcliError(f"{where} is not a CIFAR-10 batch: labels outside 0..9")
    return data.reshape(-1, *IMAGE), labels.astype(np.int64)


def _read_members(path: Path) -> dict[str, bytes]:
    """The batches' bytes by name, from the archive or its unpacked directory."""
    names = (*TRAIN_BATCHES, TEST_BATCH)
    if path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        found = {n: folder / n for n in names if (folder / n).is_file()}
        missing = [n for n in names if n not in found]
        if missing:
            raise StabcliError(f"CIFAR-10 directory {folder} has no {', '.join(missing)}")
        try:
            return {n: p.read_bytes() for n, p in found.items()}
        except OSError as err:
            raise StabcliError(f"cannot read CIFAR-10 directory {folder}: {err.strerror}") from None
    raws: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names and base not in raws:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        raws[base] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StabcliError(
            f"cannot read CIFAR-10 archive {path}: not a complete .tar.gz ({reason})"
        ) from None
    missing = [n for n in names if n not in raws]
    if missing:
        raise StabcliError(f"CIFAR-10 archive {path} has no {', '.join(missing)}")
    return raws


def read_cifar10_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x (N, 3, 32, 32) uint8, train_y (N,) int64, test_x, test_y) from ``path``."""
    raws = _read_members(path)
    train = [parse_batch(raws[n], f"{path}: {n}") for n in TRAIN_BATCHES]
    test_x, test_y = parse_batch(raws[TEST_BATCH], f"{path}: {TEST_BATCH}")
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return train_x, train_y, test_x, test_y


def read_cifar10(preset: Preset, path: Path | None = None) -> tuple[DataRef, Dataset]:
    """CIFAR-10 from ``path``, else from where the preset says (``data_path``, the
    environment, the cache); the archive's own train/test split (``data.train_fraction``
    is not used). Identified by the sha256 of the decoded images and labels."""
    d = preset.data
    for key, value, needed in (
        ("n_classes", d.n_classes, N_CLASSES),
        ("image_size", d.image_size, IMAGE[1]),
    ):
        if value != needed:
            raise StabcliError(
                f"{preset.name}: data.{key} = {value}, but CIFAR-10 has {needed}; set {needed}"
            )
    where = path if path is not None else cifar10_path(d.data_path)
    train_x, train_y, test_x, test_y = read_cifar10_arrays(where)
    digest = image_digest(train_x, train_y, test_x, test_y)
    data = Dataset("classes", N_CLASSES, int(np.prod(IMAGE)), train_x, test_x, train_y, test_y)
    return DataRef(d.source, digest, str(where)), data
