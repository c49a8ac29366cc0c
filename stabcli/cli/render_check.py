"""Terminal rendering of ``stabcli check``: header, the two-theory table, verdict, k-Adam.

Drawn here with plain strings rather than rich, whose import and console set-up cost more
than the rest of ``check`` together (benchmarks/bench_check.py): the output is rich's
look (heavy-headed box table, words wrapped to the terminal width), colour only on a
terminal (never with ``NO_COLOR`` or ``TERM=dumb``; always with ``FORCE_COLOR``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, TextIO

from stabcli.theory.analysis import PointAnalysis, TheoryVerdict
from stabcli.theory.domain import decay_text

if TYPE_CHECKING:  # k-Adam's module is imported only when --k asks for its table
    from stabcli.theory.kadam import KAdamStrategy

GREEN, RED, YELLOW, BOLD, CYAN = "32", "31", "33", "1", "36"  # ANSI SGR codes


class Cell(NamedTuple):
    """One table cell: its text and an optional ANSI style ("1;32": bold green)."""

    text: str
    style: str = ""


class Screen:
    """Where output goes and how: the stream, its width and whether to colour.

    A plain class and :class:`Cell` a named tuple, not dataclasses: building a dataclass
    costs about a millisecond at import, a noticeable share of ``check``'s start-up.
    """

    def __init__(self, out: TextIO, width: int, color: bool) -> None:
        self.out = out
        self.width = width  # columns that prose is wrapped to
        self.color = color  # ANSI styles on or off

    @classmethod
    def detect(cls, out: TextIO | None = None) -> Screen:
        """The current stdout: width from ``COLUMNS`` or the terminal (80 when piped)."""
        import shutil

        out = out or sys.stdout
        return cls(out, shutil.get_terminal_size((80, 24)).columns, _wants_color(out))

    def paint(self, text: str, style: str) -> str:
        """``text`` in ANSI ``style`` when colouring, else as it is."""
        return f"\x1b[{style}m{text}\x1b[0m" if self.color and style and text else text

    def line(self, text: str = "", style: str = "", fold: bool = True) -> None:
        """Print ``text``, each of its lines word-wrapped to the screen's width (``fold``)."""
        for part in text.split("\n"):
            for wrapped in wrap(part, self.width) if fold else [part]:
                self.out.write(self.paint(wrapped, style) + "\n")

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[Cell | str]],
        right: Sequence[bool],
        title: str = "",
    ) -> None:
        """A box table (bold header), columns right-justified where ``right`` says."""
        if title:
            self.line(title, BOLD)
        cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
        widths = [
            max([len(header[j])] + [len(row[j].text) for row in cells]) for j in range(len(header))
        ]

        def fill(cell: Cell, j: int) -> str:
            pad = " " * (widths[j] - len(cell.text))
            text = self.paint(cell.text, cell.style)
            return f" {pad}{text} " if right[j] else f" {text}{pad} "

        def rule(left: str, mid: str, right_end: str, bar: str) -> str:
            return left + mid.join(bar * (w + 2) for w in widths) + right_end

        head = [Cell(h, BOLD) for h in header]
        lines = [rule("┏", "┳", "┓", "━")]
        lines.append("┃" + "┃".join(fill(c, j) for j, c in enumerate(head)) + "┃")
        lines.append(rule("┡", "╇", "┩", "━"))
        lines += ["│" + "│".join(fill(c, j) for j, c in enumerate(row)) + "│" for row in cells]
        lines.append(rule("└", "┴", "┘", "─"))
        self.out.write("\n".join(lines) + "\n")


