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
    """gicho: least squares to BERT and ViT, checked against the references."""


def _fmt(value: float) -> str:
    from gicho.report import format_metric

    return format_metric(value)


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
    main_rank = int(os.environ.get("RANK", "0")) == 0
    started: list[Path] = []

    def announce(run_dir: Path) -> None:
        started.append(run_dir)
        if resume is None:  # a resumed run's directory is the one the user named
            typer.echo(f"run: {run_dir}", err=True)

    try:
        outcome = run_task(task, config, root=runs_dir, run_dir=resume, resume=resume is not None,
                           on_start=announce)
    except KeyboardInterrupt as exc:  # the Trainer checkpoints on SIGINT/SIGTERM, then stops
        if main_rank and started:
            step = getattr(exc, "step", None)
            where = f" at step {step}" if step is not None else ""
            typer.echo(f"interrupted{where}; resume with: gicho train {task.name} --resume {started[0]}",
                       err=True)
        raise typer.Exit(code=130) from None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Wait for rank 0's report, then leave the process group cleanly: a process that exits
        # with gloo's threads still running is aborted ("terminate called without ...").
        from gicho.train.distributed import barrier, cleanup

        barrier()
        cleanup()
    if main_rank:
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


@app.command("predict", context_settings={"ignore_unknown_options": True})
def predict_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory.")],
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Inputs, one answer each.")],
    attention: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--attention", help="Draw the attention map of the first input to this PNG."),
    ] = None,
) -> None:
    """Answer each INPUT with the model trained in RUN_DIR.

    Inputs that start with a minus sign ("-5 -5 ...") are read as inputs, not options.
    """
    from gicho.runs import predict_run

    options = {}
    if attention is not None:
        if attention.is_dir():
            raise ValueError(f"--attention {attention} is a directory; give the PNG file to write")
        attention = attention if attention.suffix else attention.with_suffix(".png")
        options["attention"] = attention
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
    def announce(i: int, n: int, task) -> None:
        console.print(f"[{i}/{n}] {task.name} ...")

    for row in tour(quick=quick, root=runs_dir, tasks=only, progress=False, on_task_start=announce):
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
    # the index keeps the other tasks' latest tour runs: re-running one task must not hide them
    report = write_tour_report(rows + _previous_tour_rows(Path(runs_dir), {r.task.name for r in rows}),
                               Path(runs_dir) / "report.html")
    console.print(f"report: {report}")
    if any(row.error for row in rows):
        raise typer.Exit(code=1)


