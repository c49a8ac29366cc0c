"""Typed configuration of a probe: the :class:`Preset` dataclass tree and its validation.

A preset names a model, a dataset and training settings. Every field is typed and
validated: an unknown key, a wrong type or an out-of-range value (sizes have upper bounds,
:data:`LIMITS`) raises :class:`~stabcli.errors.StabcliError` naming the key. Field names
are unique across the three sections, so an override can name a field without its section
(``preset.with_overrides(steps=100, dropout=0.0)``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from stabcli.errors import SettingError, StabcliError
from stabcli.theory.kadam import MAX_K


@dataclass(frozen=True)
class ModelConfig:
    """The network trained at every point (see :mod:`stabcli.probe.models`)."""

    kind: str = "gpt"  # "gpt" (nanoGPT decoder), "mlp", "cnn", or "factory" (your own model)
    n_layer: int = 2  # transformer blocks (gpt) or hidden layers (mlp)
    n_head: int = 2  # attention heads per block (gpt only); must divide n_embd
    n_embd: int = 64  # embedding width (gpt) or hidden width (mlp)
    block_size: int = 64  # context length in tokens (gpt only)
    dropout: float = 0.0  # residual/embedding dropout probability; same masks at every point
    # attention-probability dropout; None: same as dropout. 0 lets PyTorch's fused attention
    # run (much faster on a GPU): a nonzero one needs explicit attention to share its masks
    attn_dropout: float | None = None
    bias: bool = True  # biases in linear layers and LayerNorms
    # gpt: qk-norm, queries and keys scaled to norm √D per head before QKᵀ (no learned gain);
    # the loss is then invariant to scaling each query/key matrix (arXiv 2411.05746 §4.1)
    qk_norm: bool = False
    init_std: float = 0.02  # std of the normal init of weights, as nanoGPT
    # your own model: "package.module:function" returning (model, batches, loss_fn)
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)  # factory: keyword arguments
    python_path: tuple[str, ...] = ()  # factory: directories to import from (preset-relative)

    @property
    def attention_dropout(self) -> float:
        """The attention-probability dropout in effect."""
        return self.dropout if self.attn_dropout is None else self.attn_dropout

    @property
    def uses_dropout(self) -> bool:
        return self.dropout > 0.0 or self.attention_dropout > 0.0


@dataclass(frozen=True)
class DataConfig:
    """Where the training and test examples come from (see :mod:`stabcli.probe.data`)."""

    # "synthetic-text", "tiny-shakespeare", "synthetic-classes", "synthetic-images", "cifar10"
    source: str = "synthetic-text"
    data_path: str | None = None  # a downloaded data set: read this file instead of the cache
    corpus_seed: int = 0  # seed of the generated corpus / data set
    corpus_chars: int = 200_000  # synthetic-text: length of the generated corpus
    n_samples: int = 4096  # synthetic-classes: number of examples
    n_features: int = 16  # synthetic-classes: input dimension
    n_classes: int = 8  # synthetic-classes / synthetic-images: number of labels
    image_size: int = 32  # synthetic-images: height and width in pixels
    train_fraction: float = 0.9  # first 90% trains, last 10% tests, as nanoGPT


@dataclass(frozen=True)
class TrainConfig:
    """The optimizer, schedule and run length shared by every point of a probe."""

    steps: int = 600  # optimizer steps n = 0 .. steps-1
    batch_size: int = 16  # sequences (gpt) or examples (mlp) per step
    lr: float = 1e-3  # η (η0 for schedules)
    schedule: str = "constant"  # "constant", "cosine" (warm-up + cosine to min_lr), "anneal"
    warmup_steps: int = 0  # cosine: linear warm-up length
    min_lr: float = 1e-4  # cosine: floor reached at the last step
    weight_decay: float = 0.0  # λ
    weight_decay_mode: str = "none"  # "none", "coupled" (Adam: g += λθ), "decoupled" (AdamW)
    eps: float = 1e-30  # ε; the paper's default 1e-30 makes the bounds apply as stated
    eps_placement: str = "torch"  # "torch": ε after bias-correcting sqrt(v); "paper": inside
    dtype: str = "float32"  # "float32", "float64", or "bfloat16" (autocast, CUDA only)
    seed: int = 0  # init weights, batches and dropout masks
    eval_every: int = 0  # test loss every K steps; 0 = no evaluation
    eval_batches: int = 0  # batches of the test split per evaluation
    optimizer: str = "adam"  # "adam", "kadam", "hyperadam" or "mada"
    k: int = 1  # kadam: levels of moving averages (paper Section 4.2)
    strategy: str = "inverse-exp"  # kadam: how the levels' betas derive from (β, γ) (App. P)
    hyper_lr: float | None = None  # hyperadam/mada: hyper-learning rate (None: the optimizer's)
    # torch.compile the training step (model forward/backward and Adam's update): "on",
    # "off", or "auto" (on CUDA, where fusing pays; off on CPU, where compiling costs more
    # than it saves in a probe: stabcli.probe.device.use_compile)
    compile: str = "auto"


CHOICES: dict[str, tuple[str, ...]] = {
    "kind": ("gpt", "mlp", "cnn", "factory"),
    "source": (
        "synthetic-text",
        "tiny-shakespeare",
        "synthetic-classes",
        "synthetic-images",
        "cifar10",
    ),
    "optimizer": ("adam", "kadam", "hyperadam", "mada"),
    "strategy": ("inverse-exp", "exp", "scaled", "naive"),
    "schedule": ("constant", "cosine", "anneal"),
    "weight_decay_mode": ("none", "coupled", "decoupled"),
    "eps_placement": ("torch", "paper"),
    "dtype": ("float32", "float64", "bfloat16"),
    "compile": ("auto", "on", "off"),
}

SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


@dataclass(frozen=True)
class Preset:
    """A named probe setup: model, data and training, all fully resolved."""

    name: str  # file stem of the TOML it came from
    description: str  # one line, shown by `stabcli presets`
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def with_overrides(self, **overrides: Any) -> Preset:
        """A copy with fields replaced by name (e.g. ``steps``, ``lr``, ``data_path``).

        Raises StabcliError for an unknown key or a value of the wrong type.
        """
        changes: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        owner = {f.name: s for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
        for key, value in overrides.items():
            if key not in owner:
                known = ", ".join(sorted(owner))
                raise StabcliError(f"unknown override {key!r}; known: {known}")
            section = owner[key]
            changes[section][key] = check_type(SECTIONS[section], key, value, f"override {key}")
        new = dataclasses.replace(
            self, **{s: dataclasses.replace(getattr(self, s), **c) for s, c in changes.items()}
        )
        validate(new)
        return new

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain JSON types (fingerprints runs; saved in config.json)."""
        table = dataclasses.asdict(self)
        table["model"]["python_path"] = list(self.model.python_path)
        if not self.model.qk_norm:  # runs made before qk_norm existed keep their fingerprint
            del table["model"]["qk_norm"]
        return table


