"""The point columns of points.csv that come from the theory."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from stabcli.theory.agreement import predict


def prediction_columns(beta: float, gamma: float, step: int) -> dict[str, Any]:
    """Both conventions of the point and both theories' predictions at the slope step."""
    return {
        "beta": beta,
        "gamma": gamma,
        "torch_beta1": gamma,
        "torch_beta2": beta,
        **asdict(predict(beta, gamma, step)),
    }
