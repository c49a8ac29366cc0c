"""Presets: shipped files load, user TOML files are validated, overrides are typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stabcli.errors import SettingError, StabcliError
from stabcli.probe import Preset, PresetInfo, list_presets, load_preset

SHIPPED = [
    "cnn-cifar10",
    "cnn-synthetic",
    "mlp-synthetic",
    "nanogpt-shakespeare",
    "nanogpt-shakespeare-gen",
    "shakespeare-small",
    "tiny-char",
]


def test_list_presets_names_descriptions_and_paths() -> None:
    infos = list_presets()
    assert [i.name for i in infos] == SHIPPED
    for info in infos:
        assert isinstance(info, PresetInfo)
        assert info.description and "\n" not in info.description
        assert info.path.is_file() and info.path.suffix == ".toml"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_presets_load_and_serialize(name: str) -> None:
    preset = load_preset(name)
    assert isinstance(preset, Preset) and preset.name == name
    as_dict = preset.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["train"]["eps"] == 1e-30


def test_figure_presets_match_the_paper() -> None:
    fig2 = load_preset("nanogpt-shakespeare")
    assert (fig2.model.n_layer, fig2.model.n_head, fig2.model.n_embd) == (6, 6, 384)
    assert (fig2.model.block_size, fig2.model.dropout) == (256, 0.2)
    assert (fig2.train.batch_size, fig2.train.lr, fig2.train.steps) == (64, 1e-3, 1500)
    fig3 = load_preset("nanogpt-shakespeare-gen")
    t = fig3.train
    assert (t.schedule, t.warmup_steps, t.min_lr, t.steps) == ("cosine", 100, 1e-4, 3000)
    assert (t.eval_every, t.eval_batches) == (100, 200)
    small = load_preset("shakespeare-small")
    assert (small.model.n_embd, small.model.n_layer, small.model.block_size) == (64, 2, 64)
    assert (small.train.batch_size, small.train.steps, small.model.dropout) == (16, 600, 0.0)


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(StabcliError, match=r"unknown preset 'nope'.*tiny-char"):
        load_preset("nope")


def test_user_toml_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "mine"\n[model]\nkind = "mlp"\n'
        '[data]\nsource = "synthetic-classes"\n[train]\nlr = 1\n'
    )
    preset = load_preset(str(path))
    assert preset.name == "mine" and preset.train.lr == 1.0 and isinstance(preset.train.lr, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nwidth = 3\n", "unknown key model.width"),
        ("[train]\nsteps = 1.5\n", r"train\.steps: expected int, got float"),
        ("[train]\nsteps = true\n", r"train\.steps: expected int, got bool"),
        ('[train]\nlr = "big"\n', r"train\.lr: expected float, got str"),
        ("[optimizer]\nlr = 1\n", "unknown key 'optimizer'"),
        ('[train]\nschedule = "linear"\n', r"train\.schedule = 'linear'; allowed"),
        ("[train]\nsteps = 0\n", r"train\.steps = 0; must be in \[1, 1,000,000\]"),
        ("[model]\nn_head = 3\n", r"model\.n_head = 3; must be a divisor"),
        ("[train]\nlr =\n", "not valid TOML"),
    ],
    ids=[
        "unknown-key",
        "float-for-int",
        "bool-for-int",
        "str-for-float",
        "unknown-section",
        "bad-choice",
        "range",
        "divisor",
        "syntax",
    ],
)
def test_user_toml_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StabcliError, match=message):
        load_preset(str(path))


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(StabcliError, match="does not exist"):
        load_preset(str(tmp_path / "absent.toml"))


def test_with_overrides_replaces_typed_fields() -> None:
    base = load_preset("shakespeare-small")
    new = base.with_overrides(steps=7, lr=1, seed=3, data_path="/x", eps=1e-8, dtype="float64")
    assert (new.train.steps, new.train.lr, new.train.seed) == (7, 1.0, 3)
    assert (new.data.data_path, new.train.eps, new.train.dtype) == ("/x", 1e-8, "float64")
    assert base.train.steps == 600  # frozen original untouched
    assert new.with_overrides(data_path=None).data.data_path is None


@pytest.mark.parametrize("name", ["tiny-char", "mlp-synthetic"])
def test_a_data_file_for_generated_data_is_refused(name: str) -> None:
    with pytest.raises(SettingError, match=rf"^data_path is set, but preset {name} generates"):
        load_preset(name).with_overrides(data_path="/x")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[train]\nsteps = 1" + "0" * 30 + "\n", r"train\.steps = 1" + "0" * 30 + ";"),
        ("[train]\nsteps = 1" + "0" * 400 + "\n", r"train\.steps = 1" + "0" * 19 + r"\.\.\.\(401 "),
        ("[train]\nseed = 100000000000000000000\n", r"train\.seed = 100000000000000000000;"),
        ("[train]\nseed = -1\n", r"train\.seed = -1;"),
        ("[model]\nn_embd = 1000000\nn_head = 1\n", r"model\.n_embd = 1000000;"),
        ("[model]\nn_layer = 100000\n", r"model\.n_layer = 100000;"),
        ("[train]\nbatch_size = 100000000\n", r"train\.batch_size = 100000000;"),
        ("[train]\neval_batches = 1000000000\n", r"train\.eval_batches = 1000000000;"),
        ("[data]\ncorpus_chars = 1000000000000\n", r"data\.corpus_chars = 1000000000000;"),
        ("[data]\ncorpus_seed = -3\n", r"data\.corpus_seed = -3;"),
        (
            '[model]\nkind = "mlp"\n[data]\nsource = "synthetic-classes"\n'
            "n_samples = 100000000000\n",
            r"data\.n_samples = 100000000000;",
        ),
        (
            '[model]\nkind = "mlp"\n[data]\nsource = "synthetic-classes"\n'
            "n_samples = 10000000\nn_features = 1000\n",
            r"data\.n_samples = 10000000; must be such that n_samples x n_features",
        ),
    ],
    ids=[
        "steps-31-digits",
        "steps-401-digits",
        "seed-over-64-bits",
        "negative-seed",
        "n_embd",
        "n_layer",
        "batch_size",
        "eval_batches",
        "corpus_chars",
        "corpus_seed",
        "n_samples",
        "data-values",
    ],
)
def test_sizes_have_upper_bounds_checked_before_allocating(
    tmp_path: Path, text: str, key: str
) -> None:
    path = tmp_path / "huge.toml"
    path.write_text(text)
    with pytest.raises(StabcliError, match=key):
        load_preset(str(path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stpes": 3}, "unknown override 'stpes'"),
        ({"steps": "3"}, "override steps: expected int, got str"),
        ({"lr": None}, "override lr: expected float"),
        ({"dtype": "float16"}, r"train\.dtype = 'float16'"),
        ({"lr": -1.0}, r"train\.lr = -1\.0; must be > 0"),
    ],
    ids=["unknown", "str-for-int", "none-for-float", "bad-dtype", "negative-lr"],
)
def test_with_overrides_errors(overrides: dict, message: str) -> None:
    with pytest.raises(StabcliError, match=message):
        load_preset("tiny-char").with_overrides(**overrides)