def _expected(cls: type, key: str) -> Any:
    return typing.get_type_hints(cls)[key]


def check_type(cls: type, key: str, value: Any, where: str) -> Any:
    """Return ``value`` coerced to the annotated type of ``cls.key`` or raise naming ``where``."""
    hint = _expected(cls, key)
    optional = isinstance(hint, types.UnionType) and type(None) in hint.__args__
    if optional:
        if value is None:
            return None
        hint = next(a for a in hint.__args__ if a is not type(None))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    origin = typing.get_origin(hint)
    if origin is dict and isinstance(value, dict):
        return dict(value)
    strings = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if origin is tuple and strings:
        return tuple(value)
    if origin is not None:
        raise StabcliError(f"{where}: expected {hint}, got {type(value).__name__} {value!r}")
    raise StabcliError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")


#: Upper bounds of sizes, checked before anything is allocated: generous for the paper's
#: experiments (nanoGPT 6x6x384, 3000 steps), small enough that a typo cannot hang or
#: exhaust memory. The memory a probe needs is estimated separately from the preset
#: (:func:`stabcli.probe.device.check_memory`).
LIMITS = {
    "n_layer": 1_000,
    "n_embd": 65_536,
    "block_size": 65_536,
    "corpus_chars": 10_000_000,  # generating ~2 s per million characters
    "n_samples": 10_000_000,
    "n_features": 65_536,
    "n_classes": 65_536,
    "data_values": 100_000_000,  # n_samples x n_features: 800 MB of float64
    "steps": 1_000_000,
    "batch_size": 1_000_000,
    "eval_batches": 100_000,
    "image_size": 1_024,
    "k": MAX_K,  # k-Adam levels, as `stabcli check --k`
}


def _within(name: str, low: int = 1) -> str:
    return f"in [{low}, {LIMITS[name]:,}]"


