"""Numerically stable softmax, log-softmax and log-sum-exp for NumPy arrays and torch tensors.

All three functions subtract the maximum along the reduced axes before exponentiating, so
``softmax([2000, 0])`` is ``[1, 0]`` without an overflow warning. They share one contract:

* **Types.** NumPy arrays (and array-likes: lists, scalars) give NumPy results; torch tensors
  give tensors of the input's dtype on the input's device (gradients flow). Integer input is
  computed in float64 (NumPy) or torch's default dtype. float16 and bfloat16 are accumulated
  in float32 and the result is cast back to the input dtype.
* **Axes.** ``axis`` is an int, a tuple of ints, or ``None`` for all axes. The default is the
  last axis for all three functions (note: ``scipy.special.logsumexp`` defaults to all axes).
* **Masks.** ``where`` is a boolean array broadcastable to the input's shape; ``False``
  entries are left out, exactly as if they were ``-inf``: they get probability 0 and
  log-probability ``-inf``.
* **Empty rows.** A row (a slice along the reduced axes) whose entries are all ``-inf`` or all
  masked out, or that has no entries at all, has no probability mass: ``softmax`` returns
  zeros for it (not NaN), ``log_softmax`` returns ``-inf`` everywhere and ``logsumexp``
  returns ``-inf``. On tensors the gradients through such a row are zero, never NaN, which
  is what a masked attention needs.
* **NaN and +inf.** NaN is propagated, as in SciPy and torch: a row that contains a NaN is NaN
  in all three results. A row that contains ``+inf`` has ``logsumexp = +inf`` and a NaN
  ``softmax`` / ``log_softmax`` (the limit is undefined when several entries are ``+inf``),
  again as in SciPy and torch. Neither case raises or warns.
* **Temperature.** ``temperature`` ``T`` divides the input first: ``softmax(x / T)``. It must
  be a finite number > 0.

The NumPy path works through the array in blocks (``gicho._blocked``) so that each block's
max, exponential and sum run while the block sits in cache, with one reusable scratch buffer
instead of array-sized temporaries.

torch is never imported by this module: a tensor is recognised (:func:`gicho._validation.is_torch`)
only if the caller has already imported torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gicho._blocked import Scratch, blocks
from gicho._validation import check_positive, describe, is_torch

__all__ = ["log_softmax", "logsumexp", "softmax"]

Axis = int | Sequence[int] | None

# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def softmax(x: Any, axis: Axis = -1, temperature: float = 1.0, where: Any = None) -> Any:
    """Softmax ``exp(x_i / T) / sum_j exp(x_j / T)`` along ``axis``, computed stably.

    Parameters
    ----------
    x : array-like or torch.Tensor, shape (...)
        Scores (logits).
    axis : int, tuple of int or None
        Axes the probabilities sum over; ``None`` means all axes. Default: the last axis.
    temperature : float
        ``T > 0``; larger values flatten the distribution, smaller ones sharpen it.
    where : bool array-like or torch.Tensor, broadcastable to ``x.shape``, optional
        ``False`` marks entries to leave out (probability 0).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape of ``x``
        Non-negative values summing to 1 along ``axis``; all zeros for a row with no entries
        left (all ``-inf`` or all masked). NaN in a row gives a NaN row (see module notes).

    Raises
    ------
    TypeError
        If ``x`` is not real-valued, ``where`` is not boolean, or ``temperature`` is not a number.
    ValueError
        If ``temperature <= 0`` or not finite, ``axis`` is out of range or repeated, or
        ``where`` does not broadcast to ``x``'s shape.

    Examples
    --------
    >>> softmax([2000.0, 0.0])
    array([1., 0.])
    >>> softmax([1.0, 2.0, 3.0], where=[True, False, False])
    array([1., 0., 0.])
    """
    if is_torch(x):
        return _torch_softmax(x, axis, temperature, where, log=False)
    a, axes, out_dtype = _prepare_numpy(x, axis, temperature, where)
    out = np.empty_like(a)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for b in blocks(a.shape, axes):
            o = out[b]
            _shift(a[b], axes, temperature, out=o)
            np.exp(o, out=o)
            s = np.sum(o, axis=axes, keepdims=True)
            o /= np.where(s == 0, 1, s)  # empty rows: exp gave all zeros, keep them (not 0/0)
    return _finish_numpy(out, out_dtype)


def log_softmax(x: Any, axis: Axis = -1, temperature: float = 1.0, where: Any = None) -> Any:
    """Log-softmax ``x_i / T - logsumexp(x / T)`` along ``axis``, computed stably.

    More accurate than ``log(softmax(x))``: entries whose probability underflows to 0 keep a
    finite log-probability (``log_softmax([0, -2000]) == [0, -2000]``).

    Parameters
    ----------
    x, axis, temperature, where
        As in :func:`softmax`.

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape of ``x``
        Log-probabilities; ``-inf`` for masked-out and ``-inf`` entries, and for every entry of
        a row with no entries left.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`.
    """
    if is_torch(x):
        return _torch_softmax(x, axis, temperature, where, log=True)
    a, axes, out_dtype = _prepare_numpy(x, axis, temperature, where)
    out = np.empty_like(a)
    scratch = Scratch(a.dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for b in blocks(a.shape, axes):
            o = out[b]
            _shift(a[b], axes, temperature, out=o)
            e = scratch.like(o)
            e[...] = o
            lse = _log_sum_exp_shifted(e, axes)
            o -= np.where(lse == -np.inf, 0, lse)  # empty rows: o is -inf, keep it (not -inf + inf)
    return _finish_numpy(out, out_dtype)


def logsumexp(
    x: Any,
    axis: Axis = -1,
    temperature: float = 1.0,
    where: Any = None,
    keepdims: bool = False,
) -> Any:
    """Log-sum-exp ``log(sum_i exp(x_i / T))`` along ``axis``, computed stably.

    Parameters
    ----------
    x, axis, temperature, where
        As in :func:`softmax`. Note that the default ``axis`` is the last axis, whereas
        ``scipy.special.logsumexp`` reduces over all axes by default.
    keepdims : bool
        Keep the reduced axes with length 1.

    Returns
    -------
    numpy.ndarray, numpy.float64 (NumPy input reduced to a scalar) or torch.Tensor
        ``-inf`` for a row with no entries left (all ``-inf``, all masked or of length 0);
        ``+inf`` for a row containing ``+inf``; NaN for a row containing NaN.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`.
    """
    if is_torch(x):
        return _torch_logsumexp(x, axis, temperature, where, keepdims)
    a, axes, out_dtype = _prepare_numpy(x, axis, temperature, where)
    out = np.empty([1 if k in axes else n for k, n in enumerate(a.shape)], dtype=a.dtype)
    scratch = Scratch(a.dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for b in blocks(a.shape, axes):
            ab = a[b]
            e = scratch.like(ab)
            m = _shift(ab, axes, temperature, out=e)
            out[b] = _log_sum_exp_shifted(e, axes)  # -inf for an empty row
            out[b] += m
            out[b][m == np.inf] = np.inf  # a row containing +inf (and no NaN)
    if not keepdims:
        out = out.squeeze(axis=axes)
    return _finish_numpy(out, out_dtype)


# --------------------------------------------------------------------------------------------
# NumPy path
# --------------------------------------------------------------------------------------------


def _normalize_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """Return ``axis`` as a tuple of distinct non-negative ints (all axes for ``None``)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axes: tuple[Any, ...] = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(f"argument `axis` must be an int, a tuple of ints or None; got {describe(axis)}")
    if not axes:
        raise ValueError("argument `axis` is an empty tuple; name at least one axis, or None for all")
    result = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"argument `axis` must be an int, a tuple of ints or None; got {describe(axis)}")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"argument `axis` = {axis!r} is out of range for an input with {ndim} dimension(s)"
            )
        result.append(int(a) % ndim)
    if len(set(result)) != len(result):
        raise ValueError(f"argument `axis` = {axis!r} names the same axis more than once")
    return tuple(result)


