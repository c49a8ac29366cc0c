"""Parsing of hyperparameter points as users type them (paper order and PyTorch order)."""

from __future__ import annotations

import math
from typing import NamedTuple

from stabcli.errors import StabcliError
from stabcli.theory.domain import HyperPoint, validate_beta, validate_gamma


def parse_floats(text: str, count: int, option: str, form: str) -> list[float]:
    """``count`` comma-separated finite numbers from ``text``, or a one-line error."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise StabcliError(f"{option} must look like {form}, got {text!r}")
    return values


def parse_point(text: str, option: str = "--point") -> HyperPoint:
    """A point in the paper's order 'β,γ' (β = torch beta2, γ = torch beta1)."""
    beta, gamma = parse_floats(text, 2, option, "'BETA,GAMMA' in the paper's order, e.g. 0.95,0.9")
    return HyperPoint(beta, gamma)


def parse_torch_betas(text: str, option: str = "--torch-betas") -> HyperPoint:
    """A point in PyTorch's order 'beta1,beta2' (= γ,β)."""
    beta1, beta2 = parse_floats(text, 2, option, "'BETA1,BETA2' in PyTorch's order, e.g. 0.9,0.999")
    return HyperPoint.from_torch(beta1, beta2)


def point_from_args(beta: str | None, gamma: str | None, torch_betas: str | None) -> HyperPoint:
    """The one point given either as positional β γ or as --torch-betas B1,B2."""
    if torch_betas is not None:
        if beta is not None or gamma is not None:
            raise StabcliError("give either BETA GAMMA (paper order) or --torch-betas, not both")
        return parse_torch_betas(torch_betas)
    if beta is None or gamma is None:
        missing = "BETA and GAMMA" if beta is None else "GAMMA"
        raise StabcliError(
            f"missing {missing}: give the point as BETA GAMMA in the paper's order "
            "(e.g. 0.999 0.9), as --torch-betas 0.9,0.999, or --from a config or checkpoint"
        )
    return HyperPoint(validate_beta(beta), validate_gamma(gamma))


class GivenPoint(NamedTuple):
    """A point to check and how the user gave it (a named tuple: cheaper to define at
    start-up than a dataclass)."""

    point: HyperPoint
    order: str  # "paper" (typed BETA GAMMA) or "torch" (--torch-betas, or found by --from)
    source: str | None = None  # "file: key.path" for a point found by --from


def points_to_check(
    beta: str | None, gamma: str | None, torch_betas: str | None, files: list[str] | None
) -> list[GivenPoint]:
    """The points of one ``check``: BETA GAMMA, --torch-betas, or every pair in the files."""
    if not files:
        point = point_from_args(beta, gamma, torch_betas)
        return [GivenPoint(point, "paper" if torch_betas is None else "torch")]
    if beta is not None or gamma is not None or torch_betas is not None:
        raise StabcliError("give BETA GAMMA, --torch-betas or --from FILE, not several")
    from stabcli.configs import betas_in_files

    return [GivenPoint(f.point, "torch", f.source) for f in betas_in_files(files)]