def _short(value: Any) -> str:
    """repr of a value, shortened: a 400-digit number need not be printed whole."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def validate(preset: Preset) -> None:
    """Check choices and ranges; raise StabcliError naming the first bad key."""
    for section in SECTIONS:
        cfg = getattr(preset, section)
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name in CHOICES and value not in CHOICES[f.name]:
                allowed = ", ".join(CHOICES[f.name])
                raise StabcliError(
                    f"{preset.name}: {section}.{f.name} = {value!r}; allowed: {allowed}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise StabcliError(f"{preset.name}: {section}.{f.name} must be finite")
    m, d, t = preset.model, preset.data, preset.train
    rules = [
        ("model.n_layer", 1 <= m.n_layer <= LIMITS["n_layer"], _within("n_layer")),
        ("model.n_embd", 1 <= m.n_embd <= LIMITS["n_embd"], _within("n_embd")),
        ("model.n_head", m.n_head >= 1 and m.n_embd % m.n_head == 0, "a divisor of n_embd"),
        ("model.block_size", 1 <= m.block_size <= LIMITS["block_size"], _within("block_size")),
        ("model.dropout", 0.0 <= m.dropout < 1.0, "in [0, 1)"),
        ("model.attn_dropout", m.attn_dropout is None or 0.0 <= m.attn_dropout < 1.0, "in [0, 1)"),
        ("model.init_std", m.init_std > 0, "> 0"),
        ("model.qk_norm", not m.qk_norm or m.kind == "gpt", "false unless model.kind = 'gpt'"),
        ("data.corpus_seed", 0 <= d.corpus_seed < 2**64, "in [0, 2**64)"),
        (
            "data.corpus_chars",
            1000 <= d.corpus_chars <= LIMITS["corpus_chars"],
            _within("corpus_chars", 1000),
        ),
        ("data.n_samples", 10 <= d.n_samples <= LIMITS["n_samples"], _within("n_samples", 10)),
        ("data.n_features", 1 <= d.n_features <= LIMITS["n_features"], _within("n_features")),
        ("data.n_classes", 2 <= d.n_classes <= LIMITS["n_classes"], _within("n_classes", 2)),
        (
            "data.n_samples",
            d.n_samples * d.n_features <= LIMITS["data_values"],
            f"such that n_samples x n_features <= {LIMITS['data_values']:,}",
        ),
        ("data.train_fraction", 0.0 < d.train_fraction < 1.0, "in (0, 1)"),
        ("train.steps", 1 <= t.steps <= LIMITS["steps"], _within("steps")),
        ("train.batch_size", 1 <= t.batch_size <= LIMITS["batch_size"], _within("batch_size")),
        ("train.lr", t.lr > 0, "> 0"),
        ("train.warmup_steps", 0 <= t.warmup_steps < t.steps, "in [0, steps)"),
        ("train.min_lr", 0 <= t.min_lr <= t.lr, "in [0, lr]"),
        ("train.weight_decay", t.weight_decay >= 0, ">= 0"),
        ("train.eps", t.eps >= 0, ">= 0"),
        ("train.seed", 0 <= t.seed < 2**64, "in [0, 2**64) (torch's seeds are 64-bit)"),
        ("train.eval_every", t.eval_every >= 0, ">= 0"),
        (
            "train.eval_batches",
            0 <= t.eval_batches <= LIMITS["eval_batches"],
            _within("eval_batches", 0),
        ),
        ("train.eval_batches", t.eval_every == 0 or t.eval_batches >= 1, ">= 1 with eval_every"),
        ("data.image_size", 4 <= d.image_size <= LIMITS["image_size"], _within("image_size", 4)),
        ("train.k", 1 <= t.k <= LIMITS["k"], _within("k")),
        ("train.hyper_lr", t.hyper_lr is None or t.hyper_lr >= 0, ">= 0"),
    ]
    for key, ok, expected in rules:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(preset, section), name)
            raise StabcliError(f"{preset.name}: {key} = {_short(value)}; must be {expected}")
    if d.data_path is not None and m.kind == "factory":
        raise SettingError(
            "{data_path} is set, but preset {name} has a factory model ({factory}), which "
            "makes its own batches",
            name=preset.name,
            factory=m.factory,
        )
    if d.data_path is not None and d.source not in ("tiny-shakespeare", "cifar10"):
        raise SettingError(
            "{data_path} is set, but preset {name} generates its data (data.source = "
            "{source}) and reads no file",
            name=preset.name,
            source=d.source,
        )
    _check_model_data(preset)
    _check_optimizer(preset)


#: Which data each built-in model kind trains on (a factory brings its own).
MODEL_DATA = {
    "gpt": ("synthetic-text", "tiny-shakespeare"),
    "mlp": ("synthetic-classes",),
    "cnn": ("synthetic-images", "cifar10"),
}
#: "package.module:function", the form of model.factory.
FACTORY_FORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _check_model_data(preset: Preset) -> None:
    m, d = preset.model, preset.data
    if m.kind == "factory" or m.factory is not None:
        if m.kind != "factory" or m.factory is None:
            raise StabcliError(
                f"{preset.name}: a factory model needs both model.kind = 'factory' and "
                "model.factory = 'package.module:function'"
            )
        if not FACTORY_FORM.match(m.factory):
            raise StabcliError(
                f"{preset.name}: model.factory = {m.factory!r}; must look like "
                "'package.module:function'"
            )
        return
    if m.kwargs or m.python_path:
        raise StabcliError(f"{preset.name}: model.kwargs and model.python_path need a factory")
    if d.source not in MODEL_DATA[m.kind]:
        allowed = " or ".join(repr(s) for s in MODEL_DATA[m.kind])
        raise StabcliError(f"{preset.name}: model.kind {m.kind!r} needs data.source {allowed}")


def _check_optimizer(preset: Preset) -> None:
    t = preset.train
    if t.optimizer != "kadam" and t.k != 1:
        raise StabcliError(f"{preset.name}: train.k = {t.k} needs train.optimizer = 'kadam'")
    if t.hyper_lr is not None and t.optimizer not in ("hyperadam", "mada"):
        raise StabcliError(
            f"{preset.name}: train.hyper_lr needs train.optimizer = 'hyperadam' or 'mada'"
        )
    if t.optimizer in ("hyperadam", "mada") and t.eps_placement != "torch":
        # their kernels (stabcli.optim) add ε after the square root, as torch.optim.Adam
        raise StabcliError(
            f"{preset.name}: train.optimizer = {t.optimizer!r} needs train.eps_placement = 'torch'"
        )
