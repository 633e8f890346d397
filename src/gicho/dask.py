"""Dask map-reduce for moments-based estimators (optional extra ``gicho[dask]``).

Each row block of a Dask array (or partition of a Dask DataFrame) is reduced on a worker to
its :class:`gicho.moments.Moments` (a few p x p matrices), the partial moments are merged as a
pairwise tree with Chan et al.'s update, and the small final solve runs on the driver. Only
O(p^2) numbers per block travel over the network, and the result equals the in-memory fit to
floating-point round-off (the same blocked, centred arithmetic runs on every block).

:meth:`gicho.linear.LinearRegression.fit` and :meth:`gicho.decomposition.PCA.fit` given Dask
collections call :func:`dask_moments`, so a Dask array never gets pulled into memory by
accident. This module imports no estimator (the estimators import it, lazily), so there is
no import cycle.

Dask is imported lazily: importing this module does not need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gicho._validation import describe, is_dask
from gicho.moments import Moments

__all__ = ["dask_moments", "is_dask_collection"]


# Whether x is a Dask array, DataFrame or Series (without importing dask): the one detector the
# estimators dispatch on, public here under its historical name.
is_dask_collection = is_dask


def _as_dask_array(x: Any, name: str) -> tuple[Any, Any]:
    """A Dask array with known chunk sizes, and the column names of a DataFrame (or None)."""
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError(
            "Dask input needs the optional extra: pip install 'gicho[dask]'"
        ) from None
    columns = None
    if not isinstance(x, da.Array):
        if hasattr(x, "to_dask_array"):  # DataFrame / Series
            if hasattr(x, "columns"):
                columns = np.asarray(list(x.columns), dtype=object)
            x = x.to_dask_array(lengths=True)
        else:
            raise TypeError(f"argument `{name}` must be a Dask array, DataFrame or Series; got {describe(x)}")
    if any(np.isnan(c) for c in x.chunks[0]):
        x = x.compute_chunk_sizes()
    return x, columns


def _block_moments(X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[Moments, float]:
    # with y: also the R factor of the block (gicho.moments._tsqr), for an exact residual sum of squares
    moments = Moments(track_r=y is not None).update(X, y, w)  # an empty block is a no-op
    with np.errstate(divide="ignore"):
        slw = 0.0 if w is None else float(np.sum(np.log(w)))
    return moments, slw


def _merge(a: tuple[Moments, float], b: tuple[Moments, float]) -> tuple[Moments, float]:
    # a fresh object: never mutate a result Dask may have cached
    return Moments().merge(a[0]).merge(b[0]), a[1] + b[1]


def dask_moments(X: Any, y: Any = None, sample_weight: Any = None) -> tuple[Moments, float, Any]:
    """Moments of Dask ``X`` (n, p) and optional ``y`` (n,) / (n, k) and weights (n,).

    Computed with the active Dask scheduler (a ``distributed.Client`` when one is set up).

    Returns
    -------
    moments : Moments
    sum_log_w : float
        :math:`\\sum_i \\log w_i` (0 without weights), for the weighted log-likelihood.
    columns : ndarray of str or None
        Column names when X was a DataFrame.
    """
    import dask

    X, columns = _as_dask_array(X, "X")
    if X.ndim != 2:
        raise ValueError(
            f"argument `X` must have 2 dimensions; got {X.ndim} (shape {X.shape}) "
            "(reshape a single feature with x.reshape(-1, 1))"
        )
    if X.numblocks[1] != 1:  # the Gram matrix needs whole rows in a block
        X = X.rechunk({1: -1})
    row_chunks = X.chunks[0]
    others = {}
    for name, v in (("y", y), ("sample_weight", sample_weight)):
        if v is None:
            continue
        v, _ = _as_dask_array(v, name)
        if v.shape[0] != X.shape[0]:
            raise ValueError(f"inconsistent numbers of samples: `X` has {X.shape[0]}, `{name}` has {v.shape[0]}")
        if name == "sample_weight" and v.ndim != 1:
            raise ValueError(f"argument `sample_weight` must have 1 dimension; got shape {v.shape}")
        if name == "y" and v.ndim not in (1, 2):
            raise ValueError(f"argument `y` must have 1 or 2 dimension(s); got shape {v.shape}")
        chunks = (row_chunks,) if v.ndim == 1 else (row_chunks, (v.shape[1],))
        others[name] = v.rechunk(chunks).to_delayed().ravel()
    xs = X.to_delayed().ravel()
    ys = others.get("y", [None] * len(xs))
    ws = others.get("sample_weight", [None] * len(xs))
    parts = [dask.delayed(_block_moments)(xb, yb, wb) for xb, yb, wb in zip(xs, ys, ws, strict=True)]
    while len(parts) > 1:  # pairwise tree of depth log2(blocks)
        paired = [dask.delayed(_merge)(a, b) for a, b in zip(parts[::2], parts[1::2], strict=False)]
        parts = paired + (parts[-1:] if len(parts) % 2 else [])
    ((moments, slw),) = dask.compute(parts[0])
    if moments.n_samples_ == 0:
        raise ValueError(f"argument `X` is empty (shape {X.shape}); at least one row is required")
    return moments, slw, columns
