"""The ``stabcli`` command line: thin Typer commands that parse, call and render.

Module-level imports stay light (no numpy, torch, pandas or plotly) so that ``stabcli check``
and ``stabcli --help`` start fast; each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from stabcli import __version__
from stabcli.cli import check as _check
from stabcli.cli import kstudy as _kstudy
from stabcli.cli import presets as _presets
from stabcli.cli import report as _report
from stabcli.cli import reproduce as _reproduce
from stabcli.cli import sweep as _sweep
from stabcli.errors import SettingError, StabcliError

try:  # recent Typer vendors click; earlier releases use click itself.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import (  # type: ignore[no-redef,assignment]
        ClickException,
        NoArgsIsHelpError,
    )

#: The library's setting names as the command line spells them (errors name settings; a
#: SettingError is shown with its flag).
FLAGS = {
    "confidence": "--confidence",
    "data_path": "--data",
    "grid": "--grid",
    "growth_tol": "--growth-tol",
    "hyper_lr": "--hyper-lr",
    "k": "--k",
    "n_points": "--points",
    "out": "--out",
    "overwrite": "--overwrite",
    "points": "--point",
    "points_file": "--points-file",
    "points_per_batch": "--points-per-batch",
    "python_path": "--python-path",
    "slope_at": "--slope-at",
    "span": "--span",
    "through": "--through",
    "torch_grid": "--torch-grid",
}

app = typer.Typer(
    name="stabcli",
    help=(
        "Stability analyzer for Adam/AdamW's (β, γ): closed-form verdicts, training probes "
        "and reports. Points are given in the paper's order β γ (β = torch beta2, "
        "γ = torch beta1)."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stabcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Stability analyzer for Adam/AdamW hyperparameters."""


def _reflowed(command: object) -> str:
    """A command's docstring with each paragraph on one line: Typer keeps a docstring's
    line breaks, so a paragraph wrapped at 92 columns in the source showed up broken
    mid-sentence in ``--help`` and in the command list; the terminal wraps it instead."""
    import re  # already loaded by Click; inspect.cleandoc would cost start-up time

    doc = (getattr(command, "__doc__", None) or "").strip()
    return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", doc))


for _name, _command in (
    ("check", _check.check),
    ("sweep", _sweep.sweep),
    ("kstudy", _kstudy.kstudy),
    ("report", _report.report),
    ("presets", _presets.presets),
    ("reproduce", _reproduce.reproduce),
):
    app.command(_name, help=_reflowed(_command))(_command)


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"stabcli: error: {message}\n")
    return code


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _looks_negative(arg: str) -> bool:
    """Whether a command-line word is a negative number ("-0.5", "-inf", "-1e-3")."""
    if not arg.startswith("-") or arg.startswith("--"):
        return False
    try:
        float(arg)
    except ValueError:
        return False
    return True


def _usage_message(err: ClickException, args: list[str]) -> str:
    """Click's message, in one line. A negative number typed where a value was expected
    reads to Click as an unknown option ("No such option: -0"); say what it is instead."""
    message = _one_line(err.format_message())
    negative = [a for a in args if _looks_negative(a)]
    if message.startswith("No such option") and negative:
        return (
            f"{negative[0]} reads as an option, and a negative β or γ is out of range "
            "anyway: β is in (0, 1), γ in [0, 1)"
        )
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2, never a traceback.

    SIGXFSZ is ignored, so that a write past a file-size limit (``ulimit -f``) fails with
    an error the command reports instead of killing the process.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if hasattr(signal, "SIGXFSZ"):
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        result = app(args=args, prog_name="stabcli", standalone_mode=False)
    except SettingError as err:
        code = _fail(_one_line(err.render(FLAGS)), err.exit_code)
    except StabcliError as err:
        code = _fail(_one_line(str(err)), err.exit_code)
    except NoArgsIsHelpError:  # the help is already on stdout
        code = _fail(
            "missing command: give one of check, sweep, kstudy, report, presets, reproduce", 2
        )
    except ClickException as err:  # usage errors: bad values, unknown options, ...
        code = _fail(_usage_message(err, args), 2)
    except typer.Exit as err:
        code = err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = _fail("interrupted", 130)
    except Exception as err:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("STABCLI_DEBUG"):
            raise
        what = _one_line(f"{type(err).__name__}: {err}")
        code = _fail(
            f"internal error ({what}); this is a bug in stabcli, please report it with the "
            "command; STABCLI_DEBUG=1 shows the traceback",
            1,
        )
    else:
        code = result if isinstance(result, int) else 0
        if code == 130:  # Typer turns a Ctrl-C outside a command's own handling into 130
            code = _fail("interrupted", 130)
    if argv is None:
        sys.exit(code)
    return code
