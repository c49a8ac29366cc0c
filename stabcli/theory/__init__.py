"""Pure math of Adam's (β, γ) stability: no torch, no pandas, no numpy at import time.

Scalars are plain floats (so ``stabcli check`` stays fast); the step ``n`` may be an int or a
numpy integer array, and the closed forms broadcast over it. See docs/theory.md §1 for conventions:
β is PyTorch's ``beta2``, γ is PyTorch's ``beta1``.
"""

from stabcli.theory.analysis import PointAnalysis, TheoryVerdict, analyze_point
from stabcli.theory.domain import HyperPoint, validate_beta, validate_gamma
from stabcli.theory.exact import (
    exact_bound,
    exact_limit_bound,
    exact_rate,
    exact_slope,
    exact_stable,
)
from stabcli.theory.paper import (
    Region,
    c_value,
    paper_bound,
    paper_limit_bound,
    paper_rate,
    region,
)

__all__ = [
    "HyperPoint",
    "PointAnalysis",
    "Region",
    "TheoryVerdict",
    "analyze_point",
    "c_value",
    "exact_bound",
    "exact_limit_bound",
    "exact_rate",
    "exact_slope",
    "exact_stable",
    "paper_bound",
    "paper_limit_bound",
    "paper_rate",
    "region",
    "validate_beta",
    "validate_gamma",
]
