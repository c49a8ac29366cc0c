"""The slope profile across a run and App. H's central difference (measure.profile)."""

from __future__ import annotations

import numpy as np
import pytest

from stabcli.measure import MeasureSettings
from stabcli.measure.profile import central_slope, first_nonfinite, log_trace, slope_profiles

S = 1234


def _log_u() -> np.ndarray:
    """(3, S) log traces: growth, flat noise, and growth that diverges at n = 1000."""
    rng = np.random.default_rng(0)
    n = np.arange(S)
    y = np.stack([0.01 * n, np.zeros(S), 0.03 * n]) + 0.1 * rng.normal(size=(3, S))
    y[2, 1000:] = np.nan
    return y


def test_profile_windows_cover_the_run_and_match_polyfit() -> None:
    settings = MeasureSettings(profile_window=100, profile_stride=25)
    y = _log_u()
    profiles = slope_profiles(y, settings)
    assert len(profiles) == 3
    centres = profiles[0].centres
    assert centres[0] == 49.5 and centres[-1] == S - 1 - 49.5  # last window ends at the end
    assert np.all(np.diff(centres)[:-1] == 25)
    n = np.arange(S)
    for row, profile in enumerate(profiles):
        for k in (0, 7, len(centres) - 1):
            a = int(centres[k] - 49.5)
            keep = np.isfinite(y[row, a : a + 100])
            if keep.sum() < 3:
                assert np.isnan(profile.slopes[k])
                continue
            want = np.polyfit(n[a : a + 100][keep], y[row, a : a + 100][keep], 1)[0]
            assert profile.slopes[k] == pytest.approx(want, rel=1e-9)
            assert 0 < profile.halfwidth[k] < 0.01


def test_profile_after_divergence_is_nan() -> None:
    profile = slope_profiles(_log_u(), MeasureSettings())[2]
    assert np.all(np.isnan(profile.slopes[profile.centres > 1000 + 50]))
    assert np.all(np.isfinite(profile.slopes[profile.centres < 1000 - 50]))


def test_short_run_gives_one_window_of_the_whole_run() -> None:
    profile = slope_profiles(_log_u()[:, :40], MeasureSettings())[0]
    assert profile.window == 40 and profile.centres.tolist() == [19.5]


@pytest.mark.parametrize("at", [5, 500, 1228])
def test_central_difference_is_app_h(at: int) -> None:
    """(log u_{n+5} − log u_{n−5}) / 10, as the paper reads its slope at n = 500 (App. H)."""
    y = _log_u()
    got = central_slope(y, np.full(3, at), 5)
    for row in range(3):
        want = (y[row, at + 5] - y[row, at - 5]) / 10
        if np.isfinite(want):
            assert got[row] == pytest.approx(want, rel=1e-12)
        else:
            assert np.isnan(got[row])


@pytest.mark.parametrize("at", [4, 1229])
def test_central_difference_outside_the_run_is_nan(at: int) -> None:
    assert np.all(np.isnan(central_slope(_log_u(), np.full(3, at), 5)))


def test_log_trace_and_divergence_step() -> None:
    u = np.array([[1.0, 0.0, 2.0, np.nan, 3.0], [1.0, 1.0, np.inf, 1.0, 1.0], [1.0] * 5])
    assert np.isneginf(log_trace(u)[0, 1])  # a zero update is −inf, not divergence
    assert first_nonfinite(u).tolist() == [3, 2, 5]
