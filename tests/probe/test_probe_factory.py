"""Factory presets: a user's torch.nn.Module probed by the engine (stabcli.probe.factory).

Two formulations of the same probe are compared in float64 with explicit tolerances: the
vmapped factory path against one point at a time, and a factory wrapping the built-in
MLP against the native engine. Every way a factory can be wrong is a one-line error that
names it. The factories used here are defined in this file (imported by the engine from
this directory, as a preset's python_path would) or written to a temporary directory.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabcli.errors import SettingError, StabcliError
from stabcli.probe import ProbeResult, load_preset, resolve_setup, run_probes
from stabcli.probe.backend import ModelBackend, build_model, init_flat, unflatten
from stabcli.probe.config import ModelConfig, Preset, TrainConfig
from stabcli.probe.data import BatchStream, load_dataset
from stabcli.probe.factory import force_sequential
from stabcli.probe.models import param_specs

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
POINTS = [(0.999, 0.9), (0.95, 0.99), (0.6, 0.8)]  # (β, γ): B+, B− near (1, 1), far from it
RTOL = 1e-9  # float64: two formulations of the same arithmetic


def factory_preset(
    factory: str,
    python_path: Path = HERE,
    kwargs: dict[str, Any] | None = None,
    **train: Any,
) -> Preset:
    settings = {"steps": 30, "dtype": "float64", "seed": 0, **train}
    return Preset(
        name="test-factory",
        description="",
        model=ModelConfig(
            kind="factory", factory=factory, kwargs=kwargs or {}, python_path=(str(python_path),)
        ),
        train=TrainConfig(**settings),
    )


def backend_of(preset: Preset) -> ModelBackend:
    return build_model(preset, resolve_setup(preset, "cpu").dataset())


def assert_same_records(a: ProbeResult, b: ProbeResult) -> None:
    """Per-step max-update, loss and argmax tensor, and test losses, agree to RTOL.

    The tensor holding the max is compared from step 1: at step 0 every parameter with a
    nonzero gradient has |u_0| = 1 (m_0/sqrt(v_0) = g/|g|), a tie that rounding breaks.
    """
    ta, tb = (r.traces.sort_values(["point", "step"]) for r in (a, b))
    np.testing.assert_allclose(ta.max_update.to_numpy(), tb.max_update.to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(ta.loss.to_numpy(), tb.loss.to_numpy(), rtol=RTOL)
    later = (ta.step > 0).to_numpy()
    assert ta.max_tensor[later].tolist() == tb.max_tensor[later].tolist()
    ea, eb = (r.evals.sort_values(["point", "step"]) for r in (a, b))
    assert len(ea) == len(eb)
    np.testing.assert_allclose(ea.test_loss.to_numpy(), eb.test_loss.to_numpy(), rtol=RTOL)


def assert_points_differ(result: ProbeResult) -> None:
    """The comparison can fail: different (β, γ) really train differently."""
    tr = result.traces
    first, second = (tr[tr.point == i].max_update.to_numpy() for i in (0, 1))
    assert np.max(np.abs(first / second - 1)) > 1e-3


# --- factories (imported by the engine as "test_probe_factory:<name>") ---------------------


class NativeLinear(nn.Module):
    """x @ W + b with W stored (C_in, C_out), as the native engine stores it."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c_in, c_out))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class FactoryMLP(nn.Module):
    """The built-in MLP's architecture (GELU hidden layers, linear output) in torch.nn."""

    def __init__(self, widths: list[int], layout: str):
        super().__init__()
        linear = NativeLinear if layout == "native" else nn.Linear
        self.fc = nn.ModuleList(linear(a, b) for a, b in itertools.pairwise(widths[:-1]))
        self.out = linear(widths[-2], widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, K)
        for layer in self.fc:
            x = F.gelu(layer(x))
        return self.out(x)


def native_mlp_preset(seed: int, steps: int, eval_every: int) -> Preset:
    return load_preset("mlp-synthetic").with_overrides(
        dtype="float64", steps=steps, seed=seed, eval_every=eval_every, eval_batches=2
    )


