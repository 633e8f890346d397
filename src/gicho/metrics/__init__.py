"""Regression and classification metrics, in batch and streaming form (NumPy and torch).

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
negative weights and mismatched shapes raise ``ValueError``. :func:`score_strings` gives the
exact match and character accuracy of predicted strings.

The accumulators that score a torch model during and after training take the model's outputs
and the batch, on the device (``update(outputs, batch)``): :class:`ClassificationAccuracy`,
:class:`ConfusionMatrix`, :class:`RegressionScores`, :class:`MaskedLMScores`,
:class:`SequenceMatchScores` (``gicho.metrics._torch``; ``gicho.train`` re-exports them). They are
imported on first use, so ``import gicho.metrics`` does not import torch.
"""

from __future__ import annotations

from gicho._lazy import lazy_exports
from gicho.metrics._classification import accuracy, score_strings
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

# torch accumulators, imported on first use (PEP 562): name -> defining module
_TORCH_EXPORTS = dict.fromkeys(
    ("ClassificationAccuracy", "ConfusionMatrix", "MaskedLMScores", "RegressionScores", "SequenceMatchScores"),
    "gicho.metrics._torch",
)

__all__ = [
    "AccuracyMetric",
    "ClassificationAccuracy",
    "ConfusionMatrix",
    "MaskedLMScores",
    "R2Components",
    "RegressionMetrics",
    "RegressionScores",
    "SequenceMatchScores",
    "accuracy",
    "adjusted_r2",
    "mae",
    "mse",
    "r2",
    "r2_components",
    "rmse",
    "score_strings",
]


__getattr__, __dir__ = lazy_exports("gicho.metrics", globals(), _TORCH_EXPORTS)
