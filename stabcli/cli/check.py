"""``stabcli check``: the closed-form verdict of both theories for one point."""

from __future__ import annotations

import json
import math
from typing import Annotated

import typer

from stabcli.cli.params import point_from_args


def check(
    beta: Annotated[
        str | None,
        typer.Argument(
            metavar="BETA",
            help="β: second-moment decay (torch beta2), in (0, 1).",
            show_default=False,
        ),
    ] = None,
    gamma: Annotated[
        str | None,
        typer.Argument(
            metavar="GAMMA",
            help="γ: first-moment decay (torch beta1), in [0, 1).",
            show_default=False,
        ),
    ] = None,
    torch_betas: Annotated[
        str | None,
        typer.Option(
            "--torch-betas",
            metavar="B1,B2",
            help="The point in PyTorch's order, betas=(beta1, beta2), instead of BETA GAMMA.",
        ),
    ] = None,
    step: Annotated[
        int, typer.Option("--step", "-n", min=0, help="Step n at which to evaluate bounds.")
    ] = 1000,
    threshold: Annotated[
        float,
        typer.Option(min=0.0, help="Bound level for 'steps until the bound exceeds'."),
    ] = 1e3,
    k: Annotated[
        int | None, typer.Option("--k", min=1, help="Show k-Adam's per-level table (k >= 1).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="k-Adam strategy: inverse-exp (default), exp, scaled or naive."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Instant verdict for one point from the paper's theory and the exact discrete one.

    Example: `stabcli check 0.95 0.9` is torch.optim.Adam(betas=(0.9, 0.95)).
    """
    from stabcli.theory.analysis import analyze_point
    from stabcli.theory.kadam import kadam_table, parse_strategy

    point = point_from_args(beta, gamma, torch_betas)
    if not math.isfinite(threshold):
        from stabcli.errors import StabcliError

        raise StabcliError(f"--threshold must be a finite number, got {threshold}")
    analysis = analyze_point(point.beta, point.gamma, step=step, threshold=threshold)
    levels = None
    if k is not None or strategy is not None:
        chosen = parse_strategy(strategy or "inverse-exp")
        levels = (chosen, kadam_table(point, k or 1, chosen, step=step, threshold=threshold))

    if as_json:
        payload = analysis.to_dict()
        if levels is not None:
            payload["kadam"] = {
                "strategy": levels[0].value,
                "k": len(levels[1]),
                "levels": [level.to_dict() for level in levels[1]],
            }
        typer.echo(json.dumps(payload, indent=2))
        return

    from stabcli.cli.render_check import render_analysis, render_kadam

    render_analysis(analysis)
    if levels is not None:
        render_kadam(levels[0], levels[1])
