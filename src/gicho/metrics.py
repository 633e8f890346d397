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

from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from gicho import _metrics_core as core
from gicho._validation import (
    check_array,
    check_consistent_length,
    check_positive,
    check_sample_weight,
    describe,
)

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
        1 − Σ_j RSS_j / Σ_j TSS_j.
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


# ----------------------------------------------------------------------------- classification


def _check_labels(y: Any, name: str, allow_empty: bool = False) -> np.ndarray:
    labels = check_array(y, name, dtype=None, allow_empty=allow_empty)
    if labels.ndim != 1:
        hint = (
            "; for scores or probabilities of shape (n_samples, n_classes) pass "
            "y_pred.argmax(axis=1)"
            if labels.ndim == 2
            else ""
        )
        raise ValueError(
            f"argument `{name}` must be a 1-D array of class labels; got shape {labels.shape}{hint}"
        )
    return labels


def _check_label_pair(
    y_true: ArrayLike, y_pred: ArrayLike, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    yt = _check_labels(y_true, "y_true", allow_empty)
    yp = _check_labels(y_pred, "y_pred", allow_empty)
    check_consistent_length(y_true=yt, y_pred=yp)
    kinds = {a.dtype.kind for a in (yt, yp)}
    if kinds & set("biufc") and kinds & set("US"):  # numpy would compare them as all-unequal, silently
        raise TypeError(
            f"`y_true` ({yt.dtype}) and `y_pred` ({yp.dtype}) hold labels of different kinds; "
            "both must be numbers or both strings"
        )
    return yt, yp


def accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None) -> float:
    """Fraction of (weighted) samples whose predicted label equals the true one.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Class labels of any comparable dtype (ints, strings, ...); both numbers or both
        strings. Scores or probabilities are not accepted: pass ``scores.argmax(axis=1)``.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights, not all zero.

    Returns
    -------
    float
        In [0, 1]; equals scikit-learn's ``accuracy_score`` for 1-D labels.
    """
    yt, yp = _check_label_pair(y_true, y_pred)
    correct = yt == yp
    if sample_weight is None:
        return int(np.count_nonzero(correct)) / correct.shape[0]
    w = check_sample_weight(sample_weight, correct.shape[0])
    return float(np.dot(w, correct.astype(np.float64)) / w.sum())


