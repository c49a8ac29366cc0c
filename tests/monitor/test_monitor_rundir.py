"""close() writes a run directory through stabcli.store that the store and the report read
back; the context manager closes on exceptions too; one-line errors for bad use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monitor_models import regression, train

from stabcli.errors import StabcliError
from stabcli.monitor import watch
from stabcli.report.load import load_run
from stabcli.store import RunDir
from stabcli.store.schema import POINT_COLUMNS, TRACE_COLUMNS

STEPS = 40


def _adamw(model: torch.nn.Module, lr: float = 1e-2) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)


def test_close_writes_a_run_the_store_and_the_report_read(tmp_path: Path) -> None:
    model, loss = regression()
    opt = _adamw(model)
    mon = watch(opt, run_dir=tmp_path / "run", model=model)
    train(opt, loss, STEPS)
    mon.close()
    summary = mon.summary()

    run = RunDir.open(tmp_path / "run")
    config = run.config()
    assert config["kind"] == "monitor" and config["settings"]["kind"] == "monitor"
    optimizer = config["settings"]["optimizer"]
    assert optimizer["class"] == "torch.optim.adamw.AdamW"
    assert optimizer["param_groups"][0]["betas"] == [0.9, 0.95]  # PyTorch's order, as given
    assert optimizer["param_groups"][0]["weight_decay"] == 0.1
    assert config["settings"]["model"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert {"stabcli", "torch", "python"} <= set(config["versions"])
    assert config["step_offset"] == 0 and config["dtype"] == "float64"

    state = run.state()
    points = run.read_points()
    assert state is not None and state.status == "complete"
    assert state.planned == tuple(points.point_id)
    assert set(POINT_COLUMNS) <= set(points.columns) and len(points) == 1
    row = points.iloc[0]
    assert (row.beta, row.gamma) == (0.95, 0.9)  # the paper's (β, γ) = (beta2, beta1)
    assert (row.torch_beta1, row.torch_beta2) == (0.9, 0.95)
    assert row.exact_stable and row.paper_region == "B+" and row.path == "constant"
    assert row.bound_ratio_max <= 1 + 1e-12  # AdamW: measured against bound + λ‖θ_n‖∞
    measured = mon.points().iloc[0]  # every column the measurement computed
    assert measured.bound_check in ("within the bound", "within the bound up to rounding")
    assert measured.point_id == row.point_id and measured.bound_ratio_max == row.bound_ratio_max

    traces = run.read_traces()
    assert set(TRACE_COLUMNS) | {"beta", "gamma", "bound"} <= set(traces.columns)
    assert traces.step.tolist() == list(range(STEPS))
    np.testing.assert_array_equal(traces.max_update, summary.max_update)
    np.testing.assert_array_equal(traces.lr, summary.lr)
    assert (traces.beta == 0.95).all() and (traces.gamma == 0.9).all()
    assert (traces.wd_term > 0).all()

    data = load_run(tmp_path / "run")  # what `stabcli report` reads
    assert len(data.points) == 1 and len(data.traces) == STEPS and not data.is_partial
    assert data.description.startswith("monitored training: AdamW")


def test_the_context_manager_closes_on_an_exception(tmp_path: Path) -> None:
    model, loss = regression()
    opt = _adamw(model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        watch(opt, run_dir=tmp_path, model=model) as mon,
    ):
        train(opt, loss, 10)
        raise RuntimeError("boom")
    assert mon.closed
    state = RunDir.open(tmp_path).state()
    assert state is not None and state.status == "interrupted"
    assert len(RunDir.open(tmp_path).read_traces()) == 10  # what was measured is kept
    train(opt, loss, 5)  # the hooks are gone: nothing more is recorded
    assert len(mon.summary()) == 10
    watch(opt, run_dir=tmp_path, model=model).close()  # and the lock was released


def test_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    model, _ = regression()
    with watch(_adamw(model), run_dir=tmp_path), pytest.raises(StabcliError, match="in use"):
        watch(_adamw(model), run_dir=tmp_path)


def test_another_configuration_needs_overwrite(tmp_path: Path) -> None:
    model, loss = regression()
    opt = _adamw(model)
    with watch(opt, run_dir=tmp_path):
        train(opt, loss, 5)
    other = _adamw(model, lr=3e-3)
    with pytest.raises(
        StabcliError, match=r"differs in: optimizer.param_groups.*run_dir or pass overwrite=True"
    ):
        watch(other, run_dir=tmp_path)
    with watch(other, run_dir=tmp_path, overwrite=True):
        train(other, loss, 5)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["settings"]["optimizer"]["param_groups"][0]["lr"] == 3e-3


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()
    }


@pytest.mark.parametrize("where", ["k1-adam", "k3-inverse-exp", "."])
def test_a_k_studys_runs_are_not_watched_over(tmp_path: Path, where: str) -> None:
    """watch(..., overwrite=True) into a k-study's sub-run replaced it, and the study's
    table then showed the monitored run as that (k, strategy)'s."""
    from stabcli.probe import load_preset
    from stabcli.sweep.kstudy import KStudyRequest, run_kstudy

    small = load_preset("cnn-synthetic").with_overrides(
        n_layer=1, n_embd=4, image_size=8, n_samples=400, batch_size=16, eval_batches=2
    )
    study = tmp_path / "study"
    run_kstudy(
        KStudyRequest(
            small,
            ks=(1,),
            strategies=("inverse-exp",),
            lrs=(1e-3,),
            steps=24,
            out=study,
            device="cpu",
        )
    )
    before = _tree(study)
    model, _ = regression()
    for overwrite in (False, True):
        with pytest.raises(StabcliError, match="inside the k-study"):
            watch(_adamw(model), run_dir=study / where, overwrite=overwrite)
    assert _tree(study) == before


def test_the_same_training_again_replaces_its_point(tmp_path: Path) -> None:
    for steps in (5, 8):
        model, loss = regression()
        opt = _adamw(model)
        with watch(opt, run_dir=tmp_path, model=model):
            train(opt, loss, steps)
    run = RunDir.open(tmp_path)
    assert len(run.read_points()) == 1 and len(run.read_traces()) == 8


def test_before_any_step() -> None:
    model, _ = regression()
    with watch(_adamw(model)) as mon:
        assert len(mon.summary()) == 0 and len(mon.points()) == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: torch.optim.SGD(m.parameters(), lr=0.1), "has no betas"),
        (lambda m: "adam", "needs a torch.optim.Optimizer, got str"),
    ],
    ids=["sgd", "not-an-optimizer"],
)
def test_what_cannot_be_watched(make, message: str) -> None:
    model, _ = regression()
    with pytest.raises(StabcliError, match=message):
        watch(make(model))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": 0}, "every must be a whole number >= 1, got 0"),
        ({"sync_every": 2.5}, "sync_every must be a whole number >= 1, got 2.5"),
        ({"log_every": -1}, "log_every must be a whole number >= 0, got -1"),
        ({"model": "net"}, "model must be a torch.nn.Module or a mapping"),
    ],
    ids=["every", "sync-every", "log-every", "model"],
)
def test_bad_options_are_one_line_errors(options: dict, message: str) -> None:
    model, _ = regression()
    with pytest.raises(StabcliError, match=message) as caught:
        watch(_adamw(model), **options)
    assert "\n" not in str(caught.value)
