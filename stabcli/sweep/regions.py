"""Regions of the (β, γ) plane a sweep runs over, as ordered lists of points.

Each region gives its points in order with a position in [0, 1] along it: arc length for
curves (paper Section 3.2 takes points uniformly along a normal curve), index otherwise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from stabcli.errors import StabcliError
from stabcli.theory import curves
from stabcli.theory.domain import HyperPoint


@dataclass(frozen=True)
class SweepRegion:
    """An ordered set of points with their positions and a description."""

    kind: str  # "normal-curve", "level-curve", "grid", "points" or "points-file"
    description: str  # one line for humans, e.g. "16 points on the normal curve through ..."
    points: tuple[HyperPoint, ...]
    positions: tuple[float, ...]  # in [0, 1], same order as points
    through: HyperPoint | None = None  # the point a curve passes through

    def to_dict(self) -> dict[str, object]:
        through = None if self.through is None else [self.through.beta, self.through.gamma]
        return {"kind": self.kind, "description": self.description, "through": through}


def _positions(n: int, open_ends: bool) -> tuple[float, ...]:
    if open_ends:
        return tuple((i + 0.5) / n for i in range(n))
    return tuple(i / (n - 1) for i in range(n)) if n > 1 else (0.5,)


def curve_region(
    kind: str, through: HyperPoint, n_points: int, span: tuple[float, float] | None = None
) -> SweepRegion:
    """``n_points`` uniformly by arc length along the normal or level curve through a point."""
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
    )


@dataclass(frozen=True)
class GridAxis:
    lo: float
    hi: float
    n: int


def parse_grid(text: str) -> tuple[GridAxis, GridAxis]:
    """'β0:β1:n,γ0:γ1:n' → two axes; an empty or inverted range is a one-line error."""
    form = "'b0:b1:n,g0:g1:n', e.g. 0.9:0.999:4,0.8:0.99:4"
    try:
        axes = []
        for part in text.split(","):
            lo, hi, n = part.split(":")
            axes.append(GridAxis(float(lo), float(hi), int(n)))
        beta_axis, gamma_axis = axes
    except ValueError:
        raise StabcliError(f"--grid must look like {form}, got {text!r}") from None
    for name, axis in (("beta", beta_axis), ("gamma", gamma_axis)):
        if axis.n < 1:
            raise StabcliError(f"--grid: the {name} range needs at least 1 point, got {axis.n}")
        if axis.lo > axis.hi or (axis.lo == axis.hi and axis.n > 1):
            raise StabcliError(
                f"--grid: the {name} range {axis.lo}:{axis.hi} is empty or inverted "
                "(give low:high with low < high)"
            )
    return beta_axis, gamma_axis


def _linspace(axis: GridAxis) -> list[float]:
    if axis.n == 1:
        return [axis.lo]
    return [axis.lo + (axis.hi - axis.lo) * i / (axis.n - 1) for i in range(axis.n)]


def grid_region(beta_axis: GridAxis, gamma_axis: GridAxis) -> SweepRegion:
    """The Cartesian grid, β-major; every point validated."""
    points = [HyperPoint(b, g) for b in _linspace(beta_axis) for g in _linspace(gamma_axis)]
    return SweepRegion(
        kind="grid",
        description=f"{beta_axis.n} x {gamma_axis.n} grid, beta in [{beta_axis.lo:g}, "
        f"{beta_axis.hi:g}], gamma in [{gamma_axis.lo:g}, {gamma_axis.hi:g}]",
        points=tuple(points),
        positions=_positions(len(points), open_ends=False),
    )


def points_region(points: list[HyperPoint], kind: str = "points", source: str = "") -> SweepRegion:
    """Explicit points in the given order (duplicates dropped)."""
    unique = tuple(dict.fromkeys(points))
    if not unique:
        raise StabcliError("no points given")
    origin = f" from {source}" if source else ""
    return SweepRegion(
        kind=kind,
        description=f"{len(unique)} given point{'s' if len(unique) != 1 else ''}{origin}",
        points=unique,
        positions=_positions(len(unique), open_ends=False),
    )


def read_points_file(path: Path) -> SweepRegion:
    """Points from a CSV file with columns beta,gamma (paper order) or torch_beta1,torch_beta2."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise StabcliError(f"cannot read --points-file {path}: {err}") from None
    if not rows:
        raise StabcliError(f"--points-file {path} holds no rows (expected columns beta,gamma)")
    columns = set(rows[0])
    points = []
    for i, row in enumerate(rows, start=2):
        if None in row.values() or None in row:
            raise StabcliError(
                f"--points-file {path}, line {i}: expected one value per column "
                f"({','.join(rows[0])}), got a different number"
            )
        try:
            if {"beta", "gamma"} <= columns:
                points.append(HyperPoint(float(row["beta"]), float(row["gamma"])))
            elif {"torch_beta1", "torch_beta2"} <= columns:
                points.append(
                    HyperPoint.from_torch(float(row["torch_beta1"]), float(row["torch_beta2"]))
                )
            else:
                raise StabcliError(
                    f"--points-file {path} needs columns beta,gamma (or torch_beta1,torch_beta2)"
                )
        except (TypeError, ValueError):
            raise StabcliError(f"--points-file {path}, line {i}: not a number") from None
        except StabcliError as err:
            if "line" in str(err) or "columns" in str(err):
                raise
            raise StabcliError(f"--points-file {path}, line {i}: {err}") from None
    return points_region(points, kind="points-file", source=str(path))
