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
    """gicho: least squares to Transformer encoders, checked against the references."""


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
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Wait for rank 0's report, then leave the process group cleanly: a process that exits
        # with gloo's threads still running is aborted ("terminate called without ...").
        from gicho.train.distributed import barrier, cleanup

        barrier()
        cleanup()
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
            f"{k}={_fmt(v)}" for k, v in row.metrics.items() if k in row.task.metrics
        )
        console.print(f"[bold]{row.task.name}[/bold] ({row.seconds:.1f} s): {status}")
    table = Table(title=f"gicho tour{' --quick' if quick else ''} ({time.perf_counter() - start:.0f} s)")
    for column in ("task", "T", "E", "P", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        if row.error:
            table.add_row(row.task.name, row.task.model, row.task.data, row.task.metrics[0], "[red]failed[/red]")
            continue
        # P: the task's declared metrics (a task may report more, e.g. per-locale scores)
        shown = {k: v for k, v in row.metrics.items() if k in row.task.metrics} or row.metrics
        for i, (metric, value) in enumerate(shown.items()):
            first = i == 0
            table.add_row(row.task.name if first else "", row.task.model if first else "",
                          row.task.data if first else "", metric, _fmt(value))
    console.print(table)
    report = write_tour_report(rows, Path(runs_dir) / "report.html")
    console.print(f"report: {report}")
    if any(row.error for row in rows):
        raise typer.Exit(code=1)


# --- task-specific commands: begin ---
@app.command("pca")
def pca_command(
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(
            metavar="[DATA]",
            help="A .npy, .csv or .parquet table (rows = samples); default: the bundled digits.",
        ),
    ] = None,
    n_components: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--n-components", help="Components kept: an int, or a fraction of variance in (0, 1)."),
    ] = None,
    features: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--features", help="Columns to decompose (repeat or comma-separate). Default: all but --target."),
    ] = None,
    target: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--target", help="A column left out of the PCA; it colours the scatter figure."),
    ] = None,
    whiten: Annotated[bool, typer.Option("--whiten", help="Scale the components to unit variance.")] = False,
    plot: Annotated[
        bool, typer.Option("--plot", help="Write the component scatter, explained variance and whitening figures.")
    ] = False,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the figures (default: runs/pca-<time>/plots)."),
    ] = None,
) -> None:
    """Principal components of DATA: the explained variance and the loadings of each kept component."""
    from rich.table import Table

    from gicho.decomposition import PCA
    from gicho.decomposition._solvers import numerical_rank
    from gicho.tasks.pca import parse_n_components, pca_figures

    if data is None:
        if features or target:
            raise ValueError("--features and --target need a DATA file (the bundled digits have neither)")
        from gicho.data.images import load_digits_arrays

        digits = load_digits_arrays()
        X, labels, class_names, label_name = digits.X, digits.y, digits.class_names, "digit"
        description, names = "digits 8x8 (scikit-learn, bundled)", tuple(f"pixel{j}" for j in range(X.shape[1]))
    else:
        from gicho.data.tabular import load_table

        columns = None if not features else [f.strip() for item in features for f in item.split(",") if f.strip()]
        table = load_table(data, target, columns, require_target=False)
        X, labels, class_names, label_name = table.X, table.y, None, table.target_name or "label"
        description, names = table.description, table.feature_names
    k = parse_n_components(n_components)
    console = _console()
    if whiten and k is None:
        # whitening divides by each component's spread: by default keep those of non-zero variance
        k = numerical_rank(PCA(solver="svd").fit(X).singular_values_, *X.shape)
        typer.echo(f"--whiten: keeping the {k} components of non-zero variance")
    try:
        pca = PCA(k, whiten=whiten).fit(X)
    except ValueError as exc:  # the estimator's argument names, in the CLI's words
        raise ValueError(str(exc).replace("argument `n_components`", "--n-components")) from None
    ratio = pca.explained_variance_ratio_
    typer.echo(
        f"{description}: {X.shape[0]} samples x {X.shape[1]} features; {pca.n_components_} components "
        f"explain {ratio.sum():.2%} of the variance (solver {pca.solver_}, ddof=1)"
    )
    table_out = Table()
    for column in ("component", "variance", "ratio", "cumulative"):
        table_out.add_column(column, justify="right")
    for i, (variance, r, c) in enumerate(zip(pca.explained_variance_, ratio, ratio.cumsum(), strict=True)):
        table_out.add_row(str(i + 1), f"{variance:.6g}", f"{r:.2%}", f"{c:.2%}")
    console.print(table_out)
    shown = min(pca.n_components_, 10)
    loadings = Table(title=f"loadings (components_, first {shown} of {pca.n_components_})")
    loadings.add_column("feature")
    for i in range(shown):
        loadings.add_column(f"PC{i + 1}", justify="right")
    for j, name in enumerate(names):
        loadings.add_row(name, *(f"{pca.components_[i, j]:+.4f}" for i in range(shown)))
    console.print(loadings)
    if plot:
        import shutil

        run_dir = None
        if out is None:
            from gicho.runs import new_run_dir

            run_dir = new_run_dir("pca")
            out = run_dir / "plots"
        try:
            paths = pca_figures(X, labels, out, n_components=pca.n_components_, class_names=class_names,
                                label_name=label_name, feature_names=names)  # fmt: skip
        except BaseException:  # a failed figure leaves no half-written run directory behind
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        for path in paths.values():
            typer.echo(f"figure: {path}")