def native_mlp(seed: int, layout: str, steps: int, eval_every: int) -> tuple[Any, ...]:
    """The built-in MLP of mlp-synthetic as a factory: its initial weights (init_flat) and
    its batches (BatchStream), in a torch.nn.Module (``layout``: "native" (C_in, C_out)
    weights, or "linear": nn.Linear's (C_out, C_in), transposed)."""
    native = native_mlp_preset(seed, steps, eval_every)
    data = load_dataset(native)
    specs = param_specs(native.model, data.n_in, data.n_out)
    initial = unflatten(init_flat(specs, seed, torch.float64)[None], specs)  # (1, *shape)
    widths = [data.n_in] + [native.model.n_embd] * native.model.n_layer + [data.n_out]
    model = FactoryMLP(widths, layout).double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            value = initial[name][0]
            param.copy_(value.T if layout == "linear" and value.dim() == 2 else value)
    stream = BatchStream(data, native, torch.device("cpu"), torch.float64)

    def batches(step: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        return stream.train_batch(step) if split == "train" else stream.test_batch(step)

    return model, batches, F.cross_entropy


class Guarded(nn.Module):
    """A tanh MLP whose forward may check its activations in Python: data-dependent
    control flow, which torch.func.vmap refuses."""

    def __init__(self, guard: bool):
        super().__init__()
        self.guard = guard
        self.hidden = nn.Linear(6, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.hidden(x))
        if self.guard and h.abs().max() > 1e6:  # never true; its test needs a real bool
            raise RuntimeError("activations exploded")
        return self.out(h)


def guarded(seed: int, guard: bool) -> tuple[Any, ...]:
    def batches(step: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(2 * step + (split == "test"))
        return torch.randn(12, 6, generator=gen), torch.randint(4, (12,), generator=gen)

    return Guarded(guard), batches, F.cross_entropy


class TwoInputs(nn.Module):
    """model(features, mask): inputs as a tuple; targets as a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(features)) * mask)  # (B, 3)


def two_inputs(seed: int) -> tuple[Any, ...]:
    def batches(step: int, split: str = "train") -> tuple[Any, Any]:
        gen = torch.Generator().manual_seed(2 * step + (split == "test"))
        features, mask = torch.randn(10, 5, generator=gen), torch.rand(10, 8, generator=gen)
        target = {
            "label": torch.randint(3, (10,), generator=gen),
            "weight": torch.rand(10, generator=gen),
        }
        return (features, mask > 0.2), target

    def loss_fn(logits: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        each = F.cross_entropy(logits, target["label"], reduction="none")  # (B,)
        return (each * target["weight"]).mean()

    return TwoInputs(), batches, loss_fn


class Frozen(nn.Module):
    """A frozen random projection, tied input/output weights and a trained head."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(6, 8)
        self.project.requires_grad_(False)
        self.embed = nn.Linear(8, 8, bias=False)
        self.unembed = nn.Linear(8, 8, bias=False)
        self.unembed.weight = self.embed.weight  # tied: one tensor
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.unembed(torch.tanh(self.embed(self.project(x))))))


def frozen(seed: int) -> tuple[Any, ...]:
    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(step)
        return torch.randn(10, 6, generator=gen), torch.randint(3, (10,), generator=gen)

    return Frozen(), batches, F.cross_entropy


# --- vmapped against one point at a time ----------------------------------------------------

EQUIVALENCE = {
    "cnn-batchnorm-dropout": ("small_cnn:build", EXAMPLES, {"width": 4, "dropout": 0.2}),
    "transformer-causal-mask": ("tiny_transformer:build", EXAMPLES, {"width": 16}),
    "mlp-nn-linear": ("test_probe_factory:native_mlp", HERE, {"layout": "linear"}),
    "tuple-inputs-dict-targets": ("test_probe_factory:two_inputs", HERE, {}),
}


@pytest.mark.parametrize("case", list(EQUIVALENCE), ids=list(EQUIVALENCE))
def test_vmapped_factory_matches_one_point_at_a_time(case: str) -> None:
    factory, where, kwargs = EQUIVALENCE[case]
    if case.startswith("mlp"):
        kwargs = {**kwargs, "steps": 30, "eval_every": 10}
    preset = factory_preset(factory, where, kwargs, eval_every=10, eval_batches=2)
    assert backend_of(preset).batching == "vmap"
    vmapped = run_probes(preset, POINTS, device="cpu")
    with force_sequential():
        assert backend_of(preset).batching == "sequential"
        one_by_one = run_probes(preset, POINTS, device="cpu")
    assert vmapped.summary.diverged_step.isna().all()
    assert len(vmapped.evals) == len(POINTS) * 4  # steps 0, 10, 20, 30
    assert_same_records(vmapped, one_by_one)
    assert_points_differ(vmapped)


