"""stabcli.theory stays light: importing it (and analysing a point) pulls in no numpy,
torch, pandas or plotly, so that ``stabcli check`` starts fast (README, "Limitations")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "torch", "pandas", "plotly")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def loaded_heavy_modules(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "body",
    [
        "import stabcli.theory",
        "import stabcli.theory.analysis",
        "import stabcli.theory.curves, stabcli.theory.kadam, stabcli.theory.memory",
        "from stabcli.theory import analyze_point\n"
        "a = analyze_point(0.95, 0.9); a.to_dict(); a.verdict\n"
        "analyze_point(0.4, 0.6); analyze_point(0.5, 0.9); analyze_point(0.5, 0.0)",
        "from stabcli.theory.domain import HyperPoint\n"
        "from stabcli.theory.kadam import KAdamStrategy, kadam_table\n"
        "kadam_table(HyperPoint(0.999, 0.9), 3, KAdamStrategy.INVERSE_EXP)",
    ],
    ids=["theory", "analysis", "submodules", "analyze_point", "kadam_table"],
)
def test_theory_imports_no_heavy_modules(body):
    assert loaded_heavy_modules(body) == []


def test_the_probe_detects_heavy_imports():
    # Guard against a vacuous probe: importing numpy must be seen.
    assert loaded_heavy_modules("import numpy") == ["numpy"]
