"""The ``gicho`` app, its ``study`` sub-app and the printing helpers every command module shares."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from gicho import __version__

app = typer.Typer(
    name="gicho",
    help="gicho (기초): the foundations of machine learning, verified and fast.\n\n"
    "Start with `gicho tour` (every task on its embedded data) or `gicho tasks`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Exit code for bad input, as argparse and click use it.
USAGE_ERROR = 2


def _console():
    from rich.console import Console

    # Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; logs can be wider.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"gicho {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """gicho: least squares to BERT and ViT, checked against the references."""


# The --precision option of predict, evaluate and embed (checked by check_precision_option).
PrecisionOption = Annotated[
    str, typer.Option("--precision", help="CPU inference precision: fp32, or bf16 / int8 for a BERT or ViT (bf16 "
                                          "needs a CPU with native bfloat16; int8 keeps cosine 0.999 with fp32).")]


def check_precision_option(precision: str) -> str:
    """``--precision`` checked before any model is read, naming the option: one of fp32, bf16, int8,
    and bf16 only where this CPU runs it natively (the reason, from
    :func:`gicho.models.precision.bf16_refusal`, is the user's to act on, not a bug)."""
    from gicho.models.precision import PRECISIONS, bf16_refusal

    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and (reason := bf16_refusal()) is not None:
        raise ValueError(f"--precision bf16: {reason}")
    return precision


def _fmt(value: float) -> str:
    from gicho.report import format_metric

    return format_metric(value)




study_app = typer.Typer(help="Studies: train many small models and measure one claim.", no_args_is_help=True)
app.add_typer(study_app, name="study")
