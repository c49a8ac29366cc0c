"""One direction of dependency: cli → (sweep, report) → (probe, store) → theory.

theory is the pure-math foundation that everything may use (each formula in one place);
probe, store, sweep and report never import upwards or sideways. The rooms beside them:
optim (public torch optimizers, whose kernels the probe engine uses), measure (torch-free
measurement of traces, used by sweep, report and the monitor), configs (betas found in
users' files, used by the CLI) and monitor (a live monitor for any training loop).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stabcli"
ALLOWED = {
    "theory": {"theory", "errors"},
    "optim": {"optim", "theory", "errors"},
    "measure": {"measure", "theory", "errors"},
    "configs": {"configs", "theory", "errors"},
    "monitor": {"monitor", "measure", "store", "theory", "errors"},
    "store": {"store", "errors"},
    "probe": {"probe", "optim", "theory", "errors"},
    "sweep": {"sweep", "probe", "store", "measure", "theory", "errors"},
    "report": {"report", "store", "measure", "theory", "errors"},
    "reproduce": {
        "reproduce",
        "sweep",
        "report",
        "probe",
        "store",
        "measure",
        "optim",
        "theory",
        "errors",
    },
}
HEAVY = {
    "theory": {"torch", "pandas", "plotly"},
    "measure": {"torch", "pandas", "plotly"},
    "optim": {"pandas", "plotly"},
    "configs": {"pandas", "plotly"},
    "monitor": {"plotly"},
    "store": {"torch", "plotly"},
}


def _imports(source: Path, text: str | None = None) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved)."""
    tree = ast.parse(source.read_text(encoding="utf-8") if text is None else text)
    package = source.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # ("stabcli", ...)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            if not node.module:  # from .. import x: x may itself be a module
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_relative_imports_are_resolved() -> None:
    here = PACKAGE / "report" / "summary.py"
    assert "stabcli.probe" in _imports(here, "from ..probe import engine\n")
    assert "stabcli.sweep" in _imports(here, "from .. import sweep\n")
    assert "stabcli.report.load" in _imports(here, "from .load import x\n")


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_lies_below(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, layer
    for source in files:
        for name in _imports(source):
            parts = name.split(".")
            if parts[0] == "stabcli" and len(parts) > 1 and parts[1] != "__init__":
                assert parts[1] in ALLOWED[layer] | {"__version__"}, (source.name, name)
            assert parts[0] not in HEAVY.get(layer, set()), (source.name, name)
