"""Fits without the rows in memory: ``partial_fit``, ``fit_chunks``, ``fit_moments`` and Dask.

A mixin of :class:`gicho.linear.LinearRegression`: each method accumulates
:class:`gicho.moments.Moments` (with the R factor of the data, :mod:`gicho.moments._tsqr`, for an exact
residual sum of squares) and hands them to the estimator's ``_finish``, the same solve and
statistics as :meth:`~gicho.linear.LinearRegression.fit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gicho._validation import describe
from gicho.linear._input import check_xy, sum_log, tensor_dtype
from gicho.moments import Moments

__all__ = ["StreamingFitMixin"]


class StreamingFitMixin:
    """``partial_fit``, ``fit_chunks``, ``fit_moments`` and the Dask fit of LinearRegression."""

    def _fit_dask(self, X: Any, y: Any, sample_weight: Any) -> None:
        """Moments of Dask ``X``, ``y`` reduced on the cluster; the solve runs here."""
        from gicho.dask import dask_moments  # per-block moments, tree-merged on the cluster

        self._check_params(streaming=True)
        if y is None:
            raise ValueError(
                "LinearRegression requires y to be passed, but the target y is None; "
                "pass y of shape (n,) or (n, k)"
            )
        moments, slw, columns = dask_moments(X, y, sample_weight)
        if moments.weight_sum_ == 0:
            raise ValueError(
                "argument `sample_weight` is all zeros; at least one weight must be positive"
            )
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = columns
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = moments.n_features_
        self.fit_moments(moments, sum_log_w=slw)

    def fit_moments(self, moments: Moments, sum_log_w: float = 0.0) -> Any:
        """Fit from precomputed sufficient statistics (e.g. merged from a cluster).

        ``sum_log_w`` is :math:`\\sum_i \\log w_i` (0 without weights), needed only for the
        weighted log-likelihood.
        """
        self._check_params(streaming=True)
        if not isinstance(moments, Moments) or moments.mean_y_ is None:
            raise ValueError(f"argument `moments` must be a Moments with y; got {describe(moments)}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and len(names) != moments.n_features_:
            del self.feature_names_in_
        self.n_features_in_ = moments.n_features_
        self._finish(moments, sum_log_w=sum_log_w)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Add a chunk of rows and refit; after the last chunk this equals :meth:`fit` on all rows."""
        self._check_params(streaming=True)
        first = not hasattr(self, "_stream")
        self._check_names(X, reset=first)
        X, y, w = check_xy(X, y, sample_weight)
        self._check_n_features(X, reset=first)
        if first:
            self._stream = (Moments(track_r=True), 0.0)
        moments, slw = self._stream
        moments.update(X, y, w)
        self._stream = (moments, slw + sum_log(w, X.shape[0]))
        self._finish(moments, sum_log_w=self._stream[1], dtype=tensor_dtype(X))
        return self

    def fit_chunks(self, chunks: Iterable[Any]) -> Any:
        """Fit from an iterable of ``(X, y)`` or ``(X, y, sample_weight)`` chunks in one pass.

        Equals :meth:`fit` on the concatenated rows to round-off; memory is one chunk.
        """
        self._check_params(streaming=True)
        self.__dict__.pop("_stream", None)
        moments, slw, seen, dtype = Moments(track_r=True), 0.0, 0, None
        for i, chunk in enumerate(chunks):
            if not isinstance(chunk, (tuple, list)) or len(chunk) not in (2, 3):
                raise TypeError(
                    f"chunk {i} must be a tuple (X, y) or (X, y, sample_weight); got {describe(chunk)} "
                    "(chunks are counted from 0)"
                )
            X, y, w = chunk[0], chunk[1], chunk[2] if len(chunk) == 3 else None
            self._check_names(X, reset=seen == 0)
            X, y, w = check_xy(X, y, w)
            if seen == 0:
                self._check_n_features(X, reset=True)
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"chunk {i} has {X.shape[1]} feature(s); the first chunk had {self.n_features_in_} "
                    "(chunks are counted from 0)"
                )
            moments.update(X, y, w)
            slw += sum_log(w, X.shape[0])
            seen += 1
            dtype = tensor_dtype(X)
        if seen == 0:
            raise ValueError("argument `chunks` is empty; at least one (X, y) chunk is required")
        self._finish(moments, sum_log_w=slw, dtype=dtype)
        return self
