"""Data: the generated corpus, the batch stream, and tiny Shakespeare's download path.

Downloads are tested only against a loopback HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from stabcli.errors import SettingError, StabcliError
from stabcli.probe import load_preset
from stabcli.probe.corpus import synthetic_text
from stabcli.probe.data import BatchStream, load_dataset
from stabcli.probe.shakespeare import SHA256, cache_dir, shakespeare_path


def test_synthetic_corpus_is_deterministic() -> None:
    text = synthetic_text(0, 200_000)
    assert len(text) >= 200_000
    assert text == synthetic_text(0, 200_000)
    assert text != synthetic_text(1, 200_000)


@pytest.mark.parametrize("seed", [0, 1, 7], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("train_fraction", [0.8, 0.9, 0.95], ids=lambda f: f"train{f}")
def test_synthetic_corpus_training_symbols_are_frequent_and_some_are_unseen(
    seed: int, train_fraction: float
) -> None:
    """What makes growth visible (stabcli.probe.corpus): no symbol is rare in the training
    split (each >= 0.4% of it), and a few occur only after it (test split only)."""
    text = synthetic_text(seed, 200_000)
    train = text[: int(train_fraction * len(text))]
    counts = {c: train.count(c) for c in set(train)}
    rarest = min(counts, key=counts.__getitem__)
    assert counts[rarest] >= 0.004 * len(train), (rarest, counts[rarest])
    unseen = set(text) - set(train)
    assert len(unseen) >= 3, unseen
    assert all(text.index(c) >= 0.95 * len(text) for c in unseen)  # first seen in the last 5%
    assert not any(c.isupper() or c.isdigit() for c in text)  # no rare capitals or digits


def test_tiny_char_split_and_batches_are_shared() -> None:
    preset = load_preset("tiny-char").with_overrides(steps=5)
    data = load_dataset(preset)
    n = len(data.train_x) + len(data.test_x)
    assert len(data.train_x) == int(0.9 * n)
    a = BatchStream(data, preset, torch.device("cpu"), torch.float32)
    b = BatchStream(data, preset, torch.device("cpu"), torch.float32)
    x, y = a.train_batch(3)
    assert x.shape == (8, 32) and torch.equal(x, b.train_batch(3)[0])
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the next characters


def test_mlp_data_shapes() -> None:
    preset = load_preset("mlp-synthetic")
    data = load_dataset(preset)
    stream = BatchStream(data, preset, torch.device("cpu"), torch.float64)
    x, y = stream.train_batch(0)
    assert x.shape == (32, 16) and x.dtype == torch.float64 and y.shape == (32,)
    assert set(np.unique(data.train_y)) <= set(range(8))


def test_real_shakespeare_split(shakespeare_path: Path) -> None:
    preset = load_preset("shakespeare-small").with_overrides(data_path=str(shakespeare_path))
    data = load_dataset(preset)
    assert data.n_out == 65
    assert len(data.train_x) == int(0.9 * 1_115_394)


# --- download path -------------------------------------------------------------------


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh XDG cache and no path variable."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STABCLI_SHAKESPEARE", raising=False)
    return tmp_path


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[bytes], str]]:
    """serve(bytes) -> URL of a loopback HTTP server returning those bytes."""
    servers = []

    def start(payload: bytes) -> str:
        root = tmp_path / f"www{len(servers)}"
        root.mkdir()
        (root / "input.txt").write_bytes(payload)
        handler = partial(QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/input.txt"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_download_good_file_is_cached(
    isolated: Path, serve, shakespeare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STABCLI_SHAKESPEARE_URL", serve(shakespeare_path.read_bytes()))
    path = shakespeare_path_from_env()
    assert path.parent == cache_dir() and str(isolated / "cache") in str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256
    monkeypatch.setenv("STABCLI_SHAKESPEARE_URL", "http://127.0.0.1:9/down")
    assert shakespeare_path_from_env() == path  # cached: no second download


def shakespeare_path_from_env() -> Path:
    return shakespeare_path(None)


def test_download_wrong_checksum(isolated: Path, serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STABCLI_SHAKESPEARE_URL", serve(b"not shakespeare\n" * 100))
    with pytest.raises(SettingError, match=r"sha256 check.*data_path.*STABCLI_SHAKESPEARE") as err:
        shakespeare_path(None)
    assert "--data" in err.value.render({"data_path": "--data"})
    assert not list(cache_dir().glob("tinyshakespeare*"))


def test_download_server_down(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STABCLI_SHAKESPEARE_URL", f"http://127.0.0.1:{port}/input.txt")
    with pytest.raises(SettingError, match=r"cannot download.*pass it as data_path"):
        shakespeare_path(None)


def test_explicit_path_and_env_var(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = isolated / "corpus.txt"
    text.write_text("hello world\n" * 1000)
    assert shakespeare_path(str(text)) == text
    monkeypatch.setenv("STABCLI_SHAKESPEARE", str(text))
    assert shakespeare_path(None) == text
    with pytest.raises(StabcliError, match="does not exist"):
        shakespeare_path(str(isolated / "missing.txt"))
    monkeypatch.setenv("STABCLI_SHAKESPEARE", str(isolated / "missing.txt"))
    with pytest.raises(StabcliError, match="STABCLI_SHAKESPEARE"):
        shakespeare_path(None)


def test_user_text_via_data_path(isolated: Path) -> None:
    text = isolated / "corpus.txt"
    text.write_text("to be or not to be, that is the question.\n" * 200)
    preset = load_preset("shakespeare-small").with_overrides(data_path=str(text))
    data = load_dataset(preset)
    assert data.n_out == len(set(text.read_text()))
