"""The sweep's executor seam, without Ray: batches committed in whatever order they arrive,
a batch given up on leaves the other points saved and the run resumable, each batch's
record of where it ran, point ids with per-point η and λ, the factory model's batching
line, and the one-line errors of the executor options (Ray missing included)."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
import sys
import tomllib
from collections.abc import Generator, Sequence
from pathlib import Path

import pandas as pd
import pytest
import torch

import stabcli.sweep.run as sweep_run
from stabcli import __version__
from stabcli.cli import main
from stabcli.errors import StabcliError
from stabcli.probe import ProbePoint, ProbeSetup, load_preset
from stabcli.store import point_id
from stabcli.sweep.executor import (
    Batch,
    BatchFailed,
    BatchOutcome,
    ExecutorSpec,
    LocalExecutor,
    NoticeFn,
    ProgressFn,
    open_executor,
    read_batch_record,
)
from stabcli.sweep.regions import SweepRegion
from stabcli.sweep.rows import MeasureSetup
from stabcli.sweep.run import SweepRequest, plan_sweep, run_sweep

FAST = ["--preset", "mlp-synthetic", "--steps", "40"]
POINTS = ["--point", "0.9,0.5", "--point", "0.99,0.9", "--point", "0.95,0.7"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _sweep(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["sweep", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stabcli: error: "), err
    return lines[0]


def _by_id(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """points.csv and the traces, in an order that does not depend on arrival."""
    points = pd.read_csv(run / "points.csv").sort_values("point_id").reset_index(drop=True)
    traces = pd.read_parquet(run / "traces").sort_values(["point_id", "step"])
    return points, traces.reset_index(drop=True)


class ReversedExecutor(LocalExecutor):
    """Trains every batch here, then hands them back last first."""

    def run(
        self,
        setup: ProbeSetup,
        batches: Sequence[Batch],
        on_progress: ProgressFn | None = None,
        on_notice: NoticeFn | None = None,
    ) -> Generator[BatchOutcome, None, None]:
        done = list(super().run(setup, batches, on_progress, on_notice))
        yield from reversed(done)


class LosesFirstExecutor(LocalExecutor):
    """Gives up on the first batch (as after its retries), trains the others."""

    def run(
        self,
        setup: ProbeSetup,
        batches: Sequence[Batch],
        on_progress: ProgressFn | None = None,
        on_notice: NoticeFn | None = None,
    ) -> Generator[BatchOutcome, None, None]:
        yield BatchFailed(batches[0], "its worker process died (killed, or out of memory)", 3)
        yield from super().run(setup, batches[1:], on_progress, on_notice)


def test_batches_arriving_in_any_order_give_the_same_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*FAST, *POINTS, "--points-per-batch", "1", "--json"]
    assert _sweep([*args, "--out", str(tmp_path / "in-order")], capsys)[0] == 0
    monkeypatch.setattr(sweep_run, "open_executor", lambda spec, device: ReversedExecutor())
    code, stdout, _ = _sweep([*args, "--out", str(tmp_path / "reversed")], capsys)
    assert code == 0
    payload = json.loads(stdout)
    assert [(p["beta"], p["gamma"]) for p in payload["points"]] == [
        (0.9, 0.5),
        (0.99, 0.9),
        (0.95, 0.7),
    ]  # the outcome keeps the region's order ...
    arrived = pd.read_csv(tmp_path / "reversed" / "points.csv")
    assert arrived["beta"].tolist() == [0.95, 0.99, 0.9]  # ... whatever order was committed
    for expected, got in zip(
        _by_id(tmp_path / "in-order"), _by_id(tmp_path / "reversed"), strict=True
    ):
        pd.testing.assert_frame_equal(expected, got, check_exact=True)


def test_a_batch_given_up_on_keeps_the_others_and_the_run_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    args = [*FAST, *POINTS, "--points-per-batch", "1", "--out", str(out), "--json"]
    with monkeypatch.context() as patch:
        patch.setattr(sweep_run, "open_executor", lambda spec, device: LosesFirstExecutor())
        code, _, err = _sweep([*args, "-q"], capsys)
    line = _one_error(err)
    assert code == 2
    assert "1 point(s) in 1 batch(es) failed (batch 1, after 3 attempt(s)" in line
    assert "worker process died" in line and "the 2 point(s) trained now are saved" in line
    assert json.loads((out / "state.json").read_text())["status"] == "interrupted"
    kept = pd.read_csv(out / "points.csv")
    assert sorted(kept["beta"]) == [0.95, 0.99]
    code, stdout, _ = _sweep(args, capsys)  # the same command, the local executor
    assert code == 0
    payload = json.loads(stdout)
    assert (payload["points_run"], payload["points_reused"]) == (1, 2)
    points, traces = _by_id(out)
    assert len(points) == 3 and points["point_id"].is_unique
    assert traces.groupby("point_id").size().tolist() == [40, 40, 40]  # each point once
    assert json.loads((out / "state.json").read_text())["status"] == "complete"


def test_each_batch_keeps_the_record_of_where_it_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, _, _ = _sweep([*FAST, *POINTS, "--points-per-batch", "2", "--out", str(out)], capsys)
    assert code == 0
    batches = pd.read_csv(out / "points.csv")["batch"].unique()
    assert len(batches) == 2
    for batch in batches:
        path = out / "traces" / f"{batch}.parquet"
        record = read_batch_record(path)
        assert record is not None
        assert (record.executor, record.device, record.dtype) == ("local", "cpu", "float32")
        assert record.threads == torch.get_num_threads()
        assert (record.batching, record.attempt, record.stabcli) == ("native", 1, __version__)
        assert record.torch == torch.__version__ and record.seconds > 0
        assert pd.read_parquet(path).attrs["stabcli_batch"] == record.to_dict()
    config = json.loads((out / "config.json").read_text())
    assert config["executor"] == ExecutorSpec().to_dict()
    assert config["executor"]["kind"] == "local"
    assert config["batching"] == {"path": "native", "reason": ""}


def _old_point_id(fingerprint: str, beta: float, gamma: float) -> str:
    """The id rule of runs made before per-point η and λ (README, Run directories)."""
    text = f"{fingerprint}|{float(beta).hex()}|{float(gamma).hex()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("beta", "gamma"),
    [(0.999, 0.9), (0.1, 0.0), (0.95, 0.99), (0.5, 0.1000000000000001)],
    ids=["default", "rmsprop", "unstable", "one-ulp"],
)
def test_plain_point_ids_are_unchanged(beta: float, gamma: float) -> None:
    assert point_id("0123456789abcdef", beta, gamma) == _old_point_id(
        "0123456789abcdef", beta, gamma
    )
    assert point_id("0123456789abcdef", beta, gamma, None, None) == _old_point_id(
        "0123456789abcdef", beta, gamma
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((None, None), (1e-3, None)),
        ((1e-3, None), (2e-3, None)),
        ((None, 0.1), (None, 0.2)),
        ((0.1, None), (None, 0.1)),  # the same number as η or as λ
        ((1e-3, 0.1), (1e-3, None)),
    ],
    ids=["lr-given", "lr-differs", "wd-differs", "lr-or-wd", "wd-given"],
)
def test_point_ids_include_lr_and_weight_decay_when_given(
    first: tuple[float | None, float | None], second: tuple[float | None, float | None]
) -> None:
    assert point_id("f", 0.999, 0.9, *first) != point_id("f", 0.999, 0.9, *second)
    assert point_id("f", 0.999, 0.9, *first) == point_id("f", 0.999, 0.9, *first)


def _request(points: tuple[ProbePoint, ...] | tuple[object, ...], out: Path) -> SweepRequest:
    preset = load_preset("mlp-synthetic").with_overrides(steps=30)
    region = SweepRegion(
        kind="points",
        description=f"{len(points)} given points",
        points=points,  # type: ignore[arg-type]
        positions=tuple(i / max(len(points) - 1, 1) for i in range(len(points))),
    )
    return SweepRequest(preset, region, MeasureSetup.for_run(30), out=out, device="cpu")


def test_points_differing_only_in_lr_get_their_own_ids_and_both_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    plain = ProbePoint(0.99, 0.9)
    first = run_sweep(plan_sweep(_request((plain,), out)))  # a run of plain points
    fast = ProbePoint(0.99, 0.9, lr=3e-3)
    plan = plan_sweep(_request((plain, fast), out))
    assert plan.ids[0] == first.points["point_id"][0] == _old_point_id(plan.fingerprint, 0.99, 0.9)
    assert plan.ids[1] != plan.ids[0]
    outcome = run_sweep(plan)
    assert (outcome.n_run, outcome.n_reused) == (1, 1)  # the plain point's run is resumed
    points = pd.read_csv(out / "points.csv").set_index("point_id").loc[list(plan.ids)]
    # the plain point was committed by a run of plain points: no η, λ of its own there
    assert points["lr"].isna().tolist() == [True, False]
    assert points["lr"].iloc[1] == 3e-3 and points["weight_decay"].iloc[1] == 0.0
    traces = pd.read_parquet(out / "traces")
    for pid, lr in zip(plan.ids, (1e-3, 3e-3), strict=True):
        mine = traces[traces["point_id"] == pid]
        assert len(mine) == 30 and (mine["lr"] == lr).all()  # a constant schedule: η_n = η
    a, b = (traces[traces["point_id"] == pid]["max_update"].to_numpy() for pid in plan.ids)
    assert not (a == b).all()  # they trained differently


def test_the_same_point_twice_in_a_region_is_refused(tmp_path: Path) -> None:
    twice = (ProbePoint(0.99, 0.9, lr=3e-3), ProbePoint(0.99, 0.9, lr=3e-3))
    with pytest.raises(StabcliError, match="twice"):
        plan_sweep(_request(twice, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_factory_sweep_says_how_its_points_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tomllib.loads((EXAMPLES / "small_cnn.toml").read_text(encoding="utf-8"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    model = importlib.import_module("small_cnn").build(
        seed=table["train"]["seed"], **table["model"]["kwargs"]
    )[0]
    n_params = sum(p.numel() for p in dict(model.named_parameters()).values() if p.requires_grad)
    out = tmp_path / "run"
    preset = ["--preset", str(EXAMPLES / "small_cnn.toml"), "--steps", "20"]
    code, _, err = _sweep([*preset, "--points", "2", "--out", str(out)], capsys)
    assert code == 0
    found = re.search(
        r"^model: factory 'small_cnn:build', ([\d,]+) parameters; "
        r"(all points in one torch\.func\.vmap|one point at a time \((.+)\))$",
        err,
        re.MULTILINE,
    )
    assert found is not None, err
    assert int(found.group(1).replace(",", "")) == n_params
    batching = json.loads((out / "config.json").read_text())["batching"]
    vmapped = found.group(2).startswith("all points")
    assert batching["path"] == ("vmap" if vmapped else "sequential")
    assert batching["reason"] == ("" if vmapped else found.group(3))
    code, _, err = _sweep([*FAST, "--point", "0.9,0.5", "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "model:" not in err  # the engine's own models always vectorize


def test_executor_ray_without_ray_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "run"
    code, _, err = _sweep(
        [*FAST, "--point", "0.9,0.5", "--executor", "ray", "--out", str(out)], capsys
    )
    line = _one_error(err)
    assert code == 2 and "--executor ray needs Ray" in line
    assert "pip install 'stabcli[ray]'" in line
    assert not out.exists()
    with pytest.raises(StabcliError, match=re.escape("pip install 'stabcli[ray]'")):
        open_executor(ExecutorSpec("ray"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--executor", "dask"], "--executor must be one of local, ray, got 'dask'"),
        (["--address", "10.0.0.1:6379"], "--address applies only to --executor ray"),
        (["--gpus-per-batch", "1"], "--gpus-per-batch applies only to --executor ray"),
    ],
    ids=["unknown-executor", "address-without-ray", "gpus-without-ray"],
)
def test_executor_options_are_checked_in_one_line(
    options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, _, err = _sweep([*FAST, "--point", "0.9,0.5", *options, "--out", str(out)], capsys)
    assert code == 2 and message in _one_error(err)
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(kind="local", address="x:1"), "address applies only to the ray executor"),
        (dict(kind="ray", gpus_per_batch=-1.0), "gpus_per_batch must be a number >= 0"),
        (dict(kind="ray", max_retries=-1), "max_retries must be a whole number >= 0"),
    ],
    ids=["address-local", "negative-gpus", "negative-retries"],
)
def test_executor_spec_refuses_bad_settings(spec: dict[str, object], message: str) -> None:
    with pytest.raises(StabcliError, match=message):
        ExecutorSpec(**spec)  # type: ignore[arg-type]


def _rounds(n_points: int, slots: int, per_batch: int) -> int:
    return math.ceil(math.ceil(n_points / per_batch) / slots)


@pytest.mark.parametrize(
    ("n_points", "slots", "fit"),
    [(64, 4, 10), (64, 4, 100), (64, 1, 9), (7, 2, 100), (1, 8, 3), (100, 3, 7), (16, 16, 1)],
    ids=["fig2-4gpu-10fit", "fig2-4gpu-roomy", "fig2-1gpu", "odd", "one-point", "uneven", "tiny"],
)
def test_ray_batch_size_takes_fewest_rounds_with_the_smallest_batches(
    n_points: int, slots: int, fit: int
) -> None:
    from stabcli.sweep.ray_executor import even_batches

    # brute force: of the sizes that fit, those needing the fewest rounds; the smallest of
    # them spreads the points most evenly over the slots
    sizes = range(1, fit + 1)
    fewest = min(_rounds(n_points, slots, p) for p in sizes)
    best = min(p for p in sizes if _rounds(n_points, slots, p) == fewest)
    assert even_batches(n_points, slots, fit) == min(best, n_points)
