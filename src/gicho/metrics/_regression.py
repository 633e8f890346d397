"""Batch regression metrics: MAE, MSE, RMSE, R², adjusted R² and the R² components."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from gicho._validation import (
    check_positive,
)
from gicho.metrics import _core as core

__all__ = ["R2Components", "adjusted_r2", "mae", "mse", "r2", "r2_components", "rmse"]

# A mode name or an array of ``n_outputs`` non-negative output weights.
MultiOutput = Literal["raw_values", "uniform_average", "variance_weighted"] | ArrayLike


def _batch(
    y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike, multioutput: Any, **flags: bool
) -> tuple[core.Stats, str | np.ndarray]:
    yt, yp = core.check_targets(y_true, y_pred)
    w = core.check_weights(sample_weight, yt.shape[0])
    mode = core.check_multioutput(multioutput, 1 if yt.ndim == 1 else yt.shape[1])
    if isinstance(mode, str) and mode == "variance_weighted":
        flags["true_moments"] = True  # the output weights are the TSS of y_true
    return core.reduce(yt, yp, w, **flags), mode


def mae(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: MultiOutput = "uniform_average",
) -> float | np.ndarray:
    """Mean absolute error, Σ w |ŷ − y| / Σ w.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets and predictions, both 1-D or both 2-D; converted to float64.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights, not all zero.
    multioutput : {"raw_values", "uniform_average", "variance_weighted"} or array-like
        How per-output values are combined: returned as an array, averaged, averaged with
        weights proportional to the (weighted) variance of each ``y_true`` column, or
        averaged with the given ``n_outputs`` weights. ``"variance_weighted"`` extends
        scikit-learn (which offers it for R² only) and equals passing those variances.

    Returns
    -------
    float, or ndarray of shape (n_outputs,) for ``"raw_values"``
    """
    stats, mode = _batch(y_true, y_pred, sample_weight, multioutput, squares=False)
    return core.average(core.per_output(stats)["mae"], mode, stats.m2_true)


def mse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: MultiOutput = "uniform_average",
) -> float | np.ndarray:
    """Mean squared error, Σ w (ŷ − y)² / Σ w. Arguments and return as in :func:`mae`."""
    stats, mode = _batch(y_true, y_pred, sample_weight, multioutput, absolute=False)
    return core.average(core.per_output(stats)["mse"], mode, stats.m2_true)


def rmse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: MultiOutput = "uniform_average",
) -> float | np.ndarray:
    """Root mean squared error, √MSE per output, then combined as in :func:`mae`.

    As in scikit-learn's ``root_mean_squared_error``, the multi-output average is the mean of
    per-output RMSEs, not the square root of the averaged MSE.
    """
    stats, mode = _batch(y_true, y_pred, sample_weight, multioutput, absolute=False)
    return core.average(core.per_output(stats)["rmse"], mode, stats.m2_true)


def _check_r2_samples(n_samples: int) -> None:
    if n_samples < 2:
        raise ValueError(
            f"R² needs at least 2 samples; got {n_samples} (the variance of one value is 0, "
            "so R² is undefined)"
        )


def r2(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: MultiOutput = "uniform_average",
    force_finite: bool = True,
) -> float | np.ndarray:
    """Coefficient of determination R² = 1 − RSS / TSS.

    Parameters
    ----------
    y_true, y_pred, sample_weight, multioutput
        As in :func:`mae`; at least 2 samples. ``"variance_weighted"`` gives
        1 − Σ_j RSS_j / Σ_j TSS_j over the outputs whose ``y_true`` is not constant (a
        constant output has TSS = 0 and so no weight; when every output is constant, the
        plain average of the per-output values, as scikit-learn does).
    force_finite : bool, default True
        For an output whose ``y_true`` is constant (TSS = 0), scikit-learn's convention:
        R² = 1.0 if the predictions are perfect (RSS = 0), else 0.0. With ``False``, the raw
        formula: nan (perfect) or -inf. A column is "constant" when its values are exactly
        equal; the round-off of its mean is detected and TSS set to exactly 0.

    Returns
    -------
    float, or ndarray of shape (n_outputs,) for ``"raw_values"``
        At most 1; negative when the predictions are worse than predicting ȳ.
    """
    yt, yp = core.check_targets(y_true, y_pred)
    _check_r2_samples(yt.shape[0])
    stats, mode = _batch(yt, yp, sample_weight, multioutput, absolute=False, true_moments=True)
    return core.average(core.per_output(stats, force_finite)["r2"], mode, stats.m2_true)


def adjusted_r2(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_features: int,
    sample_weight: ArrayLike | None = None,
    multioutput: MultiOutput = "uniform_average",
    force_finite: bool = True,
) -> float | np.ndarray:
    """Adjusted R², 1 − (1 − R²)(n − 1)/(n − p − 1), with n samples and p features.

    Same as statsmodels' ``rsquared_adj`` for a model with an intercept; p excludes the
    intercept. Arguments are those of :func:`r2`, plus ``n_features`` (p, an integer >= 0).
    The adjustment is linear in R², so it commutes with every ``multioutput`` average.

    Raises
    ------
    ValueError
        If n − p − 1 <= 0 (no residual degrees of freedom).
    """
    check_positive(n_features, "n_features", strict=False, integer=True)
    yt, yp = core.check_targets(y_true, y_pred)
    n_samples = yt.shape[0]
    dof = n_samples - int(n_features) - 1
    if dof <= 0:
        raise ValueError(
            f"adjusted R² needs n_samples - n_features - 1 > 0; got n_samples={n_samples}, "
            f"n_features={n_features} ({dof} residual degrees of freedom)"
        )
    score = r2(yt, yp, sample_weight=sample_weight, multioutput=multioutput, force_finite=force_finite)
    adjusted = 1.0 - (1.0 - np.asarray(score)) * ((n_samples - 1) / dof)
    return adjusted if isinstance(score, np.ndarray) else float(adjusted)


class R2Components(NamedTuple):
    """Sums of squares behind R²: floats for 1-D targets, arrays (n_outputs,) for 2-D."""

    tss: float | np.ndarray
    """Total sum of squares Σ w (y − ȳ)²."""
    ess: float | np.ndarray
    """Explained sum of squares Σ w (ŷ − ȳ)²."""
    rss: float | np.ndarray
    """Residual sum of squares Σ w (y − ŷ)²."""
    r2: float | np.ndarray
    """1 − RSS / TSS, with :func:`r2`'s ``force_finite`` convention."""


def _components(stats: core.Stats, force_finite: bool, one_d: bool) -> R2Components:
    values = (
        stats.m2_true,
        stats.ess,
        stats.sq_err,
        core.r2_per_output(stats.sq_err, stats.m2_true, force_finite),
    )
    return R2Components(*(float(v[0]) if one_d else v for v in values))


def r2_components(
    y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None, force_finite: bool = True
) -> R2Components:
    """TSS, ESS, RSS and R² of predictions (see the module docstring for definitions).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
        At least 2 samples.
    sample_weight : array-like of shape (n_samples,), optional
    force_finite : bool, default True
        As in :func:`r2`.

    Returns
    -------
    R2Components
        Named tuple ``(tss, ess, rss, r2)``; floats for 1-D inputs, else arrays of shape
        (n_outputs,). TSS = ESS + RSS holds for least squares with an intercept on its
        training data (with the same weights).
    """
    yt, yp = core.check_targets(y_true, y_pred)
    _check_r2_samples(yt.shape[0])
    w = core.check_weights(sample_weight, yt.shape[0])
    stats = core.reduce(yt, yp, w, absolute=False, true_moments=True, pred_moments=True)
    return _components(stats, force_finite, yt.ndim == 1)
