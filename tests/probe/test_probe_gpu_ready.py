"""The engine's accelerator paths, checked on a machine without one.

No GPU is needed to catch most of what would break on CUDA:

- **device placement**: the ``meta`` device computes shapes and dtypes only, and, like CUDA,
  refuses to mix its tensors with CPU tensors that are not 0-dim ("Tensor on device cpu is
  not on the expected device meta"). Every model's forward and backward, every stacked
  optimizer's step and the device records run there, so a tensor created without
  ``device=`` (``torch.zeros``, ``torch.arange``, ``torch.tensor``) raises here as it would
  on CUDA. Attention takes the fused kernel there, as on CUDA (``fused_attention`` keeps the
  explicit form for the CPU only).
- **bfloat16 autocast** (``train.dtype = "bfloat16"``): the engine asks for CUDA autocast; here
  the same step loop runs under CPU autocast to bfloat16 (``torch.autocast("cpu")`` casts
  the batched products ``bmm``, ``baddbmm`` and the convolutions, as CUDA's does), so dtype
  mismatches between bfloat16 activations and float32 parameters, state and records raise.
  Its losses must agree with the float32 run to bfloat16's rounding.
- **CUDA-only branches** (device resolution, free memory from ``torch.cuda.mem_get_info``,
  points per batch) run with ``torch.cuda`` answering as one GPU would.

Tests that need a real GPU run only where ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stabcli.errors import StabcliError
from stabcli.probe import engine as engine_module
from stabcli.probe import load_preset, run_batch, run_probes
from stabcli.probe import setup as probe_setup
from stabcli.probe.backend import SharedDropout, build_model, unflatten
from stabcli.probe.config import Preset
from stabcli.probe.data import BatchStream
from stabcli.probe.device import (
    auto_points_per_batch,
    check_memory,
    resolve_device,
    resolve_dtype,
)
from stabcli.probe.engine import check_points
from stabcli.probe.optim import lr_table, make_optimizer
from stabcli.probe.records import Records
from stabcli.probe.setup import resolve_setup

torch.set_num_threads(1)

META = torch.device("meta")
#: bfloat16 keeps 8 significant bits: one rounding is a relative 2^-9, and a loss passes
#: through a few dozen of them (products, their sums in float32, the softmax's input)
BF16_RTOL = 2e-2

SMALL: dict[
    str, dict[str, object]
] = {  # models shrunk so that a few steps take well under a second
    "tiny-char": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "batch_size": 4},
    "mlp-synthetic": {},
    "cnn-synthetic": {"n_layer": 2, "n_embd": 4, "batch_size": 8, "warmup_steps": 0},
}
#: id: (preset, overrides); every model kind, every optimizer, both weight decays, and
#: per-point λ (a (P, 1) tensor operand instead of a float)
CASES: dict[str, tuple[str, dict[str, object]]] = {
    "gpt-adam": ("tiny-char", {}),
    "gpt-qknorm-adamw": (
        "tiny-char",
        {"qk_norm": True, "weight_decay_mode": "decoupled", "weight_decay": 0.1},
    ),
    "mlp-kadam-coupled": (
        "mlp-synthetic",
        {"optimizer": "kadam", "k": 2, "weight_decay_mode": "coupled", "weight_decay": 0.01},
    ),
    "mlp-hyperadam": ("mlp-synthetic", {"optimizer": "hyperadam"}),
    "mlp-mada-coupled": (
        "mlp-synthetic",
        {"optimizer": "mada", "weight_decay_mode": "coupled", "weight_decay": 0.01},
    ),
    "mlp-mada-decoupled": (
        "mlp-synthetic",
        {"optimizer": "mada", "weight_decay_mode": "decoupled", "weight_decay": 0.1},
    ),
    "cnn-adam": ("cnn-synthetic", {}),
}
POINTS = [(0.999, 0.9), (0.95, 0.99), (0.9, 0.6)]  # (β, γ): torch betas (γ, β)


def _preset(case: str, steps: int = 4, **more: object) -> Preset:
    name, overrides = CASES[case]
    settings: dict[str, object] = {"steps": steps, "eval_every": 0, "eval_batches": 0}
    settings |= SMALL[name] | overrides
    return load_preset(name).with_overrides(**{**settings, **more})


# ------------------------------------------------------------------ placement (meta device)


def test_meta_refuses_cpu_tensors_as_cuda_does() -> None:
    """The emulation can fail: a CPU tensor (not 0-dim) mixed into a meta computation
    raises, in an elementwise op, in an in-place op and in ``torch.where``."""
    x = torch.zeros(3, device=META)
    with pytest.raises(RuntimeError, match="device"):
        _ = x + torch.ones(3)
    with pytest.raises(RuntimeError, match="device"):
        x.addcmul_(torch.ones(3), torch.ones(3))
    with pytest.raises(RuntimeError, match="device"):
        torch.where(torch.ones(3, dtype=torch.bool, device=META), x, torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_forward_backward_and_stacked_steps_stay_on_the_device(
    case: str, dtype: torch.dtype
) -> None:
    """Model loss (training and evaluation), backward, three optimizer steps and the device
    records, all on the meta device: every tensor they make is on the parameters' device
    and has the dtype the engine reads back."""
    preset = _preset(case, steps=3, eval_batches=1)
    weight_decay = preset.train.weight_decay
    points = [
        engine_module.ProbePoint(b, g, weight_decay=weight_decay * (1 + i))  # λ per point
        for i, (b, g) in enumerate(POINTS)
    ]
    hypers = check_points(points, preset.train)
    setup = resolve_setup(preset, "cpu")
    data = setup.dataset()
    model = build_model(preset, data)
    stream = BatchStream(data, preset, META, dtype)
    x, y = stream.train_batch(0)
    assert x.device == META and y.device == META
    theta0 = model.initial().to(device=META, dtype=dtype)  # (N,)
    flat = theta0.expand(len(points), -1).clone().requires_grad_(True)  # (P, N)

    losses = model.loss(unflatten(flat, model.specs), x, y, SharedDropout(0.0, None))
    assert (losses.device, losses.dtype, losses.shape) == (META, dtype, (len(points),))
    losses.sum().backward()
    assert flat.grad is not None and flat.grad.device == META and flat.grad.dtype == dtype
    with torch.no_grad():
        tx, ty = stream.test_batch(0)
        params = unflatten(flat, model.specs)
        if model.evaluate is not None:
            test_loss, accuracy = model.evaluate(params, tx, ty)
            assert accuracy.device == META
        else:
            test_loss = model.loss(params, tx, ty, SharedDropout(0.0, None))
        assert test_loss.device == META

    lr = lr_table(preset.train, hypers.beta, hypers.gamma, hypers.lr)  # (S, P) host
    opt = make_optimizer(preset.train, flat, hypers, lr)
    rec = Records.allocate(3, len(points), dtype, META, lr=lr, eval_every=0, columns=opt.columns)
    alive = torch.ones(len(points), dtype=torch.bool, device=META)
    for n in range(3):
        st = opt.step(n, flat, flat.grad, losses.detach(), alive)
        kinds = {
            "max_update": (st.max_update, dtype),
            "argmax": (st.argmax, torch.int64),
            "alive": (st.alive, torch.bool),
            "underflow": (st.underflow, torch.bool),
        }
        if st.wd_term is not None:
            kinds["wd_term"] = (st.wd_term, dtype)
        if st.extra is not None:
            kinds["extra"] = (st.extra, dtype)
        for name, (tensor, want) in kinds.items():
            assert (name, tensor.device, tensor.dtype) == (name, META, want)
        rec.store_step(
            n, alive, st.alive, st.max_update, st.argmax, losses, st.wd_term, st.underflow, st.extra
        )
        alive = st.alive
    assert flat.device == META and flat.dtype == dtype


# ------------------------------------------------------------------ bfloat16 autocast


@contextlib.contextmanager
def _cpu_autocast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine's bfloat16 path on the CPU: ``resolve_dtype`` lets bfloat16 through on any
    device (float32 parameters, autocast on), and the forward runs under CPU autocast."""

    def dtype_anywhere(preset: Preset, device: torch.device) -> tuple[torch.dtype, bool]:
        if preset.train.dtype == "bfloat16":
            return torch.float32, True
        return resolve_dtype(preset, device)

    def amp(self: engine_module.TrainingLoss) -> contextlib.AbstractContextManager[object]:
        if self.autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    monkeypatch.setattr(engine_module, "resolve_dtype", dtype_anywhere)
    monkeypatch.setattr(probe_setup, "resolve_dtype", dtype_anywhere)
    monkeypatch.setattr(engine_module.TrainingLoss, "amp", amp)
    yield


