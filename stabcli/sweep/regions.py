"""Regions of the (β, γ) plane a sweep runs over, as ordered lists of points.

Each region gives its points in order with a position in [0, 1] along it: arc length for
curves (paper Section 3.2 takes points uniformly along a normal curve), index otherwise.
Errors name the region's settings (``n_points``, ``grid``, ``points_file``); a front end
shows them as its own options.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stabcli.errors import SettingError, StabcliError
from stabcli.theory import curves
from stabcli.theory.domain import HyperPoint

#: Most points in one region: a sweep of this many tiny-char points runs for hours on a
#: CPU; a larger count is a typo, refused before any point is built.
MAX_POINTS = 100_000


@dataclass(frozen=True)
class SweepRegion:
    """An ordered set of points with their positions and a description."""

    kind: str  # "normal-curve", "level-curve", "grid", "points" or "points-file"
    description: str  # one line for humans, e.g. "16 points on the normal curve through ..."
    points: tuple[HyperPoint, ...]
    positions: tuple[float, ...]  # in [0, 1], same order as points
    through: HyperPoint | None = None  # the point a curve passes through
    # the order the user typed the points in: "paper" (β, γ) or "torch" (beta1, beta2);
    # tables and the report show the points in that order
    order: str = "paper"

    def to_dict(self) -> dict[str, object]:
        through = None if self.through is None else [self.through.beta, self.through.gamma]
        return {
            "kind": self.kind,
            "description": self.description,
            "through": through,
            "order": self.order,
        }


def _positions(n: int, open_ends: bool) -> tuple[float, ...]:
    if open_ends:
        return tuple((i + 0.5) / n for i in range(n))
    return tuple(i / (n - 1) for i in range(n)) if n > 1 else (0.5,)


def _check_count(setting: str, count: int) -> None:
    if not 1 <= count <= MAX_POINTS:
        raise SettingError(
            "{" + setting + "} gives {count:,} points; a region has 1 to {most:,}",
            count=count,
            most=MAX_POINTS,
        )


def curve_region(
    kind: str,
    through: HyperPoint,
    n_points: int,
    span: tuple[float, float] | None = None,
    order: str = "paper",
) -> SweepRegion:
    """``n_points`` uniformly by arc length along the normal or level curve through a point."""
    _check_count("n_points", n_points)
    build = {"normal-curve": curves.normal_section, "level-curve": curves.level_section}[kind]
    section = build(through.beta, through.gamma, span)
    points = curves.sample_by_arc_length(section, n_points)
    where = "its section inside the unit square" if span is None else f"beta in {span}"
    return SweepRegion(
        kind=kind,
        description=f"{n_points} points on the {section.name}, over {where}",
        points=tuple(points),
        positions=_positions(n_points, section.open_ends),
        through=through,
        order=order,
    )


@dataclass(frozen=True)
class GridAxis:
    lo: float
    hi: float
    n: int

    def describe(self, name: str) -> str:
        """ "beta in [0.9, 0.99]", or "beta = 0.9" for a single value."""
        return f"{name} = {self.lo:g}" if self.n == 1 else f"{name} in [{self.lo:g}, {self.hi:g}]"


def parse_grid(
    text: str, setting: str = "grid", names: tuple[str, str] = ("beta", "gamma")
) -> tuple[GridAxis, GridAxis]:
    """'β0:β1:n,γ0:γ1:n' → two axes; an empty, inverted, ambiguous or too large grid is a
    one-line error (before any point is built). ``setting`` and ``names`` name the grid in
    errors (the PyTorch-order grid is "torch_grid" over beta1, beta2)."""
    form = (
        "'b0:b1:n,g0:g1:n', e.g. 0.9:0.999:4,0.8:0.99:4"
        if setting == "grid"
        else "'b1_0:b1_1:n,b2_0:b2_1:m', e.g. 0.8:0.99:4,0.9:0.999:4"
    )
    key = "{" + setting + "}"
    try:
        axes = []
        for part in text.split(","):
            lo, hi, n = part.split(":")
            axes.append(GridAxis(float(lo), float(hi), int(n)))
        beta_axis, gamma_axis = axes
    except ValueError:
        raise SettingError(
            key + " must look like {form}, got {text!r}", form=form, text=text
        ) from None
    for name, axis in ((names[0], beta_axis), (names[1], gamma_axis)):
        if not (math.isfinite(axis.lo) and math.isfinite(axis.hi)):
            raise SettingError(
                key + ": the {name} range {lo}:{hi} must be finite numbers",
                name=name,
                lo=axis.lo,
                hi=axis.hi,
            )
        if axis.n < 1:
            raise SettingError(
                key + ": the {name} range needs at least 1 point, got {n}", name=name, n=axis.n
            )
        if axis.n == 1 and axis.lo != axis.hi:
            raise SettingError(
                key + ": the {name} range {lo:g}:{hi:g} with 1 point is ambiguous; give "
                "{lo:g}:{lo:g}:1 for one value, or at least 2 points",
                name=name,
                lo=axis.lo,
                hi=axis.hi,
            )
        if axis.lo > axis.hi or (axis.lo == axis.hi and axis.n > 1):
            raise SettingError(
                key + ": the {name} range {lo}:{hi} is empty or inverted "
                "(give low:high with low < high)",
                name=name,
                lo=axis.lo,
                hi=axis.hi,
            )
    _check_count(setting, beta_axis.n * gamma_axis.n)
    return beta_axis, gamma_axis


def _linspace(axis: GridAxis) -> list[float]:
    if axis.n == 1:
        return [axis.lo]
    return [axis.lo + (axis.hi - axis.lo) * i / (axis.n - 1) for i in range(axis.n)]


def grid_region(beta_axis: GridAxis, gamma_axis: GridAxis) -> SweepRegion:
    """The Cartesian grid, β-major; every point validated."""
    _check_count("grid", beta_axis.n * gamma_axis.n)
    points = [HyperPoint(b, g) for b in _linspace(beta_axis) for g in _linspace(gamma_axis)]
    return SweepRegion(
        kind="grid",
        description=f"{beta_axis.n} x {gamma_axis.n} grid, {beta_axis.describe('beta')}, "
        f"{gamma_axis.describe('gamma')}",
        points=tuple(points),
        positions=_positions(len(points), open_ends=False),
    )


def torch_grid_region(beta1_axis: GridAxis, beta2_axis: GridAxis) -> SweepRegion:
    """The Cartesian grid in PyTorch's order, beta1-major: beta1 = γ, beta2 = β."""
    _check_count("torch_grid", beta1_axis.n * beta2_axis.n)
    points = [
        HyperPoint.from_torch(b1, b2)
        for b1 in _linspace(beta1_axis)
        for b2 in _linspace(beta2_axis)
    ]
    return SweepRegion(
        kind="grid",
        description=f"{beta1_axis.n} x {beta2_axis.n} grid in PyTorch's order, "
        f"{beta1_axis.describe('beta1')}, {beta2_axis.describe('beta2')}",
        points=tuple(points),
        positions=_positions(len(points), open_ends=False),
        order="torch",
    )


