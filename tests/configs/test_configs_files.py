"""Betas found in config files: every format and spelling, and every way a file can be wrong.

Expected values are the numbers written into each file by hand here, in PyTorch's order
(beta1, beta2), with the key path a reader would name.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from stabcli.configs import FoundBetas, betas_in_file, betas_in_files, find_betas
from stabcli.errors import StabcliError

# (file name, content, [(key path, beta1, beta2), ...]) by readable id.
FOUND: dict[str, tuple[str, str, list[tuple[str, float, float]]]] = {
    "json-optimizer-betas": (
        "train.json",
        '{"optimizer": {"name": "AdamW", "lr": 3e-4, "betas": [0.9, 0.95]}}',
        [("optimizer.betas", 0.9, 0.95)],
    ),
    "json-optim-kwargs": (
        "run.json",
        '{"optim": {"target": "torch.optim.Adam", "kwargs": {"betas": [0.8, 0.99]}}}',
        [("optim.kwargs.betas", 0.8, 0.99)],
    ),
    "json-param-groups": (
        "groups.json",
        '{"param_groups": [{"lr": 1, "betas": [0.9, 0.999]}, {"lr": 2, "betas": [0.5, 0.9]}]}',
        [("param_groups[0].betas", 0.9, 0.999), ("param_groups[1].betas", 0.5, 0.9)],
    ),
    "json-top-level-list": (
        "list.json",
        '[[1, 2], {"betas": [0.9, 0.98]}]',
        [("[1].betas", 0.9, 0.98)],
    ),
    "json-hf-training-args": (
        "training_args.json",
        json.dumps(
            {
                "output_dir": "out",
                "learning_rate": 5e-05,
                "adam_beta1": 0.9,
                "adam_beta2": 0.999,
                "adam_epsilon": 1e-08,
                "optim": "adamw_torch",
            }
        ),
        [("adam_beta1/adam_beta2", 0.9, 0.999)],
    ),
    "json-keras-adam": (
        "keras.json",
        '{"class_name": "Adam", "config": {"learning_rate": 0.001, "beta_1": 0.9, '
        '"beta_2": 0.999}}',
        [("config.beta_1/beta_2", 0.9, 0.999)],
    ),
    "json-integers-and-zero": (
        "ints.json",
        '{"betas": [0, 0.5]}',
        [("betas", 0.0, 0.5)],
    ),
    "json-same-pair-twice": (
        "twice.json",
        '{"a": {"betas": [0.9, 0.95]}, "b": {"betas": [0.9, 0.95]}}',
        [("a.betas", 0.9, 0.95), ("b.betas", 0.9, 0.95)],
    ),
    "json-spellings-agree": (
        "agree.json",
        '{"betas": [0.9, 0.95], "beta1": 0.9, "beta2": 0.95}',
        [("betas", 0.9, 0.95), ("beta1/beta2", 0.9, 0.95)],
    ),
    "json-repeated-key-same-value": (
        "repeat.json",
        '{"beta1": 0.9, "beta1": 0.9, "beta2": 0.95}',
        [("beta1/beta2", 0.9, 0.95)],
    ),
    "json-odd-key": (
        "odd.json",
        '{"model.opt": {"betas": [0.9, 0.95]}}',
        [("['model.opt'].betas", 0.9, 0.95)],
    ),
    "toml-nanogpt": (
        "train_shakespeare_char.toml",
        "learning_rate = 1e-3\nbeta1 = 0.9\nbeta2 = 0.99\nweight_decay = 1e-1\n",
        [("beta1/beta2", 0.9, 0.99)],
    ),
    "toml-section": (
        "cfg.toml",
        "[train]\nsteps = 10\n\n[train.optimizer]\nbetas = [0.9, 0.95]\n",
        [("train.optimizer.betas", 0.9, 0.95)],
    ),
    "yaml-nanogpt": (
        "config.yaml",
        "# nanoGPT-style\nbeta1: 0.9\nbeta2: 0.95\nlearning_rate: 6.0e-4\n",
        [("beta1/beta2", 0.9, 0.95)],
    ),
    "yaml-lightning-cli": (
        "config.yml",
        "model:\n  optimizer:\n    class_path: torch.optim.AdamW\n    init_args:\n"
        "      lr: 0.001\n      betas:\n        - 0.9\n        - 0.98\n",
        [("model.optimizer.init_args.betas", 0.9, 0.98)],
    ),
    "yaml-merge-key-override": (
        "merge.yaml",
        "defaults: &d\n  beta1: 0.9\n  beta2: 0.95\nrun:\n  <<: *d\n  beta1: 0.8\n",
        [("defaults.beta1/beta2", 0.9, 0.95), ("run.beta1/beta2", 0.8, 0.95)],
    ),
    "yaml-alias-reported-at-each-place": (
        "alias.yaml",
        "opt: &o {betas: [0.9, 0.95]}\nagain: *o\n",
        [("opt.betas", 0.9, 0.95), ("again.betas", 0.9, 0.95)],
    ),
    "python-nanogpt-config": (
        "train_shakespeare_char.py",
        "out_dir = 'out-shakespeare-char'\nlearning_rate = 1e-3  # with baby networks\n"
        "beta2 = 0.99  # make a bit bigger because number of tokens per iter is small\n"
        "beta1 = 0.9\nwarmup_iters = 100\n",
        [("beta1/beta2", 0.9, 0.99)],
    ),
    "python-dataclass-config": (
        "config.py",
        "from dataclasses import dataclass\n\n@dataclass\nclass TrainConfig:\n"
        "    beta1: float = 0.85\n    beta2: float = 0.95\n    name: str = 'x'\n",
        [("TrainConfig.beta1/beta2", 0.85, 0.95)],
    ),
    "unknown-suffix-json": (
        "settings.cfg",
        '{"betas": [0.9, 0.95]}',
        [("betas", 0.9, 0.95)],
    ),
    "unknown-suffix-yaml": (
        "settings",
        "optimizer:\n  betas: [0.7, 0.9]\n",
        [("optimizer.betas", 0.7, 0.9)],
    ),
}


HAS_YAML = importlib.util.find_spec("yaml") is not None


def _needs_yaml(name: str) -> bool:
    """True for a case that only PyYAML can read (a .yaml/.yml file, or YAML-only text)."""
    return name.endswith((".yaml", ".yml")) or name in ("settings", "notes.txt", "notes.cfg")


@pytest.mark.parametrize("case", sorted(FOUND))
def test_betas_found_in_each_format(case: str, tmp_path: Path) -> None:
    name, content, expected = FOUND[case]
    if _needs_yaml(name) and not HAS_YAML:
        pytest.skip("PyYAML is not installed")
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    found = betas_in_file(path)
    assert [(f.key, f.beta1, f.beta2) for f in found] == expected
    assert all(f.file == str(path) for f in found)
    assert [f.source for f in found] == [f"{path}: {key}" for key, _, _ in expected]


def test_found_point_is_in_the_papers_order() -> None:
    found = FoundBetas("f.json", "betas", beta1=0.9, beta2=0.95)
    assert (found.point.beta, found.point.gamma) == (0.95, 0.9)  # β = beta2, γ = beta1


def test_several_files_in_the_order_given(tmp_path: Path) -> None:
    first, second = tmp_path / "b.json", tmp_path / "a.toml"
    first.write_text('{"betas": [0.9, 0.95]}', encoding="utf-8")
    second.write_text("beta1 = 0.8\nbeta2 = 0.9\n", encoding="utf-8")
    found = betas_in_files([first, second])
    assert [(f.file, f.beta1, f.beta2) for f in found] == [
        (str(first), 0.9, 0.95),
        (str(second), 0.8, 0.9),
    ]


def test_search_stops_at_reference_cycles() -> None:
    data: dict[str, object] = {"betas": [0.9, 0.95]}
    data["self"] = data  # a YAML alias can make a mapping contain itself
    found = find_betas(data, "cyclic.yaml")
    assert [(f.key, f.beta1, f.beta2) for f in found] == [("betas", 0.9, 0.95)]


def test_betas_as_one_element_objects_with_tolist() -> None:
    class Scalar:  # stands in for a 0-d tensor or numpy scalar from a checkpoint
        def __init__(self, value: float) -> None:
            self.value = value

        def tolist(self) -> float:
            return self.value

    found = find_betas({"betas": (Scalar(0.9), Scalar(0.99))}, "ckpt.pt")
    assert [(f.beta1, f.beta2) for f in found] == [(0.9, 0.99)]


# (file name, content, words the one-line error must hold besides the file name)
ERRORS: dict[str, tuple[str, str | bytes, list[str]]] = {
    "no-betas": ("cfg.json", '{"lr": 0.001, "optimizer": "sgd"}', ["no Adam betas found"]),
    "empty-yaml": ("empty.yaml", "", ["no Adam betas found"]),
    "beta1-alone": (
        "cfg.json",
        '{"optimizer": {"beta1": 0.9}}',
        ["optimizer.beta1", "beta1 without beta2"],
    ),
    "adam-beta2-alone": (
        "training_args.json",
        '{"adam_beta2": 0.999}',
        ["adam_beta2", "without adam_beta1"],
    ),
    "json-repeated-key-differs": (
        "cfg.json",
        '{"opt": {"beta1": 0.9, "beta2": 0.95, "beta1": 0.8}}',
        ["opt.beta1", "different values", "0.9", "0.8"],
    ),
    "yaml-repeated-key-differs": (
        "cfg.yaml",
        "opt:\n  betas: [0.9, 0.95]\n  betas: [0.9, 0.99]\n",
        ["opt.betas", "different values"],
    ),
    "spellings-disagree": (
        "cfg.json",
        '{"optimizer": {"betas": [0.9, 0.95], "beta1": 0.8, "beta2": 0.95}}',
        ["optimizer", "disagree", "betas (0.9, 0.95)", "beta1/beta2 (0.8, 0.95)"],
    ),
    "betas-one-value": ("cfg.json", '{"betas": [0.9]}', ["betas", "expected [beta1, beta2]"]),
    "betas-three-values": (
        "cfg.yaml",
        "opt:\n  betas: [0.9, 0.95, 0.99]\n",
        ["opt.betas", "expected [beta1, beta2]"],
    ),
    "betas-text": ("cfg.toml", 'betas = "0.9, 0.95"', ["betas", "expected [beta1, beta2]"]),
    "beta1-text": (
        "cfg.json",
        '{"beta1": "0.9", "beta2": 0.95}',
        ["beta1", "not a number", "'0.9'"],
    ),
    "beta2-boolean": ("cfg.yaml", "beta1: 0.9\nbeta2: true\n", ["beta2", "not a number"]),
    "betas-item-null": ("cfg.json", '{"betas": [0.9, null]}', ["betas[1]", "not a number"]),
    "beta2-out-of-range": (
        "cfg.json",
        '{"opt": {"betas": [0.9, 1.5]}}',
        ["opt.betas", "beta2 must be in (0, 1)"],
    ),
    "beta1-one": ("cfg.toml", "beta1 = 1.0\nbeta2 = 0.99\n", ["beta1/beta2", "beta1", "[0, 1)"]),
    "beta2-nan": ("cfg.json", '{"betas": [0.9, NaN]}', ["betas", "beta2", "nan"]),
    "beta1-negative": ("cfg.yaml", "betas: [-0.1, 0.9]\n", ["betas", "beta1"]),
    "bad-json": ("cfg.json", '{"betas": [0.9, 0.95]', ["not valid JSON"]),
    "bad-yaml": ("cfg.yaml", "a: [1, 2\nb: 3\n", ["not valid YAML"]),
    "bad-toml": ("cfg.toml", "beta1 = \n", ["not valid TOML"]),
    "toml-repeated-key": ("cfg.toml", "beta1 = 0.9\nbeta1 = 0.8\n", ["not valid TOML"]),
    "python-expression": (
        "config.py",
        "beta1 = 0.9\nbeta2 = 1 - 1e-3\n",
        ["beta2", "not a number", "1 - 1e-3"],
    ),
    "python-syntax": ("config.py", "beta1 = (0.9\n", ["not valid Python"]),
    "not-utf8": ("cfg.json", b"\xff\xfe\x00garbage", ["not UTF-8"]),
    "unknown-suffix-prose": ("notes.txt", "just some words\n", ["no Adam betas found"]),
    "unknown-suffix-unparsable": (
        "notes.cfg",
        "a: [1, 2\n",
        ["not a JSON, TOML or YAML config"],
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_problem_is_one_line_naming_file_and_key(case: str, tmp_path: Path) -> None:
    name, content, words = ERRORS[case]
    if _needs_yaml(name) and not HAS_YAML:
        pytest.skip("PyYAML is not installed")
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(StabcliError) as caught:
        betas_in_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for word in words:
        assert word in message, (word, message)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path, words in ((tmp_path / "nope.json", "cannot read"), (tmp_path, "is a directory")):
        with pytest.raises(StabcliError, match=words) as caught:
            betas_in_file(path)
        assert str(caught.value).startswith(f"{path}: ")


def test_yaml_without_pyyaml_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    path = tmp_path / "cfg.yaml"
    path.write_text("beta1: 0.9\nbeta2: 0.95\n", encoding="utf-8")
    with pytest.raises(StabcliError, match="reading YAML needs PyYAML") as caught:
        betas_in_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    json_path = tmp_path / "cfg.json"  # JSON (and TOML) need nothing beyond Python
    json_path.write_text('{"beta1": 0.9, "beta2": 0.95}', encoding="utf-8")
    assert [(f.beta1, f.beta2) for f in betas_in_file(json_path)] == [(0.9, 0.95)]
