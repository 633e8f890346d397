"""Streaming accumulators: :class:`RegressionMetrics` and :class:`AccuracyMetric` (update, merge, compute)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from gicho._validation import (
    check_positive,
    describe,
)
from gicho.metrics import _core as core
from gicho.metrics._classification import _check_label_pair
from gicho.metrics._regression import MultiOutput, R2Components, _check_r2_samples, _components

__all__ = ["AccuracyMetric", "RegressionMetrics"]


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
