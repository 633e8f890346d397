"""Mergeable weighted sufficient statistics of ``(X, y)``: count, means, centered Gram matrices.

One accumulator serves ordinary least squares (:mod:`gicho.linear`), PCA
(:mod:`gicho.decomposition`) and the Dask map-reduce (:mod:`gicho.dask`).

For weights :math:`w_i \\ge 0` and :math:`W = \\sum_i w_i` it keeps

* :math:`\\bar x = \\sum_i w_i x_i / W` and :math:`\\bar y = \\sum_i w_i y_i / W`;
* the centered Gram matrix :math:`S_{xx} = \\sum_i w_i (x_i - \\bar x)(x_i - \\bar x)^T`
  and the cross products :math:`S_{xy}`, :math:`S_{yy}` defined the same way.

Numerics. A naive ``X.T @ X - n * mean mean^T`` cancels catastrophically when the means are
large next to the spread (the textbook one-pass formula). Here rows are multiplied about a
shift close to their mean (unweighted data: one per segment of rows, see :mod:`gicho._gram`;
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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gicho._gram import FRACTION, finite, segment_statistics
from gicho._validation import (
    check_array,
    check_consistent_length,
    describe,
    nonfinite_error,
)
from gicho._validation import is_torch as _is_torch

__all__ = ["Moments", "magnitude_bounds"]

# Rows per block of the block-by-block centring (weighted data; segments whose data drift,
# see _centred_blocks): the centred block of (p + k + 1) float64 columns should stay in a
# core's L2 cache so the centring pass and the Gram product read it from cache.
_BLOCK_BYTES = 1 << 20
_MIN_BLOCK_ROWS = 256
# torch: large blocks keep an accelerator busy; centring per block still bounds round-off.
_TORCH_BLOCK_ROWS = 1 << 16


def _outer(a: Any, b: Any) -> Any:
    """Outer product that works for NumPy arrays and torch tensors alike."""
    return a[:, None] * b[None, :]


def _raise_if_nonfinite(X: np.ndarray, Y: np.ndarray | None) -> None:
    if not np.isfinite(X).all():
        raise _nonfinite_error("X", X)
    if Y is not None and not np.isfinite(Y).all():
        raise _nonfinite_error("y", Y)


_nonfinite_error = nonfinite_error


class Moments:
    """Mergeable weighted sufficient statistics of ``(X, y)``: count, means, centered Gram.

    Parameters
    ----------
    track_r : bool, default=False
        Also keep ``r_``, the R factor of the centred, weighted ``[X, y]`` (updates with y
        only; see :mod:`gicho._tsqr`). Least squares reads its residual sum of squares from
        it, exactly, where ``yy - b^T beta`` from the moments would cancel (near-perfect
        fits). Costs one QR of each chunk; PCA and plain moments do without.

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
        self.r_: np.ndarray | None = None  # R of the centred [X, y] (track_r; see gicho._tsqr)
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
            X, y, w = self._check_torch(X, y, sample_weight)
        else:
            X, y, w = self._check_numpy(X, y, sample_weight)
        self._check_shapes(X, y)
        n = X.shape[0]
        if n == 0:
            return self
        # The chunk is reduced on its own first and merged at the end, so an error in a late
        # block (NaN, say) leaves this accumulator as it was: no half-added chunk.
        part = Moments()
        if _is_torch(X):
            for start in range(0, n, _TORCH_BLOCK_ROWS):
                stop = min(start + _TORCH_BLOCK_ROWS, n)
                part._add(stop - start, self._torch_block(*_rows(X, y, w, start, stop)))
        else:
            # NaN / inf / overflow are detected from the block statistics, with a clear error
            with np.errstate(invalid="ignore", over="ignore"):
                part._update_numpy(X, y, w)
        if y is not None:
            part.y_ndim_ = y.ndim if y.ndim == 1 else 2
        if self.track_r and y is not None and part.mean_x_ is not None:
            from gicho._tsqr import chunk_r

            Y = y[:, None] if y.ndim == 1 else y
            part.track_r = True
            part.r_ = chunk_r(X, Y, w, _host(part.mean_x_), _host(part.mean_y_))
        if self.mean_x_ is None and part.mean_x_ is not None:  # first data: adopt the state
            n_before = self.n_samples_
            self.__dict__.update(part.__dict__)
            self.n_samples_ += n_before
            return self
        return self.merge(part)

    def _check_numpy(self, X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
        # dtype=None: no float64 copy of a float32 or memory-mapped X; the block loop casts.
        # finite=False: non-finite input is caught from the (tiny) block statistics instead
        # of a full extra pass over X; see _centred_block.
        X = check_array(X, "X", ndim=2, dtype=None, allow_empty=True, finite=False)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"argument `X` must have a real numeric dtype; got {X.dtype}")
        if y is not None:
            y = check_array(y, "y", ndim=(1, 2), dtype=None, allow_empty=True, finite=False)
            if y.dtype.kind not in "biuf":
                raise TypeError(f"argument `y` must have a real numeric dtype; got {y.dtype}")
            check_consistent_length(X=X, y=y)
        w = None
        if sample_weight is not None:
            w = check_array(sample_weight, "sample_weight", ndim=1, allow_empty=True)
            check_consistent_length(X=X, sample_weight=w)
            if (w < 0).any():
                raise ValueError(
                    f"argument `sample_weight` contains {int((w < 0).sum())} negative value(s) "
                    f"(smallest {w.min():g}); weights must be >= 0"
                )
        return X, y, w

    def _check_torch(self, X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
        import torch

        device = self.mean_x_.device if self.is_torch else (X.device if _is_torch(X) else y.device)

        def as_tensor(v: Any, name: str, ndims: tuple[int, ...]) -> Any:
            if not _is_torch(v):
                v = torch.as_tensor(check_array(v, name, dtype=None, allow_empty=True, finite=False))
            # float16 / bfloat16 become float32 (their Gram products overflow at 65504)
            v = check_array(v, name, ndim=ndims, dtype="float", allow_empty=True, finite=False, keep_backend=True)
            return v.to(device)

        X = as_tensor(X, "X", (2,))
        if y is not None:
            y = as_tensor(y, "y", (1, 2))
            check_consistent_length(X=X, y=y)
        w = None
        if sample_weight is not None:
            w = as_tensor(sample_weight, "sample_weight", (1,)).to(torch.float64)
            check_consistent_length(X=X, sample_weight=w)
            if not bool(torch.isfinite(w).all()):
                raise _nonfinite_error("sample_weight", w)
            if bool((w < 0).any()):
                raise ValueError(
                    f"argument `sample_weight` contains {int((w < 0).sum())} negative value(s) "
                    f"(smallest {float(w.min()):g}); weights must be >= 0"
                )
        if self.mean_x_ is not None and not self.is_torch:
            raise TypeError(
                "these Moments hold NumPy state; pass NumPy arrays (or start a new Moments for tensors)"
            )
        return X, y, w

    def _check_shapes(self, X: Any, y: Any) -> None:
        if self.mean_x_ is not None and X.shape[1] != self.mean_x_.shape[0]:
            raise ValueError(
                f"argument `X` has {X.shape[1]} feature(s); these moments were built with "
                f"{self.mean_x_.shape[0]}"
            )
        if self.mean_x_ is not None and (y is None) != (self.mean_y_ is None):
            raise ValueError(
                "argument `y` must be given on every update or on none; "
                f"got y={'None' if y is None else 'an array'} after updates "
                f"{'without' if self.mean_y_ is None else 'with'} y"
            )
        if y is not None and self.mean_y_ is not None:
            k = 1 if y.ndim == 1 else y.shape[1]
            if k != self.mean_y_.shape[0]:
                raise ValueError(
                    f"argument `y` has {k} target(s); these moments were built with {self.mean_y_.shape[0]}"
                )

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
        # BLAS thread (gicho._gram); a segment whose shift failed the precision check twice
        # (data drifting within it) is centred block by block below
        Y = None if y is None else (y[:, None] if y.ndim == 1 else y)
        segments = segment_statistics(X, Y)
        if not all(stats is None or finite(stats) for _, _, stats in segments):
            _raise_if_nonfinite(X, Y)
            raise _nonfinite_error("X", X)  # finite but overflowing
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
            Xb, yb, wb = _rows(X, y, w, start, stop)
            stats = self._centred_block(Xb, yb, wb, Z[: stop - start], shift)
            self._add(stop - start, stats)
            if stats is not None:
                shift = (stats[1], stats[3])  # this block's mean centres the next one

    @staticmethod
    def _centred_block(
        X: np.ndarray, Y: np.ndarray | None, w: np.ndarray | None, Z: np.ndarray, shift: Any = None
    ):
        """Centre the block, then one symmetric Gram product.

        The centre is ``shift`` (the previous block's mean: no extra pass over the block) when
        it lies close enough to this block's mean, else the block's own mean.
        """
        p = X.shape[1]
        k = 0 if Y is None else Y.shape[1]
        q = p + k
        # Z = sqrt(w) * [X - centre_x, Y - centre_y, 1]; then Z^T Z holds the Gram matrices
        # about the centre, the column sums about it (last column) and W (corner): one
        # symmetric product (numpy dispatches Z.T @ Z to BLAS syrk) gives everything.
        W0 = float(X.shape[0]) if w is None else float(w.sum())
        if W0 == 0.0:
            _raise_if_nonfinite(X, Y)
            return None
        if shift is not None:
            mean_x, mean_y = shift
        elif w is None:
            mean_x = X.sum(axis=0, dtype=np.float64) / W0
            mean_y = None if Y is None else Y.sum(axis=0, dtype=np.float64) / W0
        else:
            mean_x = (w @ X) / W0
            mean_y = None if Y is None else (w @ Y) / W0
        np.subtract(X, mean_x, out=Z[:, :p])
        if Y is not None:
            np.subtract(Y, mean_y, out=Z[:, p:q])
        Z[:, q] = 1.0
        if w is not None:
            Z *= np.sqrt(w)[:, None]
        G = Z.T @ Z
        if not np.isfinite(G).all():
            _raise_if_nonfinite(X, Y)
            raise _nonfinite_error("X", X)  # finite but overflowing
        W = W0  # sum(w) itself, not the (rounded) sum of sqrt(w)^2
        s = G[:q, q]  # sum_i w_i (z_i - centre): small; removed exactly below
        if shift is not None and not np.all(s * s <= FRACTION * W * np.diagonal(G)[:q]):
            # the previous block's mean is too far from this block's (drifting data): the
            # correction would cost precision, so centre on this block's own mean instead
            return Moments._centred_block(X, Y, w, Z)
        c = s / W
        S = G[:q, :q] - np.outer(s, c)
        mean_x = mean_x + c[:p]
        if Y is None:
            return W, mean_x, S, None, None, None
        return W, mean_x, S[:p, :p], mean_y + c[p:], S[:p, p:], S[p:, p:]

    @staticmethod
    def _torch_block(X: Any, Y: Any, w: Any):
        """torch twin of :meth:`_centred_block`: the product runs on X's device in X's dtype.

        ``Y`` is None or 2-D; the returned statistics are float64 tensors on X's device.
        """
        import torch

        dtype = X.dtype
        m, p = X.shape
        parts = [X] if Y is None else [X, Y.to(dtype)]
        Z = torch.cat([*parts, torch.ones(m, 1, dtype=dtype, device=X.device)], dim=1)
        q = Z.shape[1] - 1
        if w is None:
            W0 = float(m)
            mean = Z[:, :q].sum(dim=0, dtype=torch.float64) / W0
        else:
            W0 = float(w.sum())
            if W0 == 0.0:
                if not bool(torch.isfinite(Z).all()):
                    raise _nonfinite_error("X", X)
                return None
            mean = (w @ Z[:, :q].to(torch.float64)) / W0
        Z[:, :q] -= mean.to(dtype)
        if w is not None:
            Z *= w.sqrt().to(dtype)[:, None]
        G = (Z.T @ Z).to(torch.float64)
        if not bool(torch.isfinite(G).all()):
            bad_x = not bool(torch.isfinite(X).all())
            raise _nonfinite_error("X" if bad_x or Y is None else "y", X if bad_x or Y is None else Y)
        W = W0
        s = G[:q, q]
        c = s / W
        S = G[:q, :q] - _outer(s, c)
        mean = mean + c
        if Y is None:
            return W, mean, S, None, None, None
        return W, mean[:p], S[:p, :p], mean[p:], S[:p, p:], S[p:, p:]

    # ------------------------------------------------------------------ merging
    def _merge_stats(self, n: int, W_b: float, mx_b, xx_b, my_b, xy_b, yy_b) -> None:
        """Chan et al. pairwise update of the state with another set of statistics."""
        W_b = float(W_b)
        if self.weight_sum_ == 0.0:
            self.n_samples_ += n
            self.weight_sum_ = W_b
            self.mean_x_, self.xx_ = _copy(mx_b), _copy(xx_b)
            self.mean_y_, self.xy_, self.yy_ = _copy(my_b), _copy(xy_b), _copy(yy_b)
            return
        W_a = self.weight_sum_
        W = W_a + W_b
        dx = mx_b - self.mean_x_
        f = W_a * W_b / W
        self.xx_ = self.xx_ + xx_b + f * _outer(dx, dx)
        self.mean_x_ = self.mean_x_ + dx * (W_b / W)
        if my_b is not None:
            dy = my_b - self.mean_y_
            self.xy_ = self.xy_ + xy_b + f * _outer(dx, dy)
            self.yy_ = self.yy_ + yy_b + f * _outer(dy, dy)
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
            stats = [_like(s, self.mean_x_) for s in stats]
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
        from gicho._tsqr import merge_r

        delta = np.concatenate([_host(other.mean_x_) - _host(self.mean_x_), _host(other.mean_y_) - _host(self.mean_y_)])
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
        return self.xx_ if center else self.xx_ + self.weight_sum_ * _outer(self.mean_x_, self.mean_x_)

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


def _rows(X: Any, y: Any, w: Any, start: int, stop: int) -> tuple[Any, Any, Any]:
    """Rows ``start:stop`` of X, y (as a 2-D matrix) and w."""
    Y = None if y is None else (y[start:stop, None] if y.ndim == 1 else y[start:stop])
    return X[start:stop], Y, None if w is None else w[start:stop]


def _host(x: Any) -> np.ndarray:
    """A float64 NumPy copy of a statistic (torch state is moved to the host)."""
    return x.detach().cpu().double().numpy() if _is_torch(x) else np.asarray(x, dtype=np.float64)


def _copy(x: Any) -> Any:
    if x is None:
        return None
    return x.clone() if _is_torch(x) else np.array(x, dtype=np.float64)


def _like(x: Any, ref: Any) -> Any:
    """Convert ``x`` to the backend (and device) of ``ref``."""
    if x is None:
        return None
    if _is_torch(ref):
        import torch

        t = x if _is_torch(x) else torch.as_tensor(np.asarray(x))
        return t.to(device=ref.device, dtype=ref.dtype)
    return x.detach().cpu().numpy().astype(np.float64) if _is_torch(x) else np.asarray(x, dtype=np.float64)
