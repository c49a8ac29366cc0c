"""Measurement settings: documented defaults, and one-line user errors for bad values."""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.errors import StabcliError
from stabcli.measure import MeasureSettings, measure_points


def test_defaults_are_the_documented_ones() -> None:
    s = MeasureSettings()
    assert (s.growth_tol, s.confidence, s.settle_tol, s.closer_tol) == (1e-3, 0.95, 0.02, 0.10)
    assert (s.min_window, s.max_window, s.central_half) == (100, 1000, 5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("growth_tol", -1e-3, "growth_tol must be a number >= 0"),
        ("growth_tol", float("nan"), "growth_tol must be a number >= 0"),
        ("confidence", 1.0, "confidence must be strictly between 0 and 1"),
        ("settle_tol", 0.0, "settle_tol must be strictly between 0 and 1"),
        ("min_window", 5, "min_window must be >= 10"),
        ("max_window", 50, "max_window must be >= min_window (100)"),
        ("profile_stride", 0, "profile_stride must be a whole number >= 1"),
        ("window_fraction", 1.5, "window_fraction must be in (0, 1]"),
    ],
    ids=lambda v: str(v),
)
def test_bad_settings_are_one_line_user_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(StabcliError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        MeasureSettings(**{field: value})
    assert "\n" not in str(err.value)


def test_trace_shape_must_match_the_points() -> None:
    with pytest.raises(StabcliError, match="one row per"):
        measure_points([0.9, 0.99], [0.9], np.ones((2, 10)))
    with pytest.raises(StabcliError, match="no steps recorded"):
        measure_points([0.9], [0.9], np.ones((1, 0)))