def _check_where_shape(where_shape: tuple[int, ...], x_shape: tuple[int, ...]) -> None:
    try:
        ok = tuple(np.broadcast_shapes(tuple(where_shape), tuple(x_shape))) == tuple(x_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"argument `where` has shape {tuple(where_shape)}, which does not broadcast to the "
            f"input's shape {tuple(x_shape)}"
        )


def _prepare_numpy(
    x: Any, axis: Axis, temperature: float, where: Any
) -> tuple[np.ndarray, tuple[int, ...], np.dtype]:
    """Validate the arguments; return the working array, the reduced axes and the output dtype."""
    check_positive(temperature, "temperature")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists, for example
        raise TypeError(f"argument `x` must be a numeric array-like; got {describe(x)} ({exc})") from None
    out_dtype = a.dtype
    if a.dtype.kind in "biu":
        a = a.astype(np.float64)
        out_dtype = a.dtype
    elif (a.dtype.kind == "f" and a.dtype.itemsize < 4) or a.dtype.name == "bfloat16":
        a = a.astype(np.float32)  # accumulate half precision in float32
    elif a.dtype.kind != "f":
        raise TypeError(f"argument `x` must be a real-valued array; got dtype {a.dtype}")
    axes = _normalize_axes(axis, a.ndim)
    if where is not None:
        w = np.asarray(where)
        if w.dtype != np.bool_:
            raise TypeError(
                f"argument `where` must be a boolean array (False = leave out); got dtype {w.dtype}"
            )
        _check_where_shape(w.shape, a.shape)
        a = np.where(w, a, -np.inf)
    return a, axes, out_dtype


