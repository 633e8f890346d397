"""`gicho ols` and `gicho pca` on the user's own tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gicho.cli._app import _console, app


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

    from gicho.tasks.pca import analyse, parse_n_components, pca_figures

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
    console = _console()
    try:
        found = analyse(X, parse_n_components(n_components), whiten=whiten)
    except ValueError as exc:  # the estimator's argument names, in the CLI's words
        raise ValueError(str(exc).replace("argument `n_components`", "--n-components")) from None
    if found.rank_kept is not None:
        typer.echo(f"--whiten: keeping the {found.rank_kept} components of non-zero variance")
    pca = found.pca
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
            from gicho.rundir import RunDir
            from gicho.runs import new_run_dir

            run_dir = new_run_dir("pca")
            out = RunDir(run_dir).plots
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
    from gicho.linear._input import check_gram_memory

    # the CLI's own names in errors; option values are case-insensitive
    solver = check_choice(solver, "--solver", SOLVERS, ignore_case=True)
    robust = check_choice(robust, "--robust", COV_TYPES, ignore_case=True)
    missing = check_choice(missing, "--missing", MISSING, ignore_case=True)
    columns = None if not features else [f.strip() for item in features for f in item.split(",") if f.strip()]
    # a table too wide for its Gram matrix is refused naming the file (findings row 79): from
    # its header before the rows are read, and again once text columns are one-hot encoded
    if data is not None and data.is_file():
        from gicho.data._table_files import column_names

        try:
            n_columns = len(columns) if columns else len(column_names(data)) - 1
        except ValueError:  # load_table words what is wrong with the file
            n_columns = 0
        check_gram_memory(n_columns, subject=f"{data}: {n_columns:,} feature columns")
    table = load_table(data, target, columns, categorical=categorical, missing=missing)
    n_features = table.X.shape[1]
    check_gram_memory(n_features, subject=f"{table.description}: {n_features:,} feature columns")
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
            from gicho.rundir import RunDir
            from gicho.runs import new_run_dir

            run_dir = new_run_dir("ols")
            out = RunDir(run_dir).plots
        try:
            paths = ols_figures(table.y, y_pred, out, label="training data")
        except BaseException:  # a failed figure leaves no half-written run directory behind
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        for path in paths.values():
            typer.echo(f"figure: {path}")
