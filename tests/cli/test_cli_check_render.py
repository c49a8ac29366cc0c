"""check's own plain-string renderer against rich, the library it replaced on check's path.

check draws its table and wraps its prose itself (rich's import and console set-up cost
more start-up time than the rest of check); rich, imported here only, is the reference:
the same rows through ``rich.table.Table`` and the same prose through ``Console.print``
must give the very same text, for several points and terminal widths.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from stabcli.cli.render_check import Screen, fmt, render_analysis, render_kadam, wrap
from stabcli.theory import HyperPoint, analyze_point
from stabcli.theory.kadam import KAdamStrategy, kadam_table

POINTS = [(0.95, 0.9), (0.4, 0.6), (0.5, 0.9), (0.9, 0.0), (0.25, 0.5), (0.9, 0.95), (0.9, 0.9)]
WIDTHS = [72, 80, 120]


def _rich_reference(beta: float, gamma: float, width: int) -> str:
    """What check printed through rich: header, the table, notes, verdict, hint."""
    a = analyze_point(beta, gamma)
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    console.print(f"β = {a.beta:g} (torch beta2), γ = {a.gamma:g} (torch beta1)")
    console.print(f"PyTorch: Adam(betas=({a.gamma:g}, {a.beta:g}))")
    console.print(f"C(β, γ) = 2/γ − 1/β − 1 = {fmt(a.c_value, 6)}")
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("paper (eq. 5)", justify="right")
    table.add_column("exact (discrete)", justify="right")
    verdicts = []
    for v in (a.paper, a.exact):
        text = f"{v.label} (bounded)" if v.stable else f"{v.label} (growing)"
        if v.theory == "exact":
            text = "stable (γ² < β)" if v.stable else "unstable (γ² ≥ β)"
        verdicts.append(text)
    steps = ["never" if v.steps_to_threshold is None else f"{v.steps_to_threshold:,}"
             for v in (a.paper, a.exact)]  # fmt: skip
    p, e = a.paper, a.exact
    table.add_row("verdict", *verdicts)
    table.add_row("growth rate / step (n → ∞)", fmt(p.rate), fmt(e.rate))
    table.add_row("growth rate at n = 1,000", fmt(p.rate_at_step), fmt(e.rate_at_step))
    table.add_row("bound on ‖u_n‖∞ at n = 1,000", fmt(p.bound_at_step), fmt(e.bound_at_step))
    table.add_row("bound on ‖u_n‖∞ (n → ∞)", fmt(p.limit_bound), fmt(e.limit_bound))
    table.add_row("steps until bound > 1000", *steps)
    console.print(table)
    if a.gamma == 0.0:
        console.print(
            "γ = 0 is RMSprop: C = +∞ (B+), but eq. 5's prefactor (1−γ)/γ diverges, so the "
            "paper's bound is uninformative there; the exact bound applies."
        )
    # L̃ = L − ηK‖∇L‖₁ (docs/theory.md (8.3)): K > 0 subtracts the norm, K < 0 adds it.
    k = a.memory_coefficient
    role = "anti-penalty" if k > 0 else "penalty"
    console.print(
        f"memory coefficient β/(1−β) − γ/(1−γ) = {fmt(k)} "
        f"({'no first-order memory term' if k == 0 else f'× η: {role} on ‖∇L‖₁'})"
    )
    console.print(a.verdict)
    return out.getvalue()


@pytest.mark.parametrize("width", WIDTHS, ids=[f"w{w}" for w in WIDTHS])
@pytest.mark.parametrize("point", POINTS, ids=[f"{b}-{g}" for b, g in POINTS])
def test_check_output_is_what_rich_draws(point: tuple[float, float], width: int) -> None:
    out = io.StringIO()
    render_analysis(analyze_point(*point), hint=False, screen=Screen(out, width, color=False))
    assert out.getvalue() == _rich_reference(*point, width)


SENTENCES = [
    analyze_point(0.4, 0.6).verdict,
    analyze_point(0.5, 0.9).verdict,
    "memory coefficient β/(1−β) − γ/(1−γ) = -0.83333 (× η: penalty on ‖∇L‖₁)",
    "two  spaces   between    words and a trailing space ",
    "  leading spaces then words",
    "",
]


@pytest.mark.parametrize("width", [12, 20, 33, 47, 60, 79, 80, 81, 200])
@pytest.mark.parametrize("index", range(len(SENTENCES)), ids=[f"s{i}" for i in range(6)])
def test_wrap_breaks_lines_where_rich_does(index: int, width: int) -> None:
    text = SENTENCES[index]
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(text)
    assert wrap(text, width) == out.getvalue().split("\n")[:-1]


def test_a_word_longer_than_the_line_is_cut() -> None:
    assert wrap("ab abcdefghij cd", 4) == ["ab ", "abcd", "efgh", "ij ", "cd"]
    assert all(len(line) <= 4 for line in wrap("x" * 50 + " y", 4))


def test_colour_only_on_request_or_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    a = analyze_point(0.5, 0.9)  # unstable: red verdicts

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for env, stream, coloured in [
        ({}, io.StringIO(), False),
        ({}, Tty(), True),
        ({"NO_COLOR": "1"}, Tty(), False),
        ({"TERM": "dumb"}, Tty(), False),
        ({"FORCE_COLOR": "1"}, io.StringIO(), True),
    ]:
        for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        render_analysis(a, screen=Screen.detect(stream))
        text = stream.getvalue()
        assert ("\x1b[31m" in text) is coloured, env
        plain = text.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\x1b[1m", "")
        assert "unstable (γ² ≥ β)" in plain


def test_kadam_table_groups_equal_levels() -> None:
    out = io.StringIO()
    table = kadam_table(HyperPoint(0.999, 0.9), 4, KAdamStrategy.SCALED)
    render_kadam(KAdamStrategy.SCALED, table, Screen(out, 100, color=False))
    lines = out.getvalue().splitlines()
    assert lines[0] == "k-Adam, k = 4, strategy scaled"
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 1 and body[0].split("│")[1].strip() == "1–4"
    assert fmt(0.999 / 4, 6) in body[0] and fmt(0.9 / 4, 6) in body[0]
    assert lines[-1] == "k-Adam is stable: every level is exactly stable."
