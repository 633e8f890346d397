"""Regression and classification metrics, in batch and streaming form.

Batch functions (:func:`mae`, :func:`mse`, :func:`rmse`, :func:`r2`, :func:`adjusted_r2`,
:func:`r2_components`, :func:`accuracy`) follow scikit-learn's definitions and argument names
(``sample_weight``, ``multioutput``, ``force_finite``) and agree with it to 1e-12 in float64.
The accumulators :class:`RegressionMetrics` and :class:`AccuracyMetric` give the same numbers
on data seen in chunks (``update``) or split across workers (``merge``), for data that does
not fit in memory.

Definitions, with weights w (1 by default), residuals e = ŷ − y and ȳ = Σ w y / Σ w::

    MAE = Σ w |e| / Σ w        MSE = Σ w e² / Σ w        RMSE = √MSE
    RSS = Σ w e²   TSS = Σ w (y − ȳ)²   ESS = Σ w (ŷ − ȳ)²   R² = 1 − RSS / TSS

For an ordinary (or weighted) least-squares fit with an intercept, evaluated on its own
training data, TSS = ESS + RSS and R² = ESS / TSS; on other predictions ESS does not add up.

All computation is in float64 (narrower inputs are converted). Inputs may be lists, NumPy
arrays, pandas objects or torch tensors (copied to host memory). NaN or infinite values,
negative weights and mismatched shapes raise ``ValueError``.
"""

from __future__ import annotations

from gicho.metrics._classification import accuracy
from gicho.metrics._regression import (
    R2Components,
    adjusted_r2,
    mae,
    mse,
    r2,
    r2_components,
    rmse,
)
from gicho.metrics._streaming import AccuracyMetric, RegressionMetrics

__all__ = [
    "AccuracyMetric",
    "R2Components",
    "RegressionMetrics",
    "accuracy",
    "adjusted_r2",
    "mae",
    "mse",
    "r2",
    "r2_components",
    "rmse",
]
