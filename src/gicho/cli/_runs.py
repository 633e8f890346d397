"""`gicho tasks / train / evaluate / report / tour`: the registry and run directories (`predict`: ``_predict``)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from gicho.cli._app import PrecisionOption, _console, _fmt, app


@app.command("tasks")
def tasks_command(
    name: Annotated[Optional[str], typer.Argument(help="Show one task's config fields.")] = None,  # noqa: UP045
) -> None:
    """List the registered tasks with their T (model), E (data) and P (metrics)."""
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
    console.print(_fields_table(task))


def _fields_table(task):  # -> rich Table
    from rich.table import Table

    from gicho.tasks.overrides import describe_fields

    table = Table(title=f"config fields (override with `gicho train {task.name} --part.field value`)")
    for column in ("field", "type", "default", "description"):
        table.add_column(column)
    for info in describe_fields(task.config_cls()):
        table.add_row("--" + info.name.replace("_", "-"), info.type_name, repr(info.value), info.help)
    return table


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                      "help_option_names": []},  # --help is ours: it lists TASK's fields
    add_help_option=False,
)
def train_command(
    ctx: typer.Context,
    task_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(metavar="TASK", help="A registered task (see `gicho tasks`)."),
    ] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Parent directory of new runs.")] = Path("runs"),
    resume: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option("--resume", help="Continue the run in this directory from its last checkpoint."),
    ] = None,
) -> None:
    """Train TASK; every config field can be overridden as --part.field value.

    `gicho train TASK --help` lists the fields (e.g. --train.lr 3e-4 --model.pool cls).
    Ctrl-C writes a checkpoint and prints the command that resumes the run. Under torchrun
    the same command trains with DDP: `torchrun --nproc_per_node=2 -m gicho.cli train TASK`.
    """
    from gicho._dist import is_main_process
    from gicho.rundir import RunDir
    from gicho.runs import load_run, run_task
    from gicho.tasks import apply_overrides, get

    if task_name is None or task_name in ("--help", "-h") or "--help" in ctx.args:
        typer.echo(ctx.get_help())
        if task_name not in (None, "--help", "-h"):
            _console().print(_fields_table(get(task_name)))
        raise typer.Exit()
    task = get(task_name)
    if resume is not None:
        resumed_task, config = load_run(resume)
        if resumed_task.name != task.name:
            raise ValueError(f"--resume {resume} is a run of task {resumed_task.name!r}, not {task.name!r}")
        config = apply_overrides(config, list(ctx.args))
    else:
        config = task.make_config(list(ctx.args))
    main_rank = is_main_process()
    started: list[Path] = []

    def announce(run_dir: Path) -> None:
        started.append(run_dir)
        if resume is None:  # a resumed run's directory is the one the user named
            typer.echo(f"run: {run_dir}", err=True)

    fits_before = _completed_fits()
    try:
        with _signals_interrupt():
            outcome = run_task(task, config, root=runs_dir, run_dir=resume, resume=resume is not None,
                               on_start=announce)
    except KeyboardInterrupt as exc:  # the Trainer checkpoints on SIGINT/SIGTERM, then stops
        if main_rank and started:
            after_training = _completed_fits() > fits_before
            typer.echo(_interrupted_line(task.name, started[0], exc, after_training), err=True)
        raise typer.Exit(code=130) from None
    except Exception:
        if main_rank and started and resume is None and not started[0].exists():
            # run_task removed the directory: the run failed before it saved anything
            typer.echo(f"removed {started[0]}: the run failed before it saved anything", err=True)
        raise
    if main_rank:  # run_task has waited for rank 0's report and left the process group
        _print_metrics(outcome.metrics, title=f"{task.name}: held-out metrics")
        typer.echo(f"run: {outcome.run_dir}\nreport: {RunDir(outcome.run_dir).report}")


def _completed_fits() -> int:
    """Training loops of this process that ran to their end (0 while gicho.train is not imported)."""
    signals = sys.modules.get("gicho.train.signals")
    return signals.completed_guards() if signals is not None else 0


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` while a run's own code runs.

    While it trains, the Trainer turns them into a checkpoint and :class:`TrainingInterrupted`;
    before and after (building the data; final evaluation, ``model/``, plots, report) SIGTERM
    would otherwise end the process without a word, and this says where the run stands.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _interrupted_line(task: str, run_dir: Path, exc: KeyboardInterrupt, after_training: bool) -> str:
    """What `gicho train` prints when a signal stopped the run in ``run_dir``."""
    step = getattr(exc, "step", None)  # TrainingInterrupted: a checkpoint of that step was written
    if step is not None:
        return f"interrupted at step {step}; resume with: gicho train {task} --resume {run_dir}"
    if after_training:  # every step and its checkpoint are done; what follows them is redone
        return f"interrupted after training; finish with: gicho train {task} --resume {run_dir}"
    if not run_dir.exists():  # run_task removed the run: it had saved nothing
        return f"interrupted before training; nothing was saved ({run_dir} removed)"
    return f"interrupted; resume with: gicho train {task} --resume {run_dir}"


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
    data_csv: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--data.csv", help="Score a text classifier on this CSV of labelled texts instead "
                     "(text,label or text_a,text_b,label)."),
    ] = None,
    data_root: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--data.root", help="Score an image classifier on this folder of class folders instead "
                     "(root/<label>/*.png)."),
    ] = None,
    precision: PrecisionOption = "fp32",
) -> None:
    """Reload a trained run and recompute its held-out metrics, or score it on new labelled data
    (--data.csv, --data.root) read with the run's own preprocessing."""
    from gicho.cli._app import check_precision_option
    from gicho.runs import evaluate_run

    data = {k: str(v) for k, v in (("csv", data_csv), ("root", data_root)) if v is not None}
    if len(data) > 1:
        raise ValueError("give --data.csv or --data.root, not both")
    where = f" on {next(iter(data.values()))}" if data else ": held-out metrics"
    in_precision = "" if precision == "fp32" else f" ({precision})"
    _print_metrics(evaluate_run(run_dir, data or None, precision=check_precision_option(precision)),
                   title=f"{run_dir}{where}{in_precision}")


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
    from gicho.rundir import REPORT_FILE
    from gicho.runs import tour

    console = _console()
    rows = []
    start = time.perf_counter()
    def announce(i: int, n: int, task) -> None:
        console.print(f"[{i}/{n}] {task.name} ...")

    # progress=None: each task's training shows a bar on a terminal and a line per log event in a
    # log (the mlm-bert row alone takes minutes)
    for row in tour(quick=quick, root=runs_dir, tasks=only, progress=None, on_task_start=announce):
        rows.append(row)
        status = f"[red]failed[/red] {row.error}" if row.error else ", ".join(
            f"{k}={_fmt(v)}" for k, v in row.metrics.items() if k in row.task.metrics
        )
        console.print(f"[bold]{row.task.name}[/bold] ({row.seconds:.1f} s): {status}")
    table = Table(title=f"gicho tour{' --quick' if quick else ''} ({time.perf_counter() - start:.0f} s)")
    for column in ("task", "T", "E", "P", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        if row.error:
            model, data, _ = row.tep()
            table.add_row(row.task.name, model, data, row.task.metrics[0], "[red]failed[/red]")
            continue
        # P: the task's declared metrics (a task may report more, e.g. per-locale scores)
        shown = {k: v for k, v in row.metrics.items() if k in row.task.metrics} or row.metrics
        for i, (metric, value) in enumerate(shown.items()):
            first = i == 0
            model, data, _ = row.tep()  # of the config that ran (--quick changes sizes)
            table.add_row(row.task.name if first else "", model if first else "",
                          data if first else "", metric, _fmt(value))
    console.print(table)
    # the index keeps the other tasks' latest tour runs: re-running one task must not hide them
    report = write_tour_report(rows + _previous_tour_rows(Path(runs_dir), {r.task.name for r in rows}),
                               Path(runs_dir) / REPORT_FILE)
    console.print(f"report: {report}")
    if any(row.error for row in rows):
        raise typer.Exit(code=1)


def _previous_tour_rows(runs_dir: Path, done: set[str]) -> list:
    """Tour rows of registered tasks not run this time whose tour run is still on disk."""
    from gicho.rundir import RunDir
    from gicho.runs import TourRow
    from gicho.tasks import all_tasks

    rows = []
    for task in all_tasks():
        path = RunDir(runs_dir / task.name).results
        if task.name in done or not path.is_file():
            continue
        try:
            import json

            from gicho.runs import load_run

            results = json.loads(path.read_text(encoding="utf-8"))
            _, config = load_run(path.parent)  # what that run was, for its T and E
            rows.append(TourRow(task, path.parent, dict(results["metrics"]), float(results["seconds"]),
                                config=config))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged old run is left out of the index, not fatal to this tour
    return rows