AMP_CASES = [
    "gpt-adam",
    "gpt-qknorm-adamw",
    "mlp-kadam-coupled",
    "mlp-hyperadam",
    "mlp-mada-coupled",
    "cnn-adam",
]


@pytest.mark.parametrize("case", AMP_CASES, ids=AMP_CASES)
def test_bfloat16_autocast_trains_every_model_and_optimizer(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole step loop under bfloat16 autocast (dropout, evaluations and records
    included): finite records, the same losses as float32 to bfloat16's rounding, and not
    bit-identical to them (autocast did run)."""
    overrides: dict[str, object] = {"eval_every": 4, "eval_batches": 1}
    if case.startswith("gpt"):
        overrides["dropout"] = 0.1
    preset = _preset(case, steps=8, **overrides)
    full = run_probes(preset, POINTS, device="cpu")
    with _cpu_autocast(monkeypatch):
        half = run_probes(preset.with_overrides(dtype="bfloat16"), POINTS, device="cpu")
    assert half.dtype == "bfloat16"
    assert half.summary.diverged_step.isna().all()
    assert np.isfinite(half.traces.max_update).all()
    np.testing.assert_allclose(half.traces.loss, full.traces.loss, rtol=BF16_RTOL)
    np.testing.assert_allclose(half.evals.test_loss, full.evals.test_loss, rtol=BF16_RTOL)
    assert not np.array_equal(half.traces.loss, full.traces.loss)
    for column in set(full.traces.columns) - {"point", "step", "max_tensor"}:
        assert half.traces[column].dtype == full.traces[column].dtype, column


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FACTORIES = ["tiny_transformer", "small_cnn"]


@pytest.mark.parametrize("example", FACTORIES, ids=FACTORIES)
def test_bfloat16_autocast_trains_a_factory_model(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's module (the shipped examples: torch.func over points, its own batches)
    under bfloat16 autocast: the float32 losses to bfloat16's rounding."""
    preset = load_preset(str(EXAMPLES / f"{example}.toml"))
    preset = preset.with_overrides(steps=6, eval_every=3, eval_batches=1)
    full = run_probes(preset, POINTS[:2], device="cpu")
    with _cpu_autocast(monkeypatch):
        half = run_probes(preset.with_overrides(dtype="bfloat16"), POINTS[:2], device="cpu")
    assert half.summary.diverged_step.isna().all()
    np.testing.assert_allclose(half.traces.loss, full.traces.loss, rtol=BF16_RTOL)
    np.testing.assert_allclose(half.evals.test_loss, full.evals.test_loss, rtol=BF16_RTOL)
    assert not np.array_equal(half.traces.loss, full.traces.loss)


def test_mlp_accuracy_under_bfloat16_autocast_counts_whole_examples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Test accuracy is (examples right) / (examples seen): with 3 test batches of 100,
    accuracy · 300 is a whole number, however the logits were rounded."""
    preset = _preset(
        "mlp-hyperadam", steps=6, batch_size=100, eval_every=2, eval_batches=3, optimizer="adam"
    )
    with _cpu_autocast(monkeypatch):
        half = run_probes(preset.with_overrides(dtype="bfloat16"), POINTS, device="cpu")
    right = half.evals.test_accuracy.to_numpy() * 300
    np.testing.assert_allclose(right, np.round(right), rtol=0, atol=1e-3)


# ------------------------------------------------------------------ CUDA-only branches


class _OneGpu:
    """``torch.cuda`` as one GPU with ``free`` bytes free would answer (``bf16``: native
    bfloat16, compute capability 8.0 or more)."""

    def __init__(self, free: int, bf16: bool = True, name: str = "NVIDIA H100") -> None:
        self.free, self.bf16, self.name = free, bf16, name
        self.asked: list[object] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "mem_get_info", self.mem_get_info)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", self.is_bf16_supported)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: self.name)

    def is_bf16_supported(self, including_emulation: bool = True) -> bool:
        return self.bf16 or including_emulation

    def mem_get_info(self, device: object = None) -> tuple[int, int]:
        self.asked.append(device)
        return self.free, 80 << 30


def test_auto_device_is_cuda_and_bfloat16_is_autocast_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _OneGpu(40 << 30).install(monkeypatch)
    assert resolve_device(None) == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(StabcliError, match=r"^device 'cuda:1': only 1 CUDA devices$"):
        resolve_device("cuda:1")
    preset = _preset("mlp-hyperadam").with_overrides(dtype="bfloat16")
    assert resolve_dtype(preset, torch.device("cuda")) == (torch.float32, True)


def test_bfloat16_on_a_gpu_that_would_emulate_it_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A V100 or T4 runs bfloat16 autocast emulated, slower than float32: say so."""
    _OneGpu(40 << 30, bf16=False, name="Tesla V100-SXM2-32GB").install(monkeypatch)
    preset = _preset("mlp-hyperadam").with_overrides(dtype="bfloat16")
    with pytest.raises(StabcliError, match=r"^dtype bfloat16 needs .*Tesla V100.*float32$"):
        resolve_dtype(preset, torch.device("cuda"))
    assert resolve_dtype(preset.with_overrides(dtype="float32"), torch.device("cuda")) == (
        torch.float32,
        False,
    )


@pytest.mark.parametrize("optimizer", ["hyperadam", "mada"])
def test_hypergradient_optimizers_on_mps_are_refused_up_front(optimizer: str) -> None:
    """MPS has no float64, in which HyperAdam and MADA keep their coefficients."""
    preset = _preset("mlp-hyperadam").with_overrides(optimizer=optimizer)
    with pytest.raises(StabcliError, match=rf"^optimizer {optimizer} .*float64.*--device cpu$"):
        resolve_dtype(preset, torch.device("mps"))
    assert resolve_dtype(preset, torch.device("cpu")) == (torch.float32, False)


def test_out_of_memory_in_a_batch_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate can fall short: the allocator's error becomes advice, not a traceback."""

    def exhausted(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine_module, "_train_batch", exhausted)
    preset = _preset("gpt-adam", steps=20)
    with pytest.raises(StabcliError, match=r"^out of cpu memory training 2 points of preset "):
        run_batch(resolve_setup(preset, "cpu"), POINTS[:2])


def test_a_shared_device_sizes_batches_to_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Ray tasks of 0.5 GPU each on one GPU: each fits its points in half of the GPU."""
    gpu = _OneGpu(8 << 30)
    gpu.install(monkeypatch)
    cuda = torch.device("cuda")
    estimate = resolve_setup(_preset("gpt-adam", steps=20), "cuda").memory(cuda)
    for share in (1.0, 0.5, 0.25):
        fit = (int(gpu.free * share) // 2 - estimate.shared) // estimate.per_point
        assert auto_points_per_batch(estimate, cuda, 10**6, share) == fit
    whole, half = (auto_points_per_batch(estimate, cuda, 10**6, s) for s in (1.0, 0.5))
    assert half < whole / 1.9


def test_cuda_memory_decides_the_points_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``resolve_setup`` on CUDA reads ``torch.cuda.mem_get_info`` of the device; points per
    batch come from half of it (:func:`auto_points_per_batch`), and a batch that does not
    fit is a one-line error naming cuda memory."""
    gpu = _OneGpu(1 << 30)
    gpu.install(monkeypatch)
    preset = _preset("gpt-adam", steps=20)
    setup = resolve_setup(preset, "cuda")
    assert setup.device == "cuda" and gpu.asked == [torch.device("cuda")]
    cuda = torch.device("cuda")
    estimate = setup.memory(cuda)
    fit = (gpu.free // 2 - estimate.shared) // estimate.per_point
    assert 1 < fit < 10**6
    assert auto_points_per_batch(estimate, cuda, 10**6) == fit
    assert auto_points_per_batch(estimate, cuda, 3) == 3
    gpu.free = estimate.total(2) - 1  # two points need one byte more than is free
    check_memory(estimate, cuda, preset, 1)
    with pytest.raises(StabcliError, match=r"^2 probe points of preset .* of cuda memory"):
        check_memory(estimate, cuda, preset, 2)


# ------------------------------------------------------------------ on a real GPU

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
@pytest.mark.parametrize("case", AMP_CASES, ids=AMP_CASES)
@pytest.mark.parametrize("compile", ["off", "auto"])
def test_cuda_bfloat16_agrees_with_cpu_float32(case: str, compile: str) -> None:
    """``--device cuda --dtype bfloat16`` (compiled by "auto" on CUDA, or eager) against the
    CPU's float32 run: the same losses to bfloat16's rounding."""
    overrides: dict[str, object] = {"eval_every": 4, "eval_batches": 1}
    if case.startswith("gpt"):
        overrides["dropout"] = 0.1
    preset = _preset(case, steps=8, **overrides)
    cpu = run_probes(preset, POINTS, device="cpu")
    gpu = run_probes(
        preset.with_overrides(dtype="bfloat16", compile=compile), POINTS, device="cuda"
    )
    assert gpu.device == "cuda" and gpu.dtype == "bfloat16"
    assert gpu.summary.diverged_step.isna().all()
    np.testing.assert_allclose(gpu.traces.loss, cpu.traces.loss, rtol=BF16_RTOL)
    np.testing.assert_allclose(gpu.evals.test_loss, cpu.evals.test_loss, rtol=BF16_RTOL)


@needs_cuda
def test_cuda_attention_with_65536_sequences_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPT folds points into attention's batch dimension, (P·B, H, T, D); CUDA's fused
    attention kernels launch one grid row per sequence, and a grid dimension stops at
    65535 (pytorch/pytorch#146704, #142228: "invalid configuration argument"). A batch of
    8192 points of batch 8, which a tiny-char sweep's automatic batch size reaches on an
    80 GB GPU, must give the losses of the explicit attention."""
    from stabcli.probe import models

    preset = _preset("gpt-adam", batch_size=8)
    setup = resolve_setup(preset, "cuda")
    data = setup.dataset()
    model = build_model(preset, data)
    cuda = torch.device("cuda")
    stream = BatchStream(data, preset, cuda, torch.float32)
    x, y = stream.train_batch(0)
    n_pt = 65536 // preset.train.batch_size
    flat = model.initial().to(device=cuda, dtype=torch.float32).expand(n_pt, -1)  # (P, N)
    no_drop = SharedDropout(0.0, None)
    with torch.no_grad():
        assert models.fused_attention(no_drop, cuda)
        fused = model.loss(unflatten(flat, model.specs), x, y, no_drop)  # (P,)
        monkeypatch.setattr(models, "fused_attention", lambda drop, device: False)
        explicit = model.loss(unflatten(flat, model.specs), x, y, no_drop)  # (P,)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("limit", [1, 3, 7, 8])
def test_fused_attention_in_slices_equals_one_call(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """The slicing that keeps CUDA's fused attention under its grid limit, run on the CPU
    with the limit lowered: the same result as one call, bit for bit."""
    from stabcli.probe import models

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(8, 2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    whole = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    monkeypatch.setattr(models, "MAX_FUSED_SEQUENCES", limit)
    torch.testing.assert_close(models._fused_attention(q, k, v, None), whole, rtol=0, atol=0)
