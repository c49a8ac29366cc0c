"""Region builders: counts, spacing, and that points lie on their curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stabcli.errors import SettingError, StabcliError
from stabcli.sweep.regions import (
    curve_region,
    grid_region,
    parse_grid,
    points_region,
    read_points_file,
)
from stabcli.theory.domain import HyperPoint
from stabcli.theory.paper import c_value


def _gaps(points: tuple[HyperPoint, ...]) -> np.ndarray:
    xy = np.array([(p.beta, p.gamma) for p in points])
    return np.hypot(*np.diff(xy, axis=0).T)


@pytest.mark.parametrize("n", [1, 2, 16, 64])
def test_normal_curve_region_counts_curve_and_spacing(n: int) -> None:
    region = curve_region("normal-curve", HyperPoint(0.999, 0.9), n)
    assert len(region.points) == len(region.positions) == n
    k = 2 * 0.999**3 + 0.9**3
    for p in region.points:
        assert p.gamma**3 + 2 * p.beta**3 == pytest.approx(k, rel=1e-9)
        assert 0 < p.beta < 1 and 0 <= p.gamma < 1
    if n > 2:
        gaps = _gaps(region.points)
        assert gaps.max() / gaps.min() < 1.01
    assert all(0 < x < 1 for x in region.positions)
    assert list(region.positions) == sorted(region.positions)


def test_level_curve_region_keeps_c_constant() -> None:
    region = curve_region("level-curve", HyperPoint(0.999, 0.9), 12)
    c0 = c_value(0.999, 0.9)
    assert [c_value(p.beta, p.gamma) for p in region.points] == pytest.approx([c0] * 12, rel=1e-9)
    gaps = _gaps(region.points)
    assert gaps.max() / gaps.min() < 1.01


def test_span_includes_both_ends() -> None:
    region = curve_region("normal-curve", HyperPoint(0.999, 0.9), 5, span=(0.96, 0.999))
    betas = sorted(p.beta for p in region.points)
    assert betas[0] == pytest.approx(0.96, abs=1e-12)
    assert betas[-1] == pytest.approx(0.999, abs=1e-12)
    assert region.positions == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_grid_counts_and_values() -> None:
    region = grid_region(*parse_grid("0.9:0.99:4,0.5:0.8:3"))
    assert len(region.points) == 12
    assert sorted({p.beta for p in region.points}) == pytest.approx([0.9, 0.93, 0.96, 0.99])
    assert sorted({p.gamma for p in region.points}) == pytest.approx([0.5, 0.65, 0.8])


@pytest.mark.parametrize(
    "text",
    ["0.9:0.8:3,0.5:0.6:2", "0.9:0.9:3,0.5:0.6:2", "0.9:0.99:0,0.5:0.6:2", "nonsense", "1:2"],
)
def test_grid_rejects_empty_inverted_or_malformed(text: str) -> None:
    with pytest.raises(SettingError, match=r"^grid") as err:
        parse_grid(text)
    assert err.value.settings == ("grid",)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0.9:0.99:1,0.5:0.6:2", r"beta range 0.9:0.99 with 1 point is ambiguous; give 0.9:0.9:1"),
        ("0.5:inf:2,0.5:0.6:2", r"beta range 0.5:inf must be finite numbers"),
        ("0.5:0.9:2,nan:0.6:2", r"gamma range nan:0.6 must be finite numbers"),
        ("0.5:0.99:100000,0.1:0.9:100000", r"gives 10,000,000,000 points; a region has 1 to"),
    ],
    ids=["one-point-range", "inf", "nan", "too-many"],
)
def test_grid_refuses_ambiguous_non_finite_or_huge_ranges(text: str, words: str) -> None:
    with pytest.raises(SettingError, match=words):
        parse_grid(text)


def test_grid_of_single_values_says_so() -> None:
    region = grid_region(*parse_grid("0.9:0.9:1,0.5:0.6:2"))
    assert [(p.beta, p.gamma) for p in region.points] == [(0.9, 0.5), (0.9, 0.6)]
    assert "beta = 0.9, gamma in [0.5, 0.6]" in region.description


def test_too_many_curve_points_are_refused_before_building() -> None:
    with pytest.raises(SettingError, match=r"^n_points gives 100,000,001 points"):
        curve_region("normal-curve", HyperPoint(0.999, 0.9), 100_000_001)


def test_grid_point_outside_domain_is_an_error() -> None:
    with pytest.raises(StabcliError, match="beta"):
        grid_region(*parse_grid("0.9:1.0:2,0.5:0.6:2"))


def test_points_region_drops_duplicates_in_order() -> None:
    pts = [HyperPoint(0.9, 0.5), HyperPoint(0.8, 0.5), HyperPoint(0.9, 0.5)]
    region = points_region(pts)
    assert region.points == (HyperPoint(0.9, 0.5), HyperPoint(0.8, 0.5))


def test_points_file_paper_and_torch_columns(tmp_path: Path) -> None:
    paper = tmp_path / "p.csv"
    paper.write_text("beta,gamma\n0.95,0.9\n0.5,0.9\n")
    assert read_points_file(paper).points == (HyperPoint(0.95, 0.9), HyperPoint(0.5, 0.9))
    torch = tmp_path / "t.csv"
    torch.write_text("torch_beta1,torch_beta2\n0.9,0.95\n")
    assert read_points_file(torch).points == (HyperPoint(0.95, 0.9),)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "no rows"),
        ("beta,gamma\n", "no rows"),
        ("b,g\n0.9,0.5\n", "columns"),
        ("beta,gamma\n0.9,0.5,0.7\n", "line 2: expected 2 values"),
        ("gamma,beta,extra\n0.5,0.9\n", "line 2: expected 3 values"),
        ("beta,gamma\n0.9,abc\n", "line 2"),
        ("beta,gamma\n0.9,0.5\n1.5,0.5\n", "line 3"),
    ],
)
def test_points_file_errors(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(StabcliError, match=words):
        read_points_file(path)


def test_missing_points_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StabcliError, match="cannot read"):
        read_points_file(tmp_path / "nope.csv")


def test_bad_span_is_an_error() -> None:
    with pytest.raises(StabcliError, match="span"):
        curve_region("normal-curve", HyperPoint(0.999, 0.9), 4, span=(0.5, 1.2))


def test_region_positions_are_finite() -> None:
    region = curve_region("normal-curve", HyperPoint(0.95, 0.9), 7)
    assert all(math.isfinite(x) for x in region.positions)


def test_points_file_row_with_missing_value_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("beta,gamma\n0.9,0.5\n0.95\n")
    with pytest.raises(SettingError, match="line 3: expected 2 values") as err:
        read_points_file(path)
    assert err.value.settings == ("points_file",)


def test_points_file_from_excel_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("beta,gamma\r\n0.95,0.9\r\n".encode("utf-8-sig"))
    assert read_points_file(path).points == (HyperPoint(0.95, 0.9),)


def test_points_file_columns_in_any_order_with_extras(tmp_path: Path) -> None:
    path = tmp_path / "more.csv"
    path.write_text("note,gamma,beta\nfirst,0.9,0.95\n")
    assert read_points_file(path).points == (HyperPoint(0.95, 0.9),)


def test_points_file_with_both_orders_that_agree_is_read(tmp_path: Path) -> None:
    """A run's own points.csv (or a report's --csv export) names each point in both orders."""
    path = tmp_path / "points.csv"
    path.write_text("beta,gamma,torch_beta1,torch_beta2\n0.95,0.9,0.9,0.95\n")
    assert read_points_file(path).points == (HyperPoint(0.95, 0.9),)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param("0.99,0.9,0.5,0.6", id="unrelated"),
        pytest.param("0.95,0.9,0.95,0.9", id="torch-pair-swapped"),
    ],
)
def test_points_file_with_contradicting_orders_is_refused(tmp_path: Path, row: str) -> None:
    path = tmp_path / "both.csv"
    path.write_text(f"beta,gamma,torch_beta1,torch_beta2\n{row}\n")
    with pytest.raises(SettingError, match=r"line 2: beta,gamma = .* but torch_beta1"):
        read_points_file(path)


def test_a_long_foreign_header_is_shortened_in_the_error(tmp_path: Path) -> None:
    """A report's Markdown export given as --points-file: its 45-column header made the
    one-line error some 900 characters long."""
    path = tmp_path / "table.md"
    path.write_text("| " + " | ".join(f"column {i}" for i in range(45)) + " |\n|---|\n")
    with pytest.raises(SettingError, match="needs columns beta,gamma") as err:
        read_points_file(path)
    found = str(err.value).split(", found ", 1)[1]
    assert len(found) <= 60 and found.endswith("…")
