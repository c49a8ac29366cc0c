"""The theory columns of points.csv, and reading a row back as a :class:`PointOutcome`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from stabcli.theory import paper
from stabcli.theory.agreement import PointOutcome, predict


def prediction_columns(beta: float, gamma: float, step: int) -> dict[str, Any]:
    """Both conventions of the point and both theories' predictions at the slope step."""
    return {
        "beta": beta,
        "gamma": gamma,
        "torch_beta1": gamma,
        "torch_beta2": beta,
        **asdict(predict(beta, gamma, step)),
    }


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def outcome_of_row(row: Mapping[str, Any]) -> PointOutcome:
    """A points.csv row (dict) as the prediction-vs-measurement record."""
    stable = row["exact_stable"]
    if isinstance(stable, str):
        stable = stable.strip().lower() == "true"
    return PointOutcome(
        paper_grows=row["paper_region"] == paper.Region.B_MINUS.value,
        exact_grows=not bool(stable),
        paper_rate=_float(row["paper_rate"]),
        exact_rate=_float(row["exact_rate"]),
        measured_class=str(row["measured_class"]),
        measured_slope=_float(row["measured_slope"]),
    )
