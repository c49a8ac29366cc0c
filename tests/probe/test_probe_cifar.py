"""CIFAR-10: the loader against a tiny archive of the real format, served on 127.0.0.1.

The archive is built here: ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``,
each a Python 2 protocol-2 pickle (as the published archive holds) written opcode by
opcode, so the reader is tested on the format it meets, not on what Python 3 writes.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from stabcli.errors import SettingError, StabcliError
from stabcli.probe import load_preset, run_probes
from stabcli.probe.cifar import (
    ENV_HASH,
    ENV_PATH,
    ENV_URL,
    FILENAME,
    cifar10_path,
    parse_batch,
    read_cifar10,
)
from stabcli.probe.data import BatchStream
from stabcli.probe.shakespeare import cache_dir

PER_BATCH = 12  # images per training batch (the real archive: 10,000)

# --- a Python 2 pickle writer (protocol 2, as cPickle wrote the published batches) -----


def _string(b: bytes) -> bytes:
    """SHORT_BINSTRING or BINSTRING: a Python 2 str."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)  # BININT


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _array(a: np.ndarray, module: str = "numpy.core.multiarray", dtype: str = "u1") -> bytes:
    """numpy's reduction of an ndarray: _reconstruct(ndarray, (0,), 'b') then
    __setstate__((1, shape, dtype, is_fortran, raw bytes))."""
    shape = b"(" + b"".join(_int(n) for n in a.shape) + b"t"  # MARK ... TUPLE
    dtype_state = b"(" + _int(3) + _string(b"|") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"t"
    dtype_obj = _global("numpy", "dtype") + _string(dtype.encode()) + _int(0) + _int(1) + b"\x87R"
    return (
        _global(module, "_reconstruct")
        + _global("numpy", "ndarray")
        + _int(0)
        + b"\x85"  # TUPLE1
        + _string(b"b")
        + b"\x87R"  # TUPLE3, REDUCE
        + b"("
        + _int(1)
        + shape
        + dtype_obj
        + dtype_state
        + b"b"  # BUILD the dtype
        + b"\x89"  # NEWFALSE: C order
        + _string(a.tobytes())
        + b"tb"  # TUPLE, BUILD the array
    )


def py2_batch(
    data: np.ndarray, labels: list[int], label: bytes = b"training batch 1 of 5"
) -> bytes:
    """A CIFAR-10 batch dict as Python 2's cPickle.dump(d, f, 2) writes it."""
    items = [
        (b"batch_label", _string(label)),
        (b"labels", b"](" + b"".join(_int(v) for v in labels) + b"e"),  # EMPTY_LIST, APPENDS
        (b"data", _array(data)),
        (
            b"filenames",
            b"](" + b"".join(_string(b"img_%d.png" % i) for i in range(len(labels))) + b"e",
        ),
    ]
    body = b"".join(_string(k) + v for k, v in items)
    return b"\x80\x02}(" + body + b"u."  # PROTO 2, EMPTY_DICT, MARK ... SETITEMS, STOP


