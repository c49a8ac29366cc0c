"""Reading a run directory for the report: one checked, normalised :class:`RunData`.

Everything the figures and tables need is read here, once. Columns that an older or
partial sweep did not write are filled from the theory where they can be (C, regions,
rates) and left empty otherwise, so the figures never look a column up and fail. Anything
unreadable becomes a one-line :class:`~stabcli.errors.StabcliError`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stabcli.errors import StabcliError
from stabcli.measure import MeasureSettings
from stabcli.store import RunDir, find_latest_run
from stabcli.store.kstudy import KStudyData, is_kstudy_dir, read_kstudy
from stabcli.store.schema import (
    KADAM_POINT_COLUMNS,
    KADAM_TRACE_PREFIX,
    MADA_TRACE_COLUMNS,
    MONITOR_TRACE_COLUMNS,
    OPTIONAL_TEXT_COLUMNS,
    PATH_POINT_COLUMNS,
    POINT_BOOL_COLUMNS,
    POINT_NUMBER_COLUMNS,
    POINT_TEXT_COLUMNS,
)
from stabcli.theory.agreement import predict
from stabcli.theory.domain import HyperPoint

#: points.csv columns read as text ("" if missing); POINT_NUMBER_COLUMNS are read as numbers.
TEXT_POINT_COLUMNS = (*(c for c in POINT_TEXT_COLUMNS if c != "point_id"), "batch")
#: Region kinds whose points lie along a curve (figures put their position on the x-axis).
CURVE_KINDS = ("normal-curve", "level-curve")
#: Optional points.csv columns holding numbers (store.schema), besides ``level_ratio_l<i>``.
OPTIONAL_NUMBER_COLUMNS = tuple(
    c for c in KADAM_POINT_COLUMNS + PATH_POINT_COLUMNS if c not in OPTIONAL_TEXT_COLUMNS
)
#: Optional trace columns holding numbers (store.schema), besides ``max_update_l<i>``.
NUMBER_TRACE_COLUMNS = ("loss", "lr", "wd_term", *MONITOR_TRACE_COLUMNS, *MADA_TRACE_COLUMNS)


@dataclass(frozen=True)
class RunData:
    """A run directory's content, ready to draw (the stored data, never decimated)."""

    path: Path  # the run directory
    config: dict[str, Any]  # config.json
    status: str  # state.json's status: "running", "complete", "interrupted" (or "unknown")
    planned: int  # number of points the sweep set out to run
    points: pd.DataFrame  # one row per finished point, in region order (by position)
    traces: pd.DataFrame  # point_id, step, max_update, max_tensor, loss, lr, wd_term
    evals: pd.DataFrame  # point_id, step, test_loss (empty when no test loss was recorded)

    @property
    def finished(self) -> int:
        """Number of points whose results are in points.csv."""
        return len(self.points)

    @property
    def is_partial(self) -> bool:
        """True when the sweep did not complete or fewer points finished than planned."""
        return self.status != "complete" or self.finished < self.planned

    @property
    def description(self) -> str:
        """The region's description from config.json, e.g. "normal curve through ..."."""
        region = self.config.get("region")
        text = region.get("description") if isinstance(region, dict) else None
        return str(text) if text else "unknown region"

    @property
    def through(self) -> tuple[float, float] | None:
        """The (β, γ) the region's curve passes through, when config.json names one."""
        region = self.config.get("region")
        point = region.get("through") if isinstance(region, dict) else None
        try:
            beta, gamma = (float(x) for x in point)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            return None
        return (beta, gamma) if math.isfinite(beta) and math.isfinite(gamma) else None

    @property
    def is_curve(self) -> bool:
        """Whether the region is a curve (its points ordered by arc length)."""
        region = self.config.get("region")
        return isinstance(region, dict) and region.get("kind") in CURVE_KINDS

    @property
    def slope_at(self) -> int | None:
        """settings.measurement.slope_at: the step of the paper's central difference."""
        value = _measurement(self.config).get("slope_at")
        if isinstance(value, int | float) and math.isfinite(value):
            return int(value)
        for column in ("central_at", "slope_step"):  # this version's rows, then older ones
            steps = self.points.get(column, pd.Series(dtype=float)).dropna()
            if len(steps):
                return int(steps.iloc[0])
        return None

    @property
    def measure_settings(self) -> MeasureSettings:
        """The thresholds the run was measured with (config.json), else the defaults."""
        names = {f.name for f in fields(MeasureSettings)}
        given = {k: v for k, v in _measurement(self.config).items() if k in names}
        try:
            return MeasureSettings(**given)
        except (StabcliError, TypeError):  # an older run's or a damaged config's
            return MeasureSettings()

    @property
    def dtype(self) -> str:
        """settings.preset.train.dtype: the training dtype ("" when config.json lacks it)."""
        settings = self.config.get("settings")
        preset = settings.get("preset") if isinstance(settings, dict) else None
        train = preset.get("train") if isinstance(preset, dict) else None
        value = train.get("dtype") if isinstance(train, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def kind(self) -> str:
        """ "monitor" for a run written by :mod:`stabcli.monitor`, else "sweep"."""
        return "monitor" if self.config.get("kind") == "monitor" else "sweep"

    @property
    def optimizer(self) -> str:
        """adam, kadam, hyperadam or mada for a sweep (settings.preset.train.optimizer);
        the optimizer's class name for a monitor run."""
        settings = self.config.get("settings")
        if self.kind == "monitor":
            optimizer = settings.get("optimizer") if isinstance(settings, dict) else None
            name = optimizer.get("class") if isinstance(optimizer, dict) else None
            return str(name).rsplit(".", 1)[-1] if name else "unknown"
        preset = settings.get("preset") if isinstance(settings, dict) else None
        train = preset.get("train") if isinstance(preset, dict) else None
        value = train.get("optimizer") if isinstance(train, dict) else None
        return value if isinstance(value, str) and value else "adam"

    @property
    def learned(self) -> bool:
        """Whether the points moved through the plane: learned betas, or a monitor's path."""
        return "beta" in self.traces and "gamma" in self.traces

    @property
    def levels(self) -> int:
        """k-Adam's number of levels recorded in the traces (0 for other runs)."""
        return sum(1 for c in self.traces.columns if str(c).startswith(KADAM_TRACE_PREFIX))

    @property
    def order(self) -> str:
        """How the region's points were typed: "torch" (beta1, beta2) or "paper" (β, γ)."""
        region = self.config.get("region")
        order = region.get("order") if isinstance(region, dict) else None
        return "torch" if order == "torch" else "paper"

    @property
    def batching(self) -> str:
        """How a factory model's points ran, from config.json's ``batching`` (path and
        reason): "vmap" (all points through torch.func.vmap) or "sequential (why)" (one at a
        time); "" when the run does not say, or ran the built-in models' native batching."""
        value = self.config.get("batching")
        if not isinstance(value, dict) or value.get("path") in (None, "", "native"):
            return ""
        reason = value.get("reason")
        return f"{value['path']}" + (f" ({reason})" if reason else "")

    @property
    def weight_decay(self) -> bool:
        """True when the traces record a decoupled weight-decay term λ‖θ_n‖∞."""
        wd = self.traces.get("wd_term")
        return wd is not None and bool((pd.to_numeric(wd, errors="coerce").fillna(0) != 0).any())


def _measurement(config: dict[str, Any]) -> dict[str, Any]:
    """config.json's settings.measurement ({} when absent)."""
    settings = config.get("settings") if isinstance(config, dict) else None
    measurement = settings.get("measurement") if isinstance(settings, dict) else None
    return measurement if isinstance(measurement, dict) else {}


def _as_bool(values: pd.Series) -> pd.Series:
    def one(x: Any) -> Any:
        if isinstance(x, bool | np.bool_):
            return bool(x)
        text = str(x).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        return pd.NA

    return values.map(one).astype("boolean")


def _text(values: pd.Series) -> pd.Series:
    """A text column as str, "" where missing, whatever dtype it was read as (a column
    empty in every row reads back from CSV as float NaN: filling that with "" is what
    pandas deprecates)."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _fill_theory(points: pd.DataFrame, slope_at: int | None) -> pd.DataFrame:
    """Fill the theory columns a sweep may not have written, from β and γ."""
    points["torch_beta1"] = points["torch_beta1"].fillna(points["gamma"])
    points["torch_beta2"] = points["torch_beta2"].fillna(points["beta"])
    theory = ["c_value", "paper_region", "exact_stable", "paper_rate", "exact_rate"]
    missing = points[theory].isna().any(axis=1) | (points["paper_region"] == "")
    for i in points.index[missing]:
        beta, gamma = float(points.at[i, "beta"]), float(points.at[i, "gamma"])
        step = points.at[i, "central_at"]
        step = int(step) if pd.notna(step) else (slope_at or 0)
        for column, value in asdict(predict(beta, gamma, step)).items():
            if column == "paper_region" and points.at[i, column] != "":
                continue
            if column != "paper_region" and pd.notna(points.at[i, column]):
                continue
            points.at[i, column] = value
    return points


def _check_points(points: pd.DataFrame) -> None:
    """Every (β, γ) is a valid point (:class:`~stabcli.theory.domain.HyperPoint`, the one
    place they are range-checked), and β is torch's beta2 and γ its beta1 (docs/theory.md
    §1): a row that says otherwise is corrupt, and reading it either way would misplace it.
    """
    for pid, beta, gamma in zip(points["point_id"], points["beta"], points["gamma"], strict=True):
        try:
            HyperPoint(float(beta), float(gamma))
        except StabcliError as err:
            raise StabcliError(f"points.csv is corrupt: point {pid}: {err}") from None
    for paper_name, torch_name in (("beta", "torch_beta2"), ("gamma", "torch_beta1")):
        given = points[torch_name].notna()
        differs = given & ~np.isclose(points[paper_name], points[torch_name], rtol=1e-12, atol=0)
        if differs.any():
            row = points[differs].iloc[0]
            raise StabcliError(
                f"points.csv is corrupt: point {row['point_id']} has {paper_name} = "
                f"{row[paper_name]:g} but {torch_name} = {row[torch_name]:g} (the paper's "
                f"{paper_name} is torch's {torch_name[6:]})"
            )


def normalize_points(raw: pd.DataFrame, slope_at: int | None = None) -> pd.DataFrame:
    """points.csv with every documented column present and typed, sorted by position."""
    missing = [c for c in ("point_id", "beta", "gamma") if c not in raw.columns]
    if missing and len(raw):
        raise StabcliError(f"points.csv is corrupt: missing column(s) {', '.join(missing)}")
    points = raw.copy().reset_index(drop=True)
    for column in missing:  # no point has finished yet: an empty table with every column
        points[column] = pd.Series(dtype=float if column != "point_id" else str)
    for column in POINT_NUMBER_COLUMNS:
        values = points[column] if column in points else pd.Series(np.nan, index=points.index)
        points[column] = pd.to_numeric(values, errors="coerce").astype(float)
    for column in TEXT_POINT_COLUMNS:
        values = points[column] if column in points else pd.Series("", index=points.index)
        points[column] = _text(values)
    for column in POINT_BOOL_COLUMNS:
        values = points[column] if column in points else pd.Series(pd.NA, index=points.index)
        points[column] = _as_bool(values.reindex(points.index))
    for column in points.columns:  # the optional columns some optimizers and monitors write
        if column in OPTIONAL_TEXT_COLUMNS:
            points[column] = _text(points[column])
        elif column in OPTIONAL_NUMBER_COLUMNS or str(column).startswith("level_ratio_l"):
            points[column] = pd.to_numeric(points[column], errors="coerce").astype(float)
    points["point_id"] = points["point_id"].astype(str)
    bad = ~(np.isfinite(points["beta"]) & np.isfinite(points["gamma"]))
    if bad.any():
        raise StabcliError(
            f"points.csv is corrupt: {int(bad.sum())} row(s) without a numeric beta and gamma"
        )
    _check_points(points)
    points = _fill_theory(points, slope_at)
    if points["position"].notna().any():
        points = points.sort_values("position", kind="stable", na_position="last")
    return points.reset_index(drop=True)


def _normalize_records(
    raw: pd.DataFrame, where: Path, value: str, text: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Per-step records (point_id, step, ``value``, ``text`` columns), typed and sorted.

    Rows without a numeric step are dropped, non-numeric values become NaN and missing
    text columns become "" (so figures never look a column up and fail).
    """
    required = ("point_id", "step", value)
    if raw.empty:
        dtypes = {"point_id": str, "step": int, value: float, **dict.fromkeys(text, str)}
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise StabcliError(f"{where} is corrupt: missing column(s) {', '.join(missing)}")
    records = raw.copy()
    records["point_id"] = records["point_id"].astype(str)
    records["step"] = pd.to_numeric(records["step"], errors="coerce")
    records[value] = pd.to_numeric(records[value], errors="coerce").astype(float)
    records = records[records["step"].notna()].astype({"step": int})
    for column in records.columns:
        if column in NUMBER_TRACE_COLUMNS or str(column).startswith(KADAM_TRACE_PREFIX):
            records[column] = pd.to_numeric(records[column], errors="coerce").astype(float)
    for column in text:
        column_values = records[column] if column in records else pd.Series("", index=records.index)
        records[column] = _text(column_values)
    return records.sort_values(["point_id", "step"], kind="stable").reset_index(drop=True)


