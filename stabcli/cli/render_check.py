"""Rich rendering of a :class:`PointAnalysis` (``stabcli check``)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from stabcli.theory.analysis import PointAnalysis, TheoryVerdict


def fmt(x: float, digits: int = 5) -> str:
    """A float for humans: ∞ for infinities, compact otherwise."""
    if math.isnan(x):
        return "undefined"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def _steps(v: TheoryVerdict) -> str:
    return "never" if v.steps_to_threshold is None else f"{v.steps_to_threshold:,}"


def _status(v: TheoryVerdict) -> str:
    color = "green" if v.stable else "red"
    text = f"{v.label} (bounded)" if v.stable else f"{v.label} (growing)"
    if v.theory == "exact":
        text = "stable (γ² < β)" if v.stable else "unstable (γ² ≥ β)"
    return f"[{color}]{text}[/]"


def render_analysis(a: PointAnalysis, console: Console | None = None) -> None:
    """Header naming both conventions, the two-theory table, and the verdict line."""
    console = console or Console()
    console.print(f"β = {a.beta:g} (torch beta2), γ = {a.gamma:g} (torch beta1)", highlight=False)
    console.print(f"PyTorch: Adam(betas=({a.gamma:g}, {a.beta:g}))", highlight=False)
    console.print(f"C(β, γ) = 2/γ − 1/β − 1 = {fmt(a.c_value, 6)}", highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("paper (eq. 5)", justify="right")
    table.add_column("exact (discrete)", justify="right")
    p, e = a.paper, a.exact
    rows = [
        ("verdict", _status(p), _status(e)),
        ("growth rate / step (n → ∞)", fmt(p.rate), fmt(e.rate)),
        (f"growth rate at n = {a.step:,}", fmt(p.rate_at_step), fmt(e.rate_at_step)),
        (f"bound on ‖u_n‖∞ at n = {a.step:,}", fmt(p.bound_at_step), fmt(e.bound_at_step)),
        ("bound on ‖u_n‖∞ (n → ∞)", fmt(p.limit_bound), fmt(e.limit_bound)),
        (f"steps until bound > {a.threshold:g}", _steps(p), _steps(e)),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if a.gamma == 0.0:
        console.print(
            "γ = 0 is RMSprop: C = +∞ (B+), but eq. 5's prefactor (1−γ)/γ diverges, so the "
            "paper's bound is uninformative there; the exact bound applies.",
            highlight=False,
        )
    console.print(
        f"memory coefficient β/(1−β) − γ/(1−γ) = {fmt(a.memory_coefficient)} "
        "(× η: anti-penalty on ‖∇L‖₁)",
        highlight=False,
    )
    style = (
        "bold yellow" if not a.theories_agree else ("bold green" if a.exact.stable else "bold red")
    )
    console.print(f"[{style}]{a.verdict}[/]", highlight=False)
    hint = _torch_order_hint(a)
    if hint:
        console.print(hint, highlight=False)


def _torch_order_hint(a: PointAnalysis) -> str:
    """A hint when the point looks typed in PyTorch's order (beta1 beta2) by habit."""
    typical = min(a.beta, a.gamma) >= 0.8  # both look like Adam betas
    swapped_stable = a.gamma > a.beta and a.beta * a.beta < a.gamma
    if a.exact.stable or not (typical and swapped_stable):
        return ""
    return (
        "Typed PyTorch's order by habit? BETA GAMMA is the paper's order (β = beta2).\n"
        f"For Adam(betas=({a.beta:g}, {a.gamma:g})) run: "
        f"stabcli check --torch-betas {a.beta:g},{a.gamma:g}"
    )


def render_kadam(
    strategy: object, levels: list[PointAnalysis], console: Console | None = None
) -> None:
    """k-Adam's per-level table: each level obeys its own bound in both theories."""
    console = console or Console()
    table = Table(title=f"k-Adam, k = {len(levels)}, strategy {strategy}", header_style="bold")
    for name in ("level", "β_i", "γ_i", "C", "paper", "exact", "exact rate", "exact limit"):
        table.add_column(name, justify="right")
    for i, lv in enumerate(levels, start=1):
        table.add_row(
            str(i),
            fmt(lv.beta, 6),
            fmt(lv.gamma, 6),
            fmt(lv.c_value),
            lv.paper.label,
            lv.exact.label,
            fmt(lv.exact.rate),
            fmt(lv.exact.limit_bound),
        )
    console.print(table)
    unstable = [i for i, lv in enumerate(levels, 1) if not lv.exact.stable]
    if unstable:
        console.print(f"[bold red]k-Adam is unstable: levels {unstable} grow (exact).[/]")
    else:
        console.print("[bold green]k-Adam is stable: every level is exactly stable.[/]")
