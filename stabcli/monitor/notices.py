"""The monitor's warnings: what it says, once per kind, through ``warnings`` and ``logging``.

Kinds (:class:`NoticeKind`):

- ``unstable``: the current (β, γ) has γ² > β, so the exact bound on ‖u_n‖∞ grows by
  log γ − ½ log β per step (docs/theory.md (3.5), §3), or γ² = β, where it grows like
  √n (docs/theory.md §4). Said as soon as such betas make a step;
- ``growth``: the streaming measurement (:class:`stabcli.measure.GrowthMonitor`) classes
  the max-update as growing over its valid window (docs/theory.md (9.5)), with the measured
  rate and both theories' predicted rates;
- ``diverged``: the max-update stopped being finite.

Each kind is said once per monitor: as a :class:`StabilityWarning` (a ``UserWarning``,
attributed to the line of user code that called ``optimizer.step()``), as a WARNING of the
logger ``stabcli.monitor``, and to the ``on_warning`` callable, which gets the same
warning object (its :attr:`StabilityWarning.notice` holds the figures).
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from stabcli.theory.exact import exact_limit_bound, exact_rate, exact_stable
from stabcli.theory.paper import c_value, paper_rate, region

LOGGER = logging.getLogger("stabcli.monitor")
LOGGER.addHandler(logging.NullHandler())  # a library logs only where its user sends logs


class NoticeKind(StrEnum):
    UNSTABLE = "unstable"  # the current (β, γ) is unstable by the exact theory
    GROWTH = "growth"  # the measurement sees sustained growth
    DIVERGED = "diverged"  # the max-update is not finite


@dataclass(frozen=True)
class StabilityNotice:
    """What a warning says, as figures (its ``text`` is the message)."""

    kind: NoticeKind
    step: int  # optimizer step n at which it was noticed
    groups: tuple[int, ...]  # param groups concerned
    beta: float  # the paper's β = torch beta2
    gamma: float  # the paper's γ = torch beta1
    exact_rate: float  # the exact theory's growth rate of the bound, per step (0 if γ² < β)
    paper_rate: float  # the paper's |C|/2 in B− (arXiv 2411.05746, Section 3.1), else 0
    measured_rate: float  # measured rate per step (nan for ``unstable``)
    halfwidth: float  # half-width of the measured rate's interval (nan for ``unstable``)
    max_tensor: str  # the tensor holding the max-update ("" when not known)
    text: str

    def __str__(self) -> str:
        return self.text


class StabilityWarning(UserWarning):
    """A stability warning of :mod:`stabcli.monitor`; ``notice`` holds its figures."""

    def __init__(self, notice: StabilityNotice | str):
        text = notice.text if isinstance(notice, StabilityNotice) else str(notice)
        super().__init__(text)
        self.notice = notice if isinstance(notice, StabilityNotice) else None


def _where(groups: tuple[int, ...], n_groups: int) -> str:
    if len(groups) == n_groups:
        return ""
    return f" in param group{'s' if len(groups) > 1 else ''} {', '.join(map(str, groups))}"


def _point(beta: float, gamma: float) -> str:
    return f"(β, γ) = ({beta:.6g}, {gamma:.6g}), i.e. torch betas=({gamma:.6g}, {beta:.6g})"


def unstable(
    step: int, groups: tuple[int, ...], n_groups: int, beta: float, gamma: float
) -> StabilityNotice:
    """The notice for betas with γ² >= β (docs/theory.md (3.5), §4)."""
    rate = exact_rate(beta, gamma)
    if rate > 0:
        growth = (
            f"γ² = {gamma * gamma:.6g} > β, so the exact bound on the max-update ‖u_n‖∞ grows "
            f"by {rate:.4g} per step (log γ − ½ log β; ×1000 every "
            f"{math.log(1000.0) / rate:.0f} steps)"
        )
    else:
        growth = "γ² = β: the exact bound on the max-update ‖u_n‖∞ grows like √n"
    text = (
        f"stabcli: unstable betas{_where(groups, n_groups)} at step {step}: "
        f"{_point(beta, gamma)}; {growth}; the paper puts it in {region(beta, gamma).value} "
        f"(C = {c_value(beta, gamma):.4g}). Keep beta1 < sqrt(beta2) (docs/theory.md §3)."
    )
    return StabilityNotice(
        NoticeKind.UNSTABLE, step, groups, beta, gamma, rate, paper_rate(beta, gamma),
        math.nan, math.nan, "", text,
    )  # fmt: skip


def growth(
    step: int,
    groups: tuple[int, ...],
    n_groups: int,
    beta: float,
    gamma: float,
    measured: tuple[float, float, int, int],  # rate, half-width, window start, stop
    predicted: tuple[float, float],  # exact, paper
    moving: bool,
    tensor: str,
) -> StabilityNotice:
    """The notice for sustained growth seen by the measurement (docs/theory.md (9.5))."""
    rate, half, start, stop = measured
    exact, paper = predicted
    if exact_stable(beta, gamma):
        theory = (
            f"the exact theory bounds it by {exact_limit_bound(beta, gamma):.4g} "
            "here (γ² < β): it cannot grow for long"
        )
    else:
        theory = "γ² ≥ β: the exact bound grows"
    path = " along the recorded (β, γ) path" if moving else ""
    text = (
        f"stabcli: the max-update ‖u_n‖∞ is growing{_where(groups, n_groups)}: "
        f"{rate:.4g} ± {half:.2g} per step over steps [{start}, {stop}), at "
        f"{_point(beta, gamma)}; predicted{path}: exact {exact:.4g}, paper {paper:.4g} per "
        f"step; {theory}; the largest step is in {tensor or 'an unnamed tensor'}."
    )
    return StabilityNotice(
        NoticeKind.GROWTH, step, groups, beta, gamma, exact, paper, rate, half, tensor, text
    )


def diverged(
    step: int, groups: tuple[int, ...], n_groups: int, beta: float, gamma: float, tensor: str
) -> StabilityNotice:
    """The notice for a max-update that is nan or infinite."""
    text = (
        f"stabcli: the max-update ‖u_n‖∞ is not finite from step {step}"
        f"{_where(groups, n_groups)} (in {tensor or 'an unnamed tensor'}), at "
        f"{_point(beta, gamma)}."
    )
    return StabilityNotice(
        NoticeKind.DIVERGED, step, groups, beta, gamma, math.nan, math.nan, math.nan,
        math.nan, tensor, text,
    )  # fmt: skip


def _user_stacklevel() -> int:
    """The stack level of the first caller outside the monitor and torch (for warnings)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
        ("stabcli.monitor", "torch")
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


class Notifier:
    """Says each kind of notice once (module docstring)."""

    def __init__(self, on_warning: Callable[[StabilityWarning], object] | None = None):
        self.on_warning = on_warning
        self.said: dict[NoticeKind, StabilityNotice] = {}

    def __contains__(self, kind: NoticeKind) -> bool:
        return kind in self.said

    def say(self, notice: StabilityNotice) -> None:
        if notice.kind in self.said:
            return
        self.said[notice.kind] = notice
        warning = StabilityWarning(notice)
        LOGGER.warning(notice.text)
        warnings.warn(warning, stacklevel=_user_stacklevel())
        if self.on_warning is not None:
            self.on_warning(warning)
