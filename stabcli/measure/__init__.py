"""Measurement of a max-update trace: slopes, their uncertainty, classes and bound checks.

Torch-free (numpy only) and the one place where these are computed: the sweep, the report
and the live monitor all use it (docs/theory.md §9). Modules, in the order of the
measurement: ``settings`` (thresholds), ``fit`` (windowed least squares with
autocorrelation-corrected errors), ``profile`` (slopes across the run, App. H's central
difference), ``window`` (the valid window from (β, γ) and the run length), ``classify``
(rate and class), ``power`` (√n growth on the boundary), ``bounds`` (the exact bound
check), ``verdicts`` (what the measurement says about each theory), ``headline`` (a
sweep's summary), ``points`` (all of it for a sweep), ``levels`` (k-Adam's levels against
their own bounds), ``paths`` (moving betas against the path bound), ``optimizers`` (which
(β, γ) and bound each optimizer's points answer to), ``columns`` (all of it as points.csv
columns) and ``stream`` (the live monitor).
"""

from stabcli.measure.bounds import BoundCheck, BoundStatus
from stabcli.measure.classify import MeasuredClass, RateEstimate
from stabcli.measure.columns import measurement_columns
from stabcli.measure.headline import Headline
from stabcli.measure.levels import LevelBounds
from stabcli.measure.optimizers import measure_kadam, measure_learned
from stabcli.measure.paths import BoundKind, PathFacts
from stabcli.measure.points import PointMeasurement, SweepMeasurement, measure_points
from stabcli.measure.power import GrowthShape, PowerLaw
from stabcli.measure.profile import SlopeProfile
from stabcli.measure.settings import MeasureSettings, rounding_tolerance
from stabcli.measure.stream import GrowthMonitor, MonitorStatus
from stabcli.measure.verdicts import Theory, TheoryVerdict, Verdict
from stabcli.measure.window import SweepPlan, Window, plan_sweep, plan_window

__all__ = [
    "BoundCheck",
    "BoundKind",
    "BoundStatus",
    "GrowthMonitor",
    "GrowthShape",
    "Headline",
    "LevelBounds",
    "MeasureSettings",
    "MeasuredClass",
    "MonitorStatus",
    "PathFacts",
    "PointMeasurement",
    "PowerLaw",
    "RateEstimate",
    "SlopeProfile",
    "SweepMeasurement",
    "SweepPlan",
    "Theory",
    "TheoryVerdict",
    "Verdict",
    "Window",
    "measure_kadam",
    "measure_learned",
    "measure_points",
    "measurement_columns",
    "plan_sweep",
    "plan_window",
    "rounding_tolerance",
]