@pytest.mark.parametrize("layout", ["native", "linear"])
def test_factory_wrapping_the_builtin_mlp_matches_the_native_engine(layout: str) -> None:
    steps, eval_every = 40, 10
    kwargs = {"layout": layout, "steps": steps, "eval_every": eval_every}
    preset = factory_preset(
        "test_probe_factory:native_mlp", kwargs=kwargs, steps=steps, eval_every=eval_every,
        eval_batches=2, seed=3,
    )  # fmt: skip
    factory = run_probes(preset, POINTS, device="cpu")
    native = run_probes(native_mlp_preset(3, steps, eval_every), POINTS, device="cpu")
    assert_same_records(factory, native)
    assert_points_differ(factory)


def test_a_model_vmap_refuses_runs_one_point_at_a_time() -> None:
    """Data-dependent control flow fails under vmap at set-up; the fallback trains the
    same thing as the vmapped twin without the check."""
    checked = factory_preset("test_probe_factory:guarded", kwargs={"guard": True}, eval_every=10,
                             eval_batches=1)  # fmt: skip
    twin = factory_preset("test_probe_factory:guarded", kwargs={"guard": False}, eval_every=10,
                          eval_batches=1)  # fmt: skip
    model = backend_of(checked)
    assert model.batching == "sequential"
    assert "vmap failed at set-up" in model.batching_reason
    assert "data-dependent control flow" in model.batching_reason
    assert backend_of(twin).batching == "vmap" and backend_of(twin).batching_reason == ""
    assert_same_records(
        run_probes(checked, POINTS, device="cpu"), run_probes(twin, POINTS, device="cpu")
    )


def test_points_share_every_dropout_mask() -> None:
    """The same (β, γ) twice trains identically: one mask per step for all points (it
    would differ with a mask per point), on both paths."""
    preset = factory_preset("small_cnn:build", EXAMPLES, {"width": 4, "dropout": 0.5})
    for forced in (False, True):
        with force_sequential() if forced else contextlib.nullcontext():
            result = run_probes(preset, [(0.95, 0.9), (0.95, 0.9), (0.99, 0.9)], device="cpu")
        tr = result.traces
        a, b, c = (tr[tr.point == i].loss.to_numpy() for i in range(3))
        np.testing.assert_array_equal(a, b)
        assert np.max(np.abs(a / c - 1)) > 1e-4


