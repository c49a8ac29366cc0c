"""Check's input limits: k, step, threshold and strategy are refused in one line past them,
and the largest accepted values answer at once (each distinct k-Adam level analysed once).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stabcli.cli import app, main
from stabcli.errors import StabcliError
from stabcli.theory.analysis import (
    MAX_STEP,
    analyze_point,
    first_step_exceeding,
    settling_step,
)
from stabcli.theory.domain import HyperPoint
from stabcli.theory.exact import exact_bound, exact_limit_bound, exact_stable
from stabcli.theory.kadam import (
    MAX_K,
    KAdamStrategy,
    kadam_levels,
    kadam_table,
    level_runs,
)
from stabcli.theory.paper import Region, paper_bound, paper_limit_bound, region

runner = CliRunner()

# args after "check", and words the one error line must hold
REFUSED = {
    "k-a-billion": (["0.9", "0.5", "--k", "1000000000"], ["--k", "1 to 1000"]),
    "k-ten-million": (["0.9", "0.5", "--k", "10000000"], ["--k", "1 to 1000"]),
    "k-just-past-max": (["0.9", "0.5", "--k", str(MAX_K + 1)], ["--k", "1001"]),
    "k-zero": (["0.9", "0.5", "--k", "0"], ["--k"]),
    "k-underflows-exp": (
        ["0.4", "0.5", "--k", "1000", "--strategy", "exp"],
        ["strategy exp", "k = 1000", "beta"],
    ),
    "step-huge": (["0.9", "0.5", "--step", "1" + "0" * 400], ["--step", "10^15", "401 digits"]),
    "step-just-past-max": (["0.9", "0.5", "--step", str(MAX_STEP + 1)], ["--step", "10^15"]),
    "step-negative": (["0.9", "0.5", "--step", "-1"], ["--step"]),
    "strategy-empty": (["0.9", "0.5", "--strategy", ""], ["strategy", "inverse-exp, exp"]),
    "strategy-empty-with-k": (["0.9", "0.5", "--k", "2", "--strategy", ""], ["inverse-exp"]),
    "threshold-zero": (["0.9", "0.5", "--threshold", "0"], ["--threshold", "> 0"]),
    "threshold-negative": (["0.9", "0.5", "--threshold", "-5"], ["--threshold", "> 0"]),
    "threshold-nan": (["0.9", "0.5", "--threshold", "nan"], ["--threshold", "finite"]),
    "threshold-inf": (["0.9", "0.5", "--threshold", "inf"], ["--threshold", "finite"]),
    "threshold-overflows": (["0.9", "0.5", "--threshold", "1e400"], ["--threshold", "finite"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_past_the_limits_is_one_line_exit_2(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    args, words = REFUSED[case]
    code = main(["check", *args])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("stabcli: error:")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert len(lines[0]) < 200  # a 401-digit step is not echoed back
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("case", ["k-a-billion", "step-huge", "strategy-empty"])
def test_past_the_limits_in_a_real_process(case: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stabcli", "check", *REFUSED[case][0]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("stabcli: error:") and proc.stderr.count("\n") == 1
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--k", str(MAX_K)],
        ["--step", str(MAX_STEP)],
        ["--step", "0"],
        ["--threshold", "1e-300"],
        ["--threshold", "0.5"],
    ],
    ids=["k-max", "step-max", "step-zero", "threshold-tiny", "threshold-below-one"],
)
def test_the_limits_themselves_are_accepted(args: list[str]) -> None:
    result = runner.invoke(app, ["check", "0.9", "0.5", *args])
    assert result.exit_code == 0, result.output


def test_largest_k_is_one_compact_row_and_a_full_json_list() -> None:
    out = runner.invoke(app, ["check", "0.9", "0.5", "--k", str(MAX_K)]).output
    assert f"k-Adam, k = {MAX_K}, strategy inverse-exp" in out
    assert f"1–{MAX_K}" in out  # levels 1..k in one row
    rows = [line for line in out.splitlines() if line.startswith("│") and "–" in line]
    assert len(rows) == 1
    data = json.loads(runner.invoke(app, ["check", "0.9", "0.5", "--k", "50", "--json"]).output)
    assert data["kadam"]["k"] == 50 and len(data["kadam"]["levels"]) == 50


def test_threshold_below_one_is_crossed_at_step_zero() -> None:
    # Documented: the exact bound is 1 at n = 0 (corr_0 (1−γ)/sqrt(1−β) = 1).
    data = json.loads(
        runner.invoke(app, ["check", "0.9", "0.5", "--threshold", "0.5", "--json"]).output
    )
    assert data["exact"]["steps_to_threshold"] == 0


STRATEGIES = list(KAdamStrategy)
BASES = [HyperPoint(0.999, 0.9), HyperPoint(0.5, 0.9), HyperPoint(0.9, 0.0)]


@pytest.mark.parametrize("k", [1, 2, 7, 40])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=[s.value for s in STRATEGIES])
@pytest.mark.parametrize("base", BASES, ids=["adam-default", "b-minus", "rmsprop"])
def test_kadam_table_equals_one_analysis_per_level(
    base: HyperPoint, strategy: KAdamStrategy, k: int
) -> None:
    table = kadam_table(base, k, strategy, step=300, threshold=50.0)
    by_level = [
        analyze_point(level.beta, level.gamma, step=300, threshold=50.0)
        for level in kadam_levels(base, k, strategy)
    ]
    assert table == by_level
    runs = level_runs(table)
    assert [run.analysis for run in runs for _ in range(run.first, run.last + 1)] == table
    assert runs[0].first == 1 and runs[-1].last == k


def test_level_runs_split_where_levels_differ() -> None:
    a, b = analyze_point(0.999, 0.9), analyze_point(0.5, 0.9)
    runs = level_runs([a, a, b, a])
    assert [(r.first, r.last, r.label) for r in runs] == [(1, 2, "1–2"), (3, 3, "3"), (4, 4, "4")]


def test_kadam_levels_refuse_k_past_the_maximum() -> None:
    with pytest.raises(StabcliError, match="1 to 1000"):
        kadam_levels(BASES[0], MAX_K + 1, KAdamStrategy.NAIVE)


# The search for "steps until the bound exceeds" stops where the bound has settled to its
# limit; it must find the same step as the full search to 10^15 (two formulations).
POINTS = [
    (0.999, 0.9),
    (0.95, 0.9),
    (0.4, 0.6),
    (0.9, 0.0),
    (0.5, 0.7),
    (0.99, 0.98),
    (0.9999, 0.99),
    (0.3, 0.01),
]
THRESHOLDS = [1.0, 1.1, 1.5, 3.0, 10.0, 1e3]


@pytest.mark.parametrize("threshold", THRESHOLDS, ids=[f"t{t:g}" for t in THRESHOLDS])
@pytest.mark.parametrize("point", POINTS, ids=[f"{b}-{g}" for b, g in POINTS])
def test_settled_search_finds_the_same_step_as_the_full_search(
    point: tuple[float, float], threshold: float
) -> None:
    beta, gamma = point
    if exact_stable(beta, gamma):
        limit = exact_limit_bound(beta, gamma)
        settled = settling_step(beta, gamma, gamma * gamma / beta)
        exact_fast = first_step_exceeding(
            lambda n: exact_bound(beta, gamma, n), threshold, limit, settled
        )
        exact_full = first_step_exceeding(lambda n: exact_bound(beta, gamma, n), threshold, limit)
        assert exact_fast == exact_full
    if gamma > 0 and region(beta, gamma) is Region.B_PLUS:
        limit = paper_limit_bound(beta, gamma)
        fast = first_step_exceeding(
            lambda n: paper_bound(beta, gamma, n), threshold, limit, settling_step(beta, gamma)
        )
        full = first_step_exceeding(lambda n: paper_bound(beta, gamma, n), threshold, limit)
        assert fast == full


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 0.999, 1 - 1e-9])
def test_settling_step_is_where_the_decay_is_below_float_rounding(decay: float) -> None:
    n = settling_step(decay)
    assert decay ** (n + 1) < 2.0**-60
    if n > 0:
        assert decay**n >= 2.0**-60 * decay  # and not much later than needed
    assert math.isclose(
        exact_bound(0.999, 0.9, settling_step(0.999, 0.9, 0.81 / 0.999)),
        exact_limit_bound(0.999, 0.9),
        rel_tol=1e-15,
    )
