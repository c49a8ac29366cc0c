"""`stabcli check`: output for each kind of point, --json, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stabcli.cli import app, main

runner = CliRunner()


def _check(*args: str) -> str:
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_bplus_point_names_both_conventions_and_is_stable() -> None:
    out = _check("0.95", "0.9")
    assert "β = 0.95 (torch beta2)" in out
    assert "γ = 0.9 (torch beta1)" in out
    assert "Adam(betas=(0.9, 0.95))" in out
    assert "B+" in out and "stable (γ² < β)" in out
    assert "0.169591" in out  # C = 0.145/0.855
    assert "Stable: both theories" in out


def test_bminus_point_reports_both_rates_and_threshold_step() -> None:
    out = _check("0.5", "0.9")
    assert "B-" in out and "unstable" in out
    assert "0.38889" in out  # paper |C|/2
    assert "0.24121" in out  # exact log γ − ½ log β
    assert "Unstable" in out


def test_disagreeing_point_says_so_plainly() -> None:
    out = _check("0.4", "0.6")
    assert "The theories disagree" in out
    assert "B-" in out and "stable (γ² < β)" in out


def test_torch_order_gives_the_same_point() -> None:
    paper = json.loads(_check("0.95", "0.9", "--json"))
    torch = json.loads(_check("--torch-betas", "0.9,0.95", "--json"))
    assert paper == torch


JSON_KEYS = {
    "beta",
    "gamma",
    "torch_beta1",
    "torch_beta2",
    "step",
    "threshold",
    "C",
    "memory_coefficient",
    "theories_agree",
    "verdict",
    "paper",
    "exact",
}
THEORY_KEYS = {
    "theory",
    "label",
    "stable",
    "rate",
    "rate_at_step",
    "bound_at_step",
    "limit_bound",
    "steps_to_threshold",
}


def test_json_holds_the_documented_keys() -> None:
    data = json.loads(_check("0.999", "0.9", "--json", "--step", "500"))
    assert set(data) == JSON_KEYS
    assert set(data["paper"]) == THEORY_KEYS == set(data["exact"])
    assert data["C"] == pytest.approx(0.22122, abs=1e-5)
    assert data["step"] == 500
    assert data["torch_beta1"] == 0.9 and data["torch_beta2"] == 0.999
    assert data["exact"]["stable"] is True and data["paper"]["label"] == "B+"


def test_json_rmsprop_gamma_zero_has_infinite_c_as_null() -> None:
    data = json.loads(_check("0.9", "0", "--json"))
    assert data["C"] is None  # +inf is written as null
    assert data["exact"]["limit_bound"] == pytest.approx(1 / (1 - 0.9) ** 0.5)


def test_kadam_table_and_json() -> None:
    out = _check("0.999", "0.9", "--k", "3", "--strategy", "scaled")
    assert "k-Adam, k = 3, strategy scaled" in out
    assert "0.333" in out  # β̃/k
    data = json.loads(_check("0.999", "0.9", "--k", "2", "--json"))
    assert data["kadam"]["strategy"] == "inverse-exp"
    assert len(data["kadam"]["levels"]) == 2
    assert data["kadam"]["levels"][0]["beta"] == pytest.approx(1 - 0.001**0.5)


BAD_INPUTS = {
    "beta-too-big": ["check", "1.2", "0.9"],
    "beta-zero": ["check", "0", "0.9"],
    "gamma-one": ["check", "0.9", "1"],
    "gamma-negative": ["check", "0.9", "--", "-0.1"],
    "beta-nan": ["check", "nan", "0.9"],
    "gamma-inf": ["check", "0.9", "inf"],
    "beta-text": ["check", "abc", "0.9"],
    "missing-gamma": ["check", "0.9"],
    "torch-betas-malformed": ["check", "--torch-betas", "0.9"],
    "torch-betas-text": ["check", "--torch-betas", "a,b"],
    "torch-betas-out-of-range": ["check", "--torch-betas", "0.9,1.5"],
    "both-forms": ["check", "0.9", "0.9", "--torch-betas", "0.9,0.99"],
    "unknown-strategy": ["check", "0.9", "0.5", "--strategy", "foo"],
    "k-zero": ["check", "0.9", "0.5", "--k", "0"],
    "step-negative": ["check", "0.9", "0.5", "--step", "-3"],
}
EXPECTED_WORDS = {
    "beta-too-big": "beta",
    "beta-zero": "(0, 1)",
    "gamma-one": "[0, 1)",
    "gamma-negative": "gamma",
    "beta-nan": "beta",
    "gamma-inf": "gamma",
    "beta-text": "beta",
    "missing-gamma": "GAMMA",
    "torch-betas-malformed": "--torch-betas",
    "torch-betas-text": "--torch-betas",
    "torch-betas-out-of-range": "beta2",
    "both-forms": "either",
    "unknown-strategy": "inverse-exp",
    "k-zero": "--k",
    "step-negative": "--step",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(BAD_INPUTS[case])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("stabcli: error:")
    assert EXPECTED_WORDS[case] in lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("case", ["beta-too-big", "beta-text", "unknown-strategy"])
def test_bad_input_in_a_real_process(case: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stabcli", *BAD_INPUTS[case]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_real_process_check_and_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stabcli", "check", "0.95", "0.9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "B+" in proc.stdout
    version = subprocess.run(
        [sys.executable, "-m", "stabcli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.startswith("stabcli ")


@pytest.mark.parametrize(
    "args",
    [["check", "0.95", "0.9"], ["--help"], ["check", "-h"], ["sweep", "-h"], ["presets", "-h"]],
)
def test_check_and_help_import_no_heavy_modules(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from stabcli.cli import main\n"
        f"code = main({args!r})\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'plotly', 'numpy') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout


def test_check_draws_its_output_without_rich() -> None:
    # rich's import and console set-up cost more than the rest of check: its table is drawn
    # by stabcli.cli.render_check (compared with rich's own drawing in test_cli_check_render).
    code = (
        "import sys\n"
        "from stabcli.cli import main\n"
        "main(['check', '0.95', '0.9']); main(['check', '0.5', '0.9', '--k', '3'])\n"
        "print('RICH=' + ','.join(sorted(m for m in sys.modules if m.startswith('rich'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "RICH=\n" in proc.stdout
    assert "k-Adam, k = 3" in proc.stdout


def test_check_from_a_json_file_imports_no_heavy_modules(tmp_path: Path) -> None:
    cfg = tmp_path / "train.json"
    cfg.write_text('{"optimizer": {"betas": [0.9, 0.95]}}', encoding="utf-8")
    code = (
        "import sys\n"
        "from stabcli.cli import main\n"
        f"code = main(['check', '--from', {str(cfg)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'plotly', 'numpy') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout
    assert f"{cfg}: optimizer.betas" in proc.stdout  # it did check the file


def test_pytorch_order_typed_by_habit_gets_a_hint() -> None:
    assert "--torch-betas 0.9,0.999" in _check("0.9", "0.999")
    assert "PyTorch's order by habit" in _check("0.9", "0.95")
    assert "by habit" not in _check("0.5", "0.9")  # not Adam-like numbers: no guess
    assert "by habit" not in _check("0.999", "0.9")  # stable as typed


@pytest.mark.parametrize(
    ("beta", "gamma", "role"),
    [
        pytest.param("0.95", "0.9", "anti-penalty", id="beta>gamma"),
        pytest.param("0.9", "0.95", "penalty", id="gamma>beta"),
        pytest.param("0.4", "0.6", "penalty", id="gamma>beta-small"),
        pytest.param("0.9", "0.9", "no first-order memory term", id="equal"),
    ],
)
def test_memory_coefficient_names_its_sign(beta: str, gamma: str, role: str) -> None:
    """K = β/(1−β) − γ/(1−γ) enters as L̃ = L − ηK‖∇L‖₁ (docs/theory.md (8.3)): a
    negative K penalizes the gradient's norm, it does not anti-penalize it."""
    b, g = float(beta), float(gamma)
    k = b / (1 - b) - g / (1 - g)
    line = next(x for x in _check(beta, gamma).splitlines() if x.startswith("memory"))
    assert (k > 0) == ("anti-penalty" in line)
    assert role in line


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        pytest.param(["0.5", "0.9999999999999999"], "0.9999999999999999", id="gamma-near-1"),
        pytest.param(["0.9999999", "0.9"], "0.9999999", id="beta-near-1"),
        pytest.param(["--torch-betas", "0.9,0.99999999"], "0.99999999", id="torch-order"),
    ],
)
def test_betas_near_one_are_not_shown_as_one(args: list[str], shown: str) -> None:
    """6 significant digits round 0.9999999 to 1, a value outside the domain: the
    header shows as many digits as it takes to tell the point from 1."""
    header = "\n".join(_check(*args).splitlines()[:2])
    assert f"= {shown} (torch" in header
    assert shown in header.split("PyTorch: ")[1]
    assert "(1," not in header and ", 1)" not in header
