"""The ``gicho`` command: thin commands over the task registry and the run directories.

Commands parse arguments, call the library and print; the library never prints. Bad input
(an unknown task or field, a value of the wrong type, a missing path) ends with a one-line
``error: ...`` on stderr and exit code 2, without a traceback (set ``GICHO_DEBUG=1`` to see
one).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

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

    return Console(highlight=False)


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
    """gicho: least squares to Vision Transformers, checked against the references."""


def _fmt(value: float) -> str:
    from gicho.report import format_metric

    return format_metric(value)


@app.command("tasks")
def tasks_command(
    name: Annotated[Optional[str], typer.Argument(help="Show one task's config fields.")] = None,  # noqa: UP045
) -> None:
    """List the registered tasks with their T (model), E (data) and P (metrics)."""
    import dataclasses

    from rich.table import Table

    from gicho.tasks import all_tasks, get

    console = _console()
    if name is None:
        table = Table(title="gicho tasks: T × E × P")
        for column in ("task", "T (model)", "E (data)", "P (metrics)"):
            table.add_column(column)
        for task in all_tasks():
            table.add_row(task.name, task.model, task.data, ", ".join(task.metrics))
        console.print(table)
        return
    task = get(name)
    console.print(f"[bold]{task.name}[/bold]: {task.description or task.model}")
    console.print(f"T: {task.model}\nE: {task.data}\nP: {', '.join(task.metrics)}")
    table = Table(title=f"config fields (override with `gicho train {task.name} --field value`)")
    for column in ("field", "type", "default"):
        table.add_column(column)
    defaults = task.config_cls()
    for field in dataclasses.fields(task.config_cls):
        type_name = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        table.add_row("--" + field.name.replace("_", "-"), str(type_name), repr(getattr(defaults, field.name)))
    console.print(table)


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train_command(
    ctx: typer.Context,
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A registered task (see `gicho tasks`).")],
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Parent directory of new runs.")] = Path("runs"),
    resume: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option("--resume", help="Continue the run in this directory from its last checkpoint."),
    ] = None,
) -> None:
    """Train TASK; every config field can be overridden as --field value.

    `gicho tasks TASK` lists the fields. Under torchrun the same command trains with DDP:
    `torchrun --nproc_per_node=2 -m gicho.cli train TASK`.
    """
    from gicho.runs import load_run, run_task
    from gicho.tasks import apply_overrides, get

    task = get(task_name)
    if resume is not None:
        resumed_task, config = load_run(resume)
        if resumed_task.name != task.name:
            raise ValueError(f"--resume {resume} is a run of task {resumed_task.name!r}, not {task.name!r}")
        config = apply_overrides(config, list(ctx.args))
    else:
        config = task.make_config(list(ctx.args))
    outcome = run_task(task, config, root=runs_dir, run_dir=resume, resume=resume is not None)
    if int(os.environ.get("RANK", "0")) == 0:
        _print_metrics(outcome.metrics, title=f"{task.name}: held-out metrics")
        typer.echo(f"run: {outcome.run_dir}\nreport: {outcome.run_dir / 'report.html'}")


def _print_metrics(metrics: dict[str, float], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, _fmt(value))
    _console().print(table)


@app.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory (runs/<task>-<time>).")],
) -> None:
    """Reload a trained run and recompute its held-out metrics."""
    from gicho.runs import evaluate_run

    _print_metrics(evaluate_run(run_dir), title=f"{run_dir}: held-out metrics")


@app.command("predict")
def predict_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory.")],
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Inputs, one answer each.")],
    attention: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--attention", help="Draw the attention map of the first input to this PNG."),
    ] = None,
) -> None:
    """Answer each INPUT with the model trained in RUN_DIR."""
    from gicho.runs import predict_run

    options = {"attention": attention} if attention is not None else {}
    for text, answer in zip(inputs, predict_run(run_dir, inputs, options), strict=True):
        typer.echo(f"{text}\t{answer}")
    if attention is not None:
        typer.echo(f"attention map: {attention}")


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory.")],
) -> None:
    """(Re)write RUN_DIR/report.html: config, final metrics and every figure, self-contained."""
    from gicho.report import write_run_report

    if not run_dir.is_dir():
        raise ValueError(f"run directory not found: {run_dir}")
    typer.echo(str(write_run_report(run_dir)))


@app.command("tour")
def tour_command(
    quick: Annotated[bool, typer.Option("--quick", help="The smallest budget (about 2 minutes).")] = False,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where the tour's runs go.")] = Path("runs/tour"),
    only: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--task", help="Run only this task (repeatable)."),
    ] = None,
) -> None:
    """Run every registered task on its embedded data and print task / T / E / P / value."""
    import time

    from rich.table import Table

    from gicho.report import write_tour_report
    from gicho.runs import tour

    console = _console()
    rows = []
    start = time.perf_counter()
    for row in tour(quick=quick, root=runs_dir, tasks=only, progress=False):
        rows.append(row)
        status = f"[red]failed[/red] {row.error}" if row.error else ", ".join(
            f"{k}={_fmt(v)}" for k, v in row.metrics.items()
        )
        console.print(f"[bold]{row.task.name}[/bold] ({row.seconds:.1f} s): {status}")
    table = Table(title=f"gicho tour{' --quick' if quick else ''} ({time.perf_counter() - start:.0f} s)")
    for column in ("task", "T", "E", "P", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        if row.error:
            table.add_row(row.task.name, row.task.model, row.task.data, row.task.metrics[0], "[red]failed[/red]")
            continue
        for i, (metric, value) in enumerate(row.metrics.items()):
            first = i == 0
            table.add_row(row.task.name if first else "", row.task.model if first else "",
                          row.task.data if first else "", metric, _fmt(value))
    console.print(table)
    report = write_tour_report(rows, Path(runs_dir) / "report.html")
    console.print(f"report: {report}")
    if any(row.error for row in rows):
        raise typer.Exit(code=1)


# --- task-specific commands: begin ---
# --- task-specific commands: end ---


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gicho`` script; turns bad input into a one-line error, exit 2."""
    from gicho.tasks import UnknownTaskError

    try:
        app(args=argv, prog_name="gicho")
    except (ValueError, TypeError, UnknownTaskError, FileNotFoundError) as exc:
        if os.environ.get("GICHO_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


if __name__ == "__main__":
    main()