def _previous_tour_rows(runs_dir: Path, done: set[str]) -> list:
    """Tour rows of registered tasks not run this time whose tour run is still on disk."""
    from gicho.runs import RESULTS_FILE, TourRow
    from gicho.tasks import all_tasks

    rows = []
    for task in all_tasks():
        path = runs_dir / task.name / RESULTS_FILE
        if task.name in done or not path.is_file():
            continue
        try:
            import json

            results = json.loads(path.read_text(encoding="utf-8"))
            rows.append(TourRow(task, path.parent, dict(results["metrics"]), float(results["seconds"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged old run is left out of the index, not fatal to this tour
    return rows


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
    --pools mean,cls --model.d-model 32 --train.max-steps 300 (see gicho.tasks.pooling_study).
    """
    from rich.table import Table

    from gicho.tasks import apply_overrides
    from gicho.tasks.pooling_study import PoolingStudyConfig, run_pooling_study

    config = apply_overrides(PoolingStudyConfig(), list(ctx.args))
    if out is None:
        from gicho.runs import new_run_dir

        out = new_run_dir("study-pooling")
    def announce(i: int, n: int, length: int, pool: str, seed: int) -> None:
        typer.echo(f"[{i}/{n}] length {length}, {pool} pooling, seed {seed}", err=True)

    typer.echo(f"study: {out}", err=True)
    rows = run_pooling_study(config, out_dir=out, on_run_start=announce)
    table = Table(title="pooling study: held-out accuracy (chance = 1/n_classes)")
    for column in ("length", "pool", "seed", "accuracy", "eval_loss", "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["length"]), row["pool"], str(row["seed"]), f"{row['accuracy']:.3f}",
                      f"{row['eval_loss']:.3f}", f"{row['seconds']:.1f}")
    _console().print(table)
    for name in ("pooling_study.csv", "pooling_study.json", "pooling_study.png"):
        typer.echo(f"wrote {out / name}")


def _load_bert(checkpoint: Path, *, masked_lm: bool):  # -> (model, tokenizer)
    from gicho.models import from_pretrained
    from gicho.models.bert import BertForMaskedLM, BertPreTrainedModel
    from gicho.tasks.bert_text import load_tokenizer
    from gicho.weights import read_config, tensor_shapes, weights_file

    if not checkpoint.is_dir():
        raise FileNotFoundError(f"checkpoint {checkpoint} is not a directory (expected an HF BERT "
                                "directory: config.json, model.safetensors, tokenizer.json or vocab.txt)")
    if read_config(checkpoint).get("model_type") != "bert":
        raise ValueError(f"checkpoint {checkpoint} is not a BERT (config.json's model_type is "
                         f"{read_config(checkpoint).get('model_type')!r}; allowed: 'bert')")
    tokenizer = load_tokenizer(checkpoint)
    if masked_lm:
        names = tensor_shapes(weights_file(checkpoint))
        if not any(n.startswith(("cls.predictions.", "lm_head.")) for n in names):
            architecture = (read_config(checkpoint).get("architectures") or ["BertModel"])[0]
            raise ValueError(f"checkpoint {checkpoint} ({architecture}) has no masked-language-model "
                             "head (no cls.predictions.* tensors), so it cannot fill masks; use a "
                             "BertForMaskedLM checkpoint (`gicho embed` works with this one)")
        return BertForMaskedLM.from_pretrained(checkpoint), tokenizer
    model = from_pretrained(checkpoint)
    if not isinstance(model, BertPreTrainedModel):  # pragma: no cover - model_type checked above
        raise ValueError(f"checkpoint {checkpoint} is not a BERT model")
    return model, tokenizer


def _warn_truncated(truncated: list[bool], max_len: int) -> None:
    for i, cut in enumerate(truncated):
        if cut:
            typer.echo(f"warning: text {i + 1} is longer than max_len={max_len} tokens; truncated",
                       err=True)


@app.command("fill-mask")
def fill_mask_command(
    checkpoint: Annotated[Path, typer.Argument(help="A BERT directory with an MLM head and a tokenizer.")],
    text: Annotated[str, typer.Argument(help='Text with one or more [MASK] tokens, e.g. "The [MASK] statement exits a loop."')],
    top_k: Annotated[int, typer.Option("--top-k", help="Tokens shown per [MASK].")] = 5,
) -> None:
    """Predict the tokens hidden behind [MASK] with a BERT masked-language model."""
    from rich.table import Table

    from gicho.tasks.bert_text import encode, fill_mask

    model, tokenizer = _load_bert(checkpoint, masked_lm=True)
    _warn_truncated(encode(tokenizer, [text], model.config.max_len).truncated, model.config.max_len)
    for m, candidates in enumerate(fill_mask(model, tokenizer, text, top_k)):
        table = Table(title=f"[MASK] {m + 1}: {text}")
        for column in ("rank", "token", "probability"):
            table.add_column(column, justify="right" if column != "token" else "left")
        for rank, (token, p) in enumerate(candidates, 1):
            table.add_row(str(rank), token, f"{p:.4f}")
        _console().print(table)


@app.command("embed")
def embed_command(
    checkpoint: Annotated[Path, typer.Argument(help="A BERT directory with a tokenizer (e.g. all-MiniLM-L6-v2).")],
    texts: Annotated[list[str], typer.Argument(help="One or more texts.")],
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Save the embeddings (N, D) float32 to this .npy file instead of printing them."),
    ] = None,
) -> None:
    """Normalised mean-pooled sentence embeddings and, for several texts, their cosine similarities."""
    import numpy as np
    from rich.table import Table

    from gicho.tasks.bert_text import sentence_embeddings

    model, tokenizer = _load_bert(checkpoint, masked_lm=False)
    embeddings, truncated = sentence_embeddings(model, tokenizer, list(texts))
    _warn_truncated(truncated, model.config.max_len)
    array = embeddings.numpy().astype(np.float32)
    if out is not None:
        with open(out, "wb") as fh:  # exactly this name (np.save(path) would append .npy)
            np.save(fh, array)
        typer.echo(f"wrote {out}: {array.shape[0]} x {array.shape[1]} float32, L2-normalised")
    else:
        for i, row in enumerate(array):
            typer.echo(f"{i + 1}\t" + " ".join(f"{v:.6f}" for v in row))
    if len(array) > 1:
        table = Table(title="cosine similarity")
        table.add_column("")
        for j in range(len(array)):
            table.add_column(str(j + 1), justify="right")
        similarity = array @ array.T  # (N, N): the rows are unit vectors
        for i, text in enumerate(texts):
            label = text if len(text) <= 40 else text[:37] + "..."
            table.add_row(f"{i + 1} {label}", *(f"{v:.3f}" for v in similarity[i]))
        _console().print(table)


@study_app.command(
    "data-size",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def study_data_size_command(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the table and plot (default: runs/study-data-size-<time>)."),
    ] = None,
) -> None:
    """ViT vs a CNN of similar size vs PCA + logistic regression on growing shares of the digits.

    Every DataSizeStudyConfig field is an option: --fractions 0.1,0.5,1 --seeds 0,1
    --models vit,cnn --max-shifts 0,1 --train.max-steps 400 (see gicho.tasks.data_size_study).
    """
    from rich.table import Table

    from gicho.tasks import apply_overrides
    from gicho.tasks.data_size_study import DataSizeStudyConfig, run_data_size_study

    config = apply_overrides(DataSizeStudyConfig(), list(ctx.args))
    if out is None:
        from gicho.runs import new_run_dir

        out = new_run_dir("study-data-size")

    def announce(i: int, n: int, model: str, fraction: float, shift: int, seed: int) -> None:
        typer.echo(f"[{i}/{n}] {model}, {fraction:g} of the training set, shift {shift}, seed {seed}", err=True)

    typer.echo(f"study: {out}", err=True)
    rows = run_data_size_study(config, out_dir=out, on_run_start=announce)
    table = Table(title="data-size study: held-out accuracy on the digits")
    for column in ("model", "params", "n_train", "max_shift", "seed", "accuracy", "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["model"], str(row["params"]), str(row["n_train"]), str(row["max_shift"]),
                      str(row["seed"]), f"{row['accuracy']:.3f}", f"{row['seconds']:.1f}")
    _console().print(table)
    for name in ("data_size_study.csv", "data_size_study.json", "data_size_study.png"):
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
    if isinstance(exc, ValueError) and isinstance(exc, RuntimeError):  # e.g. DeviceUnavailableError
        return _raised_by_gicho(exc)
    if isinstance(exc, RuntimeError):
        checkpoint = sys.modules.get("gicho.weights")
        trainer = sys.modules.get("gicho.train.trainer")
        return bool(
            (checkpoint and isinstance(exc, checkpoint.CheckpointError))
            or (trainer and isinstance(exc, trainer.NonFiniteLossError))
        )
    if isinstance(exc, OSError):
        return False
    return _raised_by_gicho(exc)


def _raised_by_gicho(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by gicho's own code (its validation), not deep in a library.

    A ValueError from inside NumPy or torch on gicho's behalf is a bug in gicho (it should have
    validated first): it keeps its traceback.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return True
    here = Path(__file__).resolve().parent
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(here)
    except (OSError, ValueError):  # pragma: no cover - odd frames (frozen, <string>)
        return False


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gicho`` script; turns bad input into a one-line error, exit 2."""
    import warnings

    from gicho.tasks import UnknownTaskError

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        # a user reads "warning: ...", not the source line of gicho that raised it
        print(f"warning: {message}", file=sys.stderr if file is None else file)

    warnings.showwarning = one_line_warning
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
