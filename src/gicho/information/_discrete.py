"""Discrete entropy, cross-entropy and Kullback–Leibler divergence, and the units of information.

See :mod:`gicho.information` for the input forms and conventions.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.special import xlogy

from gicho._blocked import Scratch, blocks
from gicho._validation import check_array, check_choice, check_positive, describe
from gicho.numerics import logsumexp

__all__ = [
    "SUM_TOLERANCE",
    "cross_entropy",
    "entropy",
    "finish",
    "kl_divergence",
    "log_of_base",
]

InputForm = Literal["probs", "logits", "log_probs"]
INPUT_FORMS = ("probs", "logits", "log_probs")

#: Largest accepted ``|sum - 1|`` of a distribution given as probabilities (or of ``exp`` of
#: log-probabilities) when ``normalize`` is False.
SUM_TOLERANCE = 1e-6

# log 0 is raised to this in the blockwise sums, so that 0 · log 0 = -0 rather than NaN.
_MOST_NEGATIVE = np.finfo(np.float64).min


# --------------------------------------------------------------------------------------------
# Units: ``base=None`` is the natural log (nats), 2 gives bits, 10 hartleys; any positive number
# other than 1 is accepted. Results are computed in nats and divided by ``log(base)`` at the end.
def log_of_base(base: float | None) -> float:
    """``log(base)``, the divisor that turns nats into the requested unit."""
    if base is None:
        return 1.0
    check_positive(base, "base")
    if base == 1:
        raise ValueError("argument `base` must not be 1 (log 1 = 0); use None (e), 2 or 10")
    return math.log(base)


def finish(value: np.ndarray, log_base: float) -> Any:
    """``value`` (nats) divided by ``log_base``; a 0-d array becomes a NumPy scalar."""
    if log_base != 1.0:
        value = value / log_base
    return value[()] if np.ndim(value) == 0 else value


# --------------------------------------------------------------------------------------------
# Discrete distributions
# --------------------------------------------------------------------------------------------


def entropy(
    p: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    input: InputForm = "probs",
    normalize: bool = False,
) -> Any:
    """Shannon entropy ``H(P) = -sum_i p_i log p_i`` along ``axis``.

    Parameters
    ----------
    p : array-like, shape (..., n, ...)
        One or more distributions over ``n`` outcomes along ``axis``.
    axis : int
        The outcome axis. Default: the last.
    base : float, optional
        Logarithm base (``None`` = e, nats; 2 = bits). Any finite number > 0 other than 1.
    input : {"probs", "logits", "log_probs"}
        The form ``p`` is given in (see the module notes).
    normalize : bool
        Rescale each distribution to sum to 1 instead of rejecting one that does not.

    Returns
    -------
    numpy.float64 or numpy.ndarray of shape ``p.shape`` without ``axis``
        Between 0 and ``log(n)`` (in the chosen base).

    Raises
    ------
    TypeError
        Non-numeric input or base.
    ValueError
        Empty or 0-d input, NaN or infinite values (``-inf`` is allowed in the log forms),
        negative probabilities, distributions not summing to 1 without ``normalize=True``,
        a bad ``base``, ``axis`` or ``input``.

    Examples
    --------
    >>> entropy([0.5, 0.5], base=2)
    np.float64(1.0)
    """
    (form,) = _input_forms(input, 1)
    log_base = log_of_base(base)
    (arr,), ax = _as_arrays({"p": p}, axis)
    d = _distribution(arr, "p", form, ax, normalize, axis)
    if d.logp is None:
        # H(p' / s) = -sum p' log p' / s + log s: no rescaled copy
        total = d.total.squeeze(ax)
        h = -_sum_p_log_ratio(d.p, None, ax) / total + np.log(total)
    else:
        h = -np.sum(_p_times(d.p, d.logp), axis=ax)
    return finish(h, log_base)


def cross_entropy(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    input: InputForm | tuple[InputForm, InputForm] = "probs",
    normalize: bool = False,
) -> Any:
    """Cross-entropy ``H(P, Q) = -sum_i p_i log q_i = H(P) + KL(P || Q)`` along ``axis``.

    Parameters
    ----------
    p, q : array-like, broadcastable shapes with the same length along ``axis``
        The true distribution ``P`` and the model ``Q``.
    axis, base, normalize
        As in :func:`entropy`.
    input : str or (str, str)
        The form of both arguments, or of ``p`` and ``q`` separately,
        e.g. ``("probs", "logits")`` for one-hot labels against a model's logits.

    Returns
    -------
    numpy.float64 or numpy.ndarray of the broadcast shape without ``axis``
        ``inf`` where some outcome has ``q = 0 < p``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`entropy`, and for shapes that do not broadcast or differ along ``axis``.
    """
    form_p, form_q = _input_forms(input, 2)
    log_base = log_of_base(base)
    (a, b), ax = _as_arrays({"p": p, "q": q}, axis)
    dp = _distribution(a, "p", form_p, ax, normalize, axis)
    dq = _distribution(b, "q", form_q, ax, normalize, axis)
    if dp.logp is None and dq.logp is None:
        # H(p'/sp, q'/sq) = -sum xlogy(p', q') / sp + log sq: no rescaled copies
        sp, sq = dp.total.squeeze(ax), dq.total.squeeze(ax)
        h = -np.sum(xlogy(dp.p, dq.p), axis=ax) / sp + np.log(sq)
    else:
        p_n, _ = _normalized(dp)
        _, logq = _normalized(dq)
        h = -np.sum(_p_times(p_n, logq), axis=ax)
    return finish(h, log_base)


def kl_divergence(
    p: Any,
    q: Any,
    *,
    axis: int = -1,
    base: float | None = None,
    input: InputForm | tuple[InputForm, InputForm] = "probs",
    normalize: bool = False,
) -> Any:
    """Kullback–Leibler divergence ``KL(P || Q) = sum_i p_i log(p_i / q_i)`` along ``axis``.

    Not symmetric: ``KL(P || Q) != KL(Q || P)`` in general. Always >= 0 (results that
    rounding would put a hair below 0 are clipped to 0) and 0 exactly when ``P == Q``.

    Parameters and raises as in :func:`cross_entropy`.

    Returns
    -------
    numpy.float64 or numpy.ndarray of the broadcast shape without ``axis``
        ``inf`` where some outcome has ``q = 0 < p``.

    Examples
    --------
    >>> float(kl_divergence([0.5, 0.5], [0.9, 0.1], base=2))  # doctest: +ELLIPSIS
    0.7369...
    """
    form_p, form_q = _input_forms(input, 2)
    log_base = log_of_base(base)
    (a, b), ax = _as_arrays({"p": p, "q": q}, axis)
    dp = _distribution(a, "p", form_p, ax, normalize, axis)
    dq = _distribution(b, "q", form_q, ax, normalize, axis)
    if dp.logp is None and dq.logp is None:
        # KL(p'/sp || q'/sq) = sum p' log(p'/q') / sp + log(sq / sp): no rescaled copies
        sp, sq = dp.total.squeeze(ax), dq.total.squeeze(ax)
        kl = _sum_p_log_ratio(dp.p, dq.p, ax) / sp + np.log(sq / sp)
    else:
        p_n, logp = _normalized(dp)
        _, logq = _normalized(dq)
        with np.errstate(invalid="ignore"):  # -inf - -inf where p = 0: masked out below
            kl = np.sum(_p_times(p_n, logp - logq), axis=ax)
    return finish(np.maximum(kl, 0.0), log_base)


class _Dist(NamedTuple):
    """A validated distribution: either ``p`` with row sums ``total`` (keepdims), or
    normalized ``p`` with its log ``logp`` (``total`` is None)."""

    p: np.ndarray
    total: np.ndarray | None
    logp: np.ndarray | None


def _input_forms(value: Any, n: int) -> tuple[str, ...]:
    forms = tuple(value) if isinstance(value, (tuple, list)) and n > 1 else (value,) * n
    if len(forms) != n:
        raise ValueError(
            f"argument `input` must be one of {INPUT_FORMS} or a pair of them; got {describe(value)}"
        )
    for form in forms:
        if not isinstance(form, str):
            raise TypeError(f"argument `input` must be a string or a pair of strings; got {describe(value)}")
        check_choice(form, "input", INPUT_FORMS)
    return forms


def _as_arrays(arrays: dict[str, Any], axis: int) -> tuple[list[np.ndarray], int]:
    """float64 arrays of a common number of dimensions, and ``axis`` made non-negative.

    Shapes must broadcast, except along ``axis``, where all lengths must be equal.
    """
    converted = {}
    for name, value in arrays.items():
        arr = check_array(value, name, dtype=np.float64, finite=False)
        if arr.ndim == 0:
            raise ValueError(f"argument `{name}` must have at least 1 dimension (the outcomes); got a scalar")
        converted[name] = arr
    try:
        shape = np.broadcast_shapes(*(a.shape for a in converted.values()))
    except ValueError:
        detail = " and ".join(f"`{k}` has shape {a.shape}" for k, a in converted.items())
        raise ValueError(f"shapes do not broadcast: {detail}") from None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"argument `axis` must be an int; got {describe(axis)}")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"argument `axis` = {axis} is out of range for inputs with {len(shape)} dimension(s)")
    ax = int(axis) % len(shape)
    out = []
    for arr in converted.values():
        out.append(arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape))
    lengths = {k: a.shape[ax] for k, a in zip(converted, out, strict=True)}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"`{k}` has {n}" for k, n in lengths.items())
        raise ValueError(
            f"the distributions must have the same number of outcomes along axis {axis}: {detail}"
        )
    return out, ax


def _distribution(x: np.ndarray, name: str, form: str, ax: int, normalize: bool, axis: int) -> _Dist:
    """Validate one distribution given in ``form`` along ``ax`` (the caller's ``axis``, made
    non-negative; messages quote ``axis``); see the module notes for the rules."""
    if form == "probs":
        total = np.sum(x, axis=ax, keepdims=True)
        if not np.isfinite(total).all():  # any NaN or inf makes its row's sum non-finite
            _raise_not_finite(x, name, "probabilities must be finite")
        if x.min() < 0:
            raise ValueError(
                f"argument `{name}` contains {int((x < 0).sum())} negative value(s) "
                f"(smallest {x.min():g}); probabilities must be >= 0"
            )
        if normalize:
            if (total == 0).any():
                raise ValueError(
                    f"argument `{name}` has {int((total == 0).sum())} distribution(s) summing to 0 "
                    f"along axis {axis}; normalize=True cannot rescale them"
                )
            # Rescale before taking logs: the copy-free identities used by the callers
            # (sum p' log p' / s + log s) overflow for large unnormalised entries.
            x = x / total
            total = np.sum(x, axis=ax, keepdims=True)
        else:
            _check_sums(total, name, axis, "sum to 1")
        return _Dist(x, total, None)

    lse = logsumexp(x, axis=ax, keepdims=True)
    if not (lse < np.inf).all():  # NaN or +inf somewhere (logsumexp propagates both)
        _raise_not_finite(x, name, f"{form} must be finite or -inf", allow_neg_inf=True)
    if (lse == -np.inf).any():
        raise ValueError(
            f"argument `{name}` has {int((lse == -np.inf).sum())} distribution(s) whose {form} are "
            "all -inf (no probability mass)"
        )
    if form == "log_probs" and not normalize:
        _check_sums(np.exp(lse), name, axis, "satisfy sum(exp(log_probs)) = 1")
    logp = x - lse
    return _Dist(np.exp(logp), None, logp)


def _check_sums(total: np.ndarray, name: str, axis: int, what: str) -> None:
    error = np.abs(total - 1)
    if (error > SUM_TOLERANCE).any():
        worst = int(np.argmax(error))
        n_bad = int((error > SUM_TOLERANCE).sum())
        raise ValueError(
            f"argument `{name}` must {what} along axis {axis} (within {SUM_TOLERANCE:g}); "
            f"found a sum of {total.flat[worst]:.10g} ({n_bad} of {total.size} distribution(s) "
            "off); pass normalize=True to rescale"
        )


def _raise_not_finite(x: np.ndarray, name: str, rule: str, allow_neg_inf: bool = False) -> None:
    n_nan = int(np.isnan(x).sum())
    n_inf = int((np.isposinf(x) if allow_neg_inf else np.isinf(x)).sum())
    if n_nan or n_inf:
        kind = "+inf" if allow_neg_inf else "infinite"
        raise ValueError(f"argument `{name}` contains {n_nan} NaN and {n_inf} {kind} value(s); {rule}")
    raise ValueError(f"argument `{name}` has a sum that overflows to inf; {rule} and summable")


def _normalized(d: _Dist) -> tuple[np.ndarray, np.ndarray]:
    """Normalized probabilities and their natural logs (``-inf`` where 0)."""
    if d.logp is not None:
        return d.p, d.logp
    p = d.p / d.total
    with np.errstate(divide="ignore"):
        return p, np.log(p)


def _sum_p_log_ratio(p: np.ndarray, q: np.ndarray | None, axis: int) -> np.ndarray:
    """``sum_i p_i log(p_i / q_i)`` along ``axis`` (``q=None``: ``sum_i p_i log p_i``), 0 · log 0 = 0.

    ``p, q`` are finite and >= 0. Evaluated blockwise (``gicho._blocked``): ratio, log and a
    row-wise dot product per block, in one scratch buffer. ``log 0`` and ``log(0 / 0)`` are
    raised to the most negative float (``fmax`` drops NaN), so a term with ``p = 0`` is -0,
    while ``p > 0 = q`` stays ``+inf``.
    """
    shape = p.shape if q is None else np.broadcast_shapes(p.shape, q.shape)
    p = np.moveaxis(np.broadcast_to(p, shape), axis, -1)  # outcomes last: (..., n)
    q = None if q is None else np.moveaxis(np.broadcast_to(q, shape), axis, -1)
    out = np.empty(p.shape[:-1])
    scratch = Scratch(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for b in blocks(p.shape, (p.ndim - 1,)):  # b slices a leading axis only: valid for out
            pb = p[b]
            r = np.log(pb, out=scratch.like(pb)) if q is None else np.divide(pb, q[b], out=scratch.like(pb))
            if q is not None:
                np.log(r, out=r)
            np.fmax(r, _MOST_NEGATIVE, out=r)
            out[b] = np.einsum("...i,...i->...", pb, r)
    if q is not None:
        # p / q overflows to inf for a subnormal q: redo such rows as log p - log q
        suspect = np.isposinf(out)
        if suspect.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                ps, qs = p[suspect], q[suspect]
                out[suspect] = np.sum(_p_times(ps, np.log(ps) - np.log(qs)), axis=-1)
    return out


def _p_times(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``p * v`` with 0 wherever ``p == 0`` (0 · log 0 = 0), without NaN or warnings."""
    out = np.zeros(np.broadcast_shapes(p.shape, v.shape))
    return np.multiply(p, v, out=out, where=p > 0)
