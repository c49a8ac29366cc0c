"""`stabcli sweep` end to end: the run directory, resuming after SIGKILL, and bad input."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from stabcli.cli import main
from stabcli.store.schema import POINT_COLUMNS

FAST = ["--preset", "mlp-synthetic", "--steps", "60"]


def _sweep(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["sweep", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sweep_writes_documented_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, stdout, _ = _sweep(
        [*FAST, "--grid", "0.5:0.99:2,0.6:0.9:2", "--out", str(out), "--json"], capsys
    )
    assert code == 0
    payload = json.loads(stdout)
    assert payload["points_run"] == 4 and payload["summary"]["n_points"] == 4
    points = pd.read_csv(out / "points.csv")
    assert set(POINT_COLUMNS) <= set(points.columns)
    assert len(points) == 4 and points["point_id"].is_unique
    assert (points["torch_beta1"] == points["gamma"]).all()
    assert (points["torch_beta2"] == points["beta"]).all()
    assert (points["bound_ratio_max"] <= 1 + 1e-5).all()
    assert set(points["measured_class"]) <= {"growing", "bounded", "diverged"}
    traces = pd.read_parquet(out / "traces")
    assert len(traces) == 4 * 60
    assert set(traces["point_id"]) == set(points["point_id"])
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["preset"]["train"]["steps"] == 60
    assert {"torch", "numpy", "python", "stabcli"} <= set(config["versions"])
    assert config["device"] == "cpu"
    assert json.loads((out / "state.json").read_text())["status"] == "complete"


def test_rerun_reuses_finished_points_and_extends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = [*FAST, "--out", str(out), "--json"]
    assert _sweep([*args, "--point", "0.9,0.5", "--point", "0.99,0.9"], capsys)[0] == 0
    first = pd.read_csv(out / "points.csv")
    code, stdout, _ = _sweep(
        [*args, "--point", "0.99,0.9", "--point", "0.95,0.7", "--point", "0.9,0.5"], capsys
    )
    assert code == 0
    payload = json.loads(stdout)
    assert (payload["points_run"], payload["points_reused"]) == (1, 2)
    second = pd.read_csv(out / "points.csv")
    assert len(second) == 3 and second["point_id"].is_unique
    kept = second.set_index("point_id").loc[first["point_id"]].reset_index()
    pd.testing.assert_frame_equal(kept[first.columns], first)


@pytest.mark.slow
def test_sweep_killed_with_sigkill_resumes_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "stabcli", "sweep", "--preset", "mlp-synthetic", "--steps", "200",
        "--grid", "0.6:0.99:3,0.5:0.9:2", "--points-per-batch", "1", "--out", str(out), "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if (out / "points.csv").exists() and len(pd.read_csv(out / "points.csv")) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail("the sweep finished before it could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("no batch was committed in time")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = pd.read_csv(out / "points.csv")
    assert 2 <= len(before) < 6
    assert json.loads((out / "state.json").read_text())["status"] == "running"
    loud = [c for c in cmd if c != "--quiet"]
    done = subprocess.run(loud, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "left 'running' by a process that has ended" in done.stderr  # stale, not locked
    after = pd.read_csv(out / "points.csv")
    assert len(after) == 6 and after["point_id"].is_unique
    kept = after.set_index("point_id").loc[before["point_id"]].reset_index()
    pd.testing.assert_frame_equal(kept[before.columns], before)
    traces = pd.read_parquet(out / "traces")
    assert traces.groupby("point_id").size().eq(200).all() and traces["point_id"].nunique() == 6


def test_incompatible_run_directory_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _sweep([*FAST, "--point", "0.9,0.5", "--out", str(out), "-q"], capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = _sweep(
        ["--preset", "mlp-synthetic", "--steps", "80", "--point", "0.9,0.5", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "different configuration" in err and "train.steps" in err
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


BAD = {
    "inverted-grid": (["--grid", "0.99:0.5:3,0.5:0.6:2"], "empty or inverted"),
    "empty-grid": (["--grid", "0.5:0.5:3,0.5:0.6:2"], "empty or inverted"),
    "point-outside": (["--point", "1.5,0.5"], "beta must be"),
    "gamma-outside": (["--point", "0.9,1.0"], "gamma must be"),
    "torch-point-outside": (["--torch-betas", "0.9,1.0"], "beta2"),
    "malformed-point": (["--point", "0.9"], "--point"),
    "unknown-preset": (["--preset", "no-such-preset", "--point", "0.9,0.5"], "tiny-char"),
    "missing-data": (["--data", "/no/such/file.txt", "--point", "0.9,0.5"], "--data"),
    "two-regions": (["--level-curve", "--grid", "0.5:0.9:2,0.5:0.6:2"], "choose one"),
    "bad-span": (["--span", "0.5:1.5"], "span"),
    "inverted-span": (["--span", "0.999:0.96"], "inverted"),
    "bad-through": (["--through", "0.9,1.2"], "gamma"),
    "bad-slope-at": (["--point", "0.9,0.5", "--steps", "60", "--slope-at", "58"], "--slope-at"),
    "bad-device": (["--point", "0.9,0.5", "--device", "tpu"], "device"),
    "bf16-on-cpu": (["--point", "0.9,0.5", "--device", "cpu", "--dtype", "bfloat16"], "CUDA"),
    "bad-dtype": (["--point", "0.9,0.5", "--dtype", "float8"], "float64"),
    "bad-schedule": (["--point", "0.9,0.5", "--schedule", "linear"], "anneal"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, words = BAD[case]
    code, stdout, err = _sweep([*args, "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert "Traceback" not in err + stdout
    assert not (tmp_path / "run" / "points.csv").exists()


def test_unwritable_out_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    code, _, err = _sweep([*FAST, "--point", "0.9,0.5", "--out", str(blocker / "run")], capsys)
    assert code == 2 and "cannot write" in err
    assert blocker.read_text() == "keep me"


def test_missing_shakespeare_offline_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STABCLI_SHAKESPEARE", raising=False)
    monkeypatch.setenv("STABCLI_SHAKESPEARE_URL", "http://127.0.0.1:9/input.txt")
    code, _, err = _sweep(
        ["--preset", "shakespeare-small", "--point", "0.9,0.5", "--out", str(tmp_path / "r")],
        capsys,
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("stabcli: error:")
    assert "--data" in lines[0] and "STABCLI_SHAKESPEARE" in lines[0]
    assert not (tmp_path / "r").exists()


def _growth_table(out: Path) -> pd.DataFrame:
    points = pd.read_csv(out / "points.csv")
    points["rel_error"] = (points["measured_slope"] - points["exact_rate"]).abs() / points[
        "exact_rate"
    ]
    return points.set_index(["beta", "gamma"])


def test_tiny_char_growing_points_match_exact_rate_and_bplus_is_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # two points of the default normal curve through (0.999, 0.9) that lie in the exact
    # unstable region (γ² > β), and (0.999, 0.9) itself in B+
    out = tmp_path / "run"
    code, stdout, _ = _sweep(
        ["--point", "0.999,0.9", "--point", "0.9566,0.9907", "--point", "0.9532,0.9969",
         "--out", str(out), "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0
    table = _growth_table(out)
    assert table.loc[(0.999, 0.9), "measured_class"] == "bounded"
    for point in [(0.9566, 0.9907), (0.9532, 0.9969)]:
        row = table.loc[point]
        assert row["measured_class"] == "growing"
        assert row["rel_error"] < 0.05, row
        assert row["agrees_with"] == "exact"  # the paper's |C|/2 is ~20% too high here
    summary = json.loads(stdout)["summary"]
    assert summary["exact_correct"] == summary["paper_correct"] == 3


@pytest.mark.slow
def test_shakespeare_small_near_one_slopes_match_exact_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shakespeare_path: Path
) -> None:
    out = tmp_path / "run"
    code, _, _ = _sweep(
        ["--preset", "shakespeare-small", "--data", str(shakespeare_path), "--steps", "400",
         "--point", "0.975,0.996", "--point", "0.97,0.995", "--point", "0.999,0.9",
         "--out", str(out), "-q"],
        capsys,
    )  # fmt: skip
    assert code == 0
    table = _growth_table(out)
    assert table.loc[(0.999, 0.9), "measured_class"] == "bounded"
    growing = table[~table["exact_stable"]]
    assert len(growing) == 2 and (growing["measured_class"] == "growing").all()
    assert (growing["rel_error"] < 0.05).all(), growing[["exact_rate", "measured_slope"]]
    assert (growing["bound_ratio_max"] <= 1 + 1e-5).all()


def test_report_shows_only_the_region_last_swept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        _sweep(
            [*FAST, "--point", "0.9,0.5", "--point", "0.99,0.9", "--out", str(out), "-q"], capsys
        )[0]
        == 0
    )
    assert _sweep([*FAST, "--point", "0.95,0.7", "--out", str(out), "-q"], capsys)[0] == 0
    assert len(pd.read_csv(out / "points.csv")) == 3  # earlier points are kept for reuse
    assert main(["report", str(out), "--csv", "-"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(zip(table["beta"], table["gamma"], strict=True)) == [(0.95, 0.7)]


def test_rerun_without_out_finds_its_own_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*FAST, "--point", "0.9,0.5", "--point", "0.99,0.9", "--json"]
    first = json.loads(_sweep(args, capsys)[1])
    other = json.loads(_sweep([*FAST, "--point", "0.8,0.5", "--json"], capsys)[1])
    again = json.loads(_sweep(args, capsys)[1])
    assert (again["points_run"], again["points_reused"]) == (0, 2)
    assert again["run_dir"] == first["run_dir"] != other["run_dir"]
    assert Path(first["run_dir"]).parent.resolve() == (tmp_path / "runs").resolve()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_stopping_marks_the_run_interrupted_and_the_rerun_resumes(
    tmp_path: Path, stop: signal.Signals
) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "stabcli", "sweep", "--preset", "mlp-synthetic", "--steps", "200",
        "--grid", "0.6:0.99:3,0.5:0.9:2", "--points-per-batch", "1", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / "points.csv").exists() and len(pd.read_csv(out / "points.csv")) >= 1):
        assert proc.poll() is None, "the sweep finished before it could be interrupted"
        assert time.monotonic() < deadline, "no batch was committed in time"
        time.sleep(0.05)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err
    assert json.loads((out / "state.json").read_text())["status"] == "interrupted"
    kept = len(pd.read_csv(out / "points.csv"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and f"{kept} point(s) already finished" in done.stderr
    assert len(pd.read_csv(out / "points.csv")) == 6


def test_schedule_and_eps_overrides_reach_the_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = [*FAST, "--point", "0.5,0.9", "--schedule", "anneal", "--eps", "1e-8", "--out", str(out)]
    assert _sweep([*args, "-q"], capsys)[0] == 0
    train = json.loads((out / "config.json").read_text())["settings"]["preset"]["train"]
    assert (train["schedule"], train["eps"]) == ("anneal", 1e-8)
    lr = pd.read_parquet(out / "traces").sort_values("step")["lr"].to_numpy()
    c = 2 / 0.9 - 1 / 0.5 - 1  # C(0.5, 0.9) < 0: App. O eq. 15 anneals η
    assert lr[40] == pytest.approx(1e-3 * math.exp(-40 * abs(c) / 2))