@app.command("ols")
def ols_command(
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(metavar="[DATA]", help="A .npy, .csv or .parquet table; default: the bundled diabetes data."),
    ] = None,
    target: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--target", help="Response column (name; index for .npy). Default: the last column."),
    ] = None,
    features: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--features", help="Predictor columns (repeat or comma-separate). Default: all others."),
    ] = None,
    solver: Annotated[str, typer.Option("--solver", help="auto, normal, qr, svd or gd.")] = "auto",
    robust: Annotated[
        str, typer.Option("--robust", help="Covariance: nonrobust, HC0, HC1, HC2 or HC3.")
    ] = "nonrobust",
    no_intercept: Annotated[bool, typer.Option("--no-intercept", help="Fit without an intercept.")] = False,
    categorical: Annotated[
        bool,
        typer.Option("--categorical", help="One-hot encode text columns (first level dropped; columns named city[Daegu])."),
    ] = False,
    missing: Annotated[
        str, typer.Option("--missing", help="Rows with missing values: raise (default) or drop.")
    ] = "raise",
    plot: Annotated[
        bool, typer.Option("--plot", help="Write residuals-vs-fitted and observed-vs-predicted figures.")
    ] = False,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the figures (default: runs/ols-<time>/plots)."),
    ] = None,
) -> None:
    """Least squares of a table: prints coefficients, standard errors, R², F, AIC/BIC."""
    import warnings

    from gicho._validation import check_choice
    from gicho.data.tabular import MISSING, load_table
    from gicho.linear import COV_TYPES, SOLVERS, LinearRegression

    # the CLI's own names in errors; option values are case-insensitive
    solver = check_choice(solver, "--solver", SOLVERS, ignore_case=True)
    robust = check_choice(robust, "--robust", COV_TYPES, ignore_case=True)
    missing = check_choice(missing, "--missing", MISSING, ignore_case=True)
    columns = None if not features else [f.strip() for item in features for f in item.split(",") if f.strip()]
    table = load_table(data, target, columns, categorical=categorical, missing=missing)
    model = LinearRegression(solver=solver, cov_type=robust, fit_intercept=not no_intercept)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # a named frame: warnings and the summary name the user's columns (not x0, x1, ...)
        model.fit(table.features_frame(), table.y)
    dropped = f" ({table.n_dropped} of {table.n_rows} dropped for missing values)" if table.n_dropped else ""
    typer.echo(f"{table.description}: {table.X.shape[0]} rows used{dropped}, target {table.target_name!r}")
    typer.echo(str(model.summary()))
    for w in caught:
        typer.echo(f"warning: {w.message}")
    if plot:
        import shutil

        from gicho.plots.ols import ols_figures

        y_pred = model.predict(table.features_frame())
        run_dir = None
        if out is None:
            from gicho.runs import new_run_dir

            run_dir = new_run_dir("ols")
            out = run_dir / "plots"
        try:
            paths = ols_figures(table.y, y_pred, out, label="training data")
        except BaseException:  # a failed figure leaves no half-written run directory behind
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        for path in paths.values():
            typer.echo(f"figure: {path}")


study_app = typer.Typer(help="Studies: train many small models and measure one claim.", no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command(
    "pooling",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def study_pooling_command(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the table and plot (default: runs/study-pooling-<time>)."),
    ] = None,
) -> None:
    """Mean vs [CLS] pooling when the evidence is one token among many, at lengths 16..512.

    Every PoolingStudyConfig field is an option: --lengths 16,64,256 --seeds 0,1,2
    --max-steps 300 --pools mean,cls (see gicho.tasks.pooling_study).
    """
    from rich.table import Table

    from gicho.tasks import apply_overrides
    from gicho.tasks.pooling_study import PoolingStudyConfig, run_pooling_study

    config = apply_overrides(PoolingStudyConfig(), list(ctx.args))
    if out is None:
        from gicho.runs import new_run_dir

        out = new_run_dir("study-pooling")
    rows = run_pooling_study(config, out_dir=out)
    table = Table(title="pooling study: held-out accuracy (chance = 1/n_classes)")
    for column in ("length", "pool", "seed", "accuracy", "eval_loss", "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["length"]), row["pool"], str(row["seed"]), f"{row['accuracy']:.3f}",
                      f"{row['eval_loss']:.3f}", f"{row['seconds']:.1f}")
    _console().print(table)
    for name in ("pooling_study.csv", "pooling_study.json", "pooling_study.png"):
        typer.echo(f"wrote {out / name}")


# --- task-specific commands: end ---


def _is_user_facing(exc: BaseException) -> bool:
    """Whether ``exc`` reports a problem with the user's input or files (no traceback needed).

    Checkpoint problems (missing, torn, mismatched) and a diverged run are the user's to act
    on; other RuntimeErrors and OSErrors are bugs or system faults and keep their traceback.
    The training modules are looked up in ``sys.modules``: if they were never imported, the
    error cannot have come from them, and importing them here would cost the torch import.
    """
    if isinstance(exc, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)):
        return True
    if isinstance(exc, RuntimeError):
        checkpoint = sys.modules.get("gicho.train.checkpoint")
        trainer = sys.modules.get("gicho.train.trainer")
        return bool(
            (checkpoint and isinstance(exc, checkpoint.CheckpointError))
            or (trainer and isinstance(exc, trainer.NonFiniteLossError))
        )
    return not isinstance(exc, OSError)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gicho`` script; turns bad input into a one-line error, exit 2."""
    from gicho.tasks import UnknownTaskError

    try:
        app(args=argv, prog_name="gicho")
    except (ValueError, TypeError, UnknownTaskError, OSError, RuntimeError) as exc:
        if os.environ.get("GICHO_DEBUG") or not _is_user_facing(exc):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


if __name__ == "__main__":
    main()
