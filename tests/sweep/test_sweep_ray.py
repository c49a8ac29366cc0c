"""`stabcli sweep --executor ray` on a local Ray instance that this module starts: the same
results as the local executor bit for bit on a CPU, a worker killed mid-batch is run
again and every point lands exactly once, Ctrl-C leaves a run the local executor resumes,
and the cluster's answers (no GPUs, an address nobody answers at) are one-line errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from stabcli.cli import main
from stabcli.probe import load_preset
from stabcli.sweep.executor import ExecutorSpec, read_batch_record
from stabcli.sweep.regions import curve_region
from stabcli.sweep.rows import MeasureSetup
from stabcli.sweep.run import SweepRequest, plan_sweep, run_sweep
from stabcli.theory.domain import HyperPoint

ray = pytest.importorskip("ray")

TINY = ["--preset", "tiny-char", "--steps", "40", "--points", "4", "--points-per-batch", "2"]
#: A factory whose batches(step) kills its own process at step kill_at the first time any
#: process gets there (a marker file records that it happened): a Ray worker lost mid-batch.
KILLER = """
import os
import signal

import torch
from torch import nn


def build(seed, marker, kill_at):
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(64, 4, generator=g)  # (64, 4) inputs
    ys = xs.sum(dim=1, keepdim=True).tanh()  # (64, 1) targets

    def batches(step, split="train"):
        if split == "train" and step == kill_at:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        i = (step * 8) % 64
        return xs[i : i + 8], ys[i : i + 8]

    return model, batches, nn.functional.mse_loss
