"""The reproduce package's shared pieces: scales, assessments and its light import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import stabcli.reproduce as reproduce
from stabcli.errors import StabcliError
from stabcli.reproduce import Assessment, check_scale


def test_scales_and_a_one_line_error_for_others() -> None:
    assert [check_scale(s) for s in ("cpu", "paper", "test")] == ["cpu", "paper", "test"]
    with pytest.raises(StabcliError) as err:
        check_scale("huge")
    assert str(err.value) == "unknown scale 'huge'; expected one of: cpu, paper, test"


@pytest.mark.parametrize(
    "analysis", ["boundary_figure", "memoryless_figure", "generalization_figure"]
)
def test_an_analysis_without_a_paper_setup_refuses_the_paper_scale(analysis) -> None:
    with pytest.raises(StabcliError) as err:
        getattr(reproduce, analysis)("paper")
    assert "has no 'paper' scale here; it runs at: cpu, test" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("held", "word"), [(True, "held"), (False, "not held"), (None, "undetermined")]
)
def test_assessment_verdict(held, word) -> None:
    assert Assessment("claim", "measured", held).verdict == word


def test_every_analysis_is_exported() -> None:
    for name in ("trajectory_figure", "boundary_figure", "memoryless_figure"):
        assert callable(getattr(reproduce, name))
    assert callable(reproduce.generalization_figure)
    with pytest.raises(AttributeError):
        reproduce.no_such_figure  # noqa: B018


def test_importing_the_package_loads_no_numpy_or_torch() -> None:
    code = (
        "import json, sys\nimport stabcli.reproduce\n"
        "print(json.dumps([m for m in ('numpy', 'torch') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
