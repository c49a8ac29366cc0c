"""points.csv rows back into :mod:`stabcli.measure`'s dataclasses, for the headline.

The sweep writes each point's :class:`~stabcli.measure.PointMeasurement` as one row
(store.schema); the report reads the rows, which are the run's record, and rebuilds the
figures the headline counts (classes, verdicts, rate errors, the bound check, windows), so
that :func:`stabcli.measure.headline.summarize` is the one definition of the headline
(docs/theory.md §9). Values a row lacks (an older run, a damaged cell) read as unknown:
an undetermined class, an undetermined verdict, an unknown bound status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

import pandas as pd

from stabcli.measure import (
    BoundCheck,
    BoundKind,
    BoundStatus,
    GrowthShape,
    Headline,
    LevelBounds,
    MeasuredClass,
    MeasureSettings,
    PathFacts,
    PointMeasurement,
    PowerLaw,
    RateEstimate,
    Theory,
    TheoryVerdict,
    Verdict,
    Window,
)
from stabcli.measure.headline import summarize
from stabcli.measure.window import Regime
from stabcli.store.schema import level_ratio_column

E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: object, default: E) -> E:
    try:
        return kind(str(value))
    except ValueError:
        return default


def _float(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def _int(value: object) -> int | None:
    number = _float(value)
    return int(number) if math.isfinite(number) else None


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def point_measurement(row: Mapping[str, Any]) -> PointMeasurement:
    """One points.csv row (normalised by report.load) as a PointMeasurement.

    The rate's count of finite values is not stored; the window's length stands in for it.
    """
    start, stop = _int(row.get("window_start")) or 0, _int(row.get("window_stop")) or 0
    measured = _enum(MeasuredClass, row.get("measured_class"), MeasuredClass.UNDETERMINED)
    reason = _text(row.get("class_reason"))
    window = Window(
        start=start,
        stop=stop,
        settle_step=_int(row.get("settle_step")),
        regime=_enum(Regime, row.get("window_rule"), Regime.BOUNDED),
        steps_needed=_int(row.get("steps_needed")),
        reason=reason if reason.startswith("run too short") else "",
    )
    rate = RateEstimate(
        rate=_float(row.get("rate")),
        stderr=_float(row.get("rate_stderr")),
        low=_float(row.get("rate_low")),
        high=_float(row.get("rate_high")),
        count=max(stop - start, 0),
        lag1=_float(row.get("rate_lag1")),
        start=start,
        stop=stop,
    )
    ratio_step = _int(row.get("bound_ratio_step"))
    bound = BoundCheck(
        ratio_all=_float(row.get("bound_ratio_max")),
        step_all=ratio_step if ratio_step is not None else -1,
        ratio_window=_float(row.get("bound_ratio_settled")),
        status=_enum(BoundStatus, row.get("bound_check"), BoundStatus.UNKNOWN),
        note=_text(row.get("bound_note")),
    )
    sqrt_n = row.get("sqrt_n")
    power = PowerLaw(
        exponent=_float(row.get("power_exponent")),
        halfwidth=_float(row.get("power_halfwidth")),
        start=window.settle_step if window.settle_step is not None else stop,
        stop=stop,
        shape=_enum(GrowthShape, row.get("growth_shape"), GrowthShape.UNDETERMINED),
        sqrt_n=bool(sqrt_n) if sqrt_n is not None and not pd.isna(sqrt_n) else False,
    )

    def verdict(theory: Theory) -> TheoryVerdict:
        return TheoryVerdict(
            theory=theory,
            verdict=_enum(Verdict, row.get(f"{theory}_verdict"), Verdict.UNDETERMINED),
            predicted_rate=_float(row.get(f"{theory}_rate")),
            rel_error=_float(row.get(f"{theory}_rel_error")),
        )

    return PointMeasurement(
        levels=_levels(row),
        path=_path(row),
        beta=_float(row.get("beta")),
        gamma=_float(row.get("gamma")),
        window=window,
        rate=rate,
        measured_class=measured,
        reason=reason,
        central_slope=_float(row.get("central_slope")),
        central_at=_int(row.get("central_at")) or 0,
        diverged_step=_int(row.get("diverged_step")),
        bound=bound,
        power=power,
        paper=verdict(Theory.PAPER),
        exact=verdict(Theory.EXACT),
        closer_theory=_text(row.get("closer_theory")),
    )


def level_count(row: Mapping[str, Any]) -> int:
    """k of a k-Adam row: its number of ``level_ratio_l<i>`` columns (0 for other rows)."""
    k = 0
    while level_ratio_column(k + 1) in row:
        k += 1
    return k


def _levels(row: Mapping[str, Any]) -> LevelBounds | None:
    """A k-Adam row's levels (store.schema.KADAM_POINT_COLUMNS); None for other rows.

    points.csv keeps every level's ratio and the words of the worst one, which is all the
    headline reads (a level above its bound is the worst level whenever any is).
    """
    k = level_count(row)
    if not k or "level_check" not in row:
        return None
    worst = _int(row.get("level_worst")) or 0
    step = _int(row.get("level_ratio_step"))
    beta, gamma = _float(row.get("level_beta")), _float(row.get("level_gamma"))
    return LevelBounds(
        beta=(beta,) * k,
        gamma=(gamma,) * k,
        ratios=tuple(_float(row.get(level_ratio_column(i))) for i in range(1, k + 1)),
        worst=worst,
        check=BoundCheck(
            ratio_all=_float(row.get("level_ratio_max")),
            step_all=step if step is not None else -1,
            ratio_window=math.nan,
            status=_enum(BoundStatus, row.get("level_check"), BoundStatus.UNKNOWN),
            note="",
        ),
    )


def _path(row: Mapping[str, Any]) -> PathFacts | None:
    """A learned-beta row's path facts (store.schema.PATH_POINT_COLUMNS); None otherwise."""
    if "bound_kind" not in row or not _text(row.get("bound_kind")):
        return None
    first = _int(row.get("first_unstable_step"))
    rate = _float(row.get("unstable_rate"))
    after = None
    if first is not None and math.isfinite(rate):
        after = RateEstimate(
            rate=rate,
            stderr=math.nan,
            low=_float(row.get("unstable_rate_low")),
            high=_float(row.get("unstable_rate_high")),
            count=0,
            lag1=math.nan,
            start=first,
            stop=_int(row.get("window_stop")) or first,
        )
    return PathFacts(
        final_beta=_float(row.get("final_beta")),
        final_gamma=_float(row.get("final_gamma")),
        first_unstable_step=first,
        after=after,
        after_class=_text(row.get("unstable_class")),
        after_reason=_text(row.get("unstable_reason")),
        bound_kind=_enum(BoundKind, row.get("bound_kind"), BoundKind.PATH),
        off_face_step=_int(row.get("off_face_step")),
    )


def headline_of(points: pd.DataFrame, settings: MeasureSettings) -> Headline:
    """The headline (measure.headline) over the rows of points.csv."""
    rows = points.to_dict("records")
    return summarize([point_measurement(r) for r in rows], settings)


def has_verdicts(points: pd.DataFrame) -> bool:
    """Whether the rows were measured by this version (an older sweep wrote no verdicts)."""
    if points.empty or "exact_verdict" not in points:
        return points.empty
    return bool((points["exact_verdict"].astype(str) != "").any())
