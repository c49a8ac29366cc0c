"""Resolving a probe once: data identified by content, memory checked before allocating,
and a picklable setup whose batches run anywhere (run_batch)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import stabcli.probe.device as device
from stabcli.errors import SettingError, StabcliError
from stabcli.probe import load_preset, resolve_setup, run_batch, run_probes
from stabcli.probe.data import load_dataset, resolve_data

TEXT = "to be or not to be, that is the question; whether 'tis nobler in the mind.\n" * 300


@pytest.fixture
def texts(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The same text at two paths, and another text."""
    a, b, other = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "other.txt"
    a.write_text(TEXT)
    b.write_text(TEXT)
    other.write_text(TEXT.replace("question", "answer!!"))
    return a, b, other


def _preset(path: Path):
    return load_preset("shakespeare-small").with_overrides(
        data_path=str(path), steps=12, eval_every=0, eval_batches=0, n_embd=16, block_size=16
    )


def test_data_is_identified_by_content_not_by_path(texts: tuple[Path, Path, Path]) -> None:
    import hashlib

    a, b, _ = texts
    ref_a, ref_b, ref_other = (resolve_data(_preset(p)) for p in texts)
    assert ref_a.sha256 == ref_b.sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    assert ref_other.sha256 != ref_a.sha256
    assert (ref_a.path, ref_b.path) == (str(a), str(b))
    generated = [
        resolve_data(load_preset("tiny-char").with_overrides(corpus_seed=s)) for s in (0, 1)
    ]
    assert generated[0].sha256 != generated[1].sha256 and generated[0].path is None


def test_a_worker_rereads_the_data_and_checks_its_content(
    texts: tuple[Path, Path, Path],
) -> None:
    a, _, other = texts
    setup = resolve_setup(_preset(a), "cpu")
    copy = pickle.loads(pickle.dumps(setup))  # what a remote worker receives
    assert copy == setup
    import stabcli.probe.data as data

    data._LOADED.clear()  # a fresh process has read nothing yet
    assert len(load_dataset(copy.preset, copy.data).train_x) > 0
    data._LOADED.clear()
    a.write_text(other.read_text())  # the file changed since the driver read it
    with pytest.raises(StabcliError, match="is not the data of this probe"):
        load_dataset(copy.preset, copy.data)


def test_run_batch_is_run_probes_for_one_batch(texts: tuple[Path, Path, Path]) -> None:
    preset = _preset(texts[0]).with_overrides(dtype="float64")
    setup = resolve_setup(preset, "cpu")
    points = [(0.999, 0.9), (0.95, 0.99)]
    alone = run_batch(pickle.loads(pickle.dumps(setup)), points)
    split = run_probes(setup, points, points_per_batch=1)
    pd.testing.assert_frame_equal(alone.summary, split.summary, rtol=1e-12)
    pd.testing.assert_frame_equal(alone.traces, split.traces, rtol=1e-12)
    assert split.summary["point"].tolist() == [0, 1]


def test_a_probe_too_large_for_memory_is_refused_with_its_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    preset = load_preset("tiny-char").with_overrides(n_embd=8192, n_head=8, n_layer=12)
    with pytest.raises(
        StabcliError,
        match=r"one probe point of preset tiny-char needs about [\d.]+ GiB of cpu memory, "
        "more than the",
    ):
        resolve_setup(preset, "cpu")
    small = load_preset("mlp-synthetic").with_overrides(steps=2)
    setup = resolve_setup(small, "cpu")
    monkeypatch.setattr(
        device, "free_memory", lambda dev: 3 * setup.memory(torch.device("cpu")).per_point
    )
    with pytest.raises(
        StabcliError, match=r"^1000 probe points of preset mlp-synthetic need about"
    ):
        run_probes(setup, [(0.999, 0.9)] * 1000, points_per_batch=1000)
    with pytest.raises(SettingError, match=r"^points_per_batch must be a positive integer"):
        run_probes(setup, [(0.999, 0.9)], points_per_batch=0)


def test_the_memory_estimate_grows_with_what_it_counts() -> None:
    base = load_preset("tiny-char")
    cpu = torch.device("cpu")

    def per_point(**overrides: object) -> int:
        return resolve_setup(base.with_overrides(**overrides), "cpu").memory(cpu).per_point

    small = per_point(steps=50)
    assert per_point(steps=100) > small  # per-step records
    assert per_point(steps=50, batch_size=64) > small  # activations
    assert per_point(steps=50, n_embd=64) > small  # weights and Adam state
    assert per_point(steps=50, dtype="float64") > small


def test_dropout_seeds_stay_in_torchs_range() -> None:
    from stabcli.probe.engine import dropout_seed

    top = 2**64 - 1
    assert 0 <= dropout_seed(top, 999_999) < 2**64
    torch.Generator().manual_seed(dropout_seed(top, 999_999))
    assert dropout_seed(3, 7) == 3 * 1_000_003 + 8  # small seeds: unchanged
    preset = load_preset("mlp-synthetic").with_overrides(steps=2, seed=top, dropout=0.1)
    result = run_probes(preset, [(0.999, 0.9)], device="cpu")
    assert np.isfinite(result.traces["loss"]).all()
