"""Betas read from real ``torch.save``d optimizer state: plain, nested, Lightning-style, and
the files stabcli refuses (custom classes need unpickling arbitrary objects)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from stabcli.configs import betas_in_file
from stabcli.configs.checkpoint import REFUSED
from stabcli.errors import StabcliError

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _trained_state(betas: tuple[float, float], cls: type | None = None) -> dict[str, object]:
    """An optimizer's state_dict after one real step (so it holds exp_avg tensors too)."""
    model = torch.nn.Linear(3, 2)
    optimizer = (cls or torch.optim.Adam)(model.parameters(), lr=1e-3, betas=betas)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    return optimizer.state_dict()


def _two_groups() -> dict[str, object]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    optimizer = torch.optim.AdamW(
        [
            {"params": model[0].parameters(), "betas": (0.9, 0.95)},
            {"params": model[1].parameters(), "betas": (0.8, 0.99)},
        ]
    )
    return optimizer.state_dict()


# (file name, object to save, [(key path, beta1, beta2)])
CHECKPOINTS = {
    "adam-state-dict": lambda: (
        "opt.pt",
        _trained_state((0.9, 0.95)),
        [("param_groups[0].betas", 0.9, 0.95)],
    ),
    "adamw-two-groups": lambda: (
        "opt.pth",
        _two_groups(),
        [("param_groups[0].betas", 0.9, 0.95), ("param_groups[1].betas", 0.8, 0.99)],
    ),
    "nested-with-model": lambda: (
        "ckpt.pt",
        {
            "model": torch.nn.Linear(3, 2).state_dict(),
            "optimizer": _trained_state((0.85, 0.999)),
            "iter_num": 100,
            "config": {"beta1": 0.85, "beta2": 0.999},  # nanoGPT keeps its config too
        },
        [
            ("optimizer.param_groups[0].betas", 0.85, 0.999),
            ("config.beta1/beta2", 0.85, 0.999),
        ],
    ),
    "lightning-optimizer-states": lambda: (
        "epoch=3-step=100.ckpt",
        {
            "epoch": 3,
            "global_step": 100,
            "state_dict": torch.nn.Linear(2, 2).state_dict(),
            "optimizer_states": [_trained_state((0.9, 0.98), torch.optim.AdamW)],
            "lr_schedulers": [],
        },
        [("optimizer_states[0].param_groups[0].betas", 0.9, 0.98)],
    ),
    "tensor-betas": lambda: (
        "tensor.pt",
        {"param_groups": [{"betas": (torch.tensor(0.9), torch.tensor(0.99))}]},
        [("param_groups[0].betas", pytest.approx(0.9, rel=1e-6), pytest.approx(0.99, rel=1e-6))],
    ),
    "no-suffix-sniffed": lambda: (
        "checkpoint",
        {"optimizer": _trained_state((0.9, 0.95))},
        [("optimizer.param_groups[0].betas", 0.9, 0.95)],
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_betas_found_in_checkpoints(case: str, tmp_path: Path) -> None:
    name, obj, expected = CHECKPOINTS[case]()
    path = tmp_path / name
    torch.save(obj, path)
    found = betas_in_file(path)
    assert [(f.key, f.beta1, f.beta2) for f in found] == expected


def test_legacy_torch_save_format(tmp_path: Path) -> None:
    path = tmp_path / "legacy.bin"
    torch.save(_trained_state((0.9, 0.95)), path, _use_new_zipfile_serialization=False)
    assert [(f.beta1, f.beta2) for f in betas_in_file(path)] == [(0.9, 0.95)]


class Custom:  # a user's class: loading it would need unpickling arbitrary objects
    def __init__(self) -> None:
        self.betas = (0.9, 0.95)


def test_checkpoint_with_a_custom_class_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "full.pt"
    torch.save({"optimizer": _trained_state((0.9, 0.95)), "extra": Custom()}, path)
    with pytest.raises(StabcliError) as caught:
        betas_in_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {REFUSED}")
    assert "needs unpickling arbitrary objects, which stabcli never does" in message
    assert "save the optimizer state_dict only" in message
    assert "Custom" in message  # names what it refused


def test_a_whole_optimizer_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "optimizer.pt"
    torch.save(torch.optim.Adam(torch.nn.Linear(2, 1).parameters()), path)
    with pytest.raises(StabcliError, match="needs unpickling arbitrary objects"):
        betas_in_file(path)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("broken.pt", b"PK\x03\x04 not really a zip", "not a readable checkpoint"),
        ("empty.pt", b"", "not a PyTorch checkpoint"),
        ("image.pt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a PyTorch checkpoint"),
        ("sgd.pt", None, "no Adam betas found"),
    ],
    ids=["corrupt-zip", "empty-file", "not-a-checkpoint", "sgd-state-dict"],
)
def test_unreadable_or_betaless_checkpoints(
    name: str, content: bytes | None, words: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if content is None:
        sgd = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
        torch.save(sgd.state_dict(), path)
    else:
        path.write_bytes(content)
    with pytest.raises(StabcliError, match=words) as caught:
        betas_in_file(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(StabcliError, match="no such file"):
        betas_in_file(tmp_path / "gone.ckpt")


@pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="transformers is not installed"
)
def test_hugging_face_training_arguments_json(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "out"), adam_beta1=0.85, adam_beta2=0.98)
    path = tmp_path / "training_args.json"
    path.write_text(args.to_json_string(), encoding="utf-8")
    found = betas_in_file(path)
    assert [(f.key, f.beta1, f.beta2) for f in found] == [("adam_beta1/adam_beta2", 0.85, 0.98)]


def test_a_file_that_is_no_checkpoint_is_not_called_a_refusal(tmp_path: Path) -> None:
    """Bytes that are neither torch.save's zip nor a pickle were reported as "needs
    unpickling arbitrary objects", as if stabcli had refused a real checkpoint."""
    path = tmp_path / "noise.ckpt"
    path.write_bytes(bytes(range(7, 256)) * 8)
    with pytest.raises(StabcliError) as caught:
        betas_in_file(path)
    assert "not a PyTorch checkpoint" in str(caught.value)
    assert "unpickling" not in str(caught.value)


def test_a_truncated_checkpoint_gives_the_reason_without_torch_advice(tmp_path: Path) -> None:
    """torch's zip reader follows its reason with generic advice; the line keeps the reason."""
    whole = tmp_path / "whole.pt"
    torch.save(torch.optim.Adam(torch.nn.Linear(2, 1).parameters()).state_dict(), whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(StabcliError) as caught:
        betas_in_file(cut)
    message = str(caught.value)
    assert message.startswith(f"{cut}: not a readable checkpoint: ")
    assert "zip archive" in message and "If you are seeing this error" not in message