def points_region(
    points: list[HyperPoint], kind: str = "points", source: str = "", order: str = "paper"
) -> SweepRegion:
    """Explicit points in the given order (duplicates dropped); ``order`` is how they were
    typed ("paper" or "torch")."""
    unique = tuple(dict.fromkeys(points))
    if not unique:
        raise StabcliError("no points given")
    _check_count("points_file" if kind == "points-file" else "points", len(unique))
    origin = f" from {source}" if source else ""
    return SweepRegion(
        kind=kind,
        description=f"{len(unique)} given point{'s' if len(unique) != 1 else ''}{origin}",
        points=unique,
        positions=_positions(len(unique), open_ends=False),
        order=order,
    )


_COLUMNS = "columns beta,gamma (or torch_beta1,torch_beta2)"


def _shorten(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (a header line can be long)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _check_same_point(point: HyperPoint, beta1: str, beta2: str) -> None:
    """Refuse a row whose torch_beta1,torch_beta2 contradict its beta,gamma.

    beta1 = γ and beta2 = β (docs/theory.md §1); the values are compared exactly after
    parsing, since stabcli writes both pairs from the same floats. A value that is not a
    number raises ValueError, as the other columns do.
    """
    torch_pair = (float(beta1), float(beta2))
    if torch_pair != (point.gamma, point.beta):
        raise StabcliError(
            f"beta,gamma = {point.beta!r},{point.gamma!r} but torch_beta1,torch_beta2 = "
            f"{torch_pair[0]!r},{torch_pair[1]!r} (torch_beta1 is gamma, torch_beta2 is beta); "
            "keep one pair or make them agree"
        )


def read_points_file(path: Path) -> SweepRegion:
    """Points from a CSV file with columns beta,gamma (paper order) or torch_beta1,torch_beta2.

    A UTF-8 byte-order mark (Excel's default) is accepted; every row must have one value
    per column; at most :data:`MAX_POINTS` rows are read.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows: list[tuple[int, list[str]]] = []
            for fields in reader:
                if len(rows) == MAX_POINTS:
                    _check_count("points_file", MAX_POINTS + 1)
                if fields:
                    rows.append((reader.line_num, fields))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        reason = getattr(err, "strerror", None) or err
        raise SettingError(
            "cannot read {points_file} {path}: {reason}", path=path, reason=reason
        ) from None
    if not header:
        raise SettingError(
            "{points_file} {path} holds no rows (expected " + _COLUMNS + ")", path=path
        )
    names = set(header)
    make: Callable[[float, float], HyperPoint]
    if {"beta", "gamma"} <= names:
        first, second, make = "beta", "gamma", HyperPoint
    elif {"torch_beta1", "torch_beta2"} <= names:
        first, second, make = "torch_beta1", "torch_beta2", HyperPoint.from_torch
    else:
        raise SettingError(
            "{points_file} {path} needs " + _COLUMNS + ", found {found}",
            path=path,
            found=_shorten(",".join(header)) or "no header",
        )
    if not rows:
        raise SettingError("{points_file} {path} holds no rows", path=path)
    i, j = header.index(first), header.index(second)
    # Both pairs (a points.csv or a report's --csv export): they must name the same point.
    both = {"beta", "gamma", "torch_beta1", "torch_beta2"} <= names
    k1, k2 = (header.index("torch_beta1"), header.index("torch_beta2")) if both else (-1, -1)
    points = []
    for line, fields in rows:
        if len(fields) != len(header):
            raise SettingError(
                "{points_file} {path}, line {line}: expected {n} values ({columns}), got {got}",
                path=path,
                line=line,
                n=len(header),
                columns=",".join(header),
                got=len(fields),
            )
        try:
            point = make(float(fields[i]), float(fields[j]))
            if both:
                _check_same_point(point, fields[k1], fields[k2])
            points.append(point)
        except ValueError:
            raise SettingError(
                "{points_file} {path}, line {line}: not a number", path=path, line=line
            ) from None
        except StabcliError as err:
            raise SettingError(
                "{points_file} {path}, line {line}: {err}", path=path, line=line, err=err
            ) from None
    order = "torch" if first == "torch_beta1" else "paper"
    return points_region(points, kind="points-file", source=str(path), order=order)