def _wants_color(out: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR or TERM=dumb; FORCE_COLOR forces it."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def wrap(text: str, width: int) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` characters.

    Greedy: a word moves to the next line when its visible part does not fit; the spaces
    after the last word of a line stay on it (up to the width), as rich leaves them. A
    word longer than the width is cut.
    """
    import re

    width = max(width, 1)
    lines: list[str] = []
    line = ""
    for word in re.findall(r" *[^ ]+ *", text):  # each word with the spaces around it
        if line and len(line) + len(word.rstrip(" ")) > width:
            lines.append(line[:width])
            line = ""
        while len(word.rstrip(" ")) > width:  # a word longer than a whole line
            lines.append(word[:width])
            word = word[width:]
        line += word
    lines.append(line[:width])
    return lines


def fmt(x: float, digits: int = 5) -> str:
    """A float for humans: ∞ for infinities, compact otherwise."""
    if math.isnan(x):
        return "undefined"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def memory_words(k: float) -> str:
    """What the memory coefficient K does to the loss Adam effectively follows,
    L̃ = L − ηK‖∇L‖₁ (docs/theory.md (8.3)): K > 0 anti-penalizes the gradient's one-norm,
    K < 0 penalizes it."""
    if k > 0:
        return "× η: anti-penalty on ‖∇L‖₁"
    if k < 0:
        return "× η: penalty on ‖∇L‖₁"
    return "no first-order memory term"


def _steps(v: TheoryVerdict) -> str:
    return "never" if v.steps_to_threshold is None else f"{v.steps_to_threshold:,}"


def _status(v: TheoryVerdict) -> Cell:
    text = f"{v.label} (bounded)" if v.stable else f"{v.label} (growing)"
    if v.theory == "exact":
        text = "stable (γ² < β)" if v.stable else "unstable (γ² ≥ β)"
    return Cell(text, GREEN if v.stable else RED)


def render_source(source: str, screen: Screen | None = None) -> None:
    """The compact header above one point found by ``--from``: where it was found."""
    screen = screen or Screen.detect()
    screen.line(f"── {source} ──", f"{BOLD};{CYAN}", fold=False)  # a path stays whole


def render_analysis(
    a: PointAnalysis, order: str = "paper", hint: bool = True, screen: Screen | None = None
) -> None:
    """Header naming both conventions, the two-theory table, and the verdict line.

    ``order`` is how the point was given: "paper" (β γ) puts the paper's names first,
    "torch" (``--torch-betas``, ``--from``) PyTorch's. ``hint`` allows the "typed PyTorch's
    order by habit?" hint, which only makes sense for a point typed as BETA GAMMA.
    """
    screen = screen or Screen.detect()
    beta, gamma = decay_text(a.beta), decay_text(a.gamma)
    paper_names = f"β = {beta} (torch beta2), γ = {gamma} (torch beta1)"
    torch_names = f"PyTorch: Adam(betas=({gamma}, {beta}))"
    for text in (torch_names, paper_names) if order == "torch" else (paper_names, torch_names):
        screen.line(text)
    screen.line(f"C(β, γ) = 2/γ − 1/β − 1 = {fmt(a.c_value, 6)}")
    p, e = a.paper, a.exact
    rows: list[tuple[str, Cell | str, Cell | str]] = [
        ("verdict", _status(p), _status(e)),
        ("growth rate / step (n → ∞)", fmt(p.rate), fmt(e.rate)),
        (f"growth rate at n = {a.step:,}", fmt(p.rate_at_step), fmt(e.rate_at_step)),
        (f"bound on ‖u_n‖∞ at n = {a.step:,}", fmt(p.bound_at_step), fmt(e.bound_at_step)),
        ("bound on ‖u_n‖∞ (n → ∞)", fmt(p.limit_bound), fmt(e.limit_bound)),
        (f"steps until bound > {a.threshold:g}", _steps(p), _steps(e)),
    ]
    screen.table(["", "paper (eq. 5)", "exact (discrete)"], rows, right=[False, True, True])
    if a.gamma == 0.0:
        screen.line(
            "γ = 0 is RMSprop: C = +∞ (B+), but eq. 5's prefactor (1−γ)/γ diverges, so the "
            "paper's bound is uninformative there; the exact bound applies."
        )
    screen.line(
        f"memory coefficient β/(1−β) − γ/(1−γ) = {fmt(a.memory_coefficient)} "
        f"({memory_words(a.memory_coefficient)})"
    )
    color = YELLOW if not a.theories_agree else (GREEN if a.exact.stable else RED)
    screen.line(a.verdict, f"{BOLD};{color}")
    if hint and (text := _torch_order_hint(a)):
        screen.line(text)


def _torch_order_hint(a: PointAnalysis) -> str:
    """A hint when the point looks typed in PyTorch's order (beta1 beta2) by habit."""
    typical = min(a.beta, a.gamma) >= 0.8  # both look like Adam betas
    swapped_stable = a.gamma > a.beta and a.beta * a.beta < a.gamma
    if a.exact.stable or not (typical and swapped_stable):
        return ""
    return (
        "Typed PyTorch's order by habit? BETA GAMMA is the paper's order (β = beta2).\n"
        f"For Adam(betas=({decay_text(a.beta)}, {decay_text(a.gamma)})) run: "
        f"stabcli check --torch-betas {decay_text(a.beta)},{decay_text(a.gamma)}"
    )


def render_kadam(
    strategy: KAdamStrategy, levels: list[PointAnalysis], screen: Screen | None = None
) -> None:
    """k-Adam's per-level table (docs/theory.md §6), one row per run of equal levels.

    Every strategy gives all levels the same (β_i, γ_i), so a table of any k is one row,
    "1–k"; each level obeys its own bound in both theories.
    """
    from stabcli.theory.kadam import level_runs

    screen = screen or Screen.detect()
    runs = level_runs(levels)
    rows = [
        (
            run.label,
            decay_text(run.analysis.beta),
            decay_text(run.analysis.gamma),
            fmt(run.analysis.c_value),
            run.analysis.paper.label,
            run.analysis.exact.label,
            fmt(run.analysis.exact.rate),
            fmt(run.analysis.exact.limit_bound),
        )
        for run in runs
    ]
    header = ["levels", "β_i", "γ_i", "C", "paper", "exact", "exact rate", "exact limit"]
    title = f"k-Adam, k = {len(levels)}, strategy {strategy.value}"
    screen.table(header, rows, right=[True] * len(header), title=title)
    unstable = [run.label for run in runs if not run.analysis.exact.stable]
    if unstable:
        screen.line(
            f"k-Adam is unstable: levels {', '.join(unstable)} grow (exact).", f"{BOLD};{RED}"
        )
    else:
        screen.line("k-Adam is stable: every level is exactly stable.", f"{BOLD};{GREEN}")