class AccuracyMetric:
    """Streaming (weighted) accuracy: ``update`` with chunks, ``merge`` partial results.

    ``compute()`` equals :func:`accuracy` on the concatenated chunks (exactly when
    unweighted). Label validation is that of :func:`accuracy`; a chunk may be empty or have
    all-zero weights.

    Examples
    --------
    >>> m = AccuracyMetric().update([0, 1, 1], [0, 1, 0]).update([2], [2])
    >>> m.compute()
    0.75
    """

    def __init__(self) -> None:
        self.n_samples = 0
        self.weight_sum = 0.0
        self.correct = 0.0  # Σ w over correctly labelled samples

    def update(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> AccuracyMetric:
        """Add a chunk of labels of shape (n,); returns ``self`` (updated in place)."""
        yt, yp = _check_label_pair(y_true, y_pred, allow_empty=True)
        correct = yt == yp
        w = core.check_weights(sample_weight, correct.shape[0], allow_all_zero=True)
        self.n_samples += correct.shape[0]
        if w is None:
            self.weight_sum += correct.shape[0]
            self.correct += int(np.count_nonzero(correct))
        else:
            self.weight_sum += float(w.sum())
            self.correct += float(np.dot(w, correct.astype(np.float64)))
        return self

    def merge(self, other: AccuracyMetric) -> AccuracyMetric:
        """A new accumulator holding both; ``self`` and ``other`` are left unchanged."""
        if not isinstance(other, AccuracyMetric):
            raise TypeError(f"can only merge an AccuracyMetric; got {describe(other)}")
        out = AccuracyMetric()
        out.n_samples = self.n_samples + other.n_samples
        out.weight_sum = self.weight_sum + other.weight_sum
        out.correct = self.correct + other.correct
        return out

    def compute(self) -> float:
        """Accuracy over everything seen; raises ValueError when no positive weight was seen."""
        if self.weight_sum <= 0:
            raise ValueError(
                f"no positive sample weight seen ({self.n_samples} sample(s)); call `update` "
                "with data before `compute`"
            )
        return float(self.correct / self.weight_sum)

    def __repr__(self) -> str:
        return f"AccuracyMetric(n_samples={self.n_samples}, weight_sum={self.weight_sum:g})"


# ----------------------------------------------------------------------------- streaming regression


class RegressionMetrics:
    """Streaming MAE, MSE, RMSE and R² (and R² components) over chunks or workers.

    Per output it keeps Σw, Σw|e|, Σw e², and the weighted mean and centred sum of squares of
    ``y_true`` and ``y_pred``; chunks are combined with Chan, Golub & LeVeque's numerically
    stable parallel update, so :meth:`compute` equals the batch functions on the
    concatenated data, for any chunking, up to round-off (about 1e-15 relative).

    Parameters
    ----------
    n_outputs : int, optional
        Number of target columns; inferred from the first update when ``None`` (1 for 1-D
        targets). Later chunks must match it (a 1-D chunk counts as one output).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y, y_hat = rng.normal(size=1000), rng.normal(size=1000)
    >>> m = RegressionMetrics()
    >>> for chunk in np.array_split(np.arange(1000), 7):
    ...     _ = m.update(y[chunk], y_hat[chunk])
    >>> bool(np.isclose(m.compute()["r2"], r2(y, y_hat)))
    True
    """

    def __init__(self, n_outputs: int | None = None) -> None:
        if n_outputs is not None:
            check_positive(n_outputs, "n_outputs", integer=True)
        self.n_outputs = n_outputs
        self._stats: core.Stats | None = None

    @property
    def n_samples(self) -> int:
        """Number of samples seen (zero-weight samples included)."""
        return 0 if self._stats is None else self._stats.n

    @property
    def weight_sum(self) -> float:
        """Total sample weight seen."""
        return 0.0 if self._stats is None else self._stats.weight_sum

    def update(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> RegressionMetrics:
        """Add a chunk; returns ``self`` (updated in place; unchanged if validation fails).

        Parameters
        ----------
        y_true, y_pred : array-like of shape (n,) or (n, n_outputs)
            May be empty. Validated as in :func:`mae`.
        sample_weight : array-like of shape (n,), optional
            Non-negative; may be all zero within a chunk.
        """
        yt, yp = core.check_targets(y_true, y_pred, allow_empty=True)
        k = 1 if yt.ndim == 1 else yt.shape[1]
        if self.n_outputs is not None and k != self.n_outputs:
            raise ValueError(
                f"this RegressionMetrics has n_outputs={self.n_outputs}; got a chunk with {k} "
                f"output(s) (shape {yt.shape})"
            )
        w = core.check_weights(sample_weight, yt.shape[0], allow_all_zero=True)
        chunk = core.reduce(yt, yp, w, true_moments=True, pred_moments=True)
        self.n_outputs = k
        self._stats = chunk if self._stats is None else core.merge(self._stats, chunk)
        return self

    def merge(self, other: RegressionMetrics) -> RegressionMetrics:
        """A new accumulator holding both (e.g. partial results of two workers).

        ``self`` and ``other`` are left unchanged. Up to round-off, merging is associative
        and commutative, so partial results can be reduced in any tree.
        """
        if not isinstance(other, RegressionMetrics):
            raise TypeError(f"can only merge a RegressionMetrics; got {describe(other)}")
        if None not in (self.n_outputs, other.n_outputs) and self.n_outputs != other.n_outputs:
            raise ValueError(
                f"cannot merge RegressionMetrics with n_outputs={self.n_outputs} and "
                f"n_outputs={other.n_outputs}"
            )
        out = RegressionMetrics(self.n_outputs if self.n_outputs is not None else other.n_outputs)
        if self._stats is None or other._stats is None:
            source = self._stats if other._stats is None else other._stats
            out._stats = None if source is None else core.merge(source, _empty_like(source))
        else:
            out._stats = core.merge(self._stats, other._stats)
        return out

    def _checked_stats(self) -> core.Stats:
        if self._stats is None:
            raise ValueError("no data seen; call `update` before `compute`")
        _check_r2_samples(self._stats.n)
        return self._stats

    def compute(
        self, multioutput: MultiOutput = "uniform_average", force_finite: bool = True
    ) -> dict[str, float | np.ndarray]:
        """``{"mae", "mse", "rmse", "r2"}`` over everything seen.

        Parameters
        ----------
        multioutput, force_finite
            As in :func:`r2`.

        Returns
        -------
        dict
            Floats, or arrays of shape (n_outputs,) for ``"raw_values"``.

        Raises
        ------
        ValueError
            With fewer than 2 samples seen (R² is undefined) or no positive weight.
        """
        stats = self._checked_stats()
        mode = core.check_multioutput(multioutput, stats.n_outputs)
        values = core.per_output(stats, force_finite)
        return {name: core.average(v, mode, stats.m2_true) for name, v in values.items()}

    def components(self, force_finite: bool = True) -> R2Components:
        """TSS, ESS, RSS and R² over everything seen, as arrays of shape (n_outputs,)."""
        stats = self._checked_stats()
        core.per_output(stats)  # same check for a positive total weight as compute()
        return _components(stats, force_finite, one_d=False)

    def __repr__(self) -> str:
        return (
            f"RegressionMetrics(n_outputs={self.n_outputs}, n_samples={self.n_samples}, "
            f"weight_sum={self.weight_sum:g})"
        )


def _empty_like(stats: core.Stats) -> core.Stats:
    zeros = np.zeros(stats.n_outputs)
    return core.Stats(0, 0.0, *(zeros for _ in range(6)))