def _finish_numpy(out: np.ndarray, out_dtype: np.dtype) -> Any:
    with np.errstate(over="ignore"):  # float16: a log-probability below -65504 is -inf, silently
        out = out.astype(out_dtype, copy=False)
    return out[()] if out.ndim == 0 else out


def _shift(a: np.ndarray, axes: tuple[int, ...], temperature: float, out: np.ndarray) -> np.ndarray:
    """Write ``(a - max) / T`` into ``out``; return ``max / T`` (keepdims).

    A row whose max is ``-inf`` (no entries left) is shifted by 0 instead, so that it stays
    ``-inf`` rather than becoming NaN.
    """
    m = np.max(a, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(m == -np.inf, 0, m)
    np.subtract(a, m, out=out)
    if temperature != 1:
        out /= temperature
        m /= temperature
    return m


def _log_sum_exp_shifted(z: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``log(sum(exp(z)))`` (keepdims) of shifted ``z`` (row max 0), overwriting ``z``.

    ``log1p`` of the sum of the entries below the max (plus the number of further maxima),
    as SciPy does since gh-18295: ``log(1 + s)`` would round ``s < eps`` away, so that
    ``logsumexp([0, -40])`` came out 0 instead of 4.248354255291589e-18. An empty row (all
    ``-inf``) gives ``log1p(-1) = -inf``.
    """
    top = z == 0
    n_top = np.sum(top, axis=axes, keepdims=True)
    np.exp(z, out=z)
    z[top] = 0.0
    return np.log1p(np.sum(z, axis=axes, keepdims=True) + (n_top - 1))


# --------------------------------------------------------------------------------------------
# torch path
# --------------------------------------------------------------------------------------------


def _prepare_torch(x: Any, axis: Axis, temperature: float, where: Any) -> tuple[Any, Any, Any, tuple[int, ...]]:
    """Return (x_safe, empty, out_dtype, dims).

    ``x_safe`` is the masked, tempered input in a float32-or-wider dtype with every empty row
    (all ``-inf``) replaced by zeros, so that torch's kernels see no all ``-inf`` row;
    ``empty`` (keepdim bool tensor) marks those rows for the caller to overwrite.
    """
    import torch  # already imported: x is a tensor

    check_positive(temperature, "temperature")
    out_dtype = x.dtype
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"argument `x` must be a real-valued tensor; got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
        out_dtype = x.dtype
    elif x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # accumulate half precision in float32
    dims = _normalize_axes(axis, x.ndim)
    if where is not None:
        w = torch.as_tensor(where, device=x.device)
        if w.dtype != torch.bool:
            raise TypeError(
                f"argument `where` must be a boolean tensor (False = leave out); got dtype {w.dtype}"
            )
        _check_where_shape(tuple(w.shape), tuple(x.shape))
        x = x.masked_fill(~w, -math.inf)
    empty = torch.isneginf(x).all(dim=dims, keepdim=True)
    # +inf (without NaN) in a row: logsumexp = +inf, softmax NaN, as on the NumPy path
    pos_inf = torch.isposinf(x).any(dim=dims, keepdim=True) & ~torch.isnan(x).any(dim=dims, keepdim=True)
    x = x.masked_fill(empty, 0.0)
    # shift by the row max *before* dividing by the temperature: x / T may overflow (x = 1e10,
    # T = 1e-300) where (x - max) / T is -inf or 0; the max is a constant for the gradient
    m = torch.amax(x, dim=dims, keepdim=True).detach() if x.numel() else torch.zeros_like(empty, dtype=x.dtype)
    m = m.masked_fill(~torch.isfinite(m), 0.0)
    z = x - m
    if temperature != 1:
        z = z / temperature
        m = m / temperature
    return z, m, empty, pos_inf, out_dtype, dims


def _torch_softmax(x: Any, axis: Axis, temperature: float, where: Any, *, log: bool) -> Any:
    import torch

    z, _, empty, pos_inf, out_dtype, dims = _prepare_torch(x, axis, temperature, where)
    if len(dims) == 1:
        fn = torch.log_softmax if log else torch.softmax
        y = fn(z, dim=dims[0])
    else:  # several axes (or a 0-d input): no fused kernel; z <= 0, so no cancellation here
        y = z - _torch_lse(z, dims)
        if not log:
            y = y.exp()
    y = y.masked_fill(pos_inf, math.nan)
    return y.masked_fill(empty, -math.inf if log else 0.0).to(out_dtype)


def _torch_logsumexp(x: Any, axis: Axis, temperature: float, where: Any, keepdims: bool) -> Any:

    z, m, empty, pos_inf, out_dtype, dims = _prepare_torch(x, axis, temperature, where)
    y = (m + _torch_lse(z, dims)).masked_fill(empty, -math.inf).masked_fill(pos_inf, math.inf)
    if not keepdims and dims:
        y = y.squeeze(dims)
    return y.to(out_dtype)


def _torch_lse(z: Any, dims: tuple[int, ...]) -> Any:
    """``log(sum(exp(z)))`` of shifted ``z`` (row max 0), correctly rounded for tiny tails.

    The value is ``log1p`` of the sum over the entries below the max (plus the count of
    further maxima), as in SciPy since gh-18295: ``log(1 + s)`` would round ``s < eps`` away
    (``logsumexp([0, -40])`` = 0 instead of 4.2e-18). The gradient is torch's logsumexp's.
    """
    import torch

    std = torch.logsumexp(z, dim=dims, keepdim=True)
    if z.numel() == 0:
        return std
    with torch.no_grad():
        top = z == 0
        rest = torch.exp(z).masked_fill(top, 0.0).sum(dim=dims, keepdim=True)
        precise = torch.log1p(rest + (top.sum(dim=dims, keepdim=True).to(z.dtype) - 1))
    return std + (precise - std).detach()
