"""Planning a k-study: which sub-runs and points, App. H's schedule scaled with --steps, and
the best grid point of each (k, strategy) against a brute-force computation."""

from __future__ import annotations

import itertools
import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kstudy_helpers import tiny_preset, tiny_request

from stabcli.errors import SettingError, StabcliError
from stabcli.probe.optim import lr_table
from stabcli.store.kstudy import GRID_COLUMNS, best_of_grid
from stabcli.sweep.kstudy import STRATEGIES, plan_kstudy, study_schedule
from stabcli.theory.kadam import KAdamStrategy

PLANS = [
    ((1, 2, 3), ("inverse-exp", "naive"), (1e-3, 3e-3), (0.0,)),
    ((2, 3), ("exp",), (1e-3,), (0.0, 1e-2)),
    ((1,), STRATEGIES, (1e-3, 3e-3, 6e-4), (0.0,)),
    ((4, 1, 2), ("scaled", "exp"), (2e-3,), (1e-4, 1e-3)),
]


@pytest.mark.parametrize(
    ("ks", "strategies", "lrs", "wds"),
    PLANS,
    ids=["k1-3-two-strategies", "no-adam-with-wd", "adam-only", "unsorted-k-wd-grid"],
)
def test_plan_has_one_subrun_per_k_and_strategy_with_adam_once(
    tmp_path: Path,
    ks: tuple[int, ...],
    strategies: tuple[str, ...],
    lrs: tuple[float, ...],
    wds: tuple[float, ...],
) -> None:
    plan = plan_kstudy(
        tiny_request(tmp_path / "s", ks=ks, strategies=strategies, lrs=lrs, weight_decays=wds)
    )
    # expected: every (k, strategy, lr, wd), where k = 1 ignores the strategy
    expected = {
        (k, "adam" if k == 1 else s, lr, wd)
        for k, s, lr, wd in itertools.product(ks, strategies, lrs, wds)
    }
    got = []
    for sub in plan.subruns:
        train = sub.sweep.request.preset.train
        if sub.entry.k == 1:
            assert (train.optimizer, train.k) == ("adam", 1)
        else:
            assert (train.optimizer, train.k, train.strategy) == (
                "kadam",
                sub.entry.k,
                sub.entry.strategy,
            )
        assert sub.path == tmp_path / "s" / f"k{sub.entry.k}-{sub.entry.strategy}"
        for p in sub.sweep.points:
            assert (p.beta, p.gamma) == (0.999, 0.9)  # the default base pair, paper order
            got.append((sub.entry.k, sub.entry.strategy, p.lr, p.weight_decay))
    assert len(got) == len(expected) and set(got) == expected
    assert [s.entry.k for s in plan.subruns] == sorted(s.entry.k for s in plan.subruns)
    assert sum(len(s.sweep.ids) for s in plan.subruns) == len(expected)
    if max(wds) > 0:  # the preset has none: the grid's λ is decoupled (AdamW)
        assert plan.preset.train.weight_decay_mode == "decoupled"
        assert plan.adam_label == "AdamW"


def test_the_default_strategies_are_the_papers_four() -> None:
    assert set(STRATEGIES) == {s.value for s in KAdamStrategy}
    assert set(STRATEGIES) == {"inverse-exp", "exp", "scaled", "naive"}


def _half_up(numerator: int, denominator: int) -> int:
    """round(numerator/denominator), halves up, by decimal arithmetic."""
    exact = Fraction(numerator, denominator)
    value = Decimal(exact.numerator) / Decimal(exact.denominator)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize(
    ("s0", "w0", "e0", "steps"),
    [
        (600, 150, 75, 600),
        (600, 150, 75, 60),
        (600, 150, 75, 13),
        (9800, 196, 490, 25),  # cnn-cifar10's 2 epochs of 98 steps, 4% of the run
        (9800, 196, 490, 1000),
        (9800, 196, 490, 19600),
        (100, 3, 7, 50),  # 1.5 rounds up to 2
    ],
    ids=[
        "preset-length",
        "tenth",
        "shortest",
        "cifar-shortest",
        "cifar-1000",
        "cifar-double",
        "half",
    ],
)
def test_warmup_and_evaluations_scale_with_the_study_length(
    s0: int, w0: int, e0: int, steps: int
) -> None:
    preset = tiny_preset().with_overrides(steps=s0, warmup_steps=w0, eval_every=e0)
    got = study_schedule(preset, steps)
    assert got.steps == steps
    assert got.warmup_steps == _half_up(w0 * steps, s0) >= 1
    assert got.eval_every == max(1, _half_up(e0 * steps, s0))
    assert abs(got.warmup_steps - w0 * steps / s0) <= 0.5 + 1e-12  # within half a step


@pytest.mark.parametrize(
    ("s0", "w0", "steps", "least"),
    [(9800, 196, 24, 25), (9800, 196, 12, 25), (1000, 10, 49, 50)],
    ids=["cifar-24", "cifar-12", "one-percent"],
)
def test_steps_too_short_for_any_warmup_are_refused_in_one_line(
    s0: int, w0: int, steps: int, least: int
) -> None:
    preset = tiny_preset().with_overrides(steps=s0, warmup_steps=w0, eval_every=10)
    assert w0 * steps / s0 < 0.5 <= w0 * least / s0  # rounds to 0 here, to 1 at `least`
    with pytest.raises(SettingError) as err:
        study_schedule(preset, steps)
    message = err.value.render({"steps": "--steps"})
    assert "\n" not in message and f"--steps >= {least}" in message and "warm-up" in message
    assert study_schedule(preset, least).warmup_steps == 1


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"schedule": "constant"}, "cosine"),
        ({"warmup_steps": 0}, "warm-up"),
        ({"eval_every": 0}, "test loss"),
    ],
    ids=["constant-schedule", "no-warmup", "no-evals"],
)
def test_presets_the_study_cannot_follow_app_h_with_are_refused(
    changes: dict[str, object], words: str
) -> None:
    with pytest.raises(StabcliError, match=words):
        study_schedule(tiny_preset().with_overrides(**changes), None)


