"""Shared input checks for every public entry point.

Each check raises a ``ValueError`` (or ``TypeError``) whose message names the argument, the
bad value and what is allowed, so that a user never has to read a traceback to find out what
went wrong. Checks never use bare ``assert``: those vanish under ``python -O``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ComplexDataError",
    "NotFittedError",  # noqa: F822 (built on first use, see __getattr__)
    "as_numpy",
    "check_array",
    "check_choice",
    "check_consistent_length",
    "check_is_fitted",
    "check_positive",
    "check_probability",
    "check_sample_weight",
    "complex_error",
    "describe",
    "is_dask",
    "is_torch",
    "nonfinite_error",
]


@functools.cache
def _not_fitted_error() -> type:
    # built on first use: importing scikit-learn costs ~1.5 s, and numerics must stay light
    from sklearn.exceptions import NotFittedError as SkNotFittedError

    class NotFittedError(SkNotFittedError):
        """Raised when a method needs a fitted estimator.

        A subclass of scikit-learn's ``NotFittedError`` (itself a ``ValueError`` and an
        ``AttributeError``), so ``except sklearn.exceptions.NotFittedError`` catches it for
        every gicho estimator.
        """

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"
    return NotFittedError


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":  # PEP 562: `from gicho._validation import NotFittedError`
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (never imports torch: a tensor implies it is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask collection (array, DataFrame, Series), without importing dask."""
    return type(x).__module__.split(".")[0] == "dask" and callable(getattr(x, "__dask_graph__", None))


def as_numpy(x: Any) -> np.ndarray:
    """``x`` as a host NumPy array (a torch tensor is detached and copied to the CPU)."""
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


class ComplexDataError(TypeError, ValueError):
    """Complex input where only real numbers are allowed.

    A ``TypeError`` (the kind of the problem); also a ``ValueError`` so that scikit-learn's
    estimator checks, which expect "Complex data not supported" as a ValueError, pass.
    """


def complex_error(name: str, x: Any) -> ComplexDataError:
    """The one error for complex input (a float cast would silently drop the imaginary part)."""
    return ComplexDataError(
        f"argument `{name}` is complex ({describe(x)}): Complex data not supported; only real "
        "values are allowed"
    )


def nonfinite_error(name: str, x: Any) -> ValueError:
    """The one error for NaN / inf in ``x`` (NumPy or torch), counting them.

    When ``x`` itself is finite the non-finite value came from an overflow in a statistic
    computed from it (its sums or second moments): the message says so.
    """
    arr = as_numpy(x)
    inexact = np.issubdtype(arr.dtype, np.inexact)
    n_nan = int(np.isnan(arr).sum()) if inexact else 0
    n_inf = int(np.isinf(arr).sum()) if inexact else 0
    if n_nan == 0 and n_inf == 0:
        return ValueError(
            f"argument `{name}` has values so large that its sums or second moments overflow "
            "float64; rescale the data"
        )
    return ValueError(
        f"argument `{name}` contains {n_nan} NaN and {n_inf} infinite value(s); "
        "only finite values are allowed"
    )


