"""The example factories (examples/*.toml) swept through the CLI, as a user runs them.

Each sweep writes a complete run directory whose records name the module's own parameter
tensors, and ``stabcli report`` reads it. A factory preset refuses ``--data``.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from stabcli.cli import main
from stabcli.store.schema import POINT_COLUMNS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = {
    # example: a parameter the sweep must name as the module names it
    "small_cnn": "block1.norm.weight",
    "tiny_transformer": "encoder.layers.1.norm2.weight",
}


def module_parameters(example: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Names of the example module's parameters, built here as its preset builds it."""
    table = tomllib.loads((EXAMPLES / f"{example}.toml").read_text(encoding="utf-8"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    build = importlib.import_module(example).build
    model = build(seed=table["train"]["seed"], **table["model"]["kwargs"])[0]
    return {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize("example", list(CASES))
def test_example_sweeps_and_reports_through_the_cli(
    example: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    preset = str(EXAMPLES / f"{example}.toml")
    monkeypatch.chdir(tmp_path)  # python_path is relative to the preset, not here
    code = main(["sweep", "--preset", preset, "--points", "2", "--steps", "40", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    points = pd.read_csv(out / "points.csv")
    assert len(points) == 2 and points["point_id"].is_unique
    assert set(POINT_COLUMNS) <= set(points.columns)  # the run directory every sweep writes
    traces = pd.read_parquet(out / "traces")
    assert len(traces) == 2 * 40 and traces["max_update"].notna().all()
    names = module_parameters(example, monkeypatch)
    assert CASES[example] in names
    assert set(traces["max_tensor"]) <= names
    assert set(points["max_tensor"]) <= names
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["settings"]["data"]["source"] == "factory"
    assert config["settings"]["preset"]["model"]["factory"] == f"{example}:build"
    evals = pd.read_parquet(out / "evals")
    assert (evals["step"] == 0).all() and len(evals) == 2  # eval_every = 100 > 40 steps
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "2 points (complete)" in capsys.readouterr().out


def test_a_factory_preset_refuses_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "input.txt"
    text.write_text("some text", encoding="utf-8")
    preset = str(EXAMPLES / "small_cnn.toml")
    code = main(["sweep", "--preset", preset, "--data", str(text), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--data" in err
    assert "has a factory model" in err and "makes its own batches" in err
    assert not (tmp_path / "r").exists()