def resolve_run_dir(run_dir: str | Path | None, root: str | Path = "runs") -> Path:
    """``run_dir`` itself, or the newest run under ``root`` when none is given."""
    return Path(run_dir) if run_dir is not None else find_latest_run(root)


def is_kstudy(path: str | Path) -> bool:
    """Whether ``path`` is a k-study directory (it holds kstudy.json), which the report
    draws with :mod:`stabcli.report.kstudy` instead of as one run."""
    return is_kstudy_dir(path)


def load_kstudy(path: str | Path) -> KStudyData:
    """A k-study directory read back: its sub-runs' progress and every finished point's
    best test loss and accuracy (:func:`stabcli.store.kstudy.read_kstudy`)."""
    return read_kstudy(path)


def load_run(path: str | Path) -> RunData:
    """Open and read a run directory; a one-line StabcliError when it is not a readable run."""
    run = RunDir.open(path)
    config = run.config()
    state = run.state()
    try:
        raw_points = run.read_points()
        raw_traces = run.read_traces()
        raw_evals = run.read_evals()
    except StabcliError:
        raise
    except Exception as err:  # pyarrow and pandas raise many types on a damaged file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StabcliError(f"{run.path} holds a corrupt file: {first}") from None
    value = _measurement(config).get("slope_at")
    slope_at = int(value) if isinstance(value, int | float) and math.isfinite(value) else None
    points = normalize_points(raw_points, slope_at)
    traces = _normalize_records(raw_traces, run.path / "traces", "max_update", ("max_tensor",))
    evals = _normalize_records(raw_evals, run.path / "evals", "test_loss")
    if state is not None and state.planned:
        # A run directory may also hold finished points of an earlier region with the same
        # settings (they are kept for reuse); the report shows the region last swept.
        wanted = set(state.planned)
        points = points[points["point_id"].isin(wanted)].reset_index(drop=True)
        traces = traces[traces["point_id"].isin(wanted)].reset_index(drop=True)
        evals = evals[evals["point_id"].isin(wanted)].reset_index(drop=True)
    finished = len(points)
    planned = max(len(state.planned), finished) if state is not None else finished
    return RunData(
        path=run.path,
        config=config,
        status=state.status if state is not None else "unknown",
        planned=planned,
        points=points,
        traces=traces,
        evals=evals,
    )


