"""The monitor warns, once per kind, where the theory and the measurement say so, and only
there: a parameter whose gradient vanishes grows as corr_n (γ/sqrt(β))^n when γ² > β
(docs/theory.md §3) and decays otherwise."""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
from monitor_models import regression, train, vanishing

from stabcli.measure import GrowthMonitor, measure_points
from stabcli.monitor import NoticeKind, StabilityWarning, watch
from stabcli.theory.exact import exact_rate


def _run(beta: float, gamma: float, steps: int, **options):
    """Train the vanishing-gradient model watched; (warnings caught, on_warning's, monitor)."""
    w, opt, step = vanishing(beta, gamma)
    received: list[StabilityWarning] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with watch(opt, model={"w": w}, on_warning=received.append, **options) as mon:
            for n in range(steps):
                step(n)
    return [c for c in caught if issubclass(c.category, StabilityWarning)], received, mon


GROWING = {  # (β, γ) with γ² > β whose valid window opens early (settle step 73, 139)
    "fast": (0.8, 0.95),
    "slow": (0.9, 0.97),
}


@pytest.mark.parametrize("case", list(GROWING), ids=list(GROWING))
def test_a_growing_point_warns_once_per_kind(case: str, caplog: pytest.LogCaptureFixture) -> None:
    beta, gamma = GROWING[case]
    caplog.set_level(logging.WARNING, logger="stabcli.monitor")
    caught, received, mon = _run(beta, gamma, 400, sync_every=16)
    kinds = [c.message.notice.kind for c in caught]
    assert kinds == [NoticeKind.UNSTABLE, NoticeKind.GROWTH]  # once each, in this order
    assert [r.notice.kind for r in received] == kinds
    assert all(r is c.message for r, c in zip(received, caught, strict=True))  # same objects
    logged = [r.getMessage() for r in caplog.records if r.name == "stabcli.monitor"]
    assert logged == [str(c.message) for c in caught]
    # attributed to the user's line that called optimizer.step(), not to torch or stabcli
    assert all(c.filename.endswith("monitor_models.py") for c in caught)

    unstable, growth = (c.message.notice for c in caught)
    assert unstable.step == 0
    assert f"(β, γ) = ({beta:.6g}, {gamma:.6g})" in unstable.text
    assert f"torch betas=({gamma:.6g}, {beta:.6g})" in unstable.text
    assert unstable.exact_rate == pytest.approx(math.log(gamma) - 0.5 * math.log(beta), rel=1e-12)
    assert f"{unstable.exact_rate:.4g} per step" in unstable.text
    # measured and predicted rates, both in the text; the measurement within 1% of ρ_n
    assert growth.measured_rate == pytest.approx(growth.exact_rate, rel=0.01)
    assert growth.exact_rate == pytest.approx(exact_rate(beta, gamma), rel=0.02)
    assert f"{growth.measured_rate:.4g} ± " in growth.text
    assert f"exact {growth.exact_rate:.4g}, paper {growth.paper_rate:.4g}" in growth.text
    assert growth.max_tensor == "w" and growth.groups == (0,)
    assert [n.kind for n in mon.warnings] == kinds


@pytest.mark.parametrize(
    "point", [(0.999, 0.9), (0.95, 0.9), (0.9, 0.94)], ids=["default", "b-plus", "near-boundary"]
)
def test_a_stable_point_stays_silent(point: tuple[float, float]) -> None:
    """γ² < β: the same vanishing gradient decays, and nothing is said."""
    caught, received, mon = _run(*point, 600, sync_every=16)
    assert caught == [] and received == [] and mon.warnings == []
    summary = mon.summary()
    assert summary.max_update.iloc[10] > summary.max_update.iloc[-1]  # it decayed


def test_ordinary_training_at_default_betas_stays_silent() -> None:
    model, loss = regression()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)  # betas=(0.9, 0.999)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilityWarning)
        with watch(opt, model=model) as mon:
            train(opt, loss, 800)
    assert mon.warnings == []
    assert mon.points().measured_class.item() in ("bounded", "undetermined")


def test_unstable_betas_are_said_at_the_step_that_uses_them() -> None:
    """A β schedule that crosses γ² = β: the warning names the first step beyond it."""
    model, loss = regression()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    gamma = 0.9
    betas = [0.999 - 0.002 * n for n in range(100)]  # β falls through γ² = 0.81 at n = 95
    first = next(n for n, b in enumerate(betas) if gamma * gamma > b)
    with watch(opt, model=model) as mon, pytest.warns(StabilityWarning) as caught:
        for b in betas:
            opt.param_groups[0]["betas"] = (gamma, b)
            train(opt, loss, 1)
    (notice,) = [c.message.notice for c in caught]
    assert notice.kind is NoticeKind.UNSTABLE and notice.step == first
    assert notice.beta == betas[first] and notice.gamma == gamma
    assert mon.warnings == [notice]


def test_a_non_finite_update_is_said_once() -> None:
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = torch.optim.Adam([w], lr=1e-3)
    with pytest.warns(StabilityWarning) as caught, watch(opt, model={"w": w}) as mon:
        for n in range(40):
            opt.zero_grad()
            w.grad = torch.full_like(w, math.nan if n == 20 else 1.0)
            opt.step()
    (notice,) = [c.message.notice for c in caught]
    assert notice.kind is NoticeKind.DIVERGED and notice.step == 20 and notice.max_tensor == "w"
    assert mon.points().diverged_step.item() == 20


def test_log_lines_every_log_every_steps(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stabcli.monitor")
    model, loss = regression()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watch(opt, model=model, log_every=50, sync_every=64):
        train(opt, loss, 200)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 4
    assert all("(β, γ) = (0.999, 0.9)" in line for line in lines)
    assert all(f"n = {n}:" in line for n, line in zip((49, 99, 149, 199), lines, strict=True))


@pytest.mark.parametrize("offset", [0, 60], ids=["from-step-0", "watched-late"])
def test_the_run_is_measured_as_the_measurement_module_measures_it(offset: int) -> None:
    """points() against stabcli.measure called on the recorded trace directly: the batch
    measurement from step 0, and the streaming one for a run watched from a later step."""
    w, opt, step = vanishing(0.8, 0.95)
    for n in range(offset):
        step(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityWarning)
        with watch(opt, model={"w": w}) as mon:
            for n in range(offset, 320):
                step(n)
    summary, row = mon.summary(), mon.points().iloc[0]
    assert summary.step.tolist() == list(range(offset, 320))
    if offset == 0:
        (direct,) = measure_points([0.8], [0.95], summary.max_update.to_numpy()[None]).points
        assert row.central_slope == direct.central_slope
        assert row.bound_ratio_max == direct.bound.ratio_all
        assert row.power_exponent == direct.power.exponent
    else:
        direct = GrowthMonitor(0.8, 0.95)
        direct.update(offset, summary.max_update.to_numpy())
        direct = direct.status()
    assert row.measured_class == direct.measured_class.value == "growing"
    assert (row.window_start, row.window_stop) == (direct.window.start, direct.window.stop)
    assert row.rate == pytest.approx(direct.rate.rate, rel=1e-12)
