"""The registry of reproducible figures: every figure the papers' analyses call for, lazy
imports, and one-line errors for unknown or unavailable figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stabcli.errors import StabcliError
from stabcli.reproduce.figures import BY_NAME, FIGURES, Figure, figure

#: The figures the reproduction calls for, by the names the command takes.
EXPECTED = (
    "fig1", "fig2", "fig3", "fig4", "fig5", "fig6-7", "mada-fig8", "fig9", "fig11", "fig12",
    "fig13", "mem-fig1", "mem-fig2",
)  # fmt: skip


def test_the_registry_lists_every_figure_once() -> None:
    names = [f.name for f in FIGURES]
    assert sorted(names) == sorted(EXPECTED)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.name)
def test_every_figure_states_its_claim_time_and_source(fig: Figure) -> None:
    assert fig.title and fig.claim.endswith(".")
    assert "arXiv" in fig.paper_ref
    assert 0 < fig.cpu_minutes < 60


def test_the_nanogpt_figures_need_a_gpu_at_paper_scale() -> None:
    for name in ("fig2", "fig3", "fig11", "fig12", "fig13", "fig4"):
        assert BY_NAME[name].needs_gpu_at_paper and BY_NAME[name].paper_scale
    assert not BY_NAME["fig1"].needs_gpu_at_paper


def test_the_cpu_minutes_fit_in_an_hour() -> None:
    assert sum(f.cpu_minutes for f in FIGURES) < 60


def test_an_unknown_figure_is_a_one_line_error_listing_the_names() -> None:
    with pytest.raises(StabcliError) as err:
        figure("fig99")
    text = str(err.value)
    assert "\n" not in text and text.startswith("unknown figure 'fig99'")
    assert all(name in text for name in EXPECTED)


def test_a_figure_whose_module_does_not_import_is_not_available() -> None:
    missing = Figure("x", "t", "arXiv 0", "c.", 1.0, False, "stabcli.no_such_module", "run")
    needs = Figure(
        "y", "t", "arXiv 0", "c.", 1.0, False, "stabcli.reproduce.plane", "plane_figure",
        requires="stabcli.no_such_module",
    )  # fmt: skip
    for fig in (missing, needs):
        assert not fig.available()
        with pytest.raises(StabcliError) as err:
            fig.run  # noqa: B018
        assert str(err.value).startswith(f"{fig.name} is not available yet (")
    assert BY_NAME["fig1"].available()


def test_importing_the_registry_loads_no_numpy_or_torch() -> None:
    code = (
        "import json, sys\nimport stabcli.reproduce.figures, stabcli.cli.reproduce\n"
        "print(json.dumps([m for m in ('numpy', 'torch', 'pandas', 'plotly') "
        "if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