def describe(value: Any, limit: int = 60) -> str:
    """A short, readable rendering of ``value`` for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if is_torch(value):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    dtype: Any = np.float64,
    allow_empty: bool = False,
    finite: bool = True,
    min_samples: int = 1,
) -> np.ndarray:
    """Convert ``x`` to a NumPy array and check it.

    Parameters
    ----------
    x : array-like
        The input (list, NumPy array, pandas object, CPU torch tensor).
    name : str
        The argument's name, used in error messages.
    ndim : int or sequence of int, optional
        Allowed numbers of dimensions.
    dtype : numpy dtype or None
        Target dtype; ``None`` keeps the input's dtype. Floating inputs of a narrower
        float type are kept as they are when ``dtype`` is ``"float"``.
    allow_empty : bool
        Whether an array with zero elements is accepted.
    finite : bool
        Whether NaN and infinity are rejected.
    min_samples : int
        Minimum length of the first axis (ignored when ``allow_empty``).

    Returns
    -------
    numpy.ndarray
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor: bring to host memory
        x = x.detach().cpu().numpy()
    def not_numeric(exc: Exception) -> TypeError:
        return TypeError(f"argument `{name}` must be numeric array-like; got {describe(x)} ({exc})")

    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise not_numeric(exc) from None
    if np.iscomplexobj(arr):
        # Casting complex to float drops the imaginary part with only a warning.
        raise complex_error(name, arr)
    try:
        if dtype == "float":
            if not np.issubdtype(arr.dtype, np.floating):
                arr = arr.astype(np.float64)
        elif dtype is not None:
            arr = arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise not_numeric(exc) from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            hint = ""
            if arr.ndim == 1 and 2 in allowed:
                hint = " (reshape a single feature with x.reshape(-1, 1))"
            raise ValueError(
                f"argument `{name}` must have {' or '.join(map(str, allowed))} dimension(s); "
                f"got {arr.ndim} (shape {arr.shape}){hint}"
            )
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"argument `{name}` is empty (shape {arr.shape}); at least one value is required")
    if not allow_empty and arr.ndim >= 1 and arr.shape[0] < min_samples:
        raise ValueError(
            f"argument `{name}` has {arr.shape[0]} sample(s); at least {min_samples} are required"
        )
    if finite and np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
        raise nonfinite_error(name, arr)
    return arr


def check_consistent_length(**arrays: Any) -> int:
    """Check that all given arrays have the same first-axis length; return it.

    Call as ``check_consistent_length(X=X, y=y)`` so the message can name them.
    """
    lengths = {name: len(a) for name, a in arrays.items() if a is not None}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"`{k}` has {v}" for k, v in lengths.items())
        raise ValueError(f"inconsistent numbers of samples: {detail}")
    return next(iter(lengths.values())) if lengths else 0


def check_sample_weight(sample_weight: Any, n_samples: int, name: str = "sample_weight") -> np.ndarray:
    """Return weights as a float64 vector of length ``n_samples`` (ones when ``None``).

    Negative weights and an all-zero weight vector are rejected.
    """
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    w = check_array(sample_weight, name, ndim=1)
    if w.shape[0] != n_samples:
        raise ValueError(f"argument `{name}` has {w.shape[0]} entries; expected {n_samples} (one per sample)")
    if (w < 0).any():
        raise ValueError(
            f"argument `{name}` contains {int((w < 0).sum())} negative value(s) "
            f"(smallest {w.min():g}); weights must be >= 0"
        )
    if not (w > 0).any():
        raise ValueError(f"argument `{name}` is all zeros; at least one weight must be positive")
    return w


def check_choice(value: Any, name: str, allowed: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``allowed``; return it."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(
            f"argument `{name}` must be one of {', '.join(repr(a) for a in allowed)}; got {describe(value)}"
        )
    return value


def check_positive(value: Any, name: str, *, strict: bool = True, integer: bool = False) -> Any:
    """Check that a scalar is a (strictly) positive number, optionally an integer."""
    kind = "integer" if integer else "number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type:
        raise TypeError(f"argument `{name}` must be {'an' if integer else 'a'} {kind}; got {describe(value)}")
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"argument `{name}` must be a finite {kind} {bound}; got {value!r}")
    return value


def check_probability(value: Any, name: str, *, closed: bool = True) -> float:
    """Check that a scalar lies in [0, 1] (or (0, 1) when ``closed`` is False)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"argument `{name}` must be a number in [0, 1]; got {describe(value)}")
    ok = 0 <= value <= 1 if closed else 0 < value < 1
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"argument `{name}` must lie in {interval}; got {value!r}")
    return float(value)


def check_is_fitted(estimator: Any, attributes: str | Sequence[str]) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has all fitted ``attributes``."""
    attributes = (attributes,) if isinstance(attributes, str) else tuple(attributes)
    if not all(hasattr(estimator, a) for a in attributes):
        raise _not_fitted_error()(
            f"this {type(estimator).__name__} is not fitted yet; call `fit` before using it"
        )
