"""The Hugging Face and Lightning adapters end to end, on tiny models built from configs in
the tests (nothing downloaded); skipped when the framework is not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stabcli.store import RunDir

STEPS = 6


def test_importing_the_monitor_imports_no_framework() -> None:
    code = (
        "import sys, stabcli.monitor; "
        "print(sorted(m for m in ('transformers', 'lightning', 'pytorch_lightning', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hugging_face_trainer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # the Trainer needs it
    from stabcli.monitor.hf import StabilityCallback

    config = transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 50, (16, 16), generator=torch.Generator().manual_seed(0))

    class Tokens(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[i], "labels": ids[i]}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        adam_beta1=0.8,  # γ
        adam_beta2=0.95,  # β
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    callback = StabilityCallback()
    transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(), callbacks=[callback]
    ).train()

    monitor = callback.monitor
    assert monitor is not None and monitor.closed
    summary = monitor.summary()
    assert summary.step.tolist() == list(range(STEPS))
    assert (summary.gamma == 0.8).all() and (summary.beta == 0.95).all()
    # linear decay without warm-up: the lr that made step n is 1e-3 · (1 − n/STEPS)
    np.testing.assert_allclose(summary.lr, 1e-3 * (1 - np.arange(STEPS) / STEPS), rtol=1e-12)
    names = {name for name, _ in model.named_parameters()}
    assert set(summary.max_tensor) <= names
    # float32 parameters: a step read from them is known to within `resolution`
    limit = (summary.bound + summary.wd_term) * (1 + 1e-5) + summary.resolution
    assert (summary.max_update <= limit).all()

    run = RunDir.open(tmp_path / "stabcli")
    config_json = run.config()
    assert config_json["kind"] == "monitor"
    assert config_json["settings"]["optimizer"]["class"].endswith("AdamW")
    assert config_json["versions"]["transformers"] == transformers.__version__
    assert run.state().status == "complete" and len(run.read_traces()) == STEPS


def _lightning_module(lightning, fail_at: int | None = None):
    class Regression(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
            )

        def training_step(self, batch, index):
            if fail_at is not None and self.global_step == fail_at:
                raise RuntimeError("boom")
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2, betas=(0.9, 0.99))

    return Regression()


def _fit(lightning, tmp_path: Path, callback, fail_at: int | None = None) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8
    )
    trainer = lightning.Trainer(
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
        callbacks=[callback],
    )
    trainer.fit(_lightning_module(lightning, fail_at), data)


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
def test_lightning_trainer(tmp_path: Path) -> None:
    lightning = pytest.importorskip("lightning")
    from stabcli.monitor.lightning import StabilityCallback

    callback = StabilityCallback()
    _fit(lightning, tmp_path, callback)
    monitor = callback.monitor
    assert monitor is not None and monitor.closed
    summary = monitor.summary()
    assert summary.step.tolist() == list(range(STEPS))
    assert (summary.gamma == 0.9).all() and (summary.beta == 0.99).all()
    assert set(summary.max_tensor) <= {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    run = RunDir.open(tmp_path / "stabcli")
    assert run.config()["versions"]["lightning"] == lightning.__version__
    assert run.state().status == "complete" and len(run.read_traces()) == STEPS


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
def test_lightning_fit_that_fails_is_interrupted(tmp_path: Path) -> None:
    lightning = pytest.importorskip("lightning")
    from stabcli.monitor.lightning import StabilityCallback

    callback = StabilityCallback()
    with pytest.raises(RuntimeError, match="boom"):
        _fit(lightning, tmp_path, callback, fail_at=3)
    state = RunDir.open(tmp_path / "stabcli").state()
    assert state is not None and state.status == "interrupted"
    assert callback.monitor is not None and len(callback.monitor.summary()) == 3