def _images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def tiny_members(**replace: bytes) -> dict[str, bytes]:
    members = {}
    for i in range(1, 6):
        x, y = _images(PER_BATCH, i)
        members[f"data_batch_{i}"] = py2_batch(x, y, b"training batch %d of 5" % i)
    x, y = _images(PER_BATCH // 2, 0)
    members["test_batch"] = py2_batch(x, y, b"testing batch 1 of 1")
    members["batches.meta"] = b"\x80\x02}."  # present in the real archive, unused
    members.update(replace)
    return members


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return _tar(tiny_members())


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh XDG cache, no CIFAR-10 path, URL or hash from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in (ENV_PATH, ENV_URL, ENV_HASH):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[bytes], str]]:
    """serve(bytes) -> URL of a loopback HTTP server (a thread here) returning those bytes."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(payload: bytes) -> str:
        root = tmp_path / f"www{len(servers)}"
        root.mkdir()
        (root / FILENAME).write_bytes(payload)
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(QuietHandler, directory=str(root))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{FILENAME}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _preset(path: Path | None = None):
    preset = load_preset("cnn-cifar10")
    return preset if path is None else preset.with_overrides(data_path=str(path))


# --- the format ------------------------------------------------------------------------


def test_the_fixture_is_what_python_2_wrote() -> None:
    """The hand-written pickle loads with the standard unpickler as the published batches do
    (pickle.load(f, encoding="bytes")), and the restricted reader gives the same arrays."""
    x, y = _images(4, 9)
    raw = py2_batch(x, y)
    plain = pickle.loads(raw, encoding="bytes")
    assert sorted(plain) == [b"batch_label", b"data", b"filenames", b"labels"]
    np.testing.assert_array_equal(plain[b"data"], x)
    assert plain[b"labels"] == y
    images, labels = parse_batch(raw, "batch")
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(4, -1), x)  # rows: R, G, B planes
    np.testing.assert_array_equal(images[:, 1], x[:, 1024:2048].reshape(4, 32, 32))
    np.testing.assert_array_equal(labels, y)


def test_numpy_2_module_name_is_accepted_too() -> None:
    x, y = _images(2, 1)
    raw = py2_batch(x, y).replace(
        _global("numpy.core.multiarray", "_reconstruct"),
        _global("numpy._core.multiarray", "_reconstruct"),
    )
    np.testing.assert_array_equal(parse_batch(raw, "batch")[0].reshape(2, -1), x)


EVIL = {
    "os-system": lambda marker: (
        _global("os", "system") + _string(f"touch {marker}".encode()) + b"\x85R."
    ),
    "builtins-eval": lambda marker: (
        _global("builtins", "eval") + _string(f"open({str(marker)!r}, 'w')".encode()) + b"\x85R."
    ),
    "object-array": lambda marker: (
        b"\x80\x02}(" + _string(b"data") + _array(np.zeros((1, 3072), np.uint8), dtype="O8") + b"u."
    ),
}


@pytest.mark.parametrize("case", list(EVIL), ids=list(EVIL))
def test_a_pickle_loading_anything_else_is_refused(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(
        StabcliError, match=r"^batch is not a CIFAR-10 batch: refused|object arrays"
    ) as err:
        parse_batch(EVIL[case](marker), "batch")
    assert "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x80\x02}.", "no data and labels"),
        (b"not a pickle", "not a CIFAR-10 batch: invalid load key"),
        (py2_batch(np.zeros((2, 3072), np.uint8), [1, 2])[:-40], r"not a CIFAR-10 batch"),
        (py2_batch(np.zeros((2, 3072), np.uint8), [1, 12]), "labels outside 0..9"),
        (py2_batch(np.zeros((2, 3072), np.uint8), [1]), r"data \(2, 3072\), labels \(1,\)"),
        (py2_batch(np.zeros((2, 100), np.uint8), [1, 2]), r"data \(2, 100\)"),
    ],
    ids=["empty-dict", "garbage", "truncated", "bad-label", "short-labels", "wrong-width"],
)
def test_malformed_batches_are_one_line_errors(raw: bytes, message: str) -> None:
    with pytest.raises(StabcliError, match=message) as err:
        parse_batch(raw, "batch")
    assert "\n" not in str(err.value)


# --- where the data come from --------------------------------------------------------------


def test_download_is_checksummed_and_cached(
    isolated: Path, serve, archive_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, serve(archive_bytes))
    monkeypatch.setenv(ENV_HASH, f"sha256:{hashlib.sha256(archive_bytes).hexdigest()}")
    path = cifar10_path(None)
    assert path.parent == cache_dir() and str(isolated / "cache") in str(path)
    assert path.read_bytes() == archive_bytes
    ref, data = read_cifar10(_preset())
    assert ref.source == "cifar10" and ref.path == str(path)
    assert data.train_x.shape == (5 * PER_BATCH, 3, 32, 32) and data.train_x.dtype == np.uint8
    assert data.test_x.shape == (PER_BATCH // 2, 3, 32, 32)
    expected = np.concatenate([_images(PER_BATCH, i)[0] for i in range(1, 6)])
    np.testing.assert_array_equal(data.train_x.reshape(len(expected), -1), expected)
    np.testing.assert_array_equal(data.test_y, _images(PER_BATCH // 2, 0)[1])
    monkeypatch.setenv(ENV_URL, "http://127.0.0.1:9/down")
    assert cifar10_path(None) == path  # cached: no second download


def test_md5_form_of_the_hash_works(
    isolated: Path, serve, archive_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, serve(archive_bytes))
    monkeypatch.setenv(ENV_HASH, f"md5:{hashlib.md5(archive_bytes).hexdigest()}")
    assert cifar10_path(None).read_bytes() == archive_bytes


def test_checksum_failure_is_a_one_line_error(
    isolated: Path, serve, archive_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, serve(archive_bytes))  # the default hash: the real archive's
    with pytest.raises(
        SettingError, match=r"failed its checksum.*data_path.*STABCLI_CIFAR10"
    ) as err:
        cifar10_path(None)
    assert "\n" not in str(err.value)
    assert "--data" in err.value.render({"data_path": "--data"})
    assert not list(cache_dir().glob("cifar*"))


def test_server_down_is_a_one_line_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(ENV_URL, f"http://127.0.0.1:{port}/{FILENAME}")
    with pytest.raises(SettingError, match=r"cannot download CIFAR-10.*pass it"):
        cifar10_path(None)


def test_path_given_archive_directory_or_environment(
    isolated: Path, archive_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = isolated / "mine.tar.gz"
    archive.write_bytes(archive_bytes)
    unpacked = isolated / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    refs = [read_cifar10(_preset(archive))[0]]
    refs.append(read_cifar10(_preset(unpacked))[0])  # the directory holding the batches' folder
    refs.append(read_cifar10(_preset(unpacked / "cifar-10-batches-py"))[0])
    monkeypatch.setenv(ENV_PATH, str(archive))
    refs.append(read_cifar10(_preset())[0])
    assert len({r.sha256 for r in refs}) == 1  # the same data, by content, whatever the form
    assert refs[0].path == str(archive) and refs[-1].path == str(archive)
    with pytest.raises(
        StabcliError, match=r"CIFAR-10 path .*missing.* \(from data_path\) does not exist"
    ):
        read_cifar10(_preset(isolated / "missing"))
    monkeypatch.setenv(ENV_PATH, str(isolated / "missing"))
    with pytest.raises(StabcliError, match=r"from STABCLI_CIFAR10\) does not exist"):
        read_cifar10(_preset())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (lambda good: good[: len(good) // 2], r"not a complete \.tar\.gz"),
        (lambda good: b"\x1f\x8b" + bytes(200), r"not a complete \.tar\.gz"),
        (lambda good: b"plain text, not an archive\n" * 20, r"not a complete \.tar\.gz"),
        (
            lambda good: _tar({k: v for k, v in tiny_members().items() if k != "data_batch_3"}),
            "has no data_batch_3",
        ),
        (
            lambda good: _tar(
                tiny_members(test_batch=_global("os", "system") + b"U\x04true\x85R.")
            ),
            r"test_batch is not a CIFAR-10 batch: refused to load os\.system",
        ),
    ],
    ids=["truncated", "zeros", "not-gzip", "missing-batch", "evil-member"],
)
def test_corrupt_archive_is_a_one_line_error(
    isolated: Path, archive_bytes: bytes, payload, message: str
) -> None:
    bad = isolated / "bad.tar.gz"
    bad.write_bytes(payload(archive_bytes))
    with pytest.raises(StabcliError, match=message) as err:
        read_cifar10(_preset(bad))
    assert "\n" not in str(err.value)


def test_preset_must_state_cifars_classes_and_size(isolated: Path, archive_bytes: bytes) -> None:
    archive = isolated / "c.tar.gz"
    archive.write_bytes(archive_bytes)
    with pytest.raises(StabcliError, match=r"data\.n_classes = 8, but CIFAR-10 has 10; set 10"):
        read_cifar10(_preset(archive).with_overrides(n_classes=8))
    with pytest.raises(StabcliError, match=r"data\.image_size = 16, but CIFAR-10 has 32; set 32"):
        read_cifar10(_preset(archive).with_overrides(image_size=16))


def test_cifar_preset_trains_on_the_tiny_archive(isolated: Path, archive_bytes: bytes) -> None:
    archive = isolated / "c.tar.gz"
    archive.write_bytes(archive_bytes)
    preset = _preset(archive).with_overrides(
        steps=3, warmup_steps=1, batch_size=8, eval_every=3, eval_batches=1
    )
    _, data = read_cifar10(preset)
    x, _ = BatchStream(data, preset, torch.device("cpu"), torch.float32).train_batch(0)
    assert x.shape == (8, 3, 32, 32) and x.min() >= -1.0 and x.max() <= 1.0
    result = run_probes(preset, [(0.999, 0.9)], device="cpu")
    assert result.summary.diverged_step.isna().all()
    assert result.evals.test_accuracy.notna().all()


# --- the real data set, where this machine has it ---------------------------------------


@pytest.mark.slow
def test_real_cifar10_when_present() -> None:
    """The published archive (from $STABCLI_CIFAR10 or the cache, never downloaded here)."""
    candidates = [os.environ.get(ENV_PATH), str(cache_dir() / FILENAME)]
    path = next((Path(c) for c in candidates if c and Path(c).exists()), None)
    if path is None:
        pytest.skip(f"no CIFAR-10 here: set {ENV_PATH}=PATH to run this test")
    _, data = read_cifar10(_preset(path))
    assert data.train_x.shape == (50_000, 3, 32, 32) and data.test_x.shape == (10_000, 3, 32, 32)
    assert data.train_y is not None and data.test_y is not None
    assert np.bincount(data.train_y).tolist() == [5000] * 10
    assert np.bincount(data.test_y).tolist() == [1000] * 10
