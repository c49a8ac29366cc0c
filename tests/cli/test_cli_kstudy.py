"""`stabcli kstudy`: a study through the command line (table, JSON, resume), the base pair in
both orders, and bad input as one line on stderr with exit code 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stabcli.cli import main
from stabcli.cli.kstudy import parse_ks
from stabcli.errors import StabcliError

#: cnn-synthetic shrunk for tests (one stage on 8x8 images), App. H's schedule kept.
TINY = """
description = "tiny CNN for k-study CLI tests"

[model]
kind = "cnn"
n_layer = 1
n_embd = 4

[data]
source = "synthetic-images"
n_samples = 400
n_classes = 10
image_size = 8
train_fraction = 0.8

[train]
steps = 600
batch_size = 16
lr = 1e-3
schedule = "cosine"
warmup_steps = 150
min_lr = 1e-4
eps = 1e-30
eval_every = 75
eval_batches = 2
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-cnn.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


def _kstudy(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["kstudy", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_study_prints_its_best_points_and_resumes(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    args = ["--preset", str(tiny), "--k", "1:2", "--strategy", "naive", "--strategy", "exp"]
    args += ["--lr", "1e-3", "--lr", "3e-3", "--steps", "24", "--out", str(out)]
    code, stdout, stderr = _kstudy([*args, "--json"], capsys)
    assert code == 0, stderr
    payload = json.loads(stdout)
    assert (payload["points_run"], payload["points_reused"]) == (6, 0)
    best = payload["best"]
    assert [(b["k"], b["strategy"], b["label"]) for b in best] == [
        (1, "adam", "Adam"),
        (2, "naive", "naive"),
        (2, "exp", "exp"),
    ]
    assert all(b["lr"] in (1e-3, 3e-3) and b["weight_decay"] == 0.0 for b in best)
    assert len(payload["points"]) == 6
    assert "sub-run 3/3 k=2 exp: 2 point(s) trained" in stderr  # no terminal: one line each
    code, stdout, stderr = _kstudy(args, capsys)  # the same command again: the table
    assert code == 0
    assert "resuming: 3 sub-run(s) and 6 point(s) already finished, 0 point(s) to run" in stderr
    adam_row = next(line for line in stdout.splitlines() if "Adam (k = 1)" in line)
    assert f"{best[0]['best_test_accuracy']:.4f}" in adam_row
    assert "0 point(s) trained now, 6 found finished" in stdout


@pytest.mark.parametrize(
    ("option", "paper"),
    [(["--through", "0.99,0.8"], [0.99, 0.8]), (["--torch-betas", "0.8,0.99"], [0.99, 0.8])],
    ids=["paper-order", "torch-order"],
)
def test_the_base_pair_is_stored_in_the_papers_order(
    tiny: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: list[str],
    paper: list[float],
) -> None:
    out = tmp_path / "study"
    args = ["--preset", str(tiny), "--k", "1", "--lr", "1e-3", "--steps", "12", "--out", str(out)]
    code, stdout, _ = _kstudy([*args, *option], capsys)
    assert code == 0
    manifest = json.loads((out / "kstudy.json").read_text())
    assert manifest["settings"]["base"] == paper
    points = (out / "k1-adam" / "points.csv").read_text().splitlines()
    header = points[0].split(",")
    row = dict(zip(header, points[1].split(","), strict=True))
    assert (float(row["beta"]), float(row["gamma"])) == tuple(paper)
    assert (float(row["torch_beta1"]), float(row["torch_beta2"])) == (paper[1], paper[0])
    assert "torch betas=(0.8, 0.99)" in stdout


def test_weight_decay_on_a_preset_without_it_trains_adamw(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    args = ["--preset", str(tiny), "--k", "1", "--lr", "1e-3", "--steps", "12", "--out", str(out)]
    code, stdout, _ = _kstudy([*args, "--weight-decay", "0", "--weight-decay", "0.01"], capsys)
    assert code == 0
    assert "AdamW (k = 1)" in stdout
    config = json.loads((out / "k1-adam" / "config.json").read_text())
    assert config["settings"]["preset"]["train"]["weight_decay_mode"] == "decoupled"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "x"], "--k must look like K or K0:K1"),
        (["--k", "4:2"], "--k 4:2: the range is empty"),
        (["--k", "0"], "--k 0: a study has k from 1 to 1000"),
        (["--k", "2", "--k", "1:3"], "--k gives 2 twice"),
        (["--strategy", "fast"], "unknown k-Adam strategy 'fast'"),
        (["--strategy", "exp", "--strategy", "exp"], "--strategy gives exp twice"),
        (["--lr", "0"], "--lr values must be finite and > 0"),
        (["--lr", "1e-3", "--lr", "1e-3"], "--lr gives 0.001 twice"),
        (["--weight-decay", "-1"], "--weight-decay values must be finite and >= 0"),
        (["--steps", "11"], "--steps must be a whole number >= 12"),
        (["--through", "0.9"], "--through must look like 'BETA,GAMMA'"),
        (["--through", "1.5,0.9"], "beta"),
        (["--torch-betas", "0.9"], "--torch-betas must look like 'BETA1,BETA2'"),
        (["--through", "0.99,0.9", "--torch-betas", "0.9,0.99"], "not both"),
        (["--preset", "nope"], "nope"),
        (["--preset", "mlp-synthetic"], "App. H"),
    ],
    ids=[
        "k-text",
        "k-empty-range",
        "k-zero",
        "k-twice",
        "strategy-unknown",
        "strategy-twice",
        "lr-zero",
        "lr-twice",
        "wd-negative",
        "steps-few",
        "through-one-number",
        "through-out-of-range",
        "torch-betas-one-number",
        "both-orders",
        "preset-unknown",
        "preset-constant-schedule",
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "study"
    code, stdout, stderr = _kstudy([*args, "--out", str(out)], capsys)
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("stabcli: error: ") and stderr.count("\n") == 1
    assert message in stderr
    assert not out.exists()


def test_another_study_in_the_same_out_is_refused_in_one_line(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    args = ["--preset", str(tiny), "--k", "1", "--lr", "1e-3", "--steps", "12", "--out", str(out)]
    assert _kstudy(args, capsys)[0] == 0
    code, _, stderr = _kstudy([*args, "--lr", "3e-3"], capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert "holds a different k-study (differs in: lrs); choose another --out" in stderr


@pytest.mark.parametrize(
    ("given", "expected"),
    [(["1:4"], (1, 2, 3, 4)), (["3"], (3,)), (["1", "5:6"], (1, 5, 6)), (["2:2"], (2,))],
    ids=["range", "single", "mixed", "one-long-range"],
)
def test_k_ranges_include_both_ends(given: list[str], expected: tuple[int, ...]) -> None:
    assert parse_ks(given) == expected


def test_kstudy_is_a_listed_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "kstudy" in capsys.readouterr().out
    assert main([]) == 2
    assert "check, sweep, kstudy, report, presets" in capsys.readouterr().err


@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_stopping_a_study_is_one_line_saying_it_resumes(
    stop: str,
    tiny: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C, or SIGTERM delivered while the study trains, ends the command with exit 130
    and one line naming where the finished work is, and the SIGTERM handler is restored."""
    import os
    import signal

    import stabcli.sweep.kstudy as kstudy

    def stopped(*args: object, **kwargs: object) -> None:
        if stop == "kill":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    monkeypatch.setattr(kstudy, "run_kstudy", stopped)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "study"
    code, _, err = _kstudy(
        ["--preset", str(tiny), "--k", "1:2", "--strategy", "naive", "--out", str(out)], capsys
    )
    assert code == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"finished sub-runs and points are saved in {out}" in lines[0]
    assert "re-run the same command to resume" in lines[0]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("given", ["0", "0:3", "-1", "1000:1001", "1:2000"])
def test_k_outside_1_to_1000_names_the_flag(given: str) -> None:
    """--k 0 was refused by the library as "k must be ...", not naming the flag typed."""
    with pytest.raises(StabcliError, match=r"^--k .*a study has k from 1 to 1000"):
        parse_ks([given])
