"""Tour task ``ols-diabetes``: least squares on scikit-learn's bundled diabetes data.

T: :class:`gicho.linear.LinearRegression`; E: the diabetes table (442 patients, 10 baseline
variables, no download) with a seeded held-out split; P: held-out R² (headline), MAE, MSE and
RMSE from :mod:`gicho.metrics`. The run also writes the coefficient table with standard
errors (``ols_summary.txt``), the fitted model (``ols.json``) and two diagnostic figures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gicho._io import atomic_write_text
from gicho.tasks import RunContext, Task, register

__all__ = ["DIABETES_FEATURES", "DIABETES_ROWS", "OLSDiabetesConfig", "run"]

# The bundled diabetes table (tests check these against it): the split is checked with the
# config, before a run starts, without loading the data.
DIABETES_ROWS, DIABETES_FEATURES = 442, 10
MIN_TEST_ROWS = 2  # R² of one held-out value is undefined


@dataclass
class OLSDiabetesConfig:
    """Config of ``ols-diabetes`` (every field is a ``--field value`` override)."""

    test_fraction: float = field(default=0.25, metadata={"help": "share of the 442 rows held out for the metrics"})
    seed: int = field(default=0, metadata={"help": "seed of the train/test split"})
    solver: str = field(default="auto", metadata={"help": "least-squares solver: auto, normal (equations), qr, svd or gd (gradient descent)"})
    cov_type: str = field(default="nonrobust", metadata={
        "help": "covariance of the coefficients: nonrobust or a heteroscedasticity-robust HC0-HC3"})
    fit_intercept: bool = field(default=True, metadata={"help": "fit an intercept column"})
    scaled: bool = field(default=True, metadata={
        "help": "features as scikit-learn ships them (false: the original units)"})
    plots: bool = field(default=True, metadata={"help": "write the residuals-vs-fitted and observed-vs-predicted figures"})

    def __post_init__(self) -> None:
        from gicho.linear import COV_TYPES, SOLVERS  # here: listing tasks stays free of sklearn

        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"field `test_fraction` must lie in (0, 1); got {self.test_fraction!r}")
        self._check_split()
        if self.solver not in SOLVERS:
            raise ValueError(f"field `solver` must be one of {', '.join(SOLVERS)}; got {self.solver!r}")
        if self.cov_type not in COV_TYPES:
            raise ValueError(f"field `cov_type` must be one of {', '.join(COV_TYPES)}; got {self.cov_type!r}")


    def _check_split(self) -> None:
        """Enough rows on both sides of the split: R² needs two held-out rows, the standard
        errors one more training row than coefficients."""
        n_test = math.ceil(self.test_fraction * DIABETES_ROWS)  # as train_test_split rounds
        n_train = DIABETES_ROWS - n_test
        n_coef = DIABETES_FEATURES + int(self.fit_intercept)
        if n_test >= MIN_TEST_ROWS and n_train > n_coef:
            return
        # the range, rounded inwards so that both ends work
        low = math.ceil(MIN_TEST_ROWS / DIABETES_ROWS * 1e4) / 1e4
        high = math.floor((DIABETES_ROWS - n_coef - 1) / DIABETES_ROWS * 1e4) / 1e4
        raise ValueError(
            f"field `test_fraction`={self.test_fraction!r} holds out {n_test} of the {DIABETES_ROWS} "
            f"diabetes rows and trains on {n_train}; R² needs at least {MIN_TEST_ROWS} held-out rows "
            f"and least squares with {n_coef} coefficients at least {n_coef + 1} training rows: "
            f"test_fraction must lie in [{low}, {high}]"
        )


def run(config: OLSDiabetesConfig, ctx: RunContext) -> dict[str, float]:
    """Fit on the training split; return the held-out metrics; write summary, model, figures."""
    from sklearn.model_selection import train_test_split

    from gicho.data.tabular import load_diabetes_table
    from gicho.linear import LinearRegression
    from gicho.metrics import mae, mse, r2, rmse

    data = load_diabetes_table(scaled=config.scaled)
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=config.test_fraction, random_state=config.seed
    )
    model = LinearRegression(
        solver=config.solver, cov_type=config.cov_type, fit_intercept=config.fit_intercept
    ).fit(X_train, y_train)
    y_pred = model.predict(X_test)
    metrics = {
        "r2": float(r2(y_test, y_pred)),
        "mae": float(mae(y_test, y_pred)),
        "mse": float(mse(y_test, y_pred)),
        "rmse": float(rmse(y_test, y_pred)),
    }
    run_dir = Path(ctx.run_dir)
    summary = model.summary(feature_names=data.feature_names)
    atomic_write_text(run_dir / "ols_summary.txt", str(summary) + "\n")
    record = {
        "metrics": metrics,
        "n_train": int(X_train.shape[0]),
        "n_test": int(X_test.shape[0]),
        "feature_names": list(data.feature_names),
        "coef": np.asarray(model.coef_).tolist(),
        "intercept": float(model.intercept_),
        "bse": np.asarray(model.bse_).tolist(),
        "pvalues": np.asarray(model.pvalues_).tolist(),
        "train_rsquared": model.rsquared_,
        "train_rsquared_adj": model.rsquared_adj_,
        "solver": model.solver_,
        "cond": model.cond_,
        "cov_type": config.cov_type,
    }
    atomic_write_text(run_dir / "ols.json", json.dumps(record, indent=2) + "\n")
    if config.plots:
        from gicho.plots.ols import ols_figures

        ols_figures(y_test, y_pred, ctx.plots_dir, label="held-out")
    return metrics


register(
    Task(
        name="ols-diabetes",
        model="LinearRegression (least squares)",
        data="diabetes (scikit-learn, bundled)",
        metrics=("r2", "mae", "mse", "rmse"),
        config_cls=OLSDiabetesConfig,
        run=run,
        description="least squares with standard errors on the diabetes data; held-out R², MAE, MSE, RMSE",
        tour={},
        quick={},
    )
)
