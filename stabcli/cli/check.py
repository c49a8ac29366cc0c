"""``stabcli check``: the closed-form verdict of both theories for one point, or for every
(beta1, beta2) found in config files and checkpoints (``--from``).

No ``from __future__ import annotations`` here, on purpose: Typer would then compile and
evaluate every parameter's annotation string at each start; real annotations are built
once, at import, which makes ``check`` start measurably faster.
"""

from typing import Annotated

import typer


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
    from_files: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            metavar="FILE",
            help=(
                "Check every (beta1, beta2) found in FILE (repeatable): a JSON, YAML, TOML or "
                "nanoGPT-style .py config, or a PyTorch checkpoint of an optimizer state_dict."
            ),
            show_default=False,
        ),
    ] = None,
    step: Annotated[
        int,
        typer.Option("--step", "-n", help="Step n at which to evaluate bounds, 0 to 10^15."),
    ] = 1000,
    threshold: Annotated[
        float,
        typer.Option(help="Bound level (finite, > 0) for 'steps until the bound exceeds'."),
    ] = 1e3,
    k: Annotated[
        int | None, typer.Option("--k", help="Show k-Adam's per-level table (1 <= k <= 1000).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="k-Adam strategy: inverse-exp (default), exp, scaled or naive."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (with --from: a list, one per pair)."),
    ] = False,
) -> None:
    """Instant verdict for one point from the paper's theory and the exact discrete one.

    Example: `stabcli check 0.95 0.9` is torch.optim.Adam(betas=(0.9, 0.95)).
    """
    from stabcli.cli.params import points_to_check
    from stabcli.theory.analysis import analyze_point, validate_step, validate_threshold

    step = validate_step(step, "--step")
    threshold = validate_threshold(threshold, "--threshold")
    chosen = None  # k-Adam's strategy when its table is asked for
    if k is not None or strategy is not None:
        from stabcli.theory.kadam import kadam_table, parse_strategy, validate_k

        k = validate_k(1 if k is None else k, "--k")
        chosen = parse_strategy("inverse-exp" if strategy is None else strategy)
    given = points_to_check(beta, gamma, torch_betas, from_files)  # files read before output
    analyses = [analyze_point(g.point.beta, g.point.gamma, step, threshold) for g in given]
    tables = [
        None if chosen is None else kadam_table(g.point, k or 1, chosen, step, threshold)
        for g in given
    ]

    if as_json:
        import json

        payloads = []
        for item, analysis, levels in zip(given, analyses, tables, strict=True):
            payload = analysis.to_dict()
            if item.source is not None:
                payload = {"source": item.source, **payload}
            if chosen is not None and levels is not None:
                payload["kadam"] = {
                    "strategy": chosen.value,
                    "k": len(levels),
                    "levels": [level.to_dict() for level in levels],
                }
            payloads.append(payload)
        typer.echo(json.dumps(payloads if from_files else payloads[0], indent=2))
        return

    from stabcli.cli.render_check import Screen, render_analysis, render_kadam, render_source

    screen = Screen.detect()
    for i, (item, analysis, levels) in enumerate(zip(given, analyses, tables, strict=True)):
        if item.source is not None:
            if i:
                screen.line()  # a blank line between the checks of several pairs
            render_source(item.source, screen)
        render_analysis(analysis, order=item.order, hint=item.order == "paper", screen=screen)
        if chosen is not None and levels is not None:
            render_kadam(chosen, levels, screen)
