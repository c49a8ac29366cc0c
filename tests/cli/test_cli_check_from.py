"""``stabcli check --from FILE``: one check per pair found, named by its source; --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stabcli.cli import app, main

runner = CliRunner()

CHECK_KEYS = {
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


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _ok(*args: str) -> str:
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_each_pair_is_checked_under_a_header_naming_its_source(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path,
        "train.json",
        '{"optimizer": {"param_groups": [{"betas": [0.9, 0.95]}, {"betas": [0.95, 0.9]}]}}',
    )
    out = _ok("--from", str(cfg))
    first = f"{cfg}: optimizer.param_groups[0].betas"
    second = f"{cfg}: optimizer.param_groups[1].betas"
    assert out.index(first) < out.index("Adam(betas=(0.9, 0.95))") < out.index(second)
    assert out.index(second) < out.index("Adam(betas=(0.95, 0.9))")
    assert out.count("┏") == 2  # one table per pair
    # PyTorch's order was what the file held: it comes first, and no "by habit" guess.
    block = out[out.index(second) :].splitlines()
    assert block[1] == "PyTorch: Adam(betas=(0.95, 0.9))"
    assert block[2] == "β = 0.9 (torch beta2), γ = 0.95 (torch beta1)"
    assert "by habit" not in out


def test_from_is_repeatable_and_duplicates_are_each_reported(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.toml", "beta1 = 0.9\nbeta2 = 0.95\n")
    b = _write(tmp_path, "b.json", '{"x": {"betas": [0.9, 0.95]}, "y": {"betas": [0.9, 0.95]}}')
    data = json.loads(_ok("--from", str(a), "--from", str(b), "--json"))
    assert [d["source"] for d in data] == [f"{a}: beta1/beta2", f"{b}: x.betas", f"{b}: y.betas"]


def test_json_is_a_list_with_checks_keys_and_source(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "training_args.json", '{"adam_beta1": 0.9, "adam_beta2": 0.999}')
    data = json.loads(_ok("--from", str(cfg), "--json", "--step", "500", "--threshold", "50"))
    assert isinstance(data, list) and len(data) == 1
    (item,) = data
    assert set(item) == CHECK_KEYS | {"source"}
    assert item["source"] == f"{cfg}: adam_beta1/adam_beta2"
    assert (item["torch_beta1"], item["torch_beta2"]) == (0.9, 0.999)
    assert (item["beta"], item["gamma"]) == (0.999, 0.9)
    assert item["step"] == 500 and item["threshold"] == 50
    # The same figures as checking the point by hand, in either order.
    by_hand = json.loads(_ok("0.999", "0.9", "--json", "--step", "500", "--threshold", "50"))
    assert {k: v for k, v in item.items() if k != "source"} == by_hand


def test_kadam_options_apply_to_each_pair(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "c.json", '{"a": {"betas": [0.9, 0.999]}, "b": {"betas": [0.5, 0.9]}}')
    data = json.loads(_ok("--from", str(cfg), "--k", "3", "--strategy", "scaled", "--json"))
    assert [d["kadam"]["k"] for d in data] == [3, 3]
    assert data[0]["kadam"]["levels"][0]["beta"] == pytest.approx(0.999 / 3, rel=1e-12)
    assert data[1]["kadam"]["levels"][0]["gamma"] == pytest.approx(0.5 / 3, rel=1e-12)
    out = _ok("--from", str(cfg), "--k", "3")
    assert out.count("k-Adam, k = 3, strategy inverse-exp") == 2


def test_checkpoint_through_the_cli(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), betas=(0.9, 0.98))
    path = tmp_path / "last.ckpt"
    torch.save({"optimizer_states": [optimizer.state_dict()], "epoch": 1}, path)
    data = json.loads(_ok("--from", str(path), "--json"))
    assert [(d["source"], d["torch_beta1"], d["torch_beta2"]) for d in data] == [
        (f"{path}: optimizer_states[0].param_groups[0].betas", 0.9, 0.98)
    ]


class Opaque:  # needs full unpickling to load
    pass


# (files to write {name: text or None for a pickled custom class}, extra args, words)
ERRORS: dict[str, tuple[dict[str, str | None], list[str], list[str]]] = {
    "no-betas": ({"c.json": '{"lr": 1}'}, [], ["c.json", "no Adam betas found"]),
    "half-pair": ({"c.yaml": "opt:\n  beta2: 0.9\n"}, [], ["c.yaml: opt.beta2", "without"]),
    "conflict": (
        {"c.json": '{"o": {"betas": [0.9, 0.95], "beta1": 0.8, "beta2": 0.95}}'},
        [],
        ["c.json: o:", "disagree"],
    ),
    "not-a-number": ({"c.toml": 'beta1 = "x"\nbeta2 = 0.9\n'}, [], ["c.toml: beta1", "number"]),
    "out-of-range": ({"c.json": '{"betas": [0.9, 1.0]}'}, [], ["c.json: betas", "beta2"]),
    "unreadable": ({"c.json": "{"}, [], ["c.json", "not valid JSON"]),
    "missing-file": ({}, [], ["nope.json", "cannot read"]),
    "needs-unpickling": (
        {"full.pt": None},
        [],
        ["full.pt", "needs unpickling arbitrary objects, which stabcli never does"],
    ),
    "with-positional-point": (
        {"c.json": '{"betas": [0.9, 0.95]}'},
        ["0.95", "0.9"],
        ["not several"],
    ),
    "with-torch-betas": (
        {"c.json": '{"betas": [0.9, 0.95]}'},
        ["--torch-betas", "0.9,0.95"],
        ["not several"],
    ),
    "second-file-bad": (
        {"a.json": '{"betas": [0.9, 0.95]}', "b.json": '{"betas": [2, 0.95]}'},
        [],
        ["b.json: betas", "beta1"],
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_from_errors_are_one_line_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, extra, words = ERRORS[case]
    args = ["check"]
    for name, text in files.items():
        path = tmp_path / name
        if text is None:
            torch = pytest.importorskip("torch")
            torch.save({"state": Opaque()}, path)
        else:
            path.write_text(text, encoding="utf-8")
        args += ["--from", str(path)]
    if not files:
        args += ["--from", str(tmp_path / "nope.json")]
    code = main([*args, *extra])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("stabcli: error:")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert captured.out == ""  # nothing half-printed before the error
    assert "Traceback" not in captured.err


def test_from_error_in_a_real_process(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "c.json", '{"beta1": 0.9}')
    proc = subprocess.run(
        [sys.executable, "-m", "stabcli", "check", "--from", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("stabcli: error: ") and proc.stderr.count("\n") == 1
    assert f"{cfg}: beta1" in proc.stderr and proc.stdout == ""