@pytest.mark.parametrize("forced", [False, True], ids=["vmap", "sequential"])
def test_evaluations_run_the_module_in_eval_mode(
    forced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test loss at step 0 is the module as built, in eval() mode (BatchNorm's initial
    running statistics, no dropout), averaged over batches(k, split="test"): computed here
    with plain torch."""
    kwargs = {"width": 4, "dropout": 0.5}
    preset = factory_preset("small_cnn:build", EXAMPLES, kwargs, steps=3, eval_every=3,
                            eval_batches=2)  # fmt: skip
    with force_sequential() if forced else contextlib.nullcontext():
        evals = run_probes(preset, POINTS[:2], device="cpu").evals
    monkeypatch.syspath_prepend(str(EXAMPLES))
    model, batches, loss_fn = importlib.import_module("small_cnn").build(seed=0, **kwargs)
    model.double().eval()
    with torch.no_grad():
        losses = [
            loss_fn(model(x.double()), y) for x, y in (batches(k, split="test") for k in range(2))
        ]
    expected = float(sum(losses)) / 2
    at_start = evals[evals.step == 0].test_loss.to_numpy()
    np.testing.assert_allclose(at_start, [expected, expected], rtol=RTOL)


def test_dropout_layout_under_vmap_is_reported() -> None:
    """nn.TransformerEncoderLayer's feed-forward dropout draws its masks in memory order,
    which vmap lays out differently: vmap still runs (masks shared), and says so."""
    model = backend_of(factory_preset("tiny_transformer:build", EXAMPLES, {"dropout": 0.1}))
    assert model.batching == "vmap"
    assert "random draws" in model.batching_reason


# --- the module's own parameters ------------------------------------------------------------


def test_parameters_are_the_modules_own_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    preset = factory_preset("tiny_transformer:build", EXAMPLES, {"layers": 2}, steps=5)
    model = backend_of(preset)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    built = importlib.import_module("tiny_transformer").build(seed=0, layers=2)[0]
    own = {n: p for n, p in built.named_parameters()}
    assert [s.name for s in model.specs] == list(own)
    assert "encoder.layers.1.norm2.weight" in own
    assert [s.shape for s in model.specs] == [tuple(p.shape) for p in own.values()]
    flat = torch.cat([p.detach().reshape(-1).double() for p in own.values()])
    torch.testing.assert_close(model.initial(), flat, rtol=0, atol=0)
    result = run_probes(preset, POINTS[:1], device="cpu")
    assert set(result.traces.max_tensor) <= set(own)


def test_frozen_parameters_stay_out_and_tied_weights_count_once() -> None:
    preset = factory_preset("test_probe_factory:frozen", steps=5)
    names = [s.name for s in backend_of(preset).specs]
    assert names == ["embed.weight", "head.weight", "head.bias"]
    run_probes(preset, POINTS[:2], device="cpu")  # trains with the frozen projection


# --- identity and import path -----------------------------------------------------------------

MODULE = """
import torch
import torch.nn.functional as F
from torch import nn


def data(step, split="train"):
    gen = torch.Generator().manual_seed(2 * step + (split == "test"))
    return torch.randn(8, 4, generator=gen), torch.randint(3, (8,), generator=gen)


def build(seed, width=3):
    return nn.Linear(4, width), data, F.cross_entropy
"""


def write_module(directory: Path, name: str, source: str = MODULE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_data_identity_is_the_factorys_content(tmp_path: Path) -> None:
    write_module(tmp_path / "a", "ident_same")
    write_module(tmp_path / "b", "ident_same")

    def sha(where: Path, **kwargs: Any) -> str:
        return resolve_setup(factory_preset("ident_same:build", where, kwargs), "cpu").data.sha256

    first = sha(tmp_path / "a")
    assert (
        resolve_setup(factory_preset("ident_same:build", tmp_path / "a"), "cpu").data.source
        == "factory"
    )
    assert sha(tmp_path / "b") == first  # same source elsewhere: same identity
    assert sha(tmp_path / "a", width=3) != first  # kwargs enter the identity
    write_module(tmp_path / "a", "ident_same", MODULE.replace("width=3", "width=5"))
    changed = sha(tmp_path / "a")
    assert changed != first
    model = backend_of(factory_preset("ident_same:build", tmp_path / "a"))
    assert model.specs[0].shape == (5, 4)  # the edited module was imported afresh


def test_python_path_is_relative_to_the_preset_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path / "lib", "relpath_model")
    preset_file = tmp_path / "presets" / "mine.toml"
    preset_file.parent.mkdir()
    preset_file.write_text(
        '[model]\nkind = "factory"\nfactory = "relpath_model:build"\n'
        'python_path = ["../lib"]\n[train]\nsteps = 5\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path / "presets")
    preset = load_preset("mine.toml")
    assert preset.model.python_path == (str((tmp_path / "lib").resolve()),)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert len(run_probes(preset, POINTS[:1], device="cpu").traces) == 5


def test_factory_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, "cwd_model")
    monkeypatch.chdir(tmp_path)
    model = ModelConfig(kind="factory", factory="cwd_model:build")
    preset = Preset("cwd", "", model=model, train=TrainConfig(steps=5))
    assert backend_of(preset).n_params == 4 * 3 + 3


def test_data_is_refused_with_a_factory_preset() -> None:
    preset = factory_preset("small_cnn:build", EXAMPLES)
    with pytest.raises(SettingError) as err:
        preset.with_overrides(data_path="/tmp/input.txt")
    assert err.value.settings == ("data_path",)


# --- every failure mode: one line that names the factory ------------------------------------

HEADER = """
import torch
import torch.nn.functional as F
from torch import nn

ce = F.cross_entropy


def lin():
    return nn.Linear(4, 3)


def data(step, split="train"):
    gen = torch.Generator().manual_seed(2 * step + (split == "test"))
    return torch.randn(8, 4, generator=gen), torch.randint(3, (8,), generator=gen)


def late(step):  # (8, 5) inputs from step 3: the model cannot take them
    x, y = data(step)
    return (x, y) if step < 3 else (torch.randn(8, 5), y)
"""


def returning(expression: str) -> str:
    """A factory whose body returns ``expression``."""
    return f"def build(seed):\n    return {expression}\n"


#: id: (module source after HEADER, preset.train changes, expected message fragment)
FAILURES: dict[str, tuple[str, dict[str, Any], str]] = {
    "module-missing": ("", {}, r"cannot be imported: no module named 'fail_module_missing_x'"),
    "import-raises": (
        "raise RuntimeError('no GPU here')\n",
        {},
        r"cannot be imported: RuntimeError: no GPU here",
    ),
    "syntax-error": ("def build(seed:\n", {}, r"cannot be imported: SyntaxError"),
    "function-missing": ("def other(seed): pass\n", {}, r"not found: module '\w+' has no 'build'"),
    "not-callable": ("build = 3\n", {}, r"is a int, not a function"),
    "no-seed-keyword": (
        "def build():\n    pass\n",
        {},
        r"cannot take the keyword arguments \['seed'\]",
    ),
    "raises": (
        "def build(seed):\n    raise ValueError('width must be even\\nsee the docs')\n",
        {},
        r"raised ValueError: width must be even$",
    ),
    "two-values": (
        returning("lin(), data"),
        {},
        r"returned 2 values; expected \(model, batches, loss_fn\)$",
    ),
    "not-a-tuple": (returning("lin()"), {}, r"returned a Linear; expected \(model, batches"),
    "model-not-module": (
        returning("'mlp', data, ce"),
        {},
        r"returned a str as model; expected a torch.nn.Module",
    ),
    "no-parameters": (returning("nn.ReLU(), data, ce"), {}, r"without trainable parameters"),
    "batches-not-callable": (
        returning("lin(), [1, 2], ce"),
        {},
        r"returned a list as batches; expected a function",
    ),
    "loss-not-callable": (
        returning("lin(), data, 'ce'"),
        {},
        r"returned a str as loss_fn; expected a function",
    ),
    "batches-raise": (
        returning("lin(), lambda step: [][step], ce"),
        {},
        r"batches\(0\) raised IndexError: list index out of range",
    ),
    "batches-three-values": (
        returning("lin(), lambda step: (*data(step), 1), ce"),
        {},
        r"batches\(0\) returned 3 values; expected \(inputs, targets\)",
    ),
    "batches-not-tensors": (
        returning("lin(), lambda step: ('x', data(step)[1]), ce"),
        {},
        r"batches\(0\) returned inputs that are not tensors",
    ),
    "batches-number-inputs": (
        returning("lin(), lambda step: (3, data(step)[1]), ce"),
        {},
        r"batches\(0\) returned inputs that are not tensors",
    ),
    "batches-random": (
        returning("lin(), lambda step: (torch.randn(8, 4), data(step)[1]), ce"),
        {},
        r"batches\(0\) returned different tensors on two calls",
    ),
    "no-test-split": (
        returning("lin(), lambda step: data(step), ce"),
        {"eval_every": 5, "eval_batches": 1},
        r"batches\(0, split='test'\) raised TypeError",
    ),
    "model-raises": (
        returning("nn.Linear(5, 3), data, ce"),
        {},
        r": its model raised RuntimeError: .* on a train batch",
    ),
    "loss-raises": (
        returning("lin(), data, lambda out, y: ce(out, y[:2])"),
        {},
        r": its loss_fn raised ValueError",
    ),
    "loss-not-scalar": (
        returning("lin(), data, lambda out, y: ce(out, y, reduction='none')"),
        {},
        r"returned a tensor of shape \(8,\); expected a scalar \(0-dim\) tensor",
    ),
    "loss-not-tensor": (
        returning("lin(), data, lambda out, y: 1.0"),
        {},
        r"its loss_fn returned a float; expected a scalar tensor",
    ),
    "loss-detached": (
        returning("lin(), data, lambda out, y: ce(out.detach(), y)"),
        {},
        r"its loss_fn's result does not depend on the model's parameters",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES), ids=list(FAILURES))
def test_every_factory_failure_is_one_line_naming_it(case: str, tmp_path: Path) -> None:
    source, train, expected = FAILURES[case]
    module = "fail_" + case.replace("-", "_")
    if case != "module-missing":
        write_module(tmp_path, module, HEADER + source)
    name = f"{module}_x:build" if case == "module-missing" else f"{module}:build"
    with pytest.raises(StabcliError) as err:
        resolve_setup(factory_preset(name, tmp_path, **train), "cpu")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"factory {name!r}")
    assert re.search(expected, message), message


LATER = {
    "batches-fail-at-step-3": (
        returning("lin(), lambda step: data(step) if step < 3 else {}['x'], ce"),
        r"batches\(3\) raised KeyError: 'x'",
    ),
    "model-fails-at-step-3": (
        returning("lin(), late, ce"),
        r": its model raised RuntimeError: .* at step 3",
    ),
}


@pytest.mark.parametrize("case", list(LATER), ids=list(LATER))
def test_a_factory_failing_later_names_it_and_the_step(case: str, tmp_path: Path) -> None:
    source, expected = LATER[case]
    module = "later_" + case.replace("-", "_")
    write_module(tmp_path, module, HEADER + source)
    preset = factory_preset(f"{module}:build", tmp_path, steps=6)
    with pytest.raises(StabcliError) as err:
        run_probes(preset, POINTS[:2], device="cpu")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"factory '{module}:build'")
    assert re.search(expected, message), message