"""
KILLER_PRESET = """
description = "a factory that kills its process once, mid-batch"
[model]
kind = "factory"
factory = "killer:build"
python_path = ["."]
kwargs = {{ marker = "{marker}", kill_at = {kill_at} }}
[train]
steps = {steps}
lr = 1e-3
eps = 1e-30
seed = 0
eval_every = 0
"""
STEPS, KILL_AT = 130, 100  # the engine reports point-steps at step 64: progress to take back


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A Ray instance on this machine with 2 CPUs, connected to this process (the sweeps
    run in this process use it); its address, for sweeps run in a subprocess."""
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def _sweep(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["sweep", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _tables(run: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """points.csv, traces and evals, ordered by point id (and step) whatever the arrival."""
    points = pd.read_csv(run / "points.csv").sort_values("point_id").reset_index(drop=True)
    traces = pd.read_parquet(run / "traces").sort_values(["point_id", "step"])
    evals = pd.DataFrame()  # a preset without test losses writes none
    if (run / "evals").exists():
        evals = pd.read_parquet(run / "evals").sort_values(["point_id", "step"])
    return points, traces.reset_index(drop=True), evals.reset_index(drop=True)


def _records(run: Path) -> list:
    batches = pd.read_csv(run / "points.csv")["batch"].unique()
    return [read_batch_record(run / "traces" / f"{b}.parquet") for b in sorted(batches)]


@pytest.mark.slow  # over 20 s on a busy 2-core machine: workers start cold
def test_ray_gives_the_local_executors_results_bit_for_bit(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert _sweep([*TINY, "--out", str(local), "-q"], capsys)[0] == 0
    code, _, err = _sweep([*TINY, "--out", str(remote), "--executor", "ray"], capsys)
    assert code == 0, err
    assert "ray: " in err and "each batch a task on 1 CPU (cpu, 1 torch thread)" in err
    for expected, got in zip(_tables(local), _tables(remote), strict=True):
        pd.testing.assert_frame_equal(expected, got, check_exact=True)
    records = _records(remote)
    assert len(records) == 2
    for record in records:
        assert (record.executor, record.device, record.threads) == ("ray", "cpu", 1)
        assert record.pid != os.getpid()  # trained in a Ray worker, not here
    assert json.loads((remote / "config.json").read_text())["executor"]["kind"] == "ray"


def test_ray_tasks_use_the_local_runs_thread_count(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(2)  # Ray starts workers with 1 thread: the task must pin 2
    args = ["--preset", "mlp-synthetic", "--steps", "20", "--points", "2", "-q"]
    assert _sweep([*args, "--out", str(tmp_path / "local")], capsys)[0] == 0
    code, _, err = _sweep([*args, "--out", str(tmp_path / "ray"), "--executor", "ray"], capsys)
    assert code == 0, err
    assert [r.threads for r in _records(tmp_path / "ray")] == [2]
    assert [r.threads for r in _records(tmp_path / "local")] == [2]
    for expected, got in zip(_tables(tmp_path / "local"), _tables(tmp_path / "ray"), strict=True):
        pd.testing.assert_frame_equal(expected, got, check_exact=True)


@pytest.mark.slow  # over 20 s on a busy 2-core machine: workers start cold
def test_a_worker_killed_mid_batch_is_run_again_and_every_point_lands_once(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "killer.py").write_text(KILLER)
    marker = tmp_path / "killed-once"
    preset_file = tmp_path / "killer.toml"
    preset_file.write_text(KILLER_PRESET.format(marker=marker, steps=STEPS, kill_at=KILL_AT))
    preset = load_preset(str(preset_file))
    region = curve_region("normal-curve", HyperPoint(0.999, 0.9), 4)
    request = SweepRequest(
        preset,
        region,
        MeasureSetup.for_run(STEPS),
        out=tmp_path / "ray",
        points_per_batch=2,
        executor=ExecutorSpec("ray"),
    )
    progress: list[int] = []
    notices: list[str] = []
    outcome = run_sweep(plan_sweep(request), on_progress=progress.append, on_notice=notices.append)
    assert marker.exists()  # a worker did die, at step KILL_AT of its batch
    assert len(notices) == 1 and "its worker process died" in notices[0]
    assert "running it again (attempt 2 of 3)" in notices[0]
    assert (outcome.n_run, outcome.n_reused) == (4, 0)
    assert sum(progress) == 4 * STEPS  # the lost attempt's point-steps were taken back
    points = pd.read_csv(tmp_path / "ray" / "points.csv")
    traces = pd.read_parquet(tmp_path / "ray" / "traces")
    assert len(points) == 4 and points["point_id"].is_unique
    assert set(traces["point_id"]) == set(points["point_id"])
    assert (traces.groupby("point_id")["step"].agg(list) == [list(range(STEPS))] * 4).all()
    assert sorted(r.attempt for r in _records(tmp_path / "ray")) == [1, 2]
    # the batch run again computed what an uninterrupted local run computes
    assert marker.exists()  # (so the factory does not kill this process)
    args = ["--preset", str(preset_file), "--points", "4", "--points-per-batch", "2", "-q"]
    assert _sweep([*args, "--out", str(tmp_path / "local")], capsys)[0] == 0
    for expected, got in zip(_tables(tmp_path / "local"), _tables(tmp_path / "ray"), strict=True):
        pd.testing.assert_frame_equal(expected, got, check_exact=True)


def _ctrl_c_reaches_it() -> None:
    """In the child before exec: SIGINT handled as in a terminal. A shell's background job
    (``cmd &``, as a CI script may run the suite) starts with SIGINT ignored, which Python
    and its children then keep, so the Ctrl-C this test sends would not arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow  # a subprocess driver, trained until its first batch is saved
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_during_a_ray_sweep_leaves_a_run_the_local_executor_resumes(
    stop: signal.Signals, cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--preset", "tiny-char", "--steps", "120", "--points", "6"]
    args += ["--points-per-batch", "1", "--out", str(out), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "stabcli", "sweep", *args]
    driver = subprocess.Popen(
        [*command, "--executor", "ray", "--address", cluster],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
        preexec_fn=_ctrl_c_reaches_it,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None:
            points = out / "points.csv"
            if points.exists() and len(pd.read_csv(points)) >= 1:
                break
            time.sleep(0.2)
        assert driver.poll() is None, driver.communicate()[1]
        driver.send_signal(stop)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, err
    assert "interrupted; finished batches are saved" in err
    assert json.loads((out / "state.json").read_text())["status"] == "interrupted"
    saved = len(pd.read_csv(out / "points.csv"))
    assert 1 <= saved < 6
    deadline = time.monotonic() + 30  # the driver's tasks are cancelled: CPUs free again
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2
    code, stdout, _ = _sweep([*args[:-1], "--json"], capsys)  # the local executor resumes
    assert code == 0
    payload = json.loads(stdout)
    assert (payload["points_reused"], payload["points_run"]) == (saved, 6 - saved)
    points = pd.read_csv(out / "points.csv")
    assert len(points) == 6 and points["point_id"].is_unique
    traces = pd.read_parquet(out / "traces")
    assert (traces.groupby("point_id").size() == 120).all() and traces["point_id"].nunique() == 6
    assert json.loads((out / "state.json").read_text())["status"] == "complete"


def _twice(x: int) -> int:
    return 2 * x  # a task body (never run here: the sweeps above run real tasks)


@pytest.mark.parametrize(("gpus", "max_calls"), [(0.0, 0), (0.5, 1), (1.0, 1)])
def test_gpu_batches_run_in_a_fresh_worker_and_cpu_batches_reuse_workers(
    cluster: str, gpus: float, max_calls: int
) -> None:
    """A reused worker would keep the GPU it first started CUDA on: Ray's own rule for GPU
    tasks (one call per worker) must hold for the tasks the executor submits."""
    from stabcli.sweep.ray_executor import RayExecutor

    executor = RayExecutor(ExecutorSpec(kind="ray"), device="cpu")
    try:
        executor.gpus = gpus  # as if the cluster had GPUs (this one has none)
        task = executor._remote(_twice, retries=0)
        # Ray keeps a task's options in _default_options; no public getter exists
        assert task._default_options["max_calls"] == max_calls
        assert task._default_options["num_gpus"] == gpus
        assert task._default_options["max_retries"] == 0
        # this cluster: 2 CPUs, so CPU tasks of `cpus` cores each share its RAM that way
        assert executor.share == executor.cpus / 2
    finally:
        executor.close()


def test_the_sizing_task_fits_a_batch_in_its_share_of_the_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tasks that share a device (0.5 GPU each, or CPU tasks side by side on a node) must
    size their batches to their part of its free memory, not each to all of it."""
    import stabcli
    from stabcli.probe import device as probe_device
    from stabcli.probe import resolve_setup
    from stabcli.sweep.ray_executor import size_task

    monkeypatch.setattr(probe_device, "free_memory", lambda device: 4 << 30)
    setup = resolve_setup(load_preset("tiny-char"), device="cpu")
    estimate = setup.memory(torch.device("cpu"))
    for share in (1.0, 0.5):
        fit, _ = size_task(setup, "cpu", 1, stabcli.__version__, 10**7, share)
        assert fit == (int((4 << 30) * share) // 2 - estimate.shared) // estimate.per_point


def test_gpus_the_cluster_lacks_are_a_one_line_error(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = [*TINY, "--executor", "ray", "--gpus-per-batch", "1", "--out", str(out)]
    code, _, err = _sweep(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "no node of the Ray cluster has that many GPUs" in lines[0]
    assert not out.exists()  # refused before the run directory was made


def test_an_address_nobody_answers_at_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "run"
    args = [*TINY, "--executor", "ray", "--address", f"127.0.0.1:{port}", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "stabcli", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"cannot connect to Ray at 127.0.0.1:{port}" in lines[0]
    assert not out.exists()


def test_a_stop_during_ray_calls_is_held_until_between_them() -> None:
    """Ctrl-C inside ray.wait/ray.get can corrupt Ray's task bookkeeping: the executor notes
    it there and delivers it, to the handler that was in place, between two calls."""
    from stabcli.sweep.ray_executor import DeferredStops

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    before = signal.getsignal(signal.SIGINT)
    stops = DeferredStops()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # as if during ray.wait: noted, nothing raised
        assert stops.caught == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            stops.act()  # between calls: Python's own Ctrl-C, raised here
        assert stops.caught == [] and signal.getsignal(signal.SIGINT) is before
    finally:
        stops.restore()
    quiet = DeferredStops()
    quiet.act()  # nothing noted: nothing happens
    quiet.restore()
    assert signal.getsignal(signal.SIGINT) is before
    signal.signal(signal.SIGINT, outer)
