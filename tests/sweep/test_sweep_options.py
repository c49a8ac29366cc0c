"""Sweep options that override the preset's optimizer, name a factory's import path, and give
a grid in PyTorch's order (the order is kept for tables and the report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stabcli.cli import main
from stabcli.cli.sweep_setup import build_region, build_request
from stabcli.errors import StabcliError
from stabcli.sweep.regions import SweepRegion


def _region(**given: object) -> SweepRegion:
    options: dict[str, object] = {
        "normal_curve": False,
        "level_curve": False,
        "through": None,
        "torch_through": None,
        "n_points": None,
        "span": None,
        "grid": None,
        "torch_grid": None,
        "points": [],
        "torch_points": [],
        "points_file": None,
    }
    options.update(given)
    return build_region(**options)  # type: ignore[arg-type]


def test_torch_grid_is_beta1_major_in_pytorch_order() -> None:
    region = _region(torch_grid="0.8:0.9:2,0.99:0.999:3")
    torch_pairs = [(p.gamma, p.beta) for p in region.points]  # (beta1, beta2)
    assert torch_pairs == [
        (b1, b2) for b1 in (0.8, 0.9) for b2 in (0.99, 0.99 + (0.999 - 0.99) / 2, 0.999)
    ]
    assert region.order == "torch" and region.to_dict()["order"] == "torch"
    assert "PyTorch's order" in region.description and "beta1 in [0.8, 0.9]" in region.description


@pytest.mark.parametrize(
    ("given", "order"),
    [
        ({}, "paper"),
        ({"grid": "0.9:0.99:2,0.8:0.9:2"}, "paper"),
        ({"torch_points": ["0.9,0.999"]}, "torch"),
        ({"torch_points": ["0.9,0.999"], "points": ["0.99,0.9"]}, "paper"),
        ({"torch_through": "0.9,0.999"}, "torch"),
    ],
    ids=["default-curve", "grid", "torch-points", "mixed-points", "torch-through"],
)
def test_the_region_remembers_the_order_points_were_typed_in(
    given: dict[str, object], order: str
) -> None:
    assert _region(**given).order == order


def test_points_file_in_pytorch_columns_is_torch_ordered(tmp_path: Path) -> None:
    file = tmp_path / "p.csv"
    file.write_text("torch_beta1,torch_beta2\n0.9,0.999\n")
    assert _region(points_file=file).order == "torch"
    file.write_text("beta,gamma\n0.999,0.9\n")
    assert _region(points_file=file).order == "paper"


def _request(**given: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "region": _region(),
        "preset": "mlp-synthetic",
        "data": None,
        "steps": None,
        "lr": None,
        "seed": None,
        "dtype": None,
        "schedule": None,
        "eps": None,
        "optimizer": None,
        "k": None,
        "strategy": None,
        "hyper_lr": None,
        "python_path": [],
        "device": None,
        "points_per_batch": None,
        "slope_at": None,
        "growth_tol": None,
        "confidence": None,
        "out": None,
        "overwrite": False,
    }
    options.update(given)
    return build_request(**options)  # type: ignore[arg-type]


def test_optimizer_options_override_the_preset() -> None:
    train = _request(optimizer="kadam", k=3, strategy="exp").preset.train
    assert (train.optimizer, train.k, train.strategy) == ("kadam", 3, "exp")
    assert _request(optimizer="hyperadam", hyper_lr=0.01).preset.train.hyper_lr == 0.01
    assert _request().preset.train.optimizer == "adam"


def test_python_path_is_prepended_to_a_factory_preset(tmp_path: Path) -> None:
    preset = Path(__file__).resolve().parents[2] / "examples" / "small_cnn.toml"
    before = _request(preset=str(preset)).preset.model.python_path
    after = _request(preset=str(preset), python_path=[tmp_path]).preset.model.python_path
    assert after == (str(tmp_path.resolve()), *before)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--optimizer", "sgd"], "train.optimizer = 'sgd'"),
        (["--k", "2"], "needs train.optimizer = 'kadam'"),
        (["--optimizer", "kadam", "--k", "0"], "train.k = 0"),
        (["--hyper-lr", "0.1"], "hyper_lr needs train.optimizer"),
        (["--python-path", "/no/such/dir"], "--python-path /no/such/dir: no such directory"),
        (["--python-path", "."], "need a factory"),
        (["--torch-grid", "0.9:0.8:2,0.9:0.99:2"], "--torch-grid: the beta1 range"),
        (["--torch-grid", "0.9"], "--torch-grid must look like"),
        (["--grid", "0.9:0.99:2,0.8:0.9:2", "--torch-grid", "0.8:0.9:2,0.9:0.99:2"], "choose one"),
    ],
    ids=[
        "unknown-optimizer",
        "k-without-kadam",
        "k-zero",
        "hyper-lr-without-learner",
        "missing-python-path",
        "python-path-without-factory",
        "inverted-torch-grid",
        "malformed-torch-grid",
        "two-grids",
    ],
)
def test_bad_option_is_one_line_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    out = tmp_path / "run"
    code = main(["sweep", "--preset", "mlp-synthetic", "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("stabcli: error:") and err.count("\n") == 1, err
    assert words in err and "Traceback" not in err
    assert not out.exists()


def test_a_factory_run_resumes_from_another_import_path(tmp_path: Path) -> None:
    """The factory's code enters the run's identity by its source's sha256, so moving the
    project (another python_path) resumes the same run instead of refusing it."""
    import shutil

    from stabcli.probe import resolve_setup
    from stabcli.sweep.run import settings_of

    examples = Path(__file__).resolve().parents[2] / "examples"
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("small_cnn.py", "small_cnn.toml"):
        shutil.copy(examples / name, moved / name)
    fingerprints = []
    for folder in (examples, moved):
        request = _request(preset=str(folder / "small_cnn.toml"), steps=20)
        setup = resolve_setup(request.preset, device="cpu")
        fingerprints.append(settings_of(setup, request.measure))
    assert fingerprints[0] == fingerprints[1]


@pytest.mark.parametrize("steps", [12, 150])
def test_steps_within_the_presets_warm_up_names_the_flag(steps: int) -> None:
    """cnn-synthetic warms up for 150 steps: `--steps 12` was refused as
    "train.warmup_steps = 150; must be in [0, steps)", naming a setting no flag sets."""
    with pytest.raises(StabcliError) as err:
        _request(preset="cnn-synthetic", steps=steps)
    message = str(err.value)
    assert message.startswith(f"--steps {steps} is within preset cnn-synthetic's warm-up")
    assert "--steps > 150" in message


def test_steps_past_the_warm_up_are_accepted() -> None:
    assert _request(preset="cnn-synthetic", steps=151).preset.train.steps == 151