def test_too_few_steps_for_the_measurement_are_refused() -> None:
    with pytest.raises(SettingError, match="steps"):
        study_schedule(tiny_preset(), 11)


def test_every_point_warms_up_then_decays_to_a_tenth_of_its_own_lr(tmp_path: Path) -> None:
    lrs = (3e-4, 1e-3, 3e-3)
    plan = plan_kstudy(tiny_request(tmp_path / "s", ks=(2,), strategies=("exp",), lrs=lrs))
    train = plan.subruns[0].sweep.request.preset.train
    warm = plan.schedule.warmup_steps
    assert (train.steps, warm) == (24, 6)
    eta = np.array(lrs)
    table = lr_table(train, np.full(3, 0.999), np.full(3, 0.9), eta)  # (S, P)
    np.testing.assert_allclose(table[-1], eta / 10, rtol=1e-12)
    np.testing.assert_allclose(table.max(axis=0), eta, rtol=1e-12)
    assert (np.argmax(table, axis=0) == warm).all()  # the peak right after the warm-up
    assert (np.diff(table[: warm + 1], axis=0) > 0).all()  # rising during the warm-up
    assert (np.diff(table[warm:], axis=0) <= 0).all()  # then decaying


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"ks": ()}, "k"),
        ({"ks": (0, 2)}, "k must be an integer"),
        ({"ks": (2, 2)}, "twice"),
        ({"strategies": ("fast",)}, "unknown k-Adam strategy"),
        ({"strategies": ("exp", "exp")}, "twice"),
        ({"lrs": (0.0,)}, "lr"),
        ({"lrs": (math.inf,)}, "lr"),
        ({"weight_decays": (-1e-3,)}, "weight_decay"),
        ({"steps": 5}, "steps"),
    ],
    ids=[
        "no-k",
        "k-zero",
        "k-twice",
        "bad-strategy",
        "strategy-twice",
        "lr-zero",
        "lr-inf",
        "negative-wd",
        "few-steps",
    ],
)
def test_bad_requests_are_one_line_errors_and_write_nothing(
    tmp_path: Path, changes: dict[str, object], words: str
) -> None:
    with pytest.raises(StabcliError, match=words) as err:
        plan_kstudy(tiny_request(tmp_path / "s", **changes))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "s").exists()


def _brute_force(points: pd.DataFrame) -> dict[tuple[int, str], int]:
    """Row index of each (k, strategy)'s winner, by plain loops: highest accuracy, then
    lowest loss, then first; a missing value loses to any present one."""
    winners: dict[tuple[int, str], int] = {}
    for i, row in points.iterrows():
        key = (int(row["k"]), str(row["strategy"]))
        if key not in winners:
            winners[key] = int(i)
            continue
        best = points.loc[winners[key]]

        def score(r: pd.Series) -> tuple[float, float]:
            acc, loss = r["best_test_accuracy"], r["best_test_loss"]
            return (
                -math.inf if math.isnan(acc) else acc,
                -math.inf if math.isnan(loss) else -loss,
            )

        if score(row) > score(best):
            winners[key] = int(i)
    return winners


def _grid(seed: int, n_keys: int, n_grid: int, ties: bool, holes: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for key in range(n_keys):
        k, strategy = (1, "adam") if key == 0 else (1 + key, STRATEGIES[key % 4])
        for g in range(n_grid):
            acc = float(rng.integers(0, 3) / 4 if ties else rng.random())
            loss = float(rng.integers(0, 2) if ties else rng.random() * 3)
            if holes and rng.random() < 0.3:
                acc = math.nan
            if holes and rng.random() < 0.2:
                loss = math.nan
            rows.append(
                {
                    "k": k,
                    "strategy": strategy,
                    "subrun": f"k{k}-{strategy}",
                    "point_id": f"p{key}-{g}",
                    "lr": 1e-3 * (g + 1),
                    "weight_decay": 0.0,
                    "best_test_loss": loss,
                    "best_test_accuracy": acc,
                }
            )
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


@pytest.mark.parametrize(
    ("seed", "n_keys", "n_grid", "ties", "holes"),
    [
        (0, 5, 6, False, False),
        (1, 9, 4, True, False),
        (2, 7, 5, True, True),
        (3, 3, 1, False, True),
        (4, 13, 12, False, True),
    ],
    ids=["distinct", "ties", "ties-and-nan", "one-point-grids", "large"],
)
def test_best_of_grid_matches_a_brute_force_search(
    seed: int, n_keys: int, n_grid: int, ties: bool, holes: bool
) -> None:
    points = _grid(seed, n_keys, n_grid, ties, holes)
    shuffled = points.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for frame in (points, shuffled):
        got = best_of_grid(frame)
        winners = _brute_force(frame)
        keys = list(dict.fromkeys(zip(frame["k"], frame["strategy"], strict=True)))
        assert list(zip(got["k"], got["strategy"], strict=True)) == keys
        expected = frame.loc[[winners[key] for key in keys]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def test_best_of_grid_of_nothing_is_empty() -> None:
    assert best_of_grid(_grid(0, 0, 0, False, False)).empty
