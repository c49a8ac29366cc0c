"""PyTorch's order in ``check``: analyze_point(torch_betas=...), the header's order, the hint.

β is PyTorch's beta2 and γ its beta1: ``check 0.95 0.9`` is ``Adam(betas=(0.9, 0.95))``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stabcli.cli import app
from stabcli.errors import StabcliError
from stabcli.theory import analyze_point

runner = CliRunner()

# (beta1, beta2) as PyTorch takes them
TORCH_BETAS = [(0.9, 0.999), (0.9, 0.95), (0.95, 0.9), (0.6, 0.4), (0.0, 0.9), (0.5, 0.25)]


@pytest.mark.parametrize("betas", TORCH_BETAS, ids=[f"betas={b}" for b in TORCH_BETAS])
def test_torch_betas_is_the_same_point_as_the_papers_order(betas: tuple[float, float]) -> None:
    beta1, beta2 = betas
    by_torch = analyze_point(torch_betas=(beta1, beta2), step=250, threshold=20.0)
    by_paper = analyze_point(beta2, beta1, step=250, threshold=20.0)  # (β, γ) = (beta2, beta1)
    assert by_torch == by_paper
    assert by_torch.torch_betas == (beta1, beta2)
    assert (by_torch.beta, by_torch.gamma) == (beta2, beta1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"beta": 0.9, "torch_betas": (0.9, 0.95)}, "not both"),
        ({}, "torch_betas"),
        ({"beta": 0.9}, "torch_betas"),
        ({"torch_betas": (0.9,)}, "pair"),
        ({"torch_betas": "0.9,0.95"}, "pair"),
        ({"torch_betas": (0.9, 1.0)}, "beta2"),
        ({"torch_betas": (1.0, 0.9)}, "beta1"),
    ],
    ids=["both", "neither", "gamma-missing", "one-value", "text", "beta2-one", "beta1-one"],
)
def test_analyze_point_refuses_unclear_points(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(StabcliError, match=words):
        analyze_point(**kwargs)  # type: ignore[arg-type]


def _out(*args: str) -> list[str]:
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_torch_betas_header_shows_pytorchs_order_first() -> None:
    lines = _out("--torch-betas", "0.9,0.95")
    assert lines[0] == "PyTorch: Adam(betas=(0.9, 0.95))"
    assert lines[1] == "β = 0.95 (torch beta2), γ = 0.9 (torch beta1)"


def test_positional_header_shows_the_papers_order_first() -> None:
    lines = _out("0.95", "0.9")
    assert lines[0] == "β = 0.95 (torch beta2), γ = 0.9 (torch beta1)"
    assert lines[1] == "PyTorch: Adam(betas=(0.9, 0.95))"


def test_no_habit_hint_when_the_order_was_explicit(tmp_path: Path) -> None:
    # β = 0.9, γ = 0.95 typed positionally looks like PyTorch's (0.9, 0.95) by habit ...
    assert any("by habit" in line for line in _out("0.9", "0.95"))
    # ... but given explicitly in PyTorch's order, the same point gets no guess.
    assert not any("by habit" in line for line in _out("--torch-betas", "0.95,0.9"))
    cfg = tmp_path / "c.json"
    cfg.write_text('{"betas": [0.95, 0.9]}', encoding="utf-8")
    assert not any("by habit" in line for line in _out("--from", str(cfg)))