def trace_matrices(
    traces: pd.DataFrame, point_ids: list[str], columns: list[str] | tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Per-step columns laid out (P, S): one row per point of ``point_ids``, one column per
    step n = 0..S−1 (the largest step recorded); nan where a point has no record (a step a
    monitor skipped, a point not in the traces). A step recorded twice keeps its last row.
    One pass for all ``columns`` (those the traces lack are left out)."""
    present = [c for c in columns if c in traces]
    if traces.empty:
        return {c: np.full((len(point_ids), 0), np.nan) for c in present}
    steps = int(traces["step"].max()) + 1
    last = ~traces.duplicated(["point_id", "step"], keep="last").to_numpy()
    rows = pd.Index(point_ids).get_indexer(traces["point_id"].to_numpy()[last])
    cols = traces["step"].to_numpy(int)[last]
    ok = (rows >= 0) & (cols >= 0)
    out = {}
    for column in present:
        matrix = np.full((len(point_ids), steps), np.nan)
        values = pd.to_numeric(traces[column], errors="coerce").to_numpy(float)[last]
        matrix[rows[ok], cols[ok]] = values[ok]  # (P, S); each (row, col) once
        out[column] = matrix
    return out


def trace_matrix(
    traces: pd.DataFrame, point_ids: list[str], column: str = "max_update"
) -> np.ndarray:
    """(P, S): one row per point of ``point_ids``, one column per step n = 0..S−1 (the
    largest step recorded), of a per-step column; nan where a point has no record."""
    if traces.empty or column not in traces:
        return np.full((len(point_ids), 0), np.nan)
    return trace_matrices(traces, point_ids, [column])[column]
