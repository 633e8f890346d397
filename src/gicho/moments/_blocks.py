"""The per-block reductions behind :class:`gicho.moments.Moments`, and its two backends.

A block is centred (about a shift close to its mean, else its own mean), then one symmetric
Gram product gives its weight, means and centred Gram matrices; the "corrected two-pass"
formula removes the small residual mean exactly (see :mod:`gicho.moments`). NumPy blocks are
accumulated in float64 in a scratch buffer; torch blocks run on the tensor's device in its
dtype. The helpers at the end move statistics between NumPy and torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gicho._validation import is_torch, nonfinite_error
from gicho.moments._gram import FRACTION

__all__ = ["centred_block", "copy_stat", "host", "like", "outer", "raise_if_nonfinite", "take_rows", "torch_block"]


def outer(a: Any, b: Any) -> Any:
    """Outer product that works for NumPy arrays and torch tensors alike."""
    return a[:, None] * b[None, :]


def raise_if_nonfinite(X: np.ndarray, Y: np.ndarray | None) -> None:
    if not np.isfinite(X).all():
        raise nonfinite_error("X", X)
    if Y is not None and not np.isfinite(Y).all():
        raise nonfinite_error("y", Y)


def centred_block(
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
        raise_if_nonfinite(X, Y)
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
        raise_if_nonfinite(X, Y)
        raise nonfinite_error("X", X)  # finite but overflowing
    W = W0  # sum(w) itself, not the (rounded) sum of sqrt(w)^2
    s = G[:q, q]  # sum_i w_i (z_i - centre): small; removed exactly below
    if shift is not None and not np.all(s * s <= FRACTION * W * np.diagonal(G)[:q]):
        # the previous block's mean is too far from this block's (drifting data): the
        # correction would cost precision, so centre on this block's own mean instead
        return centred_block(X, Y, w, Z)
    c = s / W
    S = G[:q, :q] - np.outer(s, c)
    mean_x = mean_x + c[:p]
    if Y is None:
        return W, mean_x, S, None, None, None
    return W, mean_x, S[:p, :p], mean_y + c[p:], S[:p, p:], S[p:, p:]


def torch_block(X: Any, Y: Any, w: Any):
    """torch twin of :func:`centred_block`: the product runs on X's device in X's dtype.

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
                raise nonfinite_error("X", X)
            return None
        mean = (w @ Z[:, :q].to(torch.float64)) / W0
    Z[:, :q] -= mean.to(dtype)
    if w is not None:
        Z *= w.sqrt().to(dtype)[:, None]
    G = (Z.T @ Z).to(torch.float64)
    if not bool(torch.isfinite(G).all()):
        bad_x = not bool(torch.isfinite(X).all())
        raise nonfinite_error("X" if bad_x or Y is None else "y", X if bad_x or Y is None else Y)
    W = W0
    s = G[:q, q]
    c = s / W
    S = G[:q, :q] - outer(s, c)
    mean = mean + c
    if Y is None:
        return W, mean, S, None, None, None
    return W, mean[:p], S[:p, :p], mean[p:], S[:p, p:], S[p:, p:]


def take_rows(X: Any, y: Any, w: Any, start: int, stop: int) -> tuple[Any, Any, Any]:
    """Rows ``start:stop`` of X, y (as a 2-D matrix) and w."""
    Y = None if y is None else (y[start:stop, None] if y.ndim == 1 else y[start:stop])
    return X[start:stop], Y, None if w is None else w[start:stop]


def host(x: Any) -> np.ndarray:
    """A float64 NumPy copy of a statistic (torch state is moved to the host)."""
    return x.detach().cpu().double().numpy() if is_torch(x) else np.asarray(x, dtype=np.float64)


def copy_stat(x: Any) -> Any:
    if x is None:
        return None
    return x.clone() if is_torch(x) else np.array(x, dtype=np.float64)


def like(x: Any, ref: Any) -> Any:
    """Convert ``x`` to the backend (and device) of ``ref``."""
    if x is None:
        return None
    if is_torch(ref):
        import torch

        t = x if is_torch(x) else torch.as_tensor(np.asarray(x))
        return t.to(device=ref.device, dtype=ref.dtype)
    return x.detach().cpu().numpy().astype(np.float64) if is_torch(x) else np.asarray(x, dtype=np.float64)
