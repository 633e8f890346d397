"""Mergeable weighted sufficient statistics of ``(X, y)``: count, means, centered Gram matrices.

One accumulator serves ordinary least squares (:mod:`gicho.linear`), PCA
(:mod:`gicho.decomposition`) and the Dask map-reduce (:mod:`gicho.dask`).

For weights :math:`w_i \\ge 0` and :math:`W = \\sum_i w_i` it keeps

* :math:`\\bar x = \\sum_i w_i x_i / W` and :math:`\\bar y = \\sum_i w_i y_i / W`;
* the centered Gram matrix :math:`S_{xx} = \\sum_i w_i (x_i - \\bar x)(x_i - \\bar x)^T`
  and the cross products :math:`S_{xy}`, :math:`S_{yy}` defined the same way.

Numerics. A naive ``X.T @ X - n * mean mean^T`` cancels catastrophically when the means are
large next to the spread (the textbook one-pass formula). Here rows are multiplied about a
shift close to their mean (unweighted data: one per segment of rows, see :mod:`gicho.moments._gram`;
weighted data: the previous block's mean, else the block's own), the small residual mean is
removed exactly (the "corrected two-pass" formula) after a check that it is small enough to
cost at most ~100x the round-off, and segments, blocks and chunks are combined with the
pairwise update of Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm
for computing sample variances":

.. math::  S = S_a + S_b + \\frac{W_a W_b}{W_a + W_b} \\, \\delta \\delta^T,
           \\qquad \\delta = \\bar x_b - \\bar x_a .

So any chunking gives the one-pass answer to floating-point round-off.

Backends. NumPy arrays (any real dtype, memory maps included; accumulated in float64) and
torch tensors (the Gram products run on the tensor's device in its dtype, float32 or
float64; the merged state is float64 on that device).

Layout. This module holds the accumulator (update, merge, results); its private helpers sit
beside it: ``_checks`` (the input checks), ``_blocks`` (one block's centred reduction, NumPy
and torch), ``_gram`` (the one pass over unweighted NumPy rows), ``_tsqr`` (the R factor
that least squares reads its residual sum of squares from) and ``_scaling`` (the exact
power-of-two rescaling that least squares and PCA apply to data of extreme magnitude).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gicho._validation import describe, nonfinite_error
from gicho._validation import is_torch as _is_torch
from gicho.moments._blocks import (
    centred_block,
    copy_stat,
    host,
    like,
    outer,
    raise_if_nonfinite,
    take_rows,
    torch_block,
)
from gicho.moments._checks import check_numpy, check_shapes, check_torch
from gicho.moments._gram import finite, segment_statistics
from gicho.moments._scaling import EXTREME_EXP, ordinary_magnitudes, power_of_two_scale

__all__ = ["EXTREME_EXP", "Moments", "magnitude_bounds", "ordinary_magnitudes", "power_of_two_scale"]

# Rows per block of the block-by-block centring (weighted data; segments whose data drift,
# see _centred_blocks): the centred block of (p + k + 1) float64 columns should stay in a
# core's L2 cache so the centring pass and the Gram product read it from cache.
_BLOCK_BYTES = 1 << 20
_MIN_BLOCK_ROWS = 256
# torch: large blocks keep an accelerator busy; centring per block still bounds round-off.
_TORCH_BLOCK_ROWS = 1 << 16


class Moments:
    """Mergeable weighted sufficient statistics of ``(X, y)``: count, means, centered Gram.

    Parameters
    ----------
    track_r : bool, default=False
        Also keep ``r_``, the R factor of the centred, weighted ``[X, y]`` (updates with y
        only; see :mod:`gicho.moments._tsqr`). Least squares reads its residual sum of squares from
        it, exactly, where ``yy - b^T beta`` from the moments would cancel (near-perfect
        fits). Costs a small Cholesky per chunk where the chunk's Gram matrix resolves R, else a
        Cholesky QR or a Householder QR of the chunk
        (:func:`gicho.moments._tsqr.fast_chunk_r`); PCA and plain moments do without.

    Attributes
    ----------
    r_ : ndarray of shape (p + k, p + k) or None
        With ``track_r``: ``r_.T @ r_`` equals the centred Gram matrix of ``[X, y]``.
    n_samples_ : int
        Rows seen (rows with zero weight included).
    weight_sum_ : float
        :math:`W = \\sum_i w_i` (equals ``n_samples_`` without weights).
    mean_x_ : ndarray or Tensor of shape (p,)
        Weighted mean of X. ``None`` before the first update.
    xx_ : ndarray or Tensor of shape (p, p)
        :math:`\\sum_i w_i (x_i - \\bar x)(x_i - \\bar x)^T` (centered Gram matrix).
    mean_y_ : ndarray or Tensor of shape (k,), or None
        Weighted mean of y (``None`` when no y was given).
    xy_ : ndarray or Tensor of shape (p, k), or None
        :math:`\\sum_i w_i (x_i - \\bar x)(y_i - \\bar y)^T`.
    yy_ : ndarray or Tensor of shape (k, k), or None
        :math:`\\sum_i w_i (y_i - \\bar y)(y_i - \\bar y)^T`.
    y_ndim_ : int or None
        1 when y was given as a vector, 2 for a matrix (so estimators can return the same shape).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> m = Moments().update(X[:2]).update(X[2:])
    >>> np.allclose(m.covariance(), np.cov(X, rowvar=False))
    True
    """

    def __init__(self, *, track_r: bool = False) -> None:
        self.track_r = track_r
        self.r_: np.ndarray | None = None  # R of the centred [X, y] (track_r; see gicho.moments._tsqr)
        self.n_samples_: int = 0
        self.weight_sum_: float = 0.0
        self.mean_x_: Any = None
        self.xx_: Any = None
        self.mean_y_: Any = None
        self.xy_: Any = None
        self.yy_: Any = None
        self.y_ndim_: int | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, X: Any, y: Any = None, sample_weight: Any = None) -> Moments:
        """One-pass moments of ``X`` (n, p), optional ``y`` (n,) or (n, k) and weights (n,)."""
        moments = cls().update(X, y, sample_weight)
        if moments.n_samples_ == 0:
            raise ValueError(f"argument `X` is empty ({describe(np.asarray(X))}); at least one row is required")
        return moments

    @property
    def n_features_(self) -> int | None:
        return None if self.mean_x_ is None else int(self.mean_x_.shape[0])

    @property
    def n_targets_(self) -> int | None:
        return None if self.mean_y_ is None else int(self.mean_y_.shape[0])

    @property
    def is_torch(self) -> bool:
        """Whether the state lives in torch tensors."""
        return self.mean_x_ is not None and _is_torch(self.mean_x_)

    # ------------------------------------------------------------------ update
    def update(self, X: Any, y: Any = None, sample_weight: Any = None) -> Moments:
        """Add the rows of a chunk, in place.

        Parameters
        ----------
        X : array-like or Tensor of shape (n, p)
            A chunk of rows; an empty chunk (n = 0) is a no-op.
        y : array-like or Tensor of shape (n,) or (n, k), optional
            Targets. Either every update passes y or none does.
        sample_weight : array-like or Tensor of shape (n,), optional
            Non-negative weights (frequency weights: ``covariance`` divides by ``W - ddof``).

        Returns
        -------
        self
        """
        if _is_torch(X) or _is_torch(y) or (self.is_torch and self.n_samples_ > 0):
            X, y, w = check_torch(self, X, y, sample_weight)
        else:
            X, y, w = check_numpy(X, y, sample_weight)
        check_shapes(self, X, y)
        n = X.shape[0]
        if n == 0:
            return self
        # The chunk is reduced on its own first and merged at the end, so an error in a late
        # block (NaN, say) leaves this accumulator as it was: no half-added chunk.
        part = Moments()
        if _is_torch(X):
            for start in range(0, n, _TORCH_BLOCK_ROWS):
                stop = min(start + _TORCH_BLOCK_ROWS, n)
                part._add(stop - start, torch_block(*take_rows(X, y, w, start, stop)))
        else:
            # NaN / inf / overflow are detected from the block statistics, with a clear error
            with np.errstate(invalid="ignore", over="ignore"):
                part._update_numpy(X, y, w)
        if y is not None:
            part.y_ndim_ = y.ndim if y.ndim == 1 else 2
        if self.track_r and y is not None and part.mean_x_ is not None:
            from gicho.moments import _tsqr

            Y = y[:, None] if y.ndim == 1 else y
            part.track_r = True
            # NumPy chunks: from the chunk's Gram matrix where it resolves R (nearly free), else
            # Cholesky QR or Householder; torch Gram matrices may be float32: always Householder
            if part.is_torch:
                part.r_ = _tsqr.chunk_r(X, Y, w, host(part.mean_x_), host(part.mean_y_))
            else:
                part.r_ = _tsqr.fast_chunk_r(X, Y, w, part.mean_x_, part.mean_y_, part.xx_, part.xy_, part.yy_)
        if self.mean_x_ is None and part.mean_x_ is not None:  # first data: adopt the state
            n_before = self.n_samples_
            self.__dict__.update(part.__dict__)
            self.n_samples_ += n_before
            return self
        return self.merge(part)

    def _add(self, n: int, stats: Any) -> None:
        if stats is None:  # a block whose weights are all zero adds rows, not weight
            self.n_samples_ += n
        else:
            self._merge_stats(n, *stats)

    def _update_numpy(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> None:
        if w is not None:
            self._centred_blocks(X, y, w, 0, X.shape[0])
            return
        # unweighted: one shifted Gram product per cache-sized block, a segment of rows per
        # BLAS thread (gicho.moments._gram); a segment whose shift failed the precision check twice
        # (data drifting within it) is centred block by block below
        Y = None if y is None else (y[:, None] if y.ndim == 1 else y)
        segments = segment_statistics(X, Y)
        if not all(stats is None or finite(stats) for _, _, stats in segments):
            raise_if_nonfinite(X, Y)
            raise nonfinite_error("X", X)  # finite but overflowing
        for start, stop, stats in segments:
            if stats is None:
                self._centred_blocks(X, y, None, start, stop)
            else:
                self._merge_stats(stop - start, *stats)

    def _centred_blocks(self, X: np.ndarray, y: Any, w: Any, begin: int, end: int) -> None:
        """Rows ``begin:end``, each block centred before its product (weights; drifting data)."""
        p = X.shape[1]
        k = 0 if y is None else (1 if y.ndim == 1 else y.shape[1])
        rows = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (8 * (p + k + 1)))
        # One scratch buffer for all blocks: a fresh allocation per block would cost an
        # mmap and page faults each time.
        Z = np.empty((min(rows, end - begin), p + k + 1), dtype=np.float64)
        shift = None
        for start in range(begin, end, rows):
            stop = min(start + rows, end)
            Xb, yb, wb = take_rows(X, y, w, start, stop)
            stats = centred_block(Xb, yb, wb, Z[: stop - start], shift)
            self._add(stop - start, stats)
            if stats is not None:
                shift = (stats[1], stats[3])  # this block's mean centres the next one

    # ------------------------------------------------------------------ merging
    def _merge_stats(self, n: int, W_b: float, mx_b, xx_b, my_b, xy_b, yy_b) -> None:
        """Chan et al. pairwise update of the state with another set of statistics."""
        W_b = float(W_b)
        if self.weight_sum_ == 0.0:
            self.n_samples_ += n
            self.weight_sum_ = W_b
            self.mean_x_, self.xx_ = copy_stat(mx_b), copy_stat(xx_b)
            self.mean_y_, self.xy_, self.yy_ = copy_stat(my_b), copy_stat(xy_b), copy_stat(yy_b)
            return
        W_a = self.weight_sum_
        W = W_a + W_b
        dx = mx_b - self.mean_x_
        f = W_a * W_b / W
        self.xx_ = self.xx_ + xx_b + f * outer(dx, dx)
        self.mean_x_ = self.mean_x_ + dx * (W_b / W)
        if my_b is not None:
            dy = my_b - self.mean_y_
            self.xy_ = self.xy_ + xy_b + f * outer(dx, dy)
            self.yy_ = self.yy_ + yy_b + f * outer(dy, dy)
            self.mean_y_ = self.mean_y_ + dy * (W_b / W)
        self.n_samples_ += n
        self.weight_sum_ = W

    def merge(self, other: Moments) -> Moments:
        """Combine with the moments of another, disjoint set of rows, in place (Chan et al.).

        ``other`` may hold NumPy or torch state; it is converted to this object's backend.
        Returns ``self``.
        """
        if not isinstance(other, Moments):
            raise TypeError(f"argument `other` must be a Moments; got {describe(other)}")
        if other.mean_x_ is None:
            self.n_samples_ += other.n_samples_
            return self
        if self.mean_x_ is not None:
            if other.mean_x_.shape[0] != self.mean_x_.shape[0]:
                raise ValueError(
                    f"cannot merge moments of {other.mean_x_.shape[0]} feature(s) into moments of "
                    f"{self.mean_x_.shape[0]}"
                )
            if (other.mean_y_ is None) != (self.mean_y_ is None):
                raise ValueError("cannot merge moments with y into moments without y (or the reverse)")
            if other.mean_y_ is not None and other.mean_y_.shape[0] != self.mean_y_.shape[0]:
                raise ValueError(
                    f"cannot merge moments of {other.mean_y_.shape[0]} target(s) into moments of "
                    f"{self.mean_y_.shape[0]}"
                )
        stats = [other.mean_x_, other.xx_, other.mean_y_, other.xy_, other.yy_]
        if self.mean_x_ is not None:
            stats = [like(s, self.mean_x_) for s in stats]
        self._merge_r(other)
        self._merge_stats(other.n_samples_, other.weight_sum_, *stats)
        if self.y_ndim_ is None:
            self.y_ndim_ = other.y_ndim_
        return self

    def _merge_r(self, other: Moments) -> None:
        """Merge the R factors (before the means move); a side without one drops it."""
        if self.mean_x_ is None or self.weight_sum_ == 0.0:  # adopting the other's state
            self.r_ = None if other.r_ is None else np.array(other.r_)
            self.track_r = self.track_r or other.track_r
            return
        if other.weight_sum_ == 0.0:
            return
        if self.r_ is None or other.r_ is None:
            self.r_ = None
            return
        from gicho.moments._tsqr import merge_r

        delta = np.concatenate([host(other.mean_x_) - host(self.mean_x_), host(other.mean_y_) - host(self.mean_y_)])
        self.r_ = merge_r(self.r_, other.r_, self.weight_sum_, other.weight_sum_, delta)

    # ------------------------------------------------------------------ results
    def covariance(self, ddof: int = 1) -> Any:
        """Weighted covariance of X, shape (p, p): ``xx_ / (weight_sum_ - ddof)``.

        ``ddof=1`` is the unbiased sample covariance (as ``np.cov``), ``ddof=0`` the
        maximum-likelihood one.
        """
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
            raise ValueError(f"argument `ddof` must be an integer >= 0; got {describe(ddof)}")
        if self.mean_x_ is None or self.weight_sum_ - ddof <= 0:
            raise ValueError(
                f"not enough samples for a covariance with ddof={ddof}: total weight "
                f"{self.weight_sum_:g} over {self.n_samples_} row(s); need more than {ddof}"
            )
        return self.xx_ / (self.weight_sum_ - ddof)

    def gram(self, center: bool = True) -> Any:
        """Gram matrix of X: centered (``xx_``) or raw :math:`\\sum_i w_i x_i x_i^T`."""
        if self.mean_x_ is None:
            raise ValueError("these moments are empty; call `update` with at least one row first")
        return self.xx_ if center else self.xx_ + self.weight_sum_ * outer(self.mean_x_, self.mean_x_)

    def to_numpy(self) -> Moments:
        """A copy whose state is NumPy float64 (torch state is moved to the host)."""
        out = Moments(track_r=self.track_r)
        out.r_ = None if self.r_ is None else np.array(self.r_)
        out.n_samples_, out.weight_sum_, out.y_ndim_ = self.n_samples_, self.weight_sum_, self.y_ndim_
        for name in ("mean_x_", "xx_", "mean_y_", "xy_", "yy_"):
            value = getattr(self, name)
            if value is not None:
                value = value.detach().cpu().numpy() if _is_torch(value) else np.array(value)
            setattr(out, name, value)
        return out

    def __repr__(self) -> str:
        p, k = self.n_features_, self.n_targets_
        return f"Moments(n_samples={self.n_samples_}, weight_sum={self.weight_sum_:g}, p={p}, k={k})"


def magnitude_bounds(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` with ``lo <= max_i |v_ij| <= hi`` for each column of X, then of y.

    For *unweighted* NumPy moments: ``sqrt(sum v^2 / n) <= max |v| <= sqrt(sum v^2)``. Lets
    an estimator tell data of extreme magnitude (whose squares leave float64's normal range)
    from ordinary data without another pass over the rows.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        cols = [np.diagonal(m.xx_) + m.weight_sum_ * m.mean_x_**2]
        if m.mean_y_ is not None:
            cols.append(np.diagonal(m.yy_) + m.weight_sum_ * m.mean_y_**2)
        raw = np.clip(np.concatenate(cols), 0.0, None)
        return np.sqrt(raw / max(m.n_samples_, 1)), np.sqrt(raw)
